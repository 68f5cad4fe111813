"""The requests of OGC's WPS 2.0 executable test suite (ets-wps20), sent as the suite sends them.

The suite reads the echo process's DescribeProcess, substitutes the process identifier and the literal
and complex input/output identifiers into its request files, re-serializes them (with an XML
declaration) and POSTs them as ``application/xml``. Remote inputs by reference point at a small HTTP
server on 127.0.0.1 that serves the two data files next to the requests. Each test asserts what the
suite asserts (and a little more: every XML document is schema-valid through the ``wps`` client).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import serve_directory
from tests.xsd import OWS20, SHARED, WPS20, require

ETS = SHARED / "ogc-ets-requests"
WPS20_REQUESTS = ETS / "wps20"
NS = {"wps": WPS20, "ows": OWS20}
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
ECHO = "echo"  # the suite's EchoProcessId test-run argument
POST = {"content_type": "application/xml"}  # what the suite's HttpURLConnection sends

# Every request file this module sends; test_every_request_file_is_sent keeps the list complete.
COVERED = {
    "GetCapabilities.xml",
    "DescribeProcess.xml",
    "Echo_Process_Literal.xml",
    "Echo_Process_Complex.xml",
    "Execute_Sync.xml",
    "Execute_Async.xml",
    "Execute_Auto.xml",
    "ValidInputValue.xml",
    "ValidInputReference.xml",
    "ValidOutputValue.xml",
    "ValidOutputReference.xml",
    "ValidUniqueJobIds.xml",
    "ValidGetStatus.xml",
    "ValidGetResult.xml",
}


@pytest.fixture(scope="module")
def requests_dir() -> Path:
    require(ETS, "OGC's executable test suite requests")
    return WPS20_REQUESTS


@pytest.fixture(scope="module")
def data_server(requests_dir: Path) -> Iterator[str]:
    """Serves vehicle.txt and vehicles.xml on 127.0.0.1 in place of the remote hosts the files name."""
    with serve_directory(requests_dir) as base:
        yield base


@dataclass(frozen=True)
class EchoIds:
    literal_input: str
    literal_output: str
    complex_input: str
    complex_output: str


def _first(parameters: list[etree._Element], literal: bool) -> str:
    for parameter in parameters:
        if literal:
            types = parameter.xpath("wps:LiteralData//ows:DataType/text()", namespaces=NS)
            if any(t.strip().lower() == "string" for t in types):
                return parameter.findtext(f"{{{OWS20}}}Identifier")
        elif parameter.find(f"{{{WPS20}}}ComplexData") is not None:
            return parameter.findtext(f"{{{OWS20}}}Identifier")
    raise AssertionError(f"echo offers no {'string LiteralData' if literal else 'ComplexData'} parameter")


@pytest.fixture
def echo(wps, requests_dir) -> EchoIds:  # type: ignore[no-untyped-def]
    """What the suite learns first: the echo process's literal and complex identifiers."""
    response = wps.get(f"/wps?Service=WPS&Version=2.0.0&Request=DescribeProcess&Identifier={ECHO}")
    assert response.status_code == 200
    process = response.xml.find(f"{{{WPS20}}}ProcessOffering/{{{WPS20}}}Process")
    inputs = process.findall(f"{{{WPS20}}}Input")
    outputs = process.findall(f"{{{WPS20}}}Output")
    return EchoIds(_first(inputs, True), _first(outputs, True), _first(inputs, False), _first(outputs, False))


def _local(href: str, base: str) -> str:
    """The 127.0.0.1 URL of the data file a remote href of the suite points at."""
    return f"{base}/vehicle.txt" if href.endswith("vehicle.txt") else f"{base}/vehicles.xml"


def ets_request(
    name: str,
    process: str | None = None,
    inputs: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
    base: str | None = None,
    job_id: str | None = None,
    **attributes: str,
) -> bytes:
    """A request file with the suite's substitutions, serialized as its DOM transformer does."""
    root = etree.parse(str(WPS20_REQUESTS / name)).getroot()
    if process is not None:
        root.find(f"{{{OWS20}}}Identifier").text = process
    for element in root.iterfind(f"{{{WPS20}}}Input"):
        element.set("id", (inputs or {}).get(element.get("id"), element.get("id")))
    for element in root.iterfind(f"{{{WPS20}}}Output"):
        element.set("id", (outputs or {}).get(element.get("id"), element.get("id")))
    if base is not None:
        for reference in root.iter(f"{{{WPS20}}}Reference"):
            reference.set(XLINK_HREF, _local(reference.get(XLINK_HREF), base))
    if job_id is not None:
        root.find(f"{{{WPS20}}}JobID").text = job_id
    for key, value in attributes.items():
        root.set(key, value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def literal_request(echo: EchoIds, **attributes: str) -> bytes:
    """Echo_Process_Literal.xml as the suite's ProcessEchoProcessLiteralDataRequest prepares it."""
    return ets_request(
        "Echo_Process_Literal.xml",
        ECHO,
        {"example.input.id": echo.literal_input},
        {"example.output.id": echo.literal_output},
        **attributes,
    )


def literal_values(root: etree._Element) -> list[str]:
    return root.xpath("//wps:Output/wps:Data/wps:LiteralValue/text()", namespaces=NS)


def post(wps, body: bytes, tag: str):  # type: ignore[no-untyped-def]
    """POST ``body``; the answer must be HTTP 200 and a (schema-valid) document rooted at wps:``tag``."""
    response = wps.post("/wps", data=body, **POST)
    assert response.status_code == 200, response.get_data()[:2000]
    assert response.xml.tag == f"{{{WPS20}}}{tag}", response.get_data()[:2000]
    return response.xml


def job_id_of(status_info: etree._Element) -> str:
    job_id = status_info.findtext(f"{{{WPS20}}}JobID")
    assert job_id
    return job_id


# -- Basic tests: capabilities, description, the echo process ----------------------------------------


def test_every_request_file_is_sent(requests_dir):
    data_files = {"vehicle.txt", "vehicles.xml"}
    assert {p.name for p in requests_dir.iterdir()} == COVERED | data_files


def test_get_capabilities_via_post(wps, requests_dir):
    root = post(wps, ets_request("GetCapabilities.xml"), "Capabilities")
    identifiers = root.xpath("wps:Contents/wps:ProcessSummary/ows:Identifier/text()", namespaces=NS)
    assert ECHO in identifiers and len(identifiers) == len(set(identifiers))


def test_describe_process_via_post(wps, requests_dir):
    root = post(wps, ets_request("DescribeProcess.xml", ECHO), "ProcessOfferings")
    assert root.xpath("wps:ProcessOffering/wps:Process/ows:Identifier/text()", namespaces=NS) == [ECHO]
    # A.4.3: the echo process must have literal, complex and bounding box data.
    for kind in ("LiteralData", "ComplexData", "BoundingBoxData"):
        assert root.xpath(f"//wps:Input/wps:{kind}", namespaces=NS), kind
    offering = root.find(f"{{{WPS20}}}ProcessOffering")
    assert {"sync-execute", "async-execute"} <= set(offering.get("jobControlOptions").split())
    assert set(offering.get("outputTransmission").split()) == {"value", "reference"}


def test_echo_identifiers_found_as_the_suite_looks_for_them(echo):
    assert echo == EchoIds("literalInput", "literalOutput", "complexInput", "complexOutput")


def test_echo_literal_sync_raw_and_document(wps, echo, requests_dir):
    raw = wps.client.post("/wps", data=literal_request(echo), **POST)  # response="raw" mode="sync" in the file
    assert raw.status_code == 200
    assert raw.get_data() == b"hello_literal"
    assert raw.mimetype == "text/plain"
    document = post(wps, literal_request(echo, mode="sync", response="document"), "Result")
    assert literal_values(document) == ["hello_literal"]
    assert document.xpath("wps:Output/@id", namespaces=NS) == [echo.literal_output]


def test_echo_complex_sync_raw(wps, echo, requests_dir):
    body = ets_request(
        "Echo_Process_Complex.xml",
        ECHO,
        {"example.input.id": echo.complex_input},
        {"example.output.id": echo.complex_output},
    )
    # Raw XML output is not an OGC document: read it with the plain client, not the validating one.
    raw = wps.client.post("/wps", data=body, **POST)
    assert raw.status_code == 200
    assert raw.mimetype in ("text/xml", "application/xml")
    output = etree.fromstring(raw.get_data())
    assert output.tag == "testElement" and output.text == "hello_complex"


# -- Input and output transmission --------------------------------------------------------------------


def _transmission(name: str, echo: EchoIds, base: str | None = None) -> bytes:
    return ets_request(
        name,
        ECHO,
        {"literalInput": echo.literal_input},
        {"literalOutput": echo.literal_output},
        base=base,
    )


@pytest.mark.parametrize("name", ["ValidInputValue.xml", "ValidOutputValue.xml"])
def test_input_and_output_by_value(wps, echo, requests_dir, name):
    root = post(wps, _transmission(name, echo), "Result")
    assert root.xpath("wps:Output/wps:Data", namespaces=NS)
    assert literal_values(root) == ["PASSED"]


def test_input_by_reference(wps, echo, data_server):
    root = post(wps, _transmission("ValidInputReference.xml", echo, data_server), "Result")
    expected = (WPS20_REQUESTS / "vehicle.txt").read_text(encoding="utf-8").strip()
    assert literal_values(root) == [expected]


def test_output_by_reference(wps, echo, data_server):
    root = post(wps, _transmission("ValidOutputReference.xml", echo, data_server), "Result")
    references = root.xpath("wps:Output/wps:Reference", namespaces=NS)
    assert len(references) == 1
    href = references[0].get(XLINK_HREF)
    assert href.startswith("http://testserver/wps/jobs/")
    download = wps.get(href.removeprefix("http://testserver"))
    assert download.status_code == 200
    assert download.mimetype == "text/plain"
    assert download.get_data().decode("utf-8") == (WPS20_REQUESTS / "vehicle.txt").read_text(encoding="utf-8").strip()


@pytest.mark.parametrize("name", ["ValidInputValue.xml", "ValidOutputValue.xml", "ValidUniqueJobIds.xml"])
def test_files_accepted_verbatim(wps, requests_dir, name):
    """Leading blank, no XML declaration, the ``aw3.org`` xsi typo, the reference server's process name."""
    tag = "StatusInfo" if name == "ValidUniqueJobIds.xml" else "Result"
    root = post(wps, (requests_dir / name).read_bytes(), tag)
    if tag == "Result":
        assert literal_values(root) == ["PASSED"]


# -- Asynchronous execution, GetStatus, GetResult -------------------------------------------------------


def test_unique_job_ids(wps, dispatcher, requests_dir):
    body = ets_request("ValidUniqueJobIds.xml")  # not templated: org.n52.javaps.test.EchoProcess
    first = job_id_of(post(wps, body, "StatusInfo"))
    second = job_id_of(post(wps, body, "StatusInfo"))
    assert first != second


def test_get_status_right_after_async_execute(wps, dispatcher, echo):
    accepted = post(wps, literal_request(echo, mode="async", response="document"), "StatusInfo")
    job_id = job_id_of(accepted)
    status = post(wps, ets_request("ValidGetStatus.xml", job_id=job_id), "StatusInfo")
    assert status.findtext(f"{{{WPS20}}}JobID") == job_id
    assert status.findtext(f"{{{WPS20}}}Status") == "Succeeded"
    # A.5.18: the same through KVP, parameter names in upper and in lower case.
    for query in (
        f"SERVICE=WPS&VERSION=2.0.0&REQUEST=GetStatus&JOBID={job_id}",
        f"service=WPS&version=2.0.0&request=GetStatus&jobid={job_id}",
    ):
        response = wps.get(f"/wps?{query}")
        assert response.status_code == 200
        assert response.xml.findtext(f"{{{WPS20}}}Status") == "Succeeded"


@pytest.mark.parametrize("response_form", ["raw", "document"])
def test_get_result_right_after_async_execute(wps, dispatcher, echo, response_form):
    accepted = post(wps, literal_request(echo, mode="async", response=response_form), "StatusInfo")
    job_id = job_id_of(accepted)
    result = post(wps, ets_request("ValidGetResult.xml", job_id=job_id), "Result")
    assert result.findtext(f"{{{WPS20}}}JobID") == job_id
    assert literal_values(result) == ["hello_literal"]
    kvp = wps.get(f"/wps?Service=WPS&Version=2.0.0&Request=GetResult&JobID={job_id}")
    assert kvp.status_code == 200 and literal_values(kvp.xml) == ["hello_literal"]


# -- Execute_Sync/Async/Auto: the SimpleBuffer requests, mapped onto echo ---------------------------------


def _buffer_request(name: str, echo: EchoIds, base: str) -> bytes:
    """The feature collection by reference becomes the complex input, the width the literal one."""
    return ets_request(
        name,
        ECHO,
        {"data": echo.complex_input, "width": echo.literal_input},
        {"result": echo.complex_output},
        base=base,
    )


def _assert_echoed_features(result: etree._Element, echo: EchoIds) -> None:
    assert result.xpath("wps:Output/@id", namespaces=NS) == [echo.complex_output]
    data = result.find(f"{{{WPS20}}}Output/{{{WPS20}}}Data")
    features = data[0]
    assert features.tag == "{http://www.opengis.net/movingfeatures/1.0}MovingFeatures"
    names = features.xpath("//gml:name/text()", namespaces={"gml": "http://www.opengis.net/gml/3.2"})
    assert names == ["NissanA", "BicycleB"]


def test_execute_sync(wps, echo, data_server):
    result = post(wps, _buffer_request("Execute_Sync.xml", echo, data_server), "Result")
    _assert_echoed_features(result, echo)


@pytest.mark.parametrize("name", ["Execute_Async.xml", "Execute_Auto.xml"])
def test_execute_async_and_auto(wps, dispatcher, echo, data_server, name):
    response = wps.post("/wps", data=_buffer_request(name, echo, data_server), **POST)
    assert response.status_code == 200
    if response.xml.tag == f"{{{WPS20}}}Result":  # auto may run synchronously
        assert name == "Execute_Auto.xml"
        _assert_echoed_features(response.xml, echo)
        return
    assert response.xml.tag == f"{{{WPS20}}}StatusInfo"
    job_id = job_id_of(response.xml)
    status = post(wps, ets_request("ValidGetStatus.xml", job_id=job_id), "StatusInfo")
    assert status.findtext(f"{{{WPS20}}}Status") == "Succeeded"
    _assert_echoed_features(post(wps, ets_request("ValidGetResult.xml", job_id=job_id), "Result"), echo)
