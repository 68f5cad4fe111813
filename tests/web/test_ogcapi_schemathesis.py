"""schemathesis against the service's own OpenAPI document (``/api``), on a live ``hpc-wps serve``:
no server error, and no response that contradicts the document (status codes, content types,
headers, schemas).

Generated path parameters are random strings, which name no process or job; so that generated
bodies and queries also reach a real process and a real job, every other case of an operation with
a ``processId`` is pointed at ``say_hello`` (the execute body is then read and checked to the end:
it always succeeds given a valid name, so any 5xx is the service's) and every other ``jobId`` at a
job made for the purpose. Valid and invalid requests both (schemathesis' positive and negative
generation). Bounded: a few dozen examples per operation, well under two minutes.

(The operations are driven by hypothesis directly: schemathesis' own pytest loader does not run
under pytest 9.)
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import LiveServer

EXAMPLES = 40
# An execute document valid against the generic schema can still lack an input its process requires
# or give one a value of the wrong type: the process's own description says what it takes, and the
# document lists 400 for it. Every other check runs (no 5xx, documented statuses, types, headers,
# response schemas, and invalid requests rejected).
EXCLUDED = [positive_data_acceptance]
REAL_PROCESS = "say_hello"


@pytest.fixture(scope="module")
def api_root(live_server: LiveServer) -> str:
    return live_server.url.removesuffix("/wps")


@pytest.fixture(scope="module")
def real_job(api_root: str) -> str:
    response = requests.post(
        f"{api_root}/processes/{REAL_PROCESS}/execution",
        json={"inputs": {"name": "fuzz"}},
        headers={"Prefer": "respond-async"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["jobID"]


def _pointed(case, real_job: str):  # type: ignore[no-untyped-def]
    parameters = case.path_parameters or {}
    if "processId" in parameters and len(str(parameters["processId"])) % 2 == 0:
        parameters["processId"] = REAL_PROCESS
    if "jobId" in parameters and len(str(parameters["jobId"])) % 2 == 0:
        parameters["jobId"] = real_job
    return case


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_to_its_document(api_root: str, real_job: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{api_root}/api")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"GET /jobs", "POST /processes/{processId}/execution", "DELETE /jobs/{jobId}"} <= {
        o.label for o in operations
    }
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy(generation_mode=mode))
        def keeps_to_it(case) -> None:  # type: ignore[no-untyped-def]
            _pointed(case, real_job).call_and_validate(timeout=30, excluded_checks=EXCLUDED)

        keeps_to_it()
