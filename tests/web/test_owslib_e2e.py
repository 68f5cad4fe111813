"""End to end with OWSLib, the client most Python users drive a WPS with: ``hpc-wps serve`` (gunicorn
and the dispatcher) on a free port, and OWSLib's WebProcessingService, monitorExecution and outputs.

Every XML document OWSLib reads from the service is recorded and validated against the OGC schemas;
output files are downloaded and their bytes checked. Waits are bounded: OWSLib's HTTP timeout, and
monitorExecution run in a thread joined with a deadline.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import owslib.util
import owslib.wps
import pytest
import requests
from lxml import etree
from owslib.wps import SYNC, BoundingBoxDataInput, ComplexDataInput, WebProcessingService, monitorExecution
from sqlalchemy import update

from app.settings import load_settings
from scheduler.models import JOBS, JobStatus, utcnow
from tests.conftest import serve_directory
from tests.xsd import OWS11, WPS10, validate

HTTP_TIMEOUT = 30
MONITOR_TIMEOUT = 60
DEMOS = ["say_hello", "sleep", "wordcounter", "echo", "bigoutput", "fail"]
TITLES = ["Say hello", "Sleep", "Word counter", "Echo", "Big output", "Fail"]
XML_FORMATS = ["text/xml", "application/xml", "application/json", "text/plain"]
CRSS = ["EPSG:4326", "EPSG:3857", "urn:ogc:def:crs:EPSG::4326"]

# identifier -> (inputs: id -> (dataType, minOccurs, maxOccurs), outputs: id -> dataType)
DESCRIPTIONS = {
    "say_hello": ({"name": ("string", 1, 1)}, {"response": "string"}),
    "sleep": ({"delay": ("double", 1, 1)}, {"sleep_output": "string"}),
    "wordcounter": ({"text": ("ComplexData", 1, 1)}, {"output": "ComplexData"}),
    "echo": (
        {
            "literalInput": ("string", 0, 1),
            "complexInput": ("ComplexData", 0, 1),
            "boundingBoxInput": ("BoundingBoxData", 0, 1),
        },
        {"literalOutput": "string", "complexOutput": "ComplexData", "boundingBoxOutput": "BoundingBoxData"},
    ),
    "bigoutput": ({"size_mb": ("integer", 1, 1)}, {"output": "ComplexData"}),
    "fail": ({"message": ("string", 0, 1)}, {"never": "string"}),
}


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, etree._Element]]:
    """(URL, document) for every XML document OWSLib reads from a WPS, in order."""
    documents: list[tuple[str, etree._Element]] = []
    original = owslib.wps.WPSReader._readFromUrl

    def recording(self, url, data, timeout, method="Get", **kwargs):  # type: ignore[no-untyped-def]
        element = original(self, url, data, timeout, method, **kwargs)
        documents.append((url, element))
        return element

    monkeypatch.setattr(owslib.wps.WPSReader, "_readFromUrl", recording)
    return documents


def assert_all_valid(documents: list[tuple[str, etree._Element]]) -> list[etree._Element]:
    """Validate each recorded document against the OGC schemas; returns the re-parsed roots."""
    assert documents, "OWSLib fetched no document"
    return [validate(etree.tostring(element)) for _url, element in documents]


@pytest.fixture
def client(live_server) -> WebProcessingService:  # type: ignore[no-untyped-def]
    return WebProcessingService(live_server.url, version="1.0.0", skip_caps=True, timeout=HTTP_TIMEOUT)


def monitor(execution: owslib.wps.WPSExecution, sleep_secs: float = 0.2) -> None:
    """OWSLib's monitorExecution to the end, failing if the job has not ended within MONITOR_TIMEOUT."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            monitorExecution(execution, sleepSecs=sleep_secs)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(MONITOR_TIMEOUT)
    assert not thread.is_alive(), f"job not finished after {MONITOR_TIMEOUT} s; last status {execution.status}"
    if errors:
        raise errors[0]


def status_names(documents: list[tuple[str, etree._Element]], location: str) -> list[str]:
    """The Status child of each status document fetched from ``location``, in order."""
    return [
        etree.QName(element.find(f"{{{WPS10}}}Status")[0]).localname for url, element in documents if url == location
    ]


def submitted_async(execution: owslib.wps.WPSExecution, live_server) -> None:  # type: ignore[no-untyped-def]
    assert execution.status in ("ProcessAccepted", "ProcessStarted", "ProcessSucceeded")
    assert execution.statusLocation.startswith(f"{live_server.url}/jobs/")


# -- GetCapabilities and DescribeProcess ---------------------------------------------------------------


def test_capabilities(client, live_server, fetched):
    client.getcapabilities()
    metadata = load_settings(environ={}).metadata  # the live server runs with the defaults
    identification = client.identification
    assert identification.type == "WPS"
    assert identification.version == "1.0.0"
    assert identification.title == metadata.title
    assert identification.abstract == metadata.abstract
    assert client.provider.name == metadata.provider_name
    assert [p.identifier for p in client.processes] == DEMOS
    assert [p.title for p in client.processes] == TITLES
    assert all(p.processVersion == "1.0.0" for p in client.processes)
    assert [op.name for op in client.operations] == ["GetCapabilities", "DescribeProcess", "Execute"]
    for operation in client.operations:
        assert {(m["type"], m["url"]) for m in operation.methods} == {
            ("Get", live_server.url),
            ("Post", live_server.url),
        }
    (root,) = assert_all_valid(fetched)
    assert root.tag == f"{{{WPS10}}}Capabilities"
    assert validate(etree.tostring(client._capabilities)).get("version") == "1.0.0"


@pytest.mark.parametrize("identifier", DEMOS)
def test_describe_process(client, fetched, identifier):
    process = client.describeprocess(identifier)
    assert process.identifier == identifier
    assert process.title == TITLES[DEMOS.index(identifier)]
    assert process.storeSupported is True and process.statusSupported is True
    inputs, outputs = DESCRIPTIONS[identifier]
    assert {i.identifier: (i.dataType, i.minOccurs, i.maxOccurs) for i in process.dataInputs} == inputs
    assert {o.identifier: o.dataType for o in process.processOutputs} == outputs
    parameters = {p.identifier: p for p in (*process.dataInputs, *process.processOutputs)}
    if identifier == "wordcounter":
        assert [f.mimeType for f in parameters["text"].supportedValues] == ["text/plain"]
        assert parameters["text"].defaultValue.maximumMegabytes == "100"
        assert [f.mimeType for f in parameters["output"].supportedValues] == ["application/json"]
    if identifier == "echo":
        for name in ("complexInput", "complexOutput"):
            assert [f.mimeType for f in parameters[name].supportedValues] == XML_FORMATS
            assert parameters[name].defaultValue.mimeType == "text/xml"
        for name in ("boundingBoxInput", "boundingBoxOutput"):
            assert parameters[name].supportedValues == CRSS
            assert parameters[name].defaultValue == "EPSG:4326"
    if identifier == "bigoutput":
        assert [f.mimeType for f in parameters["output"].supportedValues] == ["application/octet-stream"]
    if identifier == "fail":
        assert parameters["message"].defaultValue == "failed on purpose"
    (root,) = assert_all_valid(fetched)
    assert root.tag == f"{{{WPS10}}}ProcessDescriptions"


def test_describe_all(client, fetched):
    processes = client.describeprocess("all")
    assert [p.identifier for p in processes] == DEMOS
    assert_all_valid(fetched)


# -- Synchronous Execute ---------------------------------------------------------------------------------


def test_say_hello_sync(client, fetched):
    execution = client.execute("say_hello", [("name", "Wörld & <Co>")], output=[("response", False)], mode=SYNC)
    assert execution.status == "ProcessSucceeded" and execution.isSucceded()
    assert execution.statusLocation is None
    (output,) = execution.processOutputs
    assert output.identifier == "response"
    assert output.dataType == "string"
    assert output.data == ["Hello Wörld & <Co>"]
    assert output.reference is None
    (root,) = assert_all_valid(fetched)
    assert root.tag == f"{{{WPS10}}}ExecuteResponse"
    validate(etree.tostring(execution.response))


def echoed_corners(execution: owslib.wps.WPSExecution) -> tuple[str, str, str]:
    """Lower and upper corner and CRS of the echoed bounding box, as the response document has them."""
    bbox = execution.response.find(f".//{{{WPS10}}}Output/{{{WPS10}}}Data/{{{WPS10}}}BoundingBoxData")
    return bbox.findtext(f"{{{OWS11}}}LowerCorner"), bbox.findtext(f"{{{OWS11}}}UpperCorner"), bbox.get("crs")


def test_echo_sync_all_three_kinds(client, fetched):
    execution = client.execute(
        "echo",
        [
            ("literalInput", "plain"),
            ("complexInput", ComplexDataInput('{"a": [1, 2]}', mimeType="application/json")),
            ("boundingBoxInput", BoundingBoxDataInput([1, 2, 3, 4], crs="EPSG:4326")),
        ],
        output=[("literalOutput", False), ("complexOutput", False), ("boundingBoxOutput", False)],
        mode=SYNC,
    )
    assert execution.isSucceded(), execution.errors
    outputs = {o.identifier: o for o in execution.processOutputs}
    assert outputs["literalOutput"].data == ["plain"]
    assert outputs["complexOutput"].mimeType == "application/json"
    assert json.loads(outputs["complexOutput"].data[0]) == {"a": [1, 2]}
    assert len(outputs["boundingBoxOutput"].data) == 1  # an owslib.ows.BoundingBox (axes in EPSG:4326 order)
    assert echoed_corners(execution) == ("1.0 2.0", "3.0 4.0", "EPSG:4326")
    assert_all_valid(fetched)


def test_echo_bbox_with_owslib_default_crs(client):
    execution = client.execute(
        "echo",
        [("boundingBoxInput", BoundingBoxDataInput([1, 2, 3, 4]))],
        output=[("boundingBoxOutput", False)],
        mode=SYNC,
    )
    assert execution.isSucceded()
    assert echoed_corners(execution)[:2] == ("1.0 2.0", "3.0 4.0")


# -- Asynchronous Execute, monitored to the end ----------------------------------------------------------


def test_sleep_async(client, live_server, fetched):
    execution = client.execute("sleep", [("delay", "2")], output=[("sleep_output", False)])
    submitted_async(execution, live_server)
    monitor(execution)
    assert execution.isSucceded() and execution.percentCompleted == 100
    (output,) = execution.processOutputs
    assert output.identifier == "sleep_output" and output.data == ["slept for 2.0 seconds"]
    assert_all_valid(fetched)
    validate(execution.response)  # the last status document, as bytes
    seen = status_names(fetched, execution.statusLocation)
    assert "ProcessStarted" in seen and seen[-1] == "ProcessSucceeded"
    order = ["ProcessAccepted", "ProcessStarted", "ProcessSucceeded"]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    started = [element.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessStarted") for _url, element in fetched]
    percents = [int(s.get("percentCompleted")) for s in started if s is not None]
    assert percents == sorted(percents) and all(0 <= p <= 100 for p in percents)


def test_status_document_at_100_percent(wps, app):
    """The state test_sleep_async polls into about every other run, made deterministic.

    sleep reports 100 % at its last step; until the dispatcher records the end of the job, the job is
    running at 100 %. No dispatcher runs here, so the job is put in that state directly in the table.
    """
    response = wps.get(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep"
        "&storeExecuteResponse=true&status=true&DataInputs=delay=60"
    )
    job_id = response.xml.get("statusLocation").rsplit("/", 1)[1]
    with app.extensions["hpc_wps"].engine.begin() as conn:
        conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(status=JobStatus.RUNNING.value, progress=100, message="slept 5 of 5 steps", started_at=utcnow())
        )
    document = wps.get(f"/wps/jobs/{job_id}")  # the validating client fails on an invalid document
    assert document.status_code == 200
    started = document.xml.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessStarted")
    assert 0 <= int(started.get("percentCompleted")) <= 99


WORDS = "The cat and the hat.\nThe end, the END!\n"
COUNTS = {"the": 4, "end": 2, "cat": 1, "and": 1, "hat": 1}


def test_wordcounter_async_output_by_reference(client, live_server, fetched, tmp_path):
    execution = client.execute(
        "wordcounter", [("text", ComplexDataInput(WORDS, mimeType="text/plain"))], output=[("output", True)]
    )
    submitted_async(execution, live_server)
    monitor(execution)
    assert execution.isSucceded(), execution.errors
    (output,) = execution.processOutputs
    assert output.mimeType == "application/json"
    assert output.reference.startswith(f"{execution.statusLocation}/outputs/")
    download = requests.get(output.reference, timeout=HTTP_TIMEOUT)
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("application/json")
    assert json.loads(download.content) == COUNTS
    # OWSLib's own download writes the same bytes.
    target = tmp_path / "counts.json"
    execution.getOutput(filepath=str(target), identifier="output")
    assert target.read_bytes() == download.content
    assert_all_valid(fetched)


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 for inputs by reference."""
    directory = tmp_path_factory.mktemp("served")
    (directory / "words.txt").write_text(WORDS, encoding="utf-8")
    with serve_directory(directory) as base:
        yield base


def test_wordcounter_async_input_by_reference(client, live_server, fetched, text_server):
    execution = client.execute(
        "wordcounter",
        [("text", ComplexDataInput(f"{text_server}/words.txt", mimeType="text/plain"))],
        output=[("output", False)],
    )
    submitted_async(execution, live_server)
    monitor(execution)
    assert execution.isSucceded(), execution.errors
    (output,) = execution.processOutputs
    assert output.reference is None
    assert json.loads(output.data[0]) == COUNTS
    assert_all_valid(fetched)


def test_bigoutput_async_binary_output_by_reference(client, live_server, fetched, tmp_path):
    execution = client.execute("bigoutput", [("size_mb", "3")], output=[("output", True)])
    submitted_async(execution, live_server)
    monitor(execution)
    assert execution.isSucceded(), execution.errors
    (output,) = execution.processOutputs
    assert output.mimeType == "application/octet-stream"
    size = 0
    with requests.get(output.reference, stream=True, timeout=HTTP_TIMEOUT) as download:
        assert download.status_code == 200
        assert download.headers["Content-Type"] == "application/octet-stream"
        assert int(download.headers["Content-Length"]) == 3 << 20
        for chunk in download.iter_content(1 << 16):
            assert not chunk.strip(b"\0")
            size += len(chunk)
    assert size == 3 << 20
    target = tmp_path / "big.bin"
    execution.getOutput(filepath=str(target))
    assert target.stat().st_size == 3 << 20
    assert_all_valid(fetched)


# -- Failures --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_failing_job_seen_as_failed(client, live_server, fetched, mode):
    message = f"broken on purpose ({mode})"
    execution = client.execute(
        "fail",
        [("message", message)],
        output=[("never", False)],
        mode=SYNC if mode == "sync" else owslib.wps.ASYNC,
    )
    if mode == "async":
        submitted_async(execution, live_server)
        monitor(execution)
    assert execution.isComplete() and not execution.isSucceded()
    # OWSLib reports a ProcessFailed status carrying an ExceptionReport as status "Exception".
    assert execution.status == "Exception"
    assert [(e.code, e.text) for e in execution.errors] == [("NoApplicableCode", message)]
    assert execution.processOutputs == []
    last = execution.response if isinstance(execution.response, bytes) else etree.tostring(execution.response)
    failed = validate(last).find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessFailed")
    assert failed is not None
    assert failed.findtext(f"{{{OWS11}}}ExceptionReport/{{{OWS11}}}Exception/{{{OWS11}}}ExceptionText") == message
    assert_all_valid(fetched)


def test_unknown_process_is_an_exception_report(client, live_server):
    """OWSLib raises on the HTTP 400; the body is a valid OWS ExceptionReport naming the identifier."""
    with pytest.raises(owslib.util.ServiceException) as raised:
        client.execute("no_such_process", [("x", "1")], mode=SYNC)
    root = validate(str(raised.value).encode("utf-8"))
    exception = root.find(f"{{{OWS11}}}Exception")
    assert exception.get("exceptionCode") == "InvalidParameterValue"
    assert exception.get("locator") == "Identifier"
