"""OWSLib's OGC API - Processes client (``owslib.ogcapi.processes.Processes``) against a live
``hpc-wps serve``: list, describe, execute synchronously and asynchronously (the job followed to its
results through the same client)."""

from __future__ import annotations

import pytest
from owslib.ogcapi.processes import Processes

from tests.conftest import LiveServer, wait_for
from tests.ogcapi_json import validate, validate_results


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> Processes:
    return Processes(live_server.url.removesuffix("/wps") + "/")


def test_landing_page_and_conformance(client: Processes):
    assert {link["rel"] for link in client.links} >= {"self", "service-desc", "service-doc"}
    validate(client.response, "landingPage")
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core" in client.conformance()["conformsTo"]
    assert client.api()["openapi"].startswith("3.0")


def test_list_and_describe(client: Processes):
    listed = {p["id"]: p for p in client.processes()}
    assert {"say_hello", "sleep", "echo"} <= set(listed)
    described = validate(client.process("sleep"), "process")
    assert described["inputs"]["delay"]["schema"]["type"] == "number"


def test_execute_sync(client: Processes):
    results = client.execute("say_hello", inputs={"name": "OWSLib"})
    assert validate_results(results) == {"response": "Hello OWSLib"}


def test_execute_async_and_follow_the_job(client: Processes):
    accepted = validate(client.execute("sleep", inputs={"delay": 0.5}, async_=True), "statusInfo")
    assert accepted["status"] == "accepted"
    job_id = accepted["jobID"]
    assert client.response_headers["Location"].endswith(f"/jobs/{job_id}")
    # OWSLib keeps sending Prefer: respond-async on the GETs that follow: it is ignored there.
    done = wait_for(lambda: (s := client._request(path=f"jobs/{job_id}"))["status"] == "successful" and s, 60)
    validate(done, "statusInfo")
    results = client._request(path=f"jobs/{job_id}/results")
    assert validate_results(results) == {"sleep_output": "slept for 0.5 seconds"}
