"""PyWPS processes on Slurm and on Grid Engine (DRMAA): the node re-creates each process from its
import path (``tests.processes.pywps_procs:PROCESSES``), and what a client gets is what PyWPS 4.8
itself answers for the same request (``tests/pywps_oracle.py``). A representative set: typed
literals and their defaults, complex and bounding box data, a ProcessError's message, and a Metalink
whose member files are fetched over HTTP, in both protocol versions.

Needs ``scripts/services.sh start``: skipped without a cluster, failed in CI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
import requests
from lxml import etree

from tests import pywps_oracle
from tests.clusters.test_drmaa import PatientLiveServer, config
from tests.clusters.test_drmaa import grid_engine as grid_engine  # the fixture, re-used
from tests.conftest import need_backend, slurm_problem, wait_for
from tests.web.test_pywps_processes import EXECUTES, PROCESSES
from tests.xsd import ROOT, WPS20, validate

pytestmark = pytest.mark.slow

XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

HTTP = 30
JOB = 120


def _server_config(backend: str, request: pytest.FixtureRequest) -> str:
    processes = f"[processing]\nprocesses = {PROCESSES}\ndemo_processes = false\n"
    if backend == "slurm":
        problem = slurm_problem()
        if problem:
            need_backend(f"Slurm is needed: {problem}")
        return f"{processes}mode = scheduler\n[scheduler]\nsystem = slurm\npoll_interval = 0.5\nwalltime = 120\n"
    drmaa = config(request.getfixturevalue("grid_engine"))
    return drmaa.replace("[processing]\n", f"{processes}")


@pytest.fixture(scope="module", params=["slurm", "drmaa"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of ``hpc-wps serve`` in scheduler mode on this backend, serving the PyWPS processes."""
    server = PatientLiveServer(tmp_path_factory.mktemp(request.param), _server_config(request.param, request))
    # The processes' package must be importable on the nodes, as a bird's is where it is deployed: the
    # tests package is not installed, so the service (and so sbatch, which passes its environment on)
    # gets the checkout on PYTHONPATH.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
        server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pywps_oracle.Oracle]:
    with pywps_oracle.oracle(tmp_path_factory.mktemp("oracle")) as served:
        yield served


def _get(url: str) -> bytes:
    response = requests.get(url, timeout=HTTP)
    if response.headers.get("Content-Type", "").startswith("text/xml"):
        validate(response.content)
    return response.content


def _run10(base: str, query: str) -> bytes:
    accepted = _get(f"{base}?service=WPS&version=1.0.0&request=Execute&{query}&storeExecuteResponse=true&status=true")
    location = etree.fromstring(accepted).get("statusLocation")

    def finished() -> bytes | None:
        document = _get(location)
        return document if re.search(rb"ProcessSucceeded|ProcessFailed", document) else None

    return wait_for(finished, timeout=JOB, interval=0.5)


@pytest.mark.parametrize("name", ["every type", "occurrences and units", "complex and bbox"])
def test_outputs_on_the_cluster_are_pywps_outputs(cluster, oracle, name):
    expected = pywps_oracle.outputs(oracle.get(f"request=Execute&{EXECUTES[name]}")[1])
    assert pywps_oracle.outputs(_run10(cluster, EXECUTES[name])) == expected


def test_process_error_message_from_the_node(cluster, oracle):
    query = "identifier=failing&DataInputs=how=process_error"
    expected = pywps_oracle.failure(oracle.get(f"request=Execute&{query}")[1])[1]
    assert pywps_oracle.failure(_run10(cluster, query))[1] == expected


def test_metalink_from_the_node_in_wps20(cluster):
    body = b"""<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0"
      service="WPS" version="2.0.0" response="document" mode="async"><ows:Identifier>metalink</ows:Identifier>
      <wps:Input id="files"><wps:Data>2</wps:Data></wps:Input><wps:Output id="output" transmission="reference"/></wps:Execute>"""
    accepted = requests.post(cluster, data=body, headers={"Content-Type": "text/xml"}, timeout=HTTP)
    job_id = validate(accepted.content).findtext(f"{{{WPS20}}}JobID")
    status = f"{cluster}?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}"
    wait_for(lambda: re.search(rb">(Succeeded|Failed)<", _get(status)), timeout=JOB, interval=0.5)
    result = _get(f"{cluster}?service=WPS&version=2.0.0&request=GetResult&jobId={job_id}")
    metalink = requests.get(validate(result).find(f".//{{{WPS20}}}Reference").get(XLINK_HREF), timeout=HTTP)
    urls = re.findall(rb"<metaurl[^>]*>([^<]+)<", metalink.content)
    assert len(urls) == 2, metalink.content
    assert sorted(requests.get(u.decode(), timeout=HTTP).content for u in urls) == [b"content 0\n", b"content 1\n"]
