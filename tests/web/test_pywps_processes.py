"""PyWPS 4.8 processes served unchanged (``processes/pywps_adapter``), checked against PyWPS itself.

The processes of ``tests/processes/pywps_procs.py`` are served by PyWPS's own WSGI application (the
oracle, ``tests/pywps_oracle.py``) and by hpc-wps; the same requests must give the same
DescribeProcess content, the same outputs and the same exception codes (modulo the differences the
README lists, normalized in the oracle module). Every hpc-wps document is also validated against the
OGC schemas (``ValidatingClient``). Then the same processes run asynchronously on the local pool,
through the real dispatcher, in both protocol versions.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from lxml import etree

from app import create_app
from tests import pywps_oracle
from tests.conftest import ROOT, ValidatingClient, serve_directory, settings_environ, wait_for
from tests.processes.pywps_procs import TYPES

PROCESSES = "tests.processes.pywps_procs:PROCESSES"
V10 = "service=WPS&version=1.0.0&request="
V20 = "service=WPS&version=2.0.0&request="
IDENTIFIERS = ["literals", "complexes", "progress", "failing", "sync_only", "metalink"]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: what is tested here is the adapter, the same on either job table."""
    return f"sqlite:///{tmp_path / 'jobs.sqlite'}"


@pytest.fixture
def oracle(tmp_path: Path) -> Iterator[pywps_oracle.Oracle]:
    (tmp_path / "oracle").mkdir()
    with pywps_oracle.oracle(tmp_path / "oracle") as served:
        yield served


@pytest.fixture
def pywps_settings(settings):  # type: ignore[no-untyped-def]
    return settings.replace("processing", processes=(PROCESSES,), demo_processes=False)


@pytest.fixture
def hpc(pywps_settings) -> Iterator[ValidatingClient]:  # type: ignore[no-untyped-def]
    application = create_app(pywps_settings)
    application.testing = True
    yield ValidatingClient(application.test_client())
    application.extensions["hpc_wps"].engine.dispose()


@pytest.fixture
def pool(pywps_settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """The real dispatcher (local pool) serving the PyWPS processes; yields its log file."""
    log_path = tmp_path / "dispatcher.log"
    env = settings_environ(pywps_settings) | {"HPC_WPS_PROCESSING_PROCESSES": PROCESSES}
    env["HPC_WPS_PROCESSING_DEMO_PROCESSES"] = "false"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "dispatcher"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        yield log_path
        process.terminate()
        process.wait(timeout=30)


def both(oracle: pywps_oracle.Oracle, hpc: ValidatingClient, query: str) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    status, body = oracle.get(query)
    response = hpc.get(f"/wps?service=WPS&version=1.0.0&{query}")
    return (status, body), (response.status_code, response.get_data())


# -- DescribeProcess -----------------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", IDENTIFIERS)
def test_describe_process_says_what_pywps_says(oracle, hpc, identifier):
    (status, expected), (got_status, got) = both(oracle, hpc, f"request=DescribeProcess&identifier={identifier}")
    assert status == got_status == 200
    assert pywps_oracle.description(got) == pywps_oracle.description(expected)


def test_describe_process_shows_every_literal_feature(hpc):
    """The comparison above cannot show what PyWPS itself leaves out of its documents: checked here."""
    described = pywps_oracle.description(hpc.get(f"/wps?{V10}DescribeProcess&identifier=literals").get_data())
    inputs = {i["identifier"]: i for i in described["inputs"]}
    assert {name: inputs[f"t_{name}"]["data_type"] for name in TYPES} == {name: name for name in TYPES}
    assert inputs["flag"]["default"] is True and inputs["flag"]["min_occurs"] == "0"
    assert inputs["colour"]["values"] == ["red", "green"]
    assert inputs["level"]["ranges"] == [(0, 10, 2, "closed")]
    assert inputs["ratio"]["ranges"] == [(0.0, 1.0, None, "open")]
    assert inputs["listed"]["values_reference"] == "https://example.org/values.xml"
    assert inputs["distance"]["uoms"] == ["metre", "kilometre"]
    assert inputs["many"]["max_occurs"] == "3"
    progress = pywps_oracle.description(hpc.get(f"/wps?{V10}DescribeProcess&identifier=progress").get_data())
    assert progress["metadata"] == [
        ("Documentation", "https://example.org/doc", "https://example.org/role/doc"),
        ("Anonymous link", "https://example.org/anon", None),
    ]
    assert progress["version"] == "1.0"
    two = etree.fromstring(hpc.get(f"/wps?{V20}DescribeProcess&identifier=literals").get_data())
    assert two.find(".//{http://www.opengis.net/ows/2.0}ValuesReference") is not None


# -- Execute, synchronously: the same outputs as PyWPS ----------------------------------------------------


EXECUTES = {
    "every type": "identifier=literals&DataInputs="
    + ";".join(f"t_{name}={quote(value, safe='')}" for name, value in TYPES.items()),
    "defaults only": "identifier=literals",
    "occurrences and units": "identifier=literals&DataInputs=many=1;many=2;distance=3@uom=kilometre;flag=0",
    "allowed values": "identifier=literals&DataInputs=colour=green;level=4;ratio=0.5;free=x;listed=y;lax=anything",
    "complex and bbox": "identifier=complexes&DataInputs=text=hello;area=1,2,3,4",
    "complex only": "identifier=complexes&DataInputs=text=%7B%22a%22%3A1%7D@mimeType=application/json",
}


@pytest.mark.parametrize("query", list(EXECUTES.values()), ids=list(EXECUTES))
def test_synchronous_outputs_are_pywps_outputs(oracle, hpc, query):
    (status, expected), (got_status, got) = both(oracle, hpc, f"request=Execute&{query}")
    assert status == got_status == 200
    assert pywps_oracle.outputs(got) == pywps_oracle.outputs(expected)
    assert pywps_oracle.outputs(got)  # not two empty documents


def _post10(identifier: str, inputs: str, outputs: str) -> bytes:
    return f"""<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
      xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
      <ows:Identifier>{identifier}</ows:Identifier><wps:DataInputs>{inputs}</wps:DataInputs>
      <wps:ResponseForm><wps:ResponseDocument>{outputs}</wps:ResponseDocument></wps:ResponseForm>
    </wps:Execute>""".encode()


def test_output_format_the_client_chose_reaches_the_handler(oracle, hpc, tmp_path):
    """XML POST (PyWPS 4.8 drops the mimeType of KVP ResponseDocument outputs); a reference input."""
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "in.txt").write_text("from afar", encoding="utf-8")
    with serve_directory(tmp_path / "served") as base:
        body = _post10(
            "complexes",
            f'<wps:Input><ows:Identifier>text</ows:Identifier><wps:Reference xlink:href="{base}/in.txt" mimeType="text/plain"/></wps:Input>',
            "<wps:Output><ows:Identifier>summary</ows:Identifier></wps:Output>"
            '<wps:Output mimeType="application/json"><ows:Identifier>copy</ows:Identifier></wps:Output>',
        )
        pywps_oracle.configuration.load_configuration([str(oracle.config)])
        expected = oracle.client.post("/wps", data=body, content_type="text/xml").get_data()
        got = hpc.post("/wps", data=body, content_type="text/xml").get_data()
    # PyWPS lists every output although the ResponseDocument names two: hpc-wps lists those two.
    assert pywps_oracle.outputs(got) == {k: v for k, v in pywps_oracle.outputs(expected).items() if k != "box"}
    summary = pywps_oracle.outputs(got)["summary"][0]
    assert summary["copy_format"] == "application/json" and summary["url_scheme"] == "http"
    assert summary["data"] == "from afar"


def test_an_output_asked_for_by_reference_is_a_reference_as_under_pywps(oracle, hpc):
    """``asReference="true"`` on a PyWPS ComplexOutput (XML POST: PyWPS 4.8 cannot read the KVP form's
    attributes): a Reference in both, and ours fetchable, its bytes what the handler wrote."""
    body = _post10(
        "complexes",
        "<wps:Input><ows:Identifier>text</ows:Identifier><wps:Data><wps:LiteralData>hello</wps:LiteralData>"
        "</wps:Data></wps:Input>",
        '<wps:Output asReference="true"><ows:Identifier>copy</ows:Identifier></wps:Output>',
    )
    pywps_oracle.configuration.load_configuration([str(oracle.config)])
    expected = oracle.client.post("/wps", data=body, content_type="text/xml").get_data()
    got = hpc.post("/wps", data=body, content_type="text/xml").get_data()
    assert pywps_oracle.outputs(expected)["copy"] == pywps_oracle.outputs(got)["copy"] == ("reference", "text/plain")
    href = etree.fromstring(got).find(".//{http://www.opengis.net/wps/1.0.0}Reference").get("href")
    assert hpc.client.get(href.removeprefix("http://testserver")).get_data() == b"hello"


# -- Refusals and failures: the same exception codes and messages -----------------------------------------


REFUSED = {
    "not in the list": "identifier=literals&DataInputs=colour=blue",
    "off the spacing": "identifier=literals&DataInputs=level=3",
    "open range end": "identifier=literals&DataInputs=ratio=1",
    "not an integer": "identifier=literals&DataInputs=t_integer=abc",
    "negative positiveInteger": "identifier=literals&DataInputs=t_positiveInteger=-1",
    "not a date": "identifier=literals&DataInputs=t_date=someday",
    "missing input": "identifier=failing",
    "unknown process": "identifier=nosuch",
    "async without storage": "identifier=sync_only&DataInputs=name=x&storeExecuteResponse=true",
}


@pytest.mark.parametrize("query", list(REFUSED.values()), ids=list(REFUSED))
def test_refusals_have_pywps_exception_codes(oracle, hpc, query):
    (status, expected), (got_status, got) = both(oracle, hpc, f"request=Execute&{query}")
    assert got_status == status
    assert pywps_oracle.failure(got)[0] == pywps_oracle.failure(expected)[0]


def test_documented_differences_from_pywps(oracle, hpc):
    """Where hpc-wps answers otherwise, on purpose (README, "Serving PyWPS processes")."""
    query = "request=Execute&identifier=literals&DataInputs=many=1;many=2;many=3;many=4"
    (status, expected), (got_status, got) = both(oracle, hpc, query)
    assert status == 200 and json.loads(pywps_oracle.outputs(expected)["echo"][0])["many"][0]["data"] == "2"
    assert got_status == 400 and pywps_oracle.failure(got)[0] == "InvalidParameterValue"  # not dropped silently
    (status, expected), (got_status, got) = both(
        oracle, hpc, "request=Execute&identifier=complexes&DataInputs=text=x&ResponseDocument=copy"
    )
    assert set(pywps_oracle.outputs(expected)) == {"summary", "copy", "box"}
    assert set(pywps_oracle.outputs(got)) == {"copy"}  # the outputs the request named


@pytest.mark.parametrize("how", ["process_error", "subclass", "bug"])
def test_failures_say_what_pywps_says(oracle, hpc, how, caplog):
    with caplog.at_level(logging.INFO):
        (status, expected), (got_status, got) = both(
            oracle, hpc, f"request=Execute&identifier=failing&DataInputs=how={how}"
        )
    assert got_status == status
    assert pywps_oracle.failure(got)[1] == pywps_oracle.failure(expected)[1]
    assert b"secret-internal-detail" not in got
    if how == "bug":  # the traceback is in the service's log, tagged with the job
        logged = [r for r in caplog.records if r.name == "processes.pywps_adapter.handler"]
        assert "secret-internal-detail" in (logged[0].exc_text or "") and logged[0].job_id


def test_a_job_carries_the_import_path_not_the_pywps_process():
    """What a batch job's payload holds of a PyWPS process: its import path; the node imports it."""
    import dill

    from processes.registry import import_processes

    blob = dill.dumps(import_processes(PROCESSES)[0])
    assert PROCESSES.encode() in blob
    assert b"pywps.app.Process" not in blob and b"pywps_procs\nLiterals" not in blob
    assert dill.loads(blob).handler.source.path == PROCESSES


def test_pywps_processes_are_served_beside_the_demos(settings):
    application = create_app(settings.replace("processing", processes=(PROCESSES,)))
    listed = application.test_client().get(f"/wps?{V10}GetCapabilities").get_data().decode()
    application.extensions["hpc_wps"].engine.dispose()
    assert "say_hello" in listed and "literals" in listed


# -- What a process reads of its surroundings ------------------------------------------------------------------


def test_workdir_configuration_and_log_are_the_jobs(hpc, caplog):
    with caplog.at_level(logging.INFO):
        response = hpc.get(f"/wps?{V10}Execute&identifier=progress&DataInputs=steps=2")
    report = json.loads(pywps_oracle.outputs(response.get_data())["report"][0])
    job_id = re.search(r"/jobs/([0-9a-f-]+)/outputs", report["outputurl"]).group(1)
    assert report["url"] == "http://testserver/wps"
    assert report["outputpath"].endswith(f"/jobs/{job_id}/outputs")
    assert report["workdir_is_self"] and report["workdir_exists"] and report["uuid_set"]
    ran = [r for r in caplog.records if r.name == "PYWPS" and "progress handler ran" in r.getMessage()]
    assert ran and ran[0].job_id == job_id and f"/jobs/{job_id}/" in ran[0].getMessage()


def test_jobs_side_by_side_in_threads_each_read_their_own_configuration(hpc):
    """gthread workers run synchronous jobs in threads of one process, which has one PyWPS CONFIG: each
    job must still read its own workdir and output URL, also while another job has started since."""
    reports: dict[int, dict] = {}

    def run(index: int) -> None:
        url = f"/wps?{V10}Execute&identifier=progress&DataInputs=steps=2;pause=0.4"
        reports[index] = json.loads(pywps_oracle.outputs(hpc.get(url).get_data())["report"][0])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.2)  # the second starts while the first sleeps
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(reports) == [0, 1]
    assert all(r["workdir_is_self"] for r in reports.values()), reports
    job_ids = {re.search(r"/jobs/([0-9a-f-]+)/outputs", r["outputurl"]).group(1) for r in reports.values()}
    assert len(job_ids) == 2 and all(
        r["outputpath"].split("/jobs/")[1].split("/")[0] in job_ids for r in reports.values()
    )


def test_metalink_members_are_fetchable(hpc, pywps_settings):
    document = hpc.get(f"/wps?{V10}Execute&identifier=metalink&DataInputs=files=3&RawDataOutput=output").get_data()
    paths = [u.decode().removeprefix("http://testserver") for u in re.findall(rb"<metaurl[^>]*>([^<]+)<", document)]
    assert len(paths) == 3
    assert {hpc.client.get(p).get_data() for p in paths} == {b"content 0\n", b"content 1\n", b"content 2\n"}
    # Only the files the job published: not another file put beside them, nor a way out of the folder.
    folder = paths[0].rsplit("/", 1)[0]
    job_id = folder.split("/jobs/")[1].split("/")[0]
    on_disk = pywps_settings.jobs_dir / job_id / "outputs" / folder.rsplit("/", 1)[1]
    (on_disk / "unlisted.txt").write_text("SECRET", encoding="utf-8")
    for attempt in (
        f"{folder}/unlisted.txt",
        f"{folder}/..%2Funlisted.txt",
        f"{folder}/.hidden",
        f"{folder}%2F..%2F..",
    ):
        response = hpc.get(attempt)
        assert response.status_code == 404 and b"SECRET" not in response.get_data(), attempt


# -- Asynchronously, on the local pool ------------------------------------------------------------------------------


def _location(document: bytes) -> str:
    return etree.fromstring(document).get("statusLocation").removeprefix("http://testserver")


def _finished(hpc: ValidatingClient, location: str) -> bytes | None:
    document = hpc.get(location).get_data()
    return document if re.search(rb"ProcessSucceeded|ProcessFailed", document) else None


@pytest.mark.parametrize("query", list(EXECUTES.values())[:5], ids=list(EXECUTES)[:5])
def test_asynchronous_outputs_are_pywps_outputs(oracle, hpc, pool, query):
    expected = pywps_oracle.outputs(oracle.get(f"request=Execute&{query}")[1])
    accepted = hpc.get(f"/wps?{V10}Execute&{query}&storeExecuteResponse=true&status=true")
    assert accepted.status_code == 200
    done = wait_for(lambda: _finished(hpc, _location(accepted.get_data())), timeout=60)
    assert pywps_oracle.outputs(done) == expected


def test_asynchronous_failure_and_progress_in_both_versions(oracle, hpc, pool):
    failed = hpc.get(
        f"/wps?{V10}Execute&identifier=failing&DataInputs=how=process_error&storeExecuteResponse=true&status=true"
    )
    done = wait_for(lambda: _finished(hpc, _location(failed.get_data())), timeout=60)
    expected = oracle.get("request=Execute&identifier=failing&DataInputs=how=process_error")[1]
    assert pywps_oracle.failure(done)[1] == pywps_oracle.failure(expected)[1]

    started = hpc.get(f"/wps?{V10}Execute&identifier=progress&DataInputs=pause=1&storeExecuteResponse=true&status=true")
    location = _location(started.get_data())
    job_id = re.search(r"[0-9a-f]{8}-[0-9a-f-]{27}", location).group(0)

    def at_last_step() -> tuple[bytes, bytes] | None:
        document = hpc.get(location).get_data()
        if b"ProcessSucceeded" in document:
            raise AssertionError(f"the job ended before its last step was seen: {document!r}")
        if b"step 3 of 3" not in document:
            return None
        return document, hpc.get(f"/wps?{V20}GetStatus&jobId={job_id}").get_data()

    document, status = wait_for(at_last_step, timeout=60)
    assert b'percentCompleted="75"' in document  # update_status's message and percentage in 1.0.0
    assert b"<wps:PercentCompleted>75</wps:PercentCompleted>" in status  # and the percentage in 2.0
    wait_for(lambda: _finished(hpc, location), timeout=60)
    result = hpc.get(f"/wps?{V20}GetResult&jobId={job_id}").get_data()
    assert json.loads(etree.fromstring(result).findtext(".//{http://www.opengis.net/wps/2.0}LiteralValue"))["url"]


def test_storage_not_supported_runs_synchronously_only(hpc):
    two = b"""<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0"
      service="WPS" version="2.0.0" response="document" mode="async"><ows:Identifier>sync_only</ows:Identifier>
      <wps:Input id="name"><wps:Data>x</wps:Data></wps:Input></wps:Execute>"""
    refused = hpc.post("/wps", data=two, content_type="text/xml")
    assert pywps_oracle.failure(refused.get_data())[0] == "NoSuchMode"
    synchronous = hpc.get(f"/wps?{V10}Execute&identifier=sync_only&DataInputs=name=x")
    assert pywps_oracle.outputs(synchronous.get_data()) == {"answer": ("Hello x", None)}
