"""Property-based fuzzing of the request decoders, alone and behind the whole service.

The decoders (``parse_kvp``, ``parse_xml``) may refuse anything, but only with an ``OWSException``.
Behind the service, whatever arrives gets a 200 or an OWS ExceptionReport with a 4xx status (501 for
OperationNotSupported/OptionNotSupported, 503 for ServerBusy): never a 500, never a traceback.

Inputs are built from the real parameter, element and attribute names so that they reach deep into
the service, plus plain random bytes, control characters and non-characters included. Processes that
sleep, fill the disk or fail on purpose (sleep, bigoutput, fail) are never named, so every example runs
in milliseconds.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from app.settings import load_settings
from app.wps.errors import OWSException, render_exception
from app.wps.parse_kvp import parse_kvp
from app.wps.parse_xml import parse_xml
from app.wps.render.execute10 import execute_response
from app.wps.requests import DescribeProcess, Execute, GetCapabilities, JobRequest
from processes.fetch import FetchLimits, InputError, _request_headers, fetch_http, redact_url
from processes.literals import LiteralValueError, literal_type
from processes.registry import build_registry
from processes.setting_fields import SettingsError
from processes.text import clean_message
from scheduler.job import Job
from scheduler.models import JobStatus
from tests.conftest import ValidatingClient
from tests.xsd import OWS11, OWS20, WPS10, WPS20, validate

XLINK = "http://www.w3.org/1999/xlink"
FOREIGN_JOB = "00000000-0000-4000-8000-000000000000"
PARSED = (GetCapabilities, DescribeProcess, Execute, JobRequest)
REPORTS = (f"{{{OWS11}}}ExceptionReport", f"{{{OWS20}}}ExceptionReport")
ALLOWED_5XX = {501: {"OperationNotSupported", "OptionNotSupported"}, 503: {"ServerBusy"}}

FAST = settings(max_examples=300, deadline=None, database=None)
THROUGH = settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# -- strategies: KVP ------------------------------------------------------------------------------------

PARAMS = (
    "service",
    "request",
    "version",
    "identifier",
    "datainputs",
    "responsedocument",
    "rawdataoutput",
    "storeexecuteresponse",
    "status",
    "lineage",
    "jobid",
    "acceptversions",
    "language",
)
KNOWN_VALUES = (
    "WPS",
    "wps",
    "WMS",
    "",
    "GetCapabilities",
    "getcapabilities",
    "DescribeProcess",
    "Execute",
    "GetStatus",
    "GetResult",
    "Dismiss",
    "Frobnicate",
    "1.0.0",
    "2.0.0",
    "3.0.0",
    "2.0.0,1.0.0",
    "say_hello",
    "echo",
    "wordcounter",
    "all",
    "nope",
    "echo,nope",
    "true",
    "false",
    "TRUE",
    "1",
    FOREIGN_JOB,
    "../../etc/passwd",
    "name=World",
    "name",
    "literalInput=a;complexInput=<a/>@mimeType=text/xml",
    "complexInput=words@mimeType=text/plain@encoding=UTF-8",
    "boundingBoxInput=0,0,1,1,EPSG:4326",
    "boundingBoxInput=1,1,0,0",
    "text=the cat@mimeType=text/plain",
    "text=@xlink:href=file:///etc/passwd",
    "complexInput=@href=http://127.0.0.1:9/x",
    "response@asReference=true",
    "literalOutput;complexOutput",
    "output@mimeType=application/json",
    "resources.cores=2",
    "en-US",
)
SEPARATORS = ";@=&%,:+/"
# Any character but lone surrogates (UTF-8 cannot encode them), separators often.
CHARS = st.one_of(
    st.sampled_from(SEPARATORS),
    st.characters(exclude_categories=("Cs",)),
    st.sampled_from("\t\n\r"),
)
PIECE = st.one_of(st.sampled_from(KNOWN_VALUES), st.text(CHARS, max_size=12))
VALUE = st.lists(PIECE, max_size=4).map("".join)
# How a client encodes a value: fully, or leaving some separators raw.
SAFE = st.sampled_from(["", ";@=,:", ";@=&%,:+/", "%"])


@st.composite
def param_name(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(CHARS, max_size=8))
    name = draw(st.sampled_from(PARAMS))
    flags = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if f else c for c, f in zip(name, flags, strict=True))


@st.composite
def kvp_query(draw: st.DrawFn, value: st.SearchStrategy[str] = VALUE) -> str:
    pairs = []
    for _ in range(draw(st.integers(0, 8))):
        name = quote(draw(param_name()), safe="")
        if draw(st.integers(0, 15)) == 0:
            pairs.append(name)  # a name without "="
        else:
            pairs.append(f"{name}={quote(draw(value), safe=draw(SAFE))}")
    return "&".join(pairs)


@st.composite
def wps_query(draw: st.DrawFn) -> str:
    """A request that is nearly right: the usual parameters, one sometimes replaced, dropped or added.

    DataInputs and the output lists are written as clients write them: separators raw, values encoded.
    """
    operation = draw(
        st.sampled_from(("Execute", "Execute", "Execute", "DescribeProcess", "GetCapabilities", "GetStatus"))
    )
    params = {
        "service": "WPS",
        "version": draw(st.sampled_from(("1.0.0", "1.0.0", "2.0.0"))),
        "request": operation,
        "identifier": quote(draw(st.sampled_from(PROCESSES))),
        "datainputs": draw(data_inputs()),
    }
    if operation == "GetStatus":
        params["jobid"] = quote(draw(st.sampled_from((FOREIGN_JOB, "", "../x"))), safe="")
    if operation == "Execute" and draw(st.booleans()):
        name = draw(st.sampled_from(("responsedocument", "rawdataoutput", "storeexecuteresponse", "status", "lineage")))
        params[name] = draw(st.one_of(st.sampled_from(("true", "false", *OUTPUT_IDS)), output_list()))
    if draw(st.integers(0, 3)) == 0:
        params[draw(st.sampled_from(PARAMS))] = quote(draw(VALUE), safe=draw(SAFE))  # replaced or added
    if draw(st.integers(0, 7)) == 0:
        params.pop(draw(st.sampled_from(tuple(params))))
    return "&".join(f"{k}={v}" for k, v in params.items())


@st.composite
def data_inputs(draw: st.DrawFn) -> str:
    """``id=value@attr=v;...`` with the real input ids and attribute names, values escaped or not."""
    entries = []
    for _ in range(draw(st.integers(0, 3))):
        ident = draw(st.one_of(st.sampled_from(INPUT_IDS), st.text(CHARS, max_size=6)))
        entry = ident + draw(st.sampled_from(("=", "=", ""))) + quote(draw(TEXT), safe=draw(SAFE))
        for _ in range(draw(st.integers(0, 2))):
            attribute = draw(st.sampled_from(KVP_ATTRIBUTES))
            entry += f"@{attribute}={quote(draw(st.sampled_from(ATTRIBUTE_VALUES)), safe=draw(SAFE))}"
        entries.append(entry)
    return ";".join(entries)


@st.composite
def output_list(draw: st.DrawFn) -> str:
    entries = []
    for _ in range(draw(st.integers(1, 2))):
        entry = draw(st.sampled_from(OUTPUT_IDS))
        if draw(st.booleans()):
            attribute = draw(st.sampled_from(("asReference", "mimeType", "uom", "encoding", "evil")))
            entry += f"@{attribute}={draw(st.sampled_from(ATTRIBUTE_VALUES))}"
        entries.append(entry)
    return ";".join(entries)


# -- strategies: XML ------------------------------------------------------------------------------------

NSMAP = {"wps": WPS10, "ows": OWS11, "wps2": WPS20, "ows2": OWS20, "xlink": XLINK}
OPERATIONS = ("GetCapabilities", "DescribeProcess", "Execute", "GetStatus", "GetResult", "Dismiss", "Frobnicate")
WPS_NAMES = (
    *OPERATIONS,
    "DataInputs",
    "Input",
    "Data",
    "LiteralData",
    "ComplexData",
    "BoundingBoxData",
    "Reference",
    "Body",
    "BodyReference",
    "Header",
    "ResponseForm",
    "ResponseDocument",
    "RawDataOutput",
    "Output",
    "LiteralValue",
    "JobID",
)
OWS_NAMES = ("Identifier", "Title", "BoundingBox", "LowerCorner", "UpperCorner", "AcceptVersions", "Version")
ATTRIBUTES = (
    "service",
    "version",
    "mode",
    "response",
    "id",
    "transmission",
    "mimeType",
    "encoding",
    "schema",
    "asReference",
    "storeExecuteResponse",
    "status",
    "lineage",
    "crs",
    "dimensions",
    "uom",
    "method",
    "language",
    "key",
    "value",
    "href",
    f"{{{XLINK}}}href",
)
PROCESSES = ("say_hello", "echo", "wordcounter", "nope", "all", "")
KVP_ATTRIBUTES = (
    "mimeType",
    "encoding",
    "schema",
    "uom",
    "dataType",
    "href",
    "xlink:href",
    "asReference",
    "crs",
    "evil",
)
INPUT_IDS = ("name", "literalInput", "complexInput", "boundingBoxInput", "text", "evil", "resources.cores")
OUTPUT_IDS = ("response", "literalOutput", "complexOutput", "boundingBoxOutput", "output", "evil")
# No "base64": base64 payloads that decode to non-XML text are a known fault (test_bad_input).
ATTRIBUTE_VALUES = (
    "WPS",
    "WMS",
    "1.0.0",
    "2.0.0",
    "3.0.0",
    "sync",
    "async",
    "auto",
    "document",
    "raw",
    "value",
    "reference",
    "true",
    "false",
    "1",
    "text/plain",
    "text/xml",
    "application/json",
    "image/png",
    "UTF-8",
    "EPSG:4326",
    "EPSG:3857",
    "2",
    "GET",
    "POST",
    "seconds",
    "file:///etc/passwd",
    "http://127.0.0.1:9/x",
    "http://0x7f000001:9/x",
    "http://[::ffff:169.254.169.254]/",
    "SET",
    "DELETE",
    *INPUT_IDS,
    *OUTPUT_IDS,
)
XML_TEXT_CHARS = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff")
TEXT = st.one_of(
    st.sampled_from((*PROCESSES, *INPUT_IDS, "World", "0 0", "1 2", "3 4", "10 10", "-1", "1.5", FOREIGN_JOB)),
    st.text(XML_TEXT_CHARS, max_size=16),
)
TAG = st.one_of(
    st.tuples(st.sampled_from(("wps", "wps2")), st.sampled_from(WPS_NAMES)),
    st.tuples(st.sampled_from(("ows", "ows2")), st.sampled_from(OWS_NAMES)),
    st.tuples(st.sampled_from(("", "xlink")), st.sampled_from(("a", "b", "Identifier", "Input"))),
)
ATTRS = st.dictionaries(
    st.sampled_from(ATTRIBUTES),
    st.one_of(st.sampled_from(ATTRIBUTE_VALUES), st.text(XML_TEXT_CHARS, max_size=10)),
    max_size=3,
)


def _qname(prefix: str, name: str) -> str:
    return f"{{{NSMAP[prefix]}}}{name}" if prefix else name


def _node(tag: tuple[str, str], attrs: dict[str, str], text: str | None, children: list[Any]) -> Any:
    return (tag, attrs, text, children)


NODE = st.recursive(
    st.builds(_node, TAG, ATTRS, st.one_of(st.none(), TEXT), st.just([])),
    lambda children: st.builds(_node, TAG, ATTRS, st.one_of(st.none(), TEXT), st.lists(children, max_size=4)),
    max_leaves=24,
)


def _build(parent: etree._Element, node: Any) -> None:
    (prefix, name), attrs, text, children = node
    element = etree.SubElement(parent, _qname(prefix, name), attrs)
    element.text = text
    for child in children:
        _build(element, child)


@st.composite
def xml_document(draw: st.DrawFn) -> bytes:
    two = draw(st.booleans())
    wps, ows = ("wps2", "ows2") if two else ("wps", "ows")
    attrs = draw(ATTRS)
    if draw(st.booleans()):
        attrs |= {"service": "WPS", "version": "2.0.0" if two else "1.0.0"}
    root = etree.Element(_qname(wps, draw(st.sampled_from(OPERATIONS))), attrs, nsmap=NSMAP)
    if draw(st.booleans()):
        etree.SubElement(root, _qname(ows, "Identifier")).text = draw(st.sampled_from(PROCESSES))
    for node in draw(st.lists(NODE, max_size=4)):
        _build(root, node)
    return etree.tostring(root, xml_declaration=draw(st.booleans()), encoding="UTF-8")


@st.composite
def execute_document(draw: st.DrawFn) -> bytes:
    """An Execute shaped as the schema has it, with the real ids and random values, kinds and attributes."""
    two = draw(st.booleans())
    wps, ows = (WPS20, OWS20) if two else (WPS10, OWS11)
    maybe = st.one_of(st.sampled_from(ATTRIBUTE_VALUES), st.text(XML_TEXT_CHARS, max_size=8))
    attrs = {"service": "WPS", "version": "2.0.0" if two else "1.0.0"}
    if two:
        attrs |= {
            "mode": draw(st.sampled_from(("sync", "sync", "async", "auto"))),
            "response": draw(st.sampled_from(("document", "raw"))),
        }
    root = etree.Element(f"{{{wps}}}Execute", attrs, nsmap={"wps": wps, "ows": ows, "xlink": XLINK})
    etree.SubElement(root, f"{{{ows}}}Identifier").text = draw(st.sampled_from(PROCESSES))
    parent = root if two else etree.SubElement(root, f"{{{wps}}}DataInputs")
    for _ in range(draw(st.integers(0, 3))):
        ident = draw(st.sampled_from(INPUT_IDS))
        if two:
            element = etree.SubElement(parent, f"{{{wps}}}Input", id=ident)
        else:
            element = etree.SubElement(parent, f"{{{wps}}}Input")
            etree.SubElement(element, f"{{{ows}}}Identifier").text = ident
        kind = draw(st.sampled_from(("literal", "complex", "xml", "bbox", "reference")))
        if kind == "reference":
            etree.SubElement(element, f"{{{wps}}}Reference", {f"{{{XLINK}}}href": draw(maybe), "mimeType": draw(maybe)})
            continue
        data = etree.SubElement(element, f"{{{wps}}}Data")
        if kind == "literal":
            tag = "LiteralValue" if two else "LiteralData"
            etree.SubElement(data, f"{{{wps}}}{tag}").text = draw(TEXT)
        elif kind == "bbox":
            box = etree.SubElement(
                data, f"{{{ows}}}BoundingBox" if two else f"{{{wps}}}BoundingBoxData", crs=draw(maybe)
            )
            numbers = st.lists(st.integers(-5, 5).map(str), max_size=3).map(" ".join)
            etree.SubElement(box, f"{{{ows}}}LowerCorner").text = draw(st.one_of(numbers, TEXT))
            etree.SubElement(box, f"{{{ows}}}UpperCorner").text = draw(st.one_of(numbers, TEXT))
        else:
            target = data if two else etree.SubElement(data, f"{{{wps}}}ComplexData")
            target.set("mimeType", draw(maybe))
            if kind == "xml":
                etree.SubElement(target, "{urn:x}payload").text = draw(TEXT)
            else:
                target.text = draw(TEXT)
    outputs = draw(st.lists(st.sampled_from(OUTPUT_IDS), max_size=2))
    if two:
        for ident in outputs:
            etree.SubElement(
                root, f"{{{wps}}}Output", id=ident, transmission=draw(st.sampled_from(("value", "reference")))
            )
    elif outputs or draw(st.booleans()):
        form = etree.SubElement(root, f"{{{wps}}}ResponseForm")
        raw = draw(st.booleans())
        holder = etree.SubElement(form, f"{{{wps}}}RawDataOutput" if raw else f"{{{wps}}}ResponseDocument")
        if not raw:
            for name in draw(st.lists(st.sampled_from(("storeExecuteResponse", "status", "lineage")), max_size=2)):
                holder.set(name, draw(st.sampled_from(("true", "false"))))
        for ident in outputs[:1] if raw else outputs:
            output = holder if raw else etree.SubElement(holder, f"{{{wps}}}Output")
            etree.SubElement(output, f"{{{ows}}}Identifier").text = ident
            if draw(st.booleans()):
                output.set(draw(st.sampled_from(("asReference", "mimeType", "uom"))), draw(maybe))
    return etree.tostring(root, encoding="UTF-8")


SEEDS = (
    b'<wps:GetCapabilities xmlns:wps="http://www.opengis.net/wps/1.0.0" service="WPS"/>',
    b'<wps:DescribeProcess xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" '
    b'service="WPS" version="2.0.0"><ows:Identifier>echo</ows:Identifier></wps:DescribeProcess>',
    b'<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" '
    b'xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Identifier>say_hello</ows:Identifier><wps:DataInputs>'
    b"<wps:Input><ows:Identifier>name</ows:Identifier><wps:Data><wps:LiteralData>World</wps:LiteralData></wps:Data>"
    b"</wps:Input></wps:DataInputs><wps:ResponseForm><wps:RawDataOutput><ows:Identifier>response</ows:Identifier>"
    b"</wps:RawDataOutput></wps:ResponseForm></wps:Execute>",
    b'<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" '
    b'service="WPS" version="2.0.0" mode="sync" response="document"><ows:Identifier>echo</ows:Identifier>'
    b'<wps:Input id="complexInput"><wps:Data mimeType="text/xml"><a xmlns="urn:x"><b>1</b></a></wps:Data></wps:Input>'
    b'<wps:Input id="boundingBoxInput"><wps:Data><ows:BoundingBox crs="EPSG:4326"><ows:LowerCorner>1 2'
    b"</ows:LowerCorner><ows:UpperCorner>3 4</ows:UpperCorner></ows:BoundingBox></wps:Data></wps:Input>"
    b'<wps:Output id="complexOutput" transmission="value"/></wps:Execute>',
    b'<wps:GetStatus xmlns:wps="http://www.opengis.net/wps/2.0" service="WPS" version="2.0.0">'
    b"<wps:JobID>00000000-0000-4000-8000-000000000000</wps:JobID></wps:GetStatus>",
)
TOKENS = (
    b"<",
    b">",
    b"/>",
    b"&",
    b"&amp;",
    b"&#0;",
    b"&#x1F600;",
    b"]]>",
    b"<![CDATA[x]]>",
    b"<!-- c -->",
    b"<?pi x?>",
    b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>',
    b"&e;",
    b'"',
    b"'",
    b"\xff\xfe",
    b"\x00",
    b"\xc3",
    b' xmlns:wps="http://www.opengis.net/wps/2.0"',
    b' xmlns="http://www.opengis.net/wps/1.0.0"',
    b' mode="async"',
    b' encoding="UTF-16"',
    b"<wps:Input>",
    b"</wps:Input>",
)


@st.composite
def mutated_document(draw: st.DrawFn) -> bytes:
    document = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(document)))
        operation = draw(st.sampled_from(("insert", "delete", "duplicate", "truncate")))
        if operation == "insert":
            document[at:at] = draw(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)))
        elif operation == "delete":
            del document[at : at + draw(st.integers(1, 12))]
        elif operation == "duplicate":
            document[at:at] = document[at : at + draw(st.integers(1, 40))]
        else:
            del document[at:]
    return bytes(document)


# -- the decoders alone ---------------------------------------------------------------------------------


def decode_or_refuse(decoder, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """The decoder returns a request or raises OWSException; anything else fails the test."""
    try:
        parsed = decoder(data)
    except OWSException as exc:
        assert isinstance(exc.code, str) and exc.code
        assert isinstance(exc.text, str)
        assert exc.locator is None or isinstance(exc.locator, str)
        assert 400 <= exc.status < 600
    else:
        assert isinstance(parsed, PARSED), parsed


# Decoding alone knows no rendering fault: any character may appear here.
ANY_VALUE = st.lists(st.one_of(PIECE, st.text(max_size=8)), max_size=4).map("".join)


@FAST
@given(query=st.one_of(kvp_query(ANY_VALUE), wps_query()), encoding=st.sampled_from(("utf-8", "latin-1")))
def test_parse_kvp_only_raises_ows_exceptions(query: str, encoding: str):
    decode_or_refuse(parse_kvp, query.encode(encoding, errors="replace"))


@FAST
@given(data=st.binary(max_size=600))
def test_parse_kvp_on_random_bytes(data: bytes):
    decode_or_refuse(parse_kvp, data)


@FAST
@given(value=st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
def test_kvp_encoded_value_is_kept_whole(value: str):
    """Whatever a value holds, once percent-encoded it reaches the input unchanged: nothing injected."""
    parsed = parse_kvp(
        f"service=WPS&version=1.0.0&request=Execute&identifier=echo&DataInputs=literalInput={quote(value, safe='')}".encode()
    )
    assert isinstance(parsed, Execute)
    assert parsed.inputs == [{"id": "literalInput", "data_kind": None, "value": value}]


@FAST
@given(value=st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
def test_kvp_value_encoded_then_encoded_as_a_whole_is_kept_whole(value: str):
    """A value its client encoded, inside a DataInputs that ``requests`` then encodes as a whole."""
    data_inputs = quote_plus(f"literalInput={quote(value, safe='')}", safe="")
    parsed = parse_kvp(f"service=WPS&version=1.0.0&request=Execute&identifier=echo&DataInputs={data_inputs}".encode())
    assert isinstance(parsed, Execute)
    assert parsed.inputs == [{"id": "literalInput", "data_kind": None, "value": value}]


@FAST
@given(document=st.one_of(xml_document(), execute_document()))
def test_parse_xml_only_raises_ows_exceptions(document: bytes):
    decode_or_refuse(parse_xml, document)


@FAST
@given(document=mutated_document())
def test_parse_xml_on_mutated_documents(document: bytes):
    decode_or_refuse(parse_xml, document)


@FAST
@given(data=st.one_of(st.binary(max_size=600), st.binary(max_size=200).map(lambda b: b"<" + b)))
def test_parse_xml_on_random_bytes(data: bytes):
    decode_or_refuse(parse_xml, data)


@FAST
@given(value=st.text(XML_TEXT_CHARS.filter(lambda c: c != "\r"), max_size=40))
def test_xml_literal_value_is_kept_whole(value: str):
    root = etree.Element(
        f"{{{WPS20}}}Execute", {"service": "WPS", "version": "2.0.0"}, nsmap={"wps": WPS20, "ows": OWS20}
    )
    etree.SubElement(root, f"{{{OWS20}}}Identifier").text = "echo"
    data = etree.SubElement(etree.SubElement(root, f"{{{WPS20}}}Input", id="literalInput"), f"{{{WPS20}}}Data")
    etree.SubElement(data, f"{{{WPS20}}}LiteralValue").text = value
    parsed = parse_xml(etree.tostring(root))
    assert isinstance(parsed, Execute)
    assert parsed.inputs[0]["value"] == value


# -- through the service --------------------------------------------------------------------------------


@pytest.fixture
def client(app) -> ValidatingClient:  # type: ignore[no-untyped-def]
    """One client for all the examples of a test: the app is built once, not per example."""
    return ValidatingClient(app.test_client())


# A run that produces no output at all (echo without inputs) is a process failure; WPS 2.0 reports a
# failed synchronous run as 500 NoApplicableCode, with the reason. One without an output the request
# named is the request's fault: a 400 (NoSuchOutput, InvalidParameterValue), never a 500.
PROCESS_FAILURE = re.compile(r"produced no output")


def assert_answer(response, what: object) -> None:  # type: ignore[no-untyped-def]
    """A 200, or an OWS ExceptionReport with a 4xx status (501/503 for the codes that carry them)."""
    if response is None:
        return
    body = response.get_data()
    assert b"Traceback (most recent call last)" not in body, what
    if response.status_code == 200:
        event(f"200 {response.mimetype}")
        return
    assert response.headers.get("Content-Type") == "text/xml", (what, response.status_code, body[:300])
    root = response.xml  # schema-valid: the client checked it
    assert root.tag in REPORTS, (what, root.tag)
    exception = root.find(f"{root.tag.split('}')[0]}}}Exception")
    code = exception.get("exceptionCode")
    status = response.status_code
    # --hypothesis-show-statistics lists these: how deep the examples reach.
    event(f"{status} {code} {exception.get('locator')}")
    text = exception.findtext(f"{root.tag.split('}')[0]}}}ExceptionText") or ""
    if status == 500 and code == "NoApplicableCode" and PROCESS_FAILURE.search(text):
        event("process failure: no outputs")
        return
    assert 400 <= status < 500 or code in ALLOWED_5XX.get(status, ()), (what, status, code, body[:600])


@THROUGH
@given(query=st.one_of(kvp_query(), wps_query(), wps_query(), wps_query()))
def test_kvp_requests_get_an_answer(client, query: str):
    assert_answer(client.get("/wps?" + query), query)


@THROUGH
@given(query=st.one_of(kvp_query(), wps_query(), wps_query()))
def test_form_posts_get_an_answer(client, query: str):
    assert_answer(client.post("/wps", data=query, content_type="application/x-www-form-urlencoded"), query)


@THROUGH
@given(
    document=st.one_of(xml_document(), execute_document(), execute_document(), mutated_document()),
    content_type=st.sampled_from(("text/xml", "application/xml", "text/xml; charset=utf-8")),
)
def test_xml_requests_get_an_answer(client, document: bytes, content_type: str):
    assert_answer(client.post("/wps", data=document, content_type=content_type), document)


@THROUGH
@given(
    data=st.binary(max_size=800),
    content_type=st.sampled_from(("text/xml", "application/x-www-form-urlencoded", "application/octet-stream", "")),
)
def test_random_bodies_get_an_answer(client, data: bytes, content_type: str):
    assert_answer(client.post("/wps", data=data, content_type=content_type or None), data)


def _with_control(pair: tuple[str, str]) -> str:
    params = {"service": "WPS", "version": "1.0.0", "request": "DescribeProcess", "identifier": "echo"}
    params[pair[0]] = pair[1]
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


CONTROL = st.text(st.characters(categories=("Cc",), exclude_characters="\t\n\r"), min_size=1, max_size=3)


@pytest.fixture
def tight_client(app) -> ValidatingClient:  # type: ignore[no-untyped-def]
    """Every quota at its tightest: one job waiting, one execution, one byte kept, one job running."""
    service = app.extensions["hpc_wps"]
    service.settings = service.settings.replace(
        "quotas", queued_per_user=1, sync_per_user=1, storage_per_user=1, running_per_user=1
    )
    return ValidatingClient(app.test_client())


@THROUGH
@given(query=st.one_of(wps_query(), wps_query()), document=execute_document())
def test_requests_under_tight_quotas_get_an_answer(tight_client, query: str, document: bytes):
    """Quota refusals are answers like any other: 429 ServerBusy reports, never a 500."""
    assert_answer(tight_client.get("/wps?" + query), query)
    assert_answer(tight_client.post("/wps", data=document, content_type="text/xml"), document)


@settings(max_examples=200, deadline=None, database=None)
@given(
    key=st.sampled_from(("running_per_user", "queued_per_user", "sync_per_user", "storage_per_user")),
    value=st.one_of(st.text(max_size=12), st.from_regex(r"\A\s*-?\d{1,4}(\.\d)?\s*[kKmMgGtT]?i?[bB]?\s*\Z")),
)
def test_quota_values_load_or_are_refused_by_name(key: str, value: str):
    """Whatever an operator writes in [quotas]: a non-negative whole number, or a SettingsError naming the key."""
    try:
        loaded = load_settings(environ={f"HPC_WPS_QUOTAS_{key.upper()}": value})
    except SettingsError as exc:
        assert f"HPC_WPS_QUOTAS_{key.upper()}" in str(exc) and f"[quotas] {key}" in str(exc)
        return
    number = getattr(loaded.jobs.quotas, key)
    assert isinstance(number, int) and number >= 0


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(query="service=WPS&version=1.0.0&request=DescribeProcess&identifier=%00")
@given(query=st.tuples(st.sampled_from(("service", "request", "version", "identifier")), CONTROL).map(_with_control))
def test_kvp_control_characters_get_a_report(client, query: str):
    assert_answer(client.get("/wps?" + query), query)


# -- the guard of remote inputs ------------------------------------------------------------------------------------

NOT_PUBLIC_NETWORKS = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                       "100.64.0.0/10", "224.0.0.0/4", "240.0.0.0/4", "0.0.0.0/8", "::1/128", "fc00::/7",
                       "fe80::/10", "ff00::/8", "::ffff:0:0/96", "2002:7f00::/24", "2002:a00::/24")  # fmt: skip
HEADER_NAMES = ("Accept", "accept", "Content-Type", "User-Agent", "Host", "Authorization", "Cookie", "Connection",
                "X-Forwarded-For", "Proxy-Authorization", "Transfer-Encoding", "TE")  # fmt: skip


@FAST
@given(address=st.sampled_from(NOT_PUBLIC_NETWORKS).flatmap(lambda net: st.ip_addresses(network=net)))
def test_no_address_of_a_private_network_is_ever_fetched_by_default(address: Any, tmp_path_factory):
    """Refused before any connection: the address as written, in every spelling a URL has for it."""
    host = f"[{address}]" if address.version == 6 else str(address)
    dest = tmp_path_factory.mktemp("fetched") / "x"
    with pytest.raises(InputError) as raised:
        fetch_http("input", f"http://{host}:9/x", dest, FetchLimits())
    assert str(raised.value) == f"cannot fetch http://{host}:9/x: not an allowed destination for inputs"
    assert not dest.exists()


@FAST
@given(
    headers=st.dictionaries(
        st.one_of(st.sampled_from(HEADER_NAMES), st.text("abcdefXYZ-_019 :", max_size=12)),
        st.text(max_size=20).map(lambda value: "%%" + value),  # a value is marked: names never hold %
        max_size=4,
    ),
    credentials=st.booleans(),
)
def test_only_allowed_headers_pass_and_a_refusal_never_shows_a_value(headers: dict[str, str], credentials: bool):
    allowed = {"accept", "accept-language", "content-type", "user-agent"} | (
        {"authorization", "cookie"} if credentials else set()
    )
    try:
        sent = _request_headers("input", headers, FetchLimits(forward_credentials=credentials))
    except InputError as exc:
        assert "%%" not in str(exc)
        return
    assert {name.lower() for name in sent} <= allowed


@FAST
@given(
    user=st.text("abcXYZ019-_.~", min_size=1, max_size=8),
    password=st.text("ABCxyz789!$'()*+,;=", min_size=4, max_size=12),
)
def test_a_password_in_a_url_is_never_shown(user: str, password: str):
    shown = redact_url(f"https://{user}:{password}@example.org/{user}")
    assert password not in shown.split("@", 1)[0] and shown.startswith(f"https://{user}:***@")


# -- numbers: any Unicode digits --------------------------------------------------------------------------

NUMBER_CHARS = st.one_of(st.characters(categories=("Nd", "No")), st.sampled_from("0123456789+-._eE "))
NUMBER_TEXT = st.text(NUMBER_CHARS, min_size=1, max_size=10)


@FAST
@given(value=NUMBER_TEXT)
def test_numbers_are_refused_or_read_as_ascii(value: str):
    """Whatever digits a value holds, a number input either refuses it or reads it as its ASCII text
    would be read: never a Unicode digit, a ``_`` group or anything Python alone would take."""
    for name, reader in (("integer", int), ("double", float)):
        try:
            number = literal_type(name).read(value)
        except LiteralValueError:
            continue
        assert value.isascii() and "_" not in value, (name, value)
        assert number == reader(value.strip()), (name, value)


@THROUGH
@given(
    value=st.tuples(
        st.text(NUMBER_CHARS, max_size=4), st.characters(categories=("Nd",)).filter(lambda c: not c.isascii())
    ).map("".join)
)
def test_non_ascii_digits_are_refused_through_the_service(client, value: str):
    """sleep's delay is a double: a value with a non-ASCII digit never runs it (so no example sleeps)."""
    response = client.get(
        f"/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay={quote(value, safe='')}"
    )
    assert response.status_code == 400, (value, response.get_data()[:300])
    exception = response.xml.find(f"{{{OWS11}}}Exception")
    assert (exception.get("exceptionCode"), exception.get("locator")) == ("InvalidParameterValue", "delay")


# -- messages: any text renders --------------------------------------------------------------------------

FAIL = build_registry(demo=True, paths=()).get("fail")


def _job(status: JobStatus, message: str) -> Job:
    now = dt.datetime(2026, 1, 1)
    row = {
        "id": FOREIGN_JOB, "process_id": "fail", "status": status.value, "progress": 40, "message": message,
        "version": "1.0.0", "mode": "async", "request": {"inputs": [], "outputs": [], "status": True, "lineage": False},
        "outputs": None, "executor": "local", "native_id": None, "claimed_by": None, "native_active": False,
        "created_at": now, "started_at": now, "finished_at": None, "updated_at": now, "expires_at": None,
        "owner": "anonymous",
    }  # fmt: skip
    return Job.from_row(row)


@FAST
@given(message=st.text(max_size=40), status=st.sampled_from((JobStatus.ACCEPTED, JobStatus.RUNNING, JobStatus.FAILED)))
def test_any_message_renders_a_valid_status_document(message: str, status: JobStatus):
    """A job's message may hold anything (C0 and C1 controls, lone surrogates, non-characters): the
    1.0.0 status document is always schema-valid, and shows the message without control characters."""
    document = validate(
        execute_response(FAIL, _job(status, message), "http://testserver/wps", Path("/nonexistent"), "en-US")
    )
    shown = document.find(f"{{{WPS10}}}Status")[0]
    text = "".join(shown.itertext())
    assert text == (
        clean_message(message) or {JobStatus.ACCEPTED: "accepted", JobStatus.RUNNING: "running"}.get(status, "failed")
    )


@FAST
@given(text=st.text(max_size=40), locator=st.text(max_size=20), version=st.sampled_from(("1.0.0", "2.0.0")))
def test_any_exception_text_renders_a_valid_report(text: str, locator: str, version: str):
    validate(render_exception(OWSException("NoApplicableCode", text, locator), version))


# -- credentials: [auth] mode = oidc and mode = header -------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


HEADER_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
JSON_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=12), st.lists(st.integers(), max_size=2)
)
JWT_PART = st.one_of(
    st.binary(max_size=60).map(_b64),
    st.dictionaries(st.sampled_from(["alg", "kid", "typ", "jku", "crit", "sub", "exp", "aud"]), JSON_SCALAR).map(
        lambda d: _b64(json.dumps(d).encode())
    ),
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["RS256", "ES256", "none", "HS256", "RS512"]), "kid": JSON_SCALAR}
    ).map(lambda d: _b64(json.dumps(d).encode())),
)
AUTHORIZATION = st.one_of(
    HEADER_VALUE,
    st.tuples(JWT_PART, JWT_PART, JWT_PART).map(lambda parts: "Bearer " + ".".join(parts)),
    st.tuples(JWT_PART, JWT_PART).map(lambda parts: "Bearer " + ".".join(parts)),
)


@THROUGH
@given(authorization=AUTHORIZATION)
def test_any_authorization_header_gets_a_report(oidc_client, authorization: str):
    for target in (f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={FOREIGN_JOB}", f"/wps/jobs/{FOREIGN_JOB}"):
        response = oidc_client.get(target, headers={"Authorization": authorization})
        assert_answer(response, authorization)
        assert response.status_code == 401, (authorization, response.status_code)
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")


@THROUGH
@given(user=HEADER_VALUE, trusted=st.booleans())
def test_any_user_header_gets_an_answer(header_client, user: str, trusted: bool):
    address = "127.0.0.1" if trusted else "198.51.100.7"
    query = "/wps?service=WPS&version=1.0.0&request=Execute&identifier=echo&DataInputs=literalInput=x"
    response = header_client.get(query, headers={"X-Remote-User": user}, environ_base={"REMOTE_ADDR": address})
    assert_answer(response, user)
    assert response.status_code in ((200, 403) if trusted else (403,)), (user, trusted, response.status_code)
