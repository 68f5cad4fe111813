"""The three Execute requests of OGC's WPS 1.0.0 test suite, run against the echo process.

The files name the 52°North reference server's echo process; the only substitution is the process
identifier. Everything else (untyped ComplexData with an XML child, ``dataType="xs:string"``,
``encoding="UTF-8"`` on the outputs, the xsi:schemaLocation) is sent as it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import wait_for
from tests.xsd import OWS11, SHARED, WPS10, require

ETS = SHARED / "ogc-ets-requests"
WPS10_REQUESTS = ETS / "wps10"
NS = {"wps": WPS10, "ows": OWS11}
ECHO = "echo"


@pytest.fixture(scope="module")
def requests_dir() -> Path:
    require(ETS, "OGC's executable test suite requests")
    return WPS10_REQUESTS


def ets_request(directory: Path, name: str) -> bytes:
    root = etree.parse(str(directory / name)).getroot()
    root.find(f"{{{OWS11}}}Identifier").text = ECHO
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def outputs(root: etree._Element) -> dict[str, etree._Element]:
    return {
        o.findtext(f"{{{OWS11}}}Identifier"): o.find(f"{{{WPS10}}}Data")
        for o in root.iterfind(f"{{{WPS10}}}ProcessOutputs/{{{WPS10}}}Output")
    }


def assert_echoed(root: etree._Element) -> None:
    assert root.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessSucceeded") is not None
    assert root.findtext(f"{{{WPS10}}}Process/{{{OWS11}}}Identifier") == ECHO
    data = outputs(root)
    assert set(data) == {"literalOutput", "complexOutput"}
    assert data["literalOutput"].findtext(f"{{{WPS10}}}LiteralData") == "Hello!"
    complex_data = data["complexOutput"].find(f"{{{WPS10}}}ComplexData")
    assert complex_data.get("mimeType") == "text/xml"
    assert len(complex_data) == 1
    assert complex_data[0].tag == "testElement" and complex_data[0].text == "testValue"


def test_every_request_file_is_sent(requests_dir):
    assert {p.name for p in requests_dir.iterdir()} == {
        "wps_execute_request_response_document.xml",
        "wps_execute_request_updating_response_document.xml",
        "wps_execute_request_complexdata.xml",
    }


def test_response_document(wps, requests_dir):
    body = ets_request(requests_dir, "wps_execute_request_response_document.xml")
    response = wps.post("/wps", data=body, content_type="text/xml")
    assert response.status_code == 200
    assert response.xml.tag == f"{{{WPS10}}}ExecuteResponse"
    assert response.xml.get("statusLocation") is None  # storeExecuteResponse="false"
    assert_echoed(response.xml)


def test_stored_updating_response_document(wps, dispatcher, requests_dir):
    body = ets_request(requests_dir, "wps_execute_request_updating_response_document.xml")
    response = wps.post("/wps", data=body, content_type="text/xml")
    assert response.status_code == 200
    root = response.xml
    assert root.tag == f"{{{WPS10}}}ExecuteResponse"
    status = root.find(f"{{{WPS10}}}Status")[0]
    assert etree.QName(status).localname in ("ProcessAccepted", "ProcessStarted", "ProcessSucceeded")
    location = root.get("statusLocation")
    assert location and location.startswith("http://testserver/wps/jobs/")
    path = location.removeprefix("http://testserver")

    def succeeded():  # type: ignore[no-untyped-def]
        document = wps.get(path)
        assert document.status_code == 200
        done = document.xml.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessSucceeded") is not None
        return done and (document.xml,)  # in a tuple: an element's truth value is its number of children

    (stored,) = wait_for(succeeded, timeout=30)
    assert stored.get("statusLocation") == location
    assert_echoed(stored)


def test_complex_data_raw_output(wps, requests_dir):
    body = ets_request(requests_dir, "wps_execute_request_complexdata.xml")
    # A raw XML output is not an OGC document: read it with the plain client, not the validating one.
    response = wps.client.post("/wps", data=body, content_type="text/xml")
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    output = etree.fromstring(response.get_data())
    assert output.tag == "testElement" and output.text == "testStringValue"
