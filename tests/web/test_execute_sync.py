"""Synchronous Execute, WPS 1.0.0 (KVP and XML) and 2.0: documents, raw outputs, references."""

from __future__ import annotations

import base64
import json

from lxml import etree

from scheduler.sync_slots import sync_slot
from tests.xsd import OWS11, OWS20, WPS10, WPS20

NS = {"wps": WPS10, "ows": OWS11, "wps2": WPS20, "ows2": OWS20}


def execute10(inputs: str, outputs: str = "", form: str = "ResponseDocument", **attrs: str) -> bytes:
    attributes = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    response = (
        f"<wps:ResponseForm><wps:{form} {attributes}>{outputs}</wps:{form}></wps:ResponseForm>" if outputs else ""
    )
    return (
        '<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" '
        'xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">'
        f"{inputs}{response}</wps:Execute>"
    ).encode()


def echo_inputs(literal: str = "", complex_: str = "", bbox: str = "") -> str:
    parts = ["<ows:Identifier>echo</ows:Identifier><wps:DataInputs>"]
    if literal:
        parts.append(f"<wps:Input><ows:Identifier>literalInput</ows:Identifier>{literal}</wps:Input>")
    if complex_:
        parts.append(f"<wps:Input><ows:Identifier>complexInput</ows:Identifier>{complex_}</wps:Input>")
    if bbox:
        parts.append(f"<wps:Input><ows:Identifier>boundingBoxInput</ows:Identifier>{bbox}</wps:Input>")
    parts.append("</wps:DataInputs>")
    return "".join(parts)


def test_say_hello_kvp(wps):
    response = wps.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=World")
    assert response.status_code == 200
    root = response.xml
    assert root.xpath("wps:Status/wps:ProcessSucceeded", namespaces=NS)
    assert root.xpath("//wps:Output/wps:Data/wps:LiteralData/text()", namespaces=NS) == ["Hello World"]
    assert root.get("statusLocation") is None


def test_kvp_encoded_separators_stay_in_value(wps):
    response = wps.get(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=a%3Bb%40c%3Dd"
    )
    assert response.xml.xpath("//wps:LiteralData/text()", namespaces=NS) == ["Hello a;b@c=d"]


def test_raw_data_output_literal(wps):
    response = wps.get(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=Raw&RawDataOutput=response"
    )
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data() == b"Hello Raw"


def test_echo_xml_json_text_and_bbox_by_value(wps):
    inputs = echo_inputs(
        literal="<wps:Data><wps:LiteralData>hi</wps:LiteralData></wps:Data>",
        complex_='<wps:Data><wps:ComplexData mimeType="text/xml"><a xmlns="urn:x"><b>1</b></a></wps:ComplexData></wps:Data>',
        bbox='<wps:Data><wps:BoundingBoxData crs="EPSG:4326" dimensions="2"><ows:LowerCorner>1 2</ows:LowerCorner>'
        "<ows:UpperCorner>3 4</ows:UpperCorner></wps:BoundingBoxData></wps:Data>",
    )
    response = wps.post("/wps", data=execute10(inputs, lineage="true"), content_type="text/xml")
    assert response.status_code == 200
    root = response.xml
    outputs = {
        o.findtext(f"{{{OWS11}}}Identifier"): o
        for o in root.iterfind(f".//{{{WPS10}}}ProcessOutputs/{{{WPS10}}}Output")
    }
    assert outputs["literalOutput"].findtext(f".//{{{WPS10}}}LiteralData") == "hi"
    complex_data = outputs["complexOutput"].find(f".//{{{WPS10}}}ComplexData")
    assert complex_data.get("mimeType") == "text/xml"
    assert complex_data[0].tag == "{urn:x}a" and complex_data[0].findtext("{urn:x}b") == "1"
    bbox = outputs["boundingBoxOutput"].find(f".//{{{WPS10}}}BoundingBoxData")
    assert bbox.findtext(f"{{{OWS11}}}LowerCorner") == "1.0 2.0" and bbox.get("crs") == "EPSG:4326"


def test_echo_json_cdata_and_base64(wps):
    payload = json.dumps({"a": [1, 2]})
    inputs = echo_inputs(
        complex_=f'<wps:Data><wps:ComplexData mimeType="application/json"><![CDATA[{payload}]]></wps:ComplexData></wps:Data>'
    )
    response = wps.post("/wps", data=execute10(inputs), content_type="text/xml")
    text = response.xml.findtext(f".//{{{WPS10}}}ComplexData")
    assert json.loads(text) == {"a": [1, 2]}
    encoded = base64.b64encode(b"plain words").decode()
    inputs = echo_inputs(
        complex_=f'<wps:Data><wps:ComplexData mimeType="text/plain" encoding="base64">{encoded}</wps:ComplexData></wps:Data>'
    )
    raw_output = "<wps:RawDataOutput><ows:Identifier>complexOutput</ows:Identifier></wps:RawDataOutput>"
    response = wps.post(
        "/wps",
        data=execute10(inputs).replace(
            b"</wps:Execute>", f"<wps:ResponseForm>{raw_output}</wps:ResponseForm></wps:Execute>".encode()
        ),
        content_type="text/xml",
    )
    assert response.status_code == 200
    assert response.get_data() == b"plain words"
    assert response.mimetype == "text/plain"


def test_wordcounter_output_by_reference_is_served(wps):
    inputs = (
        "<ows:Identifier>wordcounter</ows:Identifier><wps:DataInputs><wps:Input><ows:Identifier>text</ows:Identifier>"
        '<wps:Data><wps:ComplexData mimeType="text/plain">the cat and the hat</wps:ComplexData></wps:Data>'
        "</wps:Input></wps:DataInputs>"
    )
    outputs = '<wps:Output asReference="true"><ows:Identifier>output</ows:Identifier></wps:Output>'
    response = wps.post("/wps", data=execute10(inputs, outputs), content_type="text/xml")
    assert response.status_code == 200
    reference = response.xml.find(f".//{{{WPS10}}}Reference")
    assert reference.get("mimeType") == "application/json"
    href = reference.get("href")
    assert href.startswith("http://testserver/wps/jobs/")
    download = wps.get(href.replace("http://testserver", ""))
    assert download.status_code == 200 and download.mimetype == "application/json"
    assert json.loads(download.get_data()) == {"the": 2, "cat": 1, "and": 1, "hat": 1}


def test_file_input_only_from_allowed_dirs(wps, settings, tmp_path):
    allowed = settings.inputs.allowed_dirs[0]
    (allowed / "words.txt").write_text("one two two", encoding="utf-8")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret", encoding="utf-8")

    def run(href: str):  # type: ignore[no-untyped-def]
        query = (
            f"/wps?service=WPS&version=1.0.0&request=Execute&identifier=wordcounter&DataInputs=text=@xlink:href={href}"
        )
        return wps.get(query)

    ok = run(f"file://{allowed}/words.txt")
    assert ok.status_code == 200
    assert json.loads(ok.xml.findtext(f".//{{{WPS10}}}ComplexData")) == {"two": 2, "one": 1}
    for href in (f"file://{secret}", f"file://{allowed}/../secret.txt", "file:///etc/passwd"):
        refused = run(href)
        assert refused.status_code == 400, href
        assert refused.xml.find(f"{{{OWS11}}}Exception").get("locator") == "text"
    (allowed / "link.txt").symlink_to(secret)
    assert run(f"file://{allowed}/link.txt").status_code == 400


def test_fail_process_reports_its_message(wps):
    response = wps.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=fail&DataInputs=message=boom%20here")
    assert response.status_code == 200
    failed = response.xml.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessFailed")
    assert failed is not None
    assert failed.findtext(f".//{{{OWS11}}}ExceptionText") == "boom here"


def execute20(body: str, mode: str = "sync", response: str = "document") -> bytes:
    return (
        f'<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" '
        f'xmlns:xlink="http://www.w3.org/1999/xlink" service="WPS" version="2.0.0" mode="{mode}" response="{response}">'
        f"{body}</wps:Execute>"
    ).encode()


def test_execute20_sync_document_and_raw(wps):
    body = (
        '<ows:Identifier>say_hello</ows:Identifier><wps:Input id="name"><wps:Data><wps:LiteralValue>Two'
        '</wps:LiteralValue></wps:Data></wps:Input><wps:Output id="response" transmission="value"/>'
    )
    response = wps.post("/wps", data=execute20(body), content_type="text/xml")
    assert response.status_code == 200
    assert response.xml.tag == f"{{{WPS20}}}Result"
    assert response.xml.xpath("//wps2:LiteralValue/text()", namespaces=NS) == ["Hello Two"]
    raw = wps.post("/wps", data=execute20(body, response="raw"), content_type="text/xml")
    assert raw.get_data() == b"Hello Two"


def test_execute20_failure_is_an_exception(wps):
    body = '<ows:Identifier>fail</ows:Identifier><wps:Input id="message"><wps:Data>no way</wps:Data></wps:Input>'
    response = wps.post("/wps", data=execute20(body), content_type="text/xml")
    assert response.status_code == 500
    exception = response.xml.find(f"{{{OWS20}}}Exception")
    assert exception.get("exceptionCode") == "NoApplicableCode"
    assert "no way" in exception.findtext(f"{{{OWS20}}}ExceptionText")


def test_sync_time_limit(app, wps):
    app.extensions["hpc_wps"].settings = app.extensions["hpc_wps"].settings.replace("processing", sync_time_limit=0.5)
    response = wps.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=5")
    failed = response.xml.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessFailed")
    assert "time limit" in etree.tostring(failed, encoding="unicode")


def test_beyond_sync_slots_execute_is_server_busy(app, wps):
    """Every slot taken (a job running in another web worker): ServerBusy, HTTP 503, naming the limit,
    in both versions; an asynchronous Execute still goes to the queue."""
    extension = app.extensions["hpc_wps"]
    extension.settings = extension.settings.replace("processing", sync_slots=1, sync_slot_wait=0.2)
    with sync_slot(extension.settings.jobs_dir, 1, 0):
        refused = wps.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=x")
        assert refused.status_code == 503
        exception = refused.xml.find(f"{{{OWS11}}}Exception")
        assert (exception.get("exceptionCode"), exception.get("locator")) == ("ServerBusy", "Execute")
        assert "[processing] sync_slots" in exception.findtext(f"{{{OWS11}}}ExceptionText")
        body = '<ows:Identifier>say_hello</ows:Identifier><wps:Input id="name"><wps:Data>y</wps:Data></wps:Input>'
        refused = wps.post("/wps", data=execute20(body), content_type="text/xml")
        assert refused.status_code == 503
        assert refused.xml.find(f"{{{OWS20}}}Exception").get("exceptionCode") == "ServerBusy"
        accepted = wps.post("/wps", data=execute20(body, mode="async"), content_type="text/xml")
        assert accepted.status_code == 200 and accepted.xml.tag == f"{{{WPS20}}}StatusInfo"
