"""GetCapabilities and DescribeProcess, both versions, KVP and XML, validated against the schemas."""

from __future__ import annotations

import pytest

from tests.xsd import OWS11, OWS20, WPS10, WPS20

DEMOS = {"say_hello", "sleep", "wordcounter", "echo", "bigoutput", "fail"}
NS = {"wps": WPS10, "ows": OWS11, "wps2": WPS20, "ows2": OWS20}


def test_capabilities_default_is_100(wps):
    response = wps.get("/wps?service=WPS&request=GetCapabilities")
    assert response.status_code == 200
    root = response.xml
    assert root.tag == f"{{{WPS10}}}Capabilities"
    assert set(root.xpath("//wps:Process/ows:Identifier/text()", namespaces=NS)) == DEMOS
    operations = root.xpath("//ows:Operation/@name", namespaces=NS)
    assert operations == ["GetCapabilities", "DescribeProcess", "Execute"]
    assert root.xpath("//ows:Get/@xlink:href", namespaces=NS | {"xlink": "http://www.w3.org/1999/xlink"})[0] == (
        "http://testserver/wps"
    )


@pytest.mark.parametrize(
    "query",
    ["service=wps&request=getcapabilities&acceptversions=2.0.0", "SERVICE=WPS&REQUEST=GetCapabilities&VERSION=2.0.0"],
)
def test_capabilities_20_case_insensitive(wps, query):
    response = wps.get(f"/wps?{query}")
    assert response.status_code == 200
    root = response.xml
    assert root.tag == f"{{{WPS20}}}Capabilities"
    summaries = root.xpath("//wps2:ProcessSummary", namespaces=NS)
    assert {s.findtext(f"{{{OWS20}}}Identifier") for s in summaries} == DEMOS
    assert all("async-execute" in s.get("jobControlOptions") for s in summaries)
    assert root.xpath("//ows2:Operation/@name", namespaces=NS)[3:] == ["GetStatus", "GetResult", "Dismiss"]


def test_version_negotiation_failed(wps):
    response = wps.get("/wps?service=WPS&request=GetCapabilities&acceptversions=3.0.0,0.9")
    assert response.status_code == 400
    exception = response.xml.find(f"{{{OWS11}}}Exception")
    assert exception.get("exceptionCode") == "VersionNegotiationFailed"


def test_capabilities_xml_post_with_any_prefix(wps):
    body = (
        b'<wps100:GetCapabilities xmlns:wps100="http://www.opengis.net/wps/1.0.0" '
        b'xmlns:o="http://www.opengis.net/ows/1.1" service="WPS"><wps100:AcceptVersions>'
        b"<o:Version>1.0.0</o:Version></wps100:AcceptVersions></wps100:GetCapabilities>"
    )
    response = wps.post("/wps", data=body, content_type="application/xml")
    assert response.status_code == 200
    assert response.xml.tag == f"{{{WPS10}}}Capabilities"


def test_describe_all_100(wps):
    response = wps.get("/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=ALL")
    assert response.status_code == 200
    root = response.xml
    assert set(root.xpath("ProcessDescription/ows:Identifier/text()", namespaces=NS)) == DEMOS
    sleep = root.xpath("ProcessDescription[ows:Identifier='sleep']", namespaces=NS)[0]
    assert sleep.get("storeSupported") == "true" and sleep.get("statusSupported") == "true"
    delay = sleep.xpath("DataInputs/Input[ows:Identifier='delay']/LiteralData", namespaces=NS)[0]
    assert delay.findtext(f"{{{OWS11}}}DataType") == "double"
    assert delay.xpath("ows:AllowedValues/ows:Range/ows:MaximumValue/text()", namespaces=NS) == ["3600.0"]
    echo = root.xpath("ProcessDescription[ows:Identifier='echo']", namespaces=NS)[0]
    mimes = echo.xpath(
        "DataInputs/Input[ows:Identifier='complexInput']/ComplexData/Supported/Format/MimeType/text()", namespaces=NS
    )
    assert {"text/xml", "application/json", "text/plain"} <= set(mimes)
    assert echo.xpath("DataInputs/Input/BoundingBoxData/Default/CRS/text()") == ["EPSG:4326"]


def test_describe_list_20(wps):
    response = wps.get("/wps?service=WPS&version=2.0.0&request=DescribeProcess&identifier=echo,say_hello")
    assert response.status_code == 200
    offerings = response.xml.xpath("wps2:ProcessOffering", namespaces=NS)
    assert [o.findtext(f"{{{WPS20}}}Process/{{{OWS20}}}Identifier") for o in offerings] == ["echo", "say_hello"]
    echo = offerings[0]
    assert echo.get("outputTransmission") == "value reference"
    types = echo.xpath(".//LiteralDataDomain/ows2:DataType/text()", namespaces=NS)
    assert types[0] == "string"


def test_describe_unknown_process(wps):
    response = wps.get("/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=nope")
    assert response.status_code == 400
    exception = response.xml.find(f"{{{OWS11}}}Exception")
    assert (exception.get("exceptionCode"), exception.get("locator")) == ("InvalidParameterValue", "Identifier")
    response = wps.get("/wps?service=WPS&version=2.0.0&request=DescribeProcess&identifier=nope")
    exception = response.xml.find(f"{{{OWS20}}}Exception")
    assert (exception.get("exceptionCode"), exception.get("locator")) == ("NoSuchProcess", "nope")
