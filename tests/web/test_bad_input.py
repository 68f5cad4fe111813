"""Hostile and wrong requests: each must get the OWS ExceptionReport its protocol version defines.

Every case of ``CORPUS`` states what a client gets back: the exceptionCode, the locator, the HTTP
status and the report version (OWS 1.1 for WPS 1.0.0 requests, OWS 2.0 for 2.0 ones). Every answer
is ``text/xml`` exactly, valid against the OGC schemas (the ``wps`` client checks that) and free of
Python tracebacks and of anything read from the server's disk. The same corpus is then sent to a
real server (gunicorn workers), which must still answer afterwards.

Cases marked with ``defect`` describe a known fault of the service: they are strict xfails, so the
suite stays green and the fault stays visible until it is fixed.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from lxml import etree
from requests.utils import requote_uri

from app import create_app
from tests.conftest import ValidatingClient
from tests.xsd import OWS11, OWS20, WPS10, WPS20, validate

W1 = (
    'xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" '
    'xmlns:xlink="http://www.w3.org/1999/xlink"'
)
W2 = (
    'xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink"'
)
ANY = "*"  # a locator that is not checked (it echoes a path or a value that is not ours to fix)
FOREIGN_JOB = "00000000-0000-4000-8000-000000000000"
# Never in a response: a traceback, the password file, an expanded entity.
LEAKS = (b"Traceback (most recent call last)", b'File "/', b"root:x:0:0", b"root:*:", b"lollollol")


@dataclass(frozen=True)
class Case:
    id: str
    method: str  # GET or POST
    target: str  # path and query
    body: bytes | None
    content_type: str | None
    status: int
    code: str
    locator: str | None  # None: the report has no locator; ANY: not checked
    version: str  # of the ExceptionReport: 1.0.0 (OWS 1.1) or 2.0.0 (OWS 2.0)
    defect: str | None = None


def kvp(id, query, status, code, locator, version="1.0.0", defect=None):  # type: ignore[no-untyped-def]
    return Case(id, "GET", "/wps?" + query, None, None, status, code, locator, version, defect)


def path(id, target, code, locator=ANY):  # type: ignore[no-untyped-def]
    return Case(id, "GET", target, None, None, 404, code, locator, "1.0.0")


def post(id, body, status, code, locator, version, defect=None, content_type="text/xml"):  # type: ignore[no-untyped-def]
    data = body.encode() if isinstance(body, str) else body
    return Case(id, "POST", "/wps", data, content_type, status, code, locator, version, defect)


def x10(id, body, status, code, locator, defect=None):  # type: ignore[no-untyped-def]
    return post(id, body, status, code, locator, "1.0.0", defect)


def x20(id, body, status, code, locator, defect=None):  # type: ignore[no-untyped-def]
    return post(id, body, status, code, locator, "2.0.0", defect)


# -- request builders ---------------------------------------------------------------------------------

K10 = "service=WPS&version=1.0.0&request="
K20 = "service=WPS&version=2.0.0&request="


def execute10(identifier: str, inputs: str = "", form: str = "") -> str:
    data = f"<wps:DataInputs>{inputs}</wps:DataInputs>" if inputs else ""
    response = f"<wps:ResponseForm>{form}</wps:ResponseForm>" if form else ""
    return (
        f'<wps:Execute service="WPS" version="1.0.0" {W1}><ows:Identifier>{identifier}</ows:Identifier>'
        f"{data}{response}</wps:Execute>"
    )


def input10(identifier: str, data: str) -> str:
    return f"<wps:Input><ows:Identifier>{identifier}</ows:Identifier>{data}</wps:Input>"


def literal10(identifier: str, value: str) -> str:
    return input10(identifier, f"<wps:Data><wps:LiteralData>{value}</wps:LiteralData></wps:Data>")


def execute20(identifier: str, body: str = "", mode: str = "sync", response: str = "document") -> str:
    return (
        f'<wps:Execute service="WPS" version="2.0.0" mode="{mode}" response="{response}" {W2}>'
        f"<ows:Identifier>{identifier}</ows:Identifier>{body}</wps:Execute>"
    )


def literal20(identifier: str, value: str) -> str:
    return f'<wps:Input id="{identifier}"><wps:Data><wps:LiteralValue>{value}</wps:LiteralValue></wps:Data></wps:Input>'


def bbox(ows_version: str, lower: str, upper: str, crs: str = "EPSG:4326") -> str:
    if ows_version == "1":
        return (
            f'<wps:Data><wps:BoundingBoxData crs="{crs}" dimensions="2"><ows:LowerCorner>{lower}</ows:LowerCorner>'
            f"<ows:UpperCorner>{upper}</ows:UpperCorner></wps:BoundingBoxData></wps:Data>"
        )
    return (
        f'<wps:Data><ows:BoundingBox crs="{crs}"><ows:LowerCorner>{lower}</ows:LowerCorner>'
        f"<ows:UpperCorner>{upper}</ows:UpperCorner></ows:BoundingBox></wps:Data>"
    )


def href_query(identifier: str, input_id: str, href: str) -> str:
    return f"{K10}Execute&identifier={identifier}&DataInputs={input_id}=@xlink:href={quote(href, safe='')}"


XXE = (
    '<?xml version="1.0"?><!DOCTYPE wps:Execute [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    f'<wps:Execute service="WPS" version="1.0.0" {W1}><ows:Identifier>say_hello</ows:Identifier>'
    "<wps:DataInputs><wps:Input><ows:Identifier>name</ows:Identifier><wps:Data><wps:LiteralData>&xxe;"
    "</wps:LiteralData></wps:Data></wps:Input></wps:DataInputs></wps:Execute>"
)
XXE20 = '<?xml version="1.0"?><!DOCTYPE wps:Execute [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + execute20(
    "say_hello", literal20("name", "&xxe;")
)
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + "]>"
    + execute20("say_hello", literal20("name", "&lol9;"))
)
SMALL_LAUGHS = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;">]>' + execute20(
    "say_hello", literal20("name", "&lol1;")
)
PARAMETER_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE wps:GetCapabilities [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd">'
    f'%remote;]><wps:GetCapabilities service="WPS" {W1}/>'
)
EXTERNAL_DTD = f'<?xml version="1.0"?><!DOCTYPE wps:GetCapabilities SYSTEM "file:///etc/passwd"><wps:GetCapabilities service="WPS" {W1}/>'
EXTERNAL_DTD_HTTP = (
    '<?xml version="1.0"?><!DOCTYPE wps:GetCapabilities PUBLIC "-//EVIL//DTD" "http://127.0.0.1:9/evil.dtd">'
    f'<wps:GetCapabilities service="WPS" {W1}/>'
)
ARABIC_INDIC_ZERO = "\u0660"
CAPABILITIES10 = f'<wps:GetCapabilities service="WPS" {W1}/>'
EMPTY_DOCTYPE = f'<?xml version="1.0"?><!DOCTYPE wps:GetCapabilities []><wps:GetCapabilities service="WPS" {W1}/>'
DEEP = "<a>" * 300 + "</a>" * 300
BIG_IDENTIFIER = "x" * 3000


CORPUS: list[Case] = [
    # -- malformed and empty bodies ------------------------------------------------------------------
    x10("xml-truncated", "<wps:Execute", 400, "NoApplicableCode", "request"),
    x20(
        "xml-mismatched-tags-20",
        f'<wps:Execute service="WPS" version="2.0.0" {W2}><ows:Identifier>echo</wps:Execute>',
        400,
        "NoApplicableCode",
        "request",
    ),
    x10("xml-not-xml", b"\x00\xff\xfe\x89PNG garbage", 400, "NoApplicableCode", "request"),
    x10("xml-depth-bomb", DEEP, 400, "NoApplicableCode", "request"),
    x10("xml-unknown-encoding", '<?xml version="1.0" encoding="x-evil"?><a/>', 400, "NoApplicableCode", "request"),
    x10("xml-two-roots", f'<wps:GetCapabilities service="WPS" {W1}/><b/>', 400, "NoApplicableCode", "request"),
    x10("empty-body", b"", 400, "MissingParameterValue", "request body"),
    x10("blank-body", b" \r\n\t ", 400, "MissingParameterValue", "request body"),
    # -- entities and DTDs: refused before anything is expanded or fetched ---------------------------
    x10("xxe-file", XXE, 400, "InvalidParameterValue", "request"),
    x20("xxe-file-20", XXE20, 400, "InvalidParameterValue", "request"),
    # libxml2 itself stops the full bomb while parsing (amplification limit); a small one reaches the DTD check.
    x20("billion-laughs", BILLION_LAUGHS, 400, "NoApplicableCode", "request"),
    x20("small-laughs", SMALL_LAUGHS, 400, "InvalidParameterValue", "request"),
    x10("parameter-entity", PARAMETER_ENTITY, 400, "InvalidParameterValue", "request"),
    x10("external-dtd-file", EXTERNAL_DTD, 400, "InvalidParameterValue", "request"),
    x10("external-dtd-http", EXTERNAL_DTD_HTTP, 400, "InvalidParameterValue", "request"),
    x10("empty-internal-dtd", EMPTY_DOCTYPE, 400, "InvalidParameterValue", "request"),
    # -- unknown operations --------------------------------------------------------------------------
    kvp("kvp-unknown-operation", K10 + "Frobnicate", 501, "OperationNotSupported", "Frobnicate"),
    kvp("kvp-unknown-operation-20", K20 + "Frobnicate", 501, "OperationNotSupported", "Frobnicate", "2.0.0"),
    x10(
        "xml-unknown-operation",
        f'<wps:Frobnicate service="WPS" version="1.0.0" {W1}/>',
        501,
        "OperationNotSupported",
        "Frobnicate",
    ),
    x20(
        "xml-unknown-operation-20",
        f'<wps:Frobnicate service="WPS" version="2.0.0" {W2}/>',
        501,
        "OperationNotSupported",
        "Frobnicate",
    ),
    x10("xml-foreign-root", '<foo xmlns="urn:evil"/>', 501, "OperationNotSupported", "foo"),
    x10(
        "xml-job-operation-in-10-namespace",
        f'<wps:GetStatus service="WPS" version="1.0.0" {W1}><wps:JobID>{FOREIGN_JOB}</wps:JobID></wps:GetStatus>',
        501,
        "OperationNotSupported",
        "GetStatus",
    ),
    # -- missing request, service, version, identifier ---------------------------------------------
    kvp("kvp-missing-request", "service=WPS&version=1.0.0&identifier=echo", 400, "MissingParameterValue", "request"),
    kvp("kvp-missing-request-20", "service=WPS&version=2.0.0", 400, "MissingParameterValue", "request", "2.0.0"),
    kvp("kvp-empty-request", "service=WPS&version=1.0.0&request=", 400, "MissingParameterValue", "request"),
    kvp("kvp-no-parameters", "", 400, "MissingParameterValue", "request"),
    kvp("kvp-missing-service", "request=GetCapabilities", 400, "MissingParameterValue", "service"),
    kvp(
        "kvp-missing-service-20",
        "version=2.0.0&request=DescribeProcess&identifier=echo",
        400,
        "MissingParameterValue",
        "service",
        "2.0.0",
    ),
    kvp(
        "kvp-missing-version-describe",
        "service=WPS&request=DescribeProcess&identifier=say_hello",
        400,
        "MissingParameterValue",
        "version",
    ),
    kvp(
        "kvp-missing-version-execute",
        "service=WPS&request=Execute&identifier=say_hello&DataInputs=name=a",
        400,
        "MissingParameterValue",
        "version",
    ),
    kvp("kvp-missing-identifier-describe", K10 + "DescribeProcess", 400, "MissingParameterValue", "identifier"),
    kvp(
        "kvp-missing-identifier-describe-20",
        K20 + "DescribeProcess&identifier=",
        400,
        "MissingParameterValue",
        "identifier",
        "2.0.0",
    ),
    kvp(
        "kvp-missing-identifier-execute", K10 + "Execute&DataInputs=name=a", 400, "MissingParameterValue", "identifier"
    ),
    x10(
        "xml-missing-identifier-describe",
        f'<wps:DescribeProcess service="WPS" version="1.0.0" {W1}/>',
        400,
        "MissingParameterValue",
        "Identifier",
    ),
    x20(
        "xml-missing-identifier-describe-20",
        f'<wps:DescribeProcess service="WPS" version="2.0.0" {W2}/>',
        400,
        "MissingParameterValue",
        "Identifier",
    ),
    x20(
        "xml-blank-identifier-describe-20",
        f'<wps:DescribeProcess service="WPS" version="2.0.0" {W2}><ows:Identifier> </ows:Identifier></wps:DescribeProcess>',
        400,
        "MissingParameterValue",
        "Identifier",
    ),
    x10("xml-missing-identifier-execute", execute10(""), 400, "MissingParameterValue", "Identifier"),
    x20("xml-missing-identifier-execute-20", execute20(""), 400, "MissingParameterValue", "Identifier"),
    # -- wrong service -------------------------------------------------------------------------------
    kvp(
        "kvp-wrong-service",
        "service=WMS&version=1.0.0&request=GetCapabilities",
        400,
        "InvalidParameterValue",
        "service",
    ),
    kvp(
        "kvp-wrong-service-20",
        "service=WFS&version=2.0.0&request=DescribeProcess&identifier=echo",
        400,
        "InvalidParameterValue",
        "service",
        "2.0.0",
    ),
    x10("xml-wrong-service", f'<wps:GetCapabilities service="WMS" {W1}/>', 400, "InvalidParameterValue", "service"),
    x20(
        "xml-wrong-service-20",
        f'<wps:GetCapabilities service="WMS" {W2}/>',
        400,
        "InvalidParameterValue",
        "service",
    ),
    # -- unknown process, input, output ----------------------------------------------------------------
    kvp(
        "kvp-unknown-process-describe",
        K10 + "DescribeProcess&identifier=nope",
        400,
        "InvalidParameterValue",
        "Identifier",
    ),
    kvp(
        "kvp-unknown-process-execute",
        K10 + "Execute&identifier=nope&DataInputs=name=a",
        400,
        "InvalidParameterValue",
        "Identifier",
    ),
    kvp(
        "kvp-unknown-process-describe-20",
        K20 + "DescribeProcess&identifier=nope",
        400,
        "NoSuchProcess",
        "nope",
        "2.0.0",
    ),
    kvp(
        "kvp-unknown-unicode-process-20",
        K20 + "DescribeProcess&identifier=%E2%98%83%F0%9F%92%A3",
        400,
        "NoSuchProcess",
        "\u2603\U0001f4a3",
        "2.0.0",
    ),
    kvp(
        "kvp-unknown-process-among-known",
        K10 + "DescribeProcess&identifier=echo,nope",
        400,
        "InvalidParameterValue",
        "Identifier",
    ),
    kvp(
        "kvp-huge-identifier",
        K10 + "DescribeProcess&identifier=" + BIG_IDENTIFIER,
        400,
        "InvalidParameterValue",
        "Identifier",
    ),
    x10("xml-unknown-process", execute10("nope"), 400, "InvalidParameterValue", "Identifier"),
    x20("xml-unknown-process-20", execute20("nope"), 400, "NoSuchProcess", "nope"),
    x20(
        "xml-unknown-process-describe-20",
        f'<wps:DescribeProcess service="WPS" version="2.0.0" {W2}><ows:Identifier>nope</ows:Identifier></wps:DescribeProcess>',
        400,
        "NoSuchProcess",
        "nope",
    ),
    kvp(
        "kvp-unknown-input",
        K10 + "Execute&identifier=say_hello&DataInputs=name=a;evil=b",
        400,
        "InvalidParameterValue",
        "evil",
    ),
    x10(
        "xml-unknown-input",
        execute10("say_hello", literal10("name", "a") + literal10("evil", "b")),
        400,
        "InvalidParameterValue",
        "evil",
    ),
    x20(
        "xml-unknown-input-20",
        execute20("say_hello", literal20("name", "a") + literal20("evil", "b")),
        400,
        "NoSuchInput",
        "evil",
    ),
    kvp(
        "kvp-unknown-output",
        K10 + "Execute&identifier=say_hello&DataInputs=name=a&ResponseDocument=evil",
        400,
        "InvalidParameterValue",
        "evil",
    ),
    kvp(
        "kvp-unknown-raw-output",
        K10 + "Execute&identifier=say_hello&DataInputs=name=a&RawDataOutput=evil",
        400,
        "InvalidParameterValue",
        "evil",
    ),
    x20(
        "xml-unknown-output-20",
        execute20("say_hello", literal20("name", "a") + '<wps:Output id="evil" transmission="value"/>'),
        400,
        "NoSuchOutput",
        "evil",
    ),
    # -- wrong literal types and out-of-range values ---------------------------------------------------
    kvp(
        "kvp-delay-not-a-number",
        K10 + "Execute&identifier=sleep&DataInputs=delay=abc",
        400,
        "InvalidParameterValue",
        "delay",
    ),
    kvp(
        "kvp-size-not-an-integer",
        K10 + "Execute&identifier=bigoutput&DataInputs=size_mb=1.5",
        400,
        "InvalidParameterValue",
        "size_mb",
    ),
    kvp(
        "kvp-delay-negative",
        K10 + "Execute&identifier=sleep&DataInputs=delay=-1",
        400,
        "InvalidParameterValue",
        "delay",
    ),
    kvp(
        "kvp-delay-too-long",
        K10 + "Execute&identifier=sleep&DataInputs=delay=99999",
        400,
        "InvalidParameterValue",
        "delay",
    ),
    kvp("kvp-delay-nan", K10 + "Execute&identifier=sleep&DataInputs=delay=NaN", 400, "InvalidParameterValue", "delay"),
    kvp(
        "kvp-delay-infinite",
        K10 + "Execute&identifier=sleep&DataInputs=delay=inf",
        400,
        "InvalidParameterValue",
        "delay",
    ),
    kvp(
        "kvp-size-enormous",
        K10 + "Execute&identifier=bigoutput&DataInputs=size_mb=99999999999999999999999",
        400,
        "InvalidParameterValue",
        "size_mb",
    ),
    kvp(
        "kvp-delay-wrong-uom",
        K10 + "Execute&identifier=sleep&DataInputs=delay=1@uom=parsecs",
        400,
        "InvalidParameterValue",
        "delay",
    ),
    x10(
        "xml-size-not-an-integer",
        execute10("bigoutput", literal10("size_mb", "1.5")),
        400,
        "InvalidParameterValue",
        "size_mb",
    ),
    x20(
        "xml-delay-not-a-number-20",
        execute20("sleep", literal20("delay", "abc")),
        400,
        "InvalidParameterValue",
        "delay",
    ),
    x20(
        "xml-delay-too-long-20", execute20("sleep", literal20("delay", "99999")), 400, "InvalidParameterValue", "delay"
    ),
    x20("xml-delay-negative-20", execute20("sleep", literal20("delay", "-1")), 400, "InvalidParameterValue", "delay"),
    # -- missing, duplicated and misplaced inputs ------------------------------------------------------
    kvp("kvp-missing-required-input", K10 + "Execute&identifier=say_hello", 400, "MissingParameterValue", "name"),
    kvp(
        "kvp-only-separators",
        K10 + "Execute&identifier=say_hello&DataInputs=;;;",
        400,
        "MissingParameterValue",
        "name",
    ),
    x10("xml-missing-required-input", execute10("say_hello"), 400, "MissingParameterValue", "name"),
    x20("xml-missing-required-input-20", execute20("say_hello"), 400, "MissingParameterValue", "name"),
    kvp(
        "kvp-too-many-values",
        K10 + "Execute&identifier=echo&DataInputs=literalInput=a;literalInput=b",
        400,
        "InvalidParameterValue",
        "literalInput",
    ),
    x10(
        "xml-input-without-data",
        execute10("echo", "<wps:Input><ows:Identifier>literalInput</ows:Identifier></wps:Input>"),
        400,
        "MissingParameterValue",
        "literalInput",
    ),
    x10(
        "xml-unknown-data-element",
        execute10("echo", input10("literalInput", "<wps:Data><wps:Frobnicate/></wps:Data>")),
        400,
        "InvalidParameterValue",
        "literalInput",
    ),
    x20(
        "xml-input-without-id-20",
        execute20("echo", "<wps:Input><wps:Data>x</wps:Data></wps:Input>"),
        400,
        "MissingParameterValue",
        "Input id",
    ),
    x20(
        "xml-output-without-id-20",
        execute20("echo", literal20("literalInput", "a") + "<wps:Output/>"),
        400,
        "MissingParameterValue",
        "Output id",
    ),
    x20(
        "xml-nested-input-20",
        execute20(
            "echo", '<wps:Input id="literalInput"><wps:Input id="inner"><wps:Data>x</wps:Data></wps:Input></wps:Input>'
        ),
        501,
        "OptionNotSupported",
        "literalInput",
    ),
    x20(
        "xml-reference-without-href-20",
        execute20("wordcounter", '<wps:Input id="text"><wps:Reference mimeType="text/plain"/></wps:Input>'),
        400,
        "MissingParameterValue",
        "text xlink:href",
    ),
    x10(
        "xml-bbox-for-literal-input",
        execute10("say_hello", input10("name", bbox("1", "1 2", "3 4"))),
        400,
        "InvalidParameterValue",
        "name",
    ),
    # -- formats ---------------------------------------------------------------------------------------
    kvp(
        "kvp-mime-type-not-accepted",
        K10 + "Execute&identifier=wordcounter&DataInputs=text=hello@mimeType=image/png",
        400,
        "InvalidParameterValue",
        "text",
    ),
    x10(
        "xml-mime-type-not-accepted",
        execute10(
            "wordcounter",
            input10(
                "text", '<wps:Data><wps:ComplexData mimeType="application/x-msdownload">MZ</wps:ComplexData></wps:Data>'
            ),
        ),
        400,
        "InvalidParameterValue",
        "text",
    ),
    x20(
        "xml-mime-type-not-accepted-20",
        execute20("wordcounter", '<wps:Input id="text"><wps:Data mimeType="image/png">abc</wps:Data></wps:Input>'),
        400,
        "NoSuchFormat",
        "text",
    ),
    x20(
        "xml-output-mime-type-not-offered-20",
        execute20(
            "wordcounter",
            '<wps:Input id="text"><wps:Data mimeType="text/plain">a b</wps:Data></wps:Input>'
            '<wps:Output id="output" mimeType="image/png" transmission="value"/>',
        ),
        400,
        "NoSuchFormat",
        "output",
    ),
    kvp(
        "kvp-bad-base64",
        K10 + "Execute&identifier=echo&DataInputs=complexInput=abc@mimeType=text/plain@encoding=base64",
        400,
        "InvalidParameterValue",
        "complexInput",
    ),
    # -- response form, status and modes ----------------------------------------------------------------
    kvp(
        "kvp-status-without-store",
        K10 + "Execute&identifier=say_hello&DataInputs=name=a&status=true",
        400,
        "InvalidParameterValue",
        "status",
    ),
    x10(
        "xml-status-without-store",
        execute10("say_hello", literal10("name", "a"), '<wps:ResponseDocument status="true"/>'),
        400,
        "InvalidParameterValue",
        "status",
    ),
    kvp(
        "kvp-store-not-boolean",
        K10 + "Execute&identifier=say_hello&DataInputs=name=a&storeExecuteResponse=yes",
        400,
        "InvalidParameterValue",
        "storeexecuteresponse",
    ),
    x10(
        "xml-store-not-boolean",
        execute10("say_hello", literal10("name", "a"), '<wps:ResponseDocument storeExecuteResponse="maybe"/>'),
        400,
        "InvalidParameterValue",
        "storeExecuteResponse",
    ),
    kvp(
        "kvp-raw-and-document",
        K10 + "Execute&identifier=say_hello&DataInputs=name=a&RawDataOutput=response&ResponseDocument=response",
        400,
        "InvalidParameterValue",
        "ResponseForm",
    ),
    kvp(
        "kvp-raw-two-outputs",
        K10 + "Execute&identifier=echo&DataInputs=literalInput=a&RawDataOutput=literalOutput;complexOutput",
        400,
        "InvalidParameterValue",
        "RawDataOutput",
    ),
    kvp(
        "kvp-raw-empty",
        K10 + "Execute&identifier=say_hello&DataInputs=name=a&RawDataOutput=",
        400,
        "InvalidParameterValue",
        "RawDataOutput",
    ),
    kvp(
        "kvp-as-reference-not-boolean",
        K10 + "Execute&identifier=say_hello&DataInputs=name=a&ResponseDocument=response@asReference=perhaps",
        400,
        "InvalidParameterValue",
        "response",
    ),
    x20("xml-unknown-mode-20", execute20("echo", mode="eventually"), 400, "NoSuchMode", "mode"),
    x20("xml-unknown-response-20", execute20("echo", response="telegram"), 400, "InvalidParameterValue", "response"),
    x20(
        "xml-unknown-transmission-20",
        execute20("echo", literal20("literalInput", "a") + '<wps:Output id="literalOutput" transmission="pigeon"/>'),
        400,
        "InvalidParameterValue",
        "literalOutput",
    ),
    x20(
        "xml-raw-two-outputs-20",
        execute20(
            "echo",
            literal20("literalInput", "a") + '<wps:Output id="literalOutput"/><wps:Output id="complexOutput"/>',
            response="raw",
        ),
        501,
        "OptionNotSupported",
        "response",
    ),
    # -- bounding boxes ----------------------------------------------------------------------------------
    kvp(
        "kvp-bbox-corners-swapped",
        K10 + "Execute&identifier=echo&DataInputs=boundingBoxInput=10,10,0,0",
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    kvp(
        "kvp-bbox-not-numbers",
        K10 + "Execute&identifier=echo&DataInputs=boundingBoxInput=a,b,c,d",
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    kvp(
        "kvp-bbox-unknown-crs",
        K10 + "Execute&identifier=echo&DataInputs=boundingBoxInput=0,0,1,1,EPSG:666",
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    kvp(
        "kvp-bbox-nan",
        K10 + "Execute&identifier=echo&DataInputs=boundingBoxInput=nan,nan,nan,nan",
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    x10(
        "xml-bbox-corners-swapped",
        execute10("echo", input10("boundingBoxInput", bbox("1", "10 10", "0 0"))),
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    x20(
        "xml-bbox-corners-swapped-20",
        execute20("echo", f'<wps:Input id="boundingBoxInput">{bbox("2", "10 10", "0 0")}</wps:Input>'),
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    x20(
        "xml-bbox-dimensions-differ-20",
        execute20("echo", f'<wps:Input id="boundingBoxInput">{bbox("2", "0 0 0", "1 1")}</wps:Input>'),
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    x20(
        "xml-bbox-not-numbers-20",
        execute20("echo", f'<wps:Input id="boundingBoxInput">{bbox("2", "x y", "1 1")}</wps:Input>'),
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    x20(
        "xml-bbox-infinite-20",
        execute20("echo", f'<wps:Input id="boundingBoxInput">{bbox("2", "-inf nan", "1e999 1")}</wps:Input>'),
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    # -- references: file:// outside the allowed directories, odd schemes -----------------------------
    kvp(
        "kvp-file-passwd", href_query("wordcounter", "text", "file:///etc/passwd"), 400, "InvalidParameterValue", "text"
    ),
    kvp(
        "kvp-file-passwd-localhost",
        href_query("wordcounter", "text", "file://localhost/etc/passwd"),
        400,
        "InvalidParameterValue",
        "text",
    ),
    kvp(
        "kvp-file-with-host",
        href_query("wordcounter", "text", "file://evil.example/etc/passwd"),
        400,
        "InvalidParameterValue",
        "text",
    ),
    kvp(
        "kvp-file-proc-environ",
        href_query("wordcounter", "text", "file:///proc/self/environ"),
        400,
        "InvalidParameterValue",
        "text",
    ),
    kvp(
        "kvp-file-dotdot",
        href_query("wordcounter", "text", "file:///tmp/../etc/passwd"),
        400,
        "InvalidParameterValue",
        "text",
    ),
    kvp(
        "kvp-file-uppercase-scheme",
        href_query("wordcounter", "text", "FILE:///etc/passwd"),
        400,
        "InvalidParameterValue",
        "text",
    ),
    kvp(
        "kvp-relative-path", href_query("wordcounter", "text", "../../etc/passwd"), 400, "InvalidParameterValue", "text"
    ),
    kvp(
        "kvp-gopher",
        href_query("echo", "complexInput", "gopher://127.0.0.1:9/x"),
        400,
        "InvalidParameterValue",
        "complexInput",
    ),
    kvp(
        "kvp-unreachable-http",
        href_query("echo", "literalInput", "http://127.0.0.1:9/x"),
        400,
        "InvalidParameterValue",
        "literalInput",
    ),
    # Destinations not allowed: the tests allow 127.0.0.1/32 for their own servers, nothing else.
    *(
        kvp(
            f"kvp-refused-{name}",
            href_query("echo", "complexInput", href),
            400,
            "InvalidParameterValue",
            "complexInput",
        )
        for name, href in (
            ("metadata", "http://169.254.169.254/latest/meta-data/"),
            ("metadata-decimal", "http://2852039166/latest/meta-data/"),
            ("private-hex", "http://0x0a000001/"),
            ("cgnat", "http://100.64.0.1/"),
            ("mapped", "http://[::ffff:10.0.0.1]/"),
            ("ipv6-loopback", "http://[::1]:9/x"),
            ("other-loopback", "http://127.0.0.2:9/x"),
            ("unique-local", "http://[fd00::1]/"),
            ("credentials-not-forwarded", "http://user:pass@127.0.0.1:9/x"),
            ("no-host", "http:///x"),
            ("bad-port", "http://127.0.0.1:99999/x"),
        )
    ),
    x20(
        "xml-reference-method-set",
        execute20(
            "echo",
            '<wps:Input id="complexInput"><wps:Reference xlink:href="http://127.0.0.1:6379/" method="SET"/></wps:Input>',
        ),
        400,
        "WrongInputData",
        "complexInput",
    ),
    x20(
        "xml-reference-host-header",
        execute20(
            "echo",
            '<wps:Input id="complexInput"><wps:Reference xlink:href="http://127.0.0.1:9/x">'
            '<wps:Header key="Host" value="internal"/></wps:Reference></wps:Input>',
        ),
        400,
        "WrongInputData",
        "complexInput",
    ),
    x10(
        "xml-reference-method-delete",
        execute10(
            "wordcounter",
            input10("text", '<wps:Reference xlink:href="http://127.0.0.1:9/x" method="DELETE" mimeType="text/plain"/>'),
        ),
        400,
        "InvalidParameterValue",
        "text",
    ),
    kvp(
        "kvp-file-nul-byte",
        href_query("wordcounter", "text", "file:///tmp/%00"),
        400,
        "InvalidParameterValue",
        "text",
    ),
    x10(
        "xml-file-passwd",
        execute10(
            "wordcounter", input10("text", '<wps:Reference xlink:href="file:///etc/passwd" mimeType="text/plain"/>')
        ),
        400,
        "InvalidParameterValue",
        "text",
    ),
    x20(
        "xml-file-passwd-20",
        execute20(
            "wordcounter",
            '<wps:Input id="text"><wps:Reference xlink:href="file:///etc/passwd" mimeType="text/plain"/></wps:Input>',
        ),
        400,
        "DataNotAccessible",
        "text",
    ),
    x20(
        "xml-file-nul-byte-20",
        execute20(
            "wordcounter",
            '<wps:Input id="text"><wps:Reference xlink:href="file:///tmp/%00" mimeType="text/plain"/></wps:Input>',
        ),
        400,
        "DataNotAccessible",
        "text",
    ),
    # -- KVP with injected separators and attributes -----------------------------------------------------
    kvp(
        "kvp-unknown-attribute",
        K10 + "Execute&identifier=say_hello&DataInputs=name=a@evil=b",
        400,
        "InvalidParameterValue",
        "DataInputs",
    ),
    kvp(
        "kvp-empty-attribute",
        K10 + "Execute&identifier=say_hello&DataInputs=name=a@@",
        400,
        "InvalidParameterValue",
        "DataInputs",
    ),
    kvp(
        "kvp-unknown-output-attribute",
        K10 + "Execute&identifier=say_hello&DataInputs=name=a&ResponseDocument=response@evil=1",
        400,
        "InvalidParameterValue",
        "ResponseForm",
    ),
    kvp(
        "kvp-entry-without-identifier",
        K10 + "Execute&identifier=say_hello&DataInputs==x",
        400,
        "InvalidParameterValue",
        "DataInputs",
    ),
    kvp(
        "kvp-entry-only-attributes",
        K10 + "Execute&identifier=say_hello&DataInputs=@mimeType=text/plain",
        400,
        "InvalidParameterValue",
        "DataInputs",
    ),
    kvp(
        "kvp-entry-without-value",
        K10 + "Execute&identifier=say_hello&DataInputs=name",
        400,
        "InvalidParameterValue",
        "DataInputs",
    ),
    kvp(
        "kvp-resource-request-unknown",
        K10 + "Execute&identifier=echo&DataInputs=resources.evil=1",
        400,
        "InvalidParameterValue",
        "resources.evil",
    ),
    # -- control characters: XML cannot carry them, so they must be refused, not crash the renderer ----
    kvp(
        "kvp-nul-identifier",
        K10 + "DescribeProcess&identifier=%00",
        400,
        "InvalidParameterValue",
        "Identifier",
    ),
    kvp(
        "kvp-control-character-operation",
        K10 + "%01",
        501,
        "OperationNotSupported",
        ANY,
    ),
    kvp(
        "kvp-nul-service",
        "service=%00&version=1.0.0&request=GetCapabilities",
        400,
        "InvalidParameterValue",
        "service",
    ),
    kvp(
        "kvp-nul-version",
        "service=WPS&version=%00&request=DescribeProcess&identifier=echo",
        400,
        "InvalidParameterValue",
        "version",
    ),
    kvp(
        "kvp-nul-acceptversions",
        "service=WPS&request=GetCapabilities&AcceptVersions=%00",
        400,
        "VersionNegotiationFailed",
        "AcceptVersions",
    ),
    kvp(
        "kvp-nul-process-20",
        K20 + "DescribeProcess&identifier=%00",
        400,
        "NoSuchProcess",
        ANY,
        "2.0.0",
    ),
    kvp(
        "kvp-control-character-literal",
        K10 + "Execute&identifier=echo&DataInputs=literalInput=%01%02",
        400,
        "InvalidParameterValue",
        "literalInput",
    ),
    kvp(
        "kvp-noncharacter-literal",
        K10 + "Execute&identifier=echo&DataInputs=literalInput=%EF%BF%BE",
        400,
        "InvalidParameterValue",
        "literalInput",
    ),
    # -- 2.0-only operations with version=1.0.0, unsupported versions, jobs ------------------------------
    kvp("kvp-getstatus-10", f"{K10}GetStatus&jobId={FOREIGN_JOB}", 501, "OperationNotSupported", "GetStatus"),
    kvp("kvp-getresult-10", f"{K10}GetResult&jobId={FOREIGN_JOB}", 501, "OperationNotSupported", "GetResult"),
    kvp("kvp-dismiss-10", f"{K10}Dismiss&jobId={FOREIGN_JOB}", 501, "OperationNotSupported", "Dismiss"),
    kvp("kvp-execute-get-20", K20 + "Execute&identifier=say_hello", 501, "OperationNotSupported", "request", "2.0.0"),
    kvp(
        "kvp-describe-version-3",
        "service=WPS&version=3.0.0&request=DescribeProcess&identifier=say_hello",
        400,
        "InvalidParameterValue",
        "version",
    ),
    kvp(
        "kvp-execute-version-3",
        "service=WPS&version=3.0.0&request=Execute&identifier=say_hello&DataInputs=name=a",
        400,
        "InvalidParameterValue",
        "version",
    ),
    kvp(
        "kvp-accept-versions-3",
        "service=WPS&request=GetCapabilities&AcceptVersions=3.0.0,0.1",
        400,
        "VersionNegotiationFailed",
        "AcceptVersions",
    ),
    x10(
        "xml-describe-version-3",
        f'<wps:DescribeProcess service="WPS" version="3.0.0" {W1}><ows:Identifier>echo</ows:Identifier></wps:DescribeProcess>',
        400,
        "InvalidParameterValue",
        "version",
    ),
    kvp("kvp-getstatus-missing-jobid-20", K20 + "GetStatus", 400, "MissingParameterValue", "jobid", "2.0.0"),
    kvp("kvp-getstatus-unknown-job-20", f"{K20}GetStatus&jobId={FOREIGN_JOB}", 400, "NoSuchJob", FOREIGN_JOB, "2.0.0"),
    kvp(
        "kvp-getresult-traversal-job-20",
        K20 + "GetResult&jobId=..%2F..%2Fetc%2Fpasswd",
        400,
        "NoSuchJob",
        "../../etc/passwd",
        "2.0.0",
    ),
    x20(
        "xml-getstatus-missing-jobid-20",
        f'<wps:GetStatus service="WPS" version="2.0.0" {W2}/>',
        400,
        "MissingParameterValue",
        "JobID",
    ),
    x20(
        "xml-dismiss-traversal-job-20",
        f'<wps:Dismiss service="WPS" version="2.0.0" {W2}><wps:JobID>/etc/passwd</wps:JobID></wps:Dismiss>',
        400,
        "NoSuchJob",
        "/etc/passwd",
    ),
    # -- KVP in a POST body ------------------------------------------------------------------------------
    post(
        "form-unknown-process",
        K10 + "DescribeProcess&identifier=nope",
        400,
        "InvalidParameterValue",
        "Identifier",
        "1.0.0",
        content_type="application/x-www-form-urlencoded",
    ),
    post(
        "form-unknown-process-20",
        K20 + "DescribeProcess&identifier=nope",
        400,
        "NoSuchProcess",
        "nope",
        "2.0.0",
        content_type="application/x-www-form-urlencoded",
    ),
    # -- POST bodies that do not say they are XML (or a form): 415 before anything is parsed ----------
    post(
        "post-text-plain",
        CAPABILITIES10,
        415,
        "InvalidParameterValue",
        "Content-Type",
        "1.0.0",
        content_type="text/plain",
    ),
    post(
        "post-text-plain-execute-20",
        execute20("say_hello", literal20("name", "csrf")),
        415,
        "InvalidParameterValue",
        "Content-Type",
        "2.0.0",
        content_type="text/plain; charset=utf-8",
    ),
    post(
        "post-no-content-type", CAPABILITIES10, 415, "InvalidParameterValue", "Content-Type", "1.0.0", content_type=None
    ),
    post(
        "post-multipart",
        f"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n{CAPABILITIES10}\r\n--b--\r\n",
        415,
        "InvalidParameterValue",
        "Content-Type",
        "1.0.0",
        content_type="multipart/form-data; boundary=b",
    ),
    post(
        "post-json-20",
        execute20("echo"),
        415,
        "InvalidParameterValue",
        "Content-Type",
        "2.0.0",
        content_type="application/json",
    ),
    post(
        "post-xml-lookalike-type",
        CAPABILITIES10,
        415,
        "InvalidParameterValue",
        "Content-Type",
        "1.0.0",
        content_type="application/xml-dtd",
    ),
    # -- numbers: ASCII digits in XML Schema's lexical forms only ----------------------------------------
    kvp(
        "kvp-delay-underscore",
        K10 + "Execute&identifier=sleep&DataInputs=delay=1_0",
        400,
        "InvalidParameterValue",
        "delay",
    ),
    kvp(
        "kvp-delay-full-width",
        K10 + "Execute&identifier=sleep&DataInputs=delay=%EF%BC%91%EF%BC%90",
        400,
        "InvalidParameterValue",
        "delay",
    ),
    kvp(
        "kvp-delay-arabic-indic",
        K10 + "Execute&identifier=sleep&DataInputs=delay=%D9%A3",
        400,
        "InvalidParameterValue",
        "delay",
    ),
    kvp(
        "kvp-delay-infinity-word",
        K10 + "Execute&identifier=sleep&DataInputs=delay=Infinity",
        400,
        "InvalidParameterValue",
        "delay",
    ),
    kvp(
        "kvp-delay-overflow",
        K10 + "Execute&identifier=sleep&DataInputs=delay=1e400",
        400,
        "InvalidParameterValue",
        "delay",
    ),
    kvp(
        "kvp-delay-nbsp",
        K10 + "Execute&identifier=sleep&DataInputs=delay=%C2%A01",
        400,
        "InvalidParameterValue",
        "delay",
    ),
    kvp(
        "kvp-size-underscore",
        K10 + "Execute&identifier=bigoutput&DataInputs=size_mb=1_0",
        400,
        "InvalidParameterValue",
        "size_mb",
    ),
    kvp(
        "kvp-size-full-width",
        K10 + "Execute&identifier=bigoutput&DataInputs=size_mb=%EF%BC%91",
        400,
        "InvalidParameterValue",
        "size_mb",
    ),
    x10(
        "xml-size-arabic-indic",
        execute10("bigoutput", literal10("size_mb", "\u0662")),
        400,
        "InvalidParameterValue",
        "size_mb",
    ),
    x20(
        "xml-delay-devanagari-20",
        execute20("sleep", literal20("delay", "\u0967")),
        400,
        "InvalidParameterValue",
        "delay",
    ),
    kvp(
        "kvp-bbox-full-width",
        K10 + "Execute&identifier=echo&DataInputs=boundingBoxInput=0,0,%EF%BC%91,1",
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    x10(
        "xml-bbox-underscore",
        execute10("echo", input10("boundingBoxInput", bbox("1", "0 0", "1_0 1"))),
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    x20(
        "xml-bbox-arabic-indic-20",
        execute20("echo", f'<wps:Input id="boundingBoxInput">{bbox("2", ARABIC_INDIC_ZERO + " 0", "1 1")}</wps:Input>'),
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    x20(
        "xml-bbox-lexical-infinity-20",
        execute20("echo", f'<wps:Input id="boundingBoxInput">{bbox("2", "-INF 0", "1 1")}</wps:Input>'),
        400,
        "InvalidParameterValue",
        "boundingBoxInput",
    ),
    kvp(
        "kvp-resource-cores-underscore",
        K10 + "Execute&identifier=echo&DataInputs=literalInput=a;resources.cores=1_0",
        400,
        "InvalidParameterValue",
        "resources.cores",
    ),
    kvp(
        "kvp-resource-cores-full-width",
        K10 + "Execute&identifier=echo&DataInputs=literalInput=a;resources.cores=%EF%BC%94",
        400,
        "InvalidParameterValue",
        "resources.cores",
    ),
    kvp(
        "kvp-resource-walltime-inf",
        K10 + "Execute&identifier=echo&DataInputs=literalInput=a;resources.walltime=inf",
        400,
        "InvalidParameterValue",
        "resources.walltime",
    ),
    kvp(
        "kvp-resource-memory-arabic-indic",
        K10 + "Execute&identifier=echo&DataInputs=literalInput=a;resources.memory=%D9%A1GB",
        400,
        "InvalidParameterValue",
        "resources.memory",
    ),
    x20(
        "xml-resource-walltime-nan-20",
        execute20("echo", literal20("literalInput", "a") + literal20("resources.walltime", "NaN")),
        400,
        "InvalidParameterValue",
        "resources.walltime",
    ),
    # -- a control character in a process's message: refused at the door when sent by value ------------
    kvp(
        "kvp-control-character-message",
        K10 + "Execute&identifier=fail&DataInputs=message=a%01b",
        400,
        "InvalidParameterValue",
        "message",
    ),
    # -- a raw output the run did not produce (echo sets complexOutput only from complexInput) ----------
    kvp(
        "kvp-raw-output-not-produced",
        K10 + "Execute&identifier=echo&DataInputs=literalInput=a&RawDataOutput=complexOutput",
        400,
        "InvalidParameterValue",
        "complexOutput",
    ),
    x10(
        "xml-raw-output-not-produced",
        execute10(
            "echo",
            literal10("literalInput", "a"),
            "<wps:RawDataOutput><ows:Identifier>boundingBoxOutput</ows:Identifier></wps:RawDataOutput>",
        ),
        400,
        "InvalidParameterValue",
        "boundingBoxOutput",
    ),
    x20(
        "xml-raw-output-not-produced-20",
        execute20(
            "echo",
            literal20("literalInput", "a") + '<wps:Output id="complexOutput" transmission="value"/>',
            response="raw",
        ),
        400,
        "NoSuchOutput",
        "complexOutput",
    ),
    x20(
        "xml-document-output-not-produced-20",
        execute20("echo", literal20("literalInput", "a") + '<wps:Output id="complexOutput" transmission="value"/>'),
        400,
        "NoSuchOutput",
        "complexOutput",
    ),
    # -- paths: job ids and output names that try to leave the job's directory -------------------------
    path("path-output-traversal", f"/wps/jobs/{FOREIGN_JOB}/outputs/..%2F..%2F..%2Fetc%2Fpasswd", "NoApplicableCode"),
    path("path-output-absolute", f"/wps/jobs/{FOREIGN_JOB}/outputs/%2Fetc%2Fpasswd", "NoApplicableCode"),
    path("path-output-dotfile", f"/wps/jobs/{FOREIGN_JOB}/outputs/.env", "NoSuchJob", "jobId"),
    path("path-output-dotdot", f"/wps/jobs/{FOREIGN_JOB}/outputs/%2E%2E", "NoSuchJob", "jobId"),
    path("path-output-backslash", f"/wps/jobs/{FOREIGN_JOB}/outputs/..%5C..%5Cetc%5Cpasswd", "NoSuchJob", "jobId"),
    path("path-output-unknown-job", f"/wps/jobs/{FOREIGN_JOB}/outputs/output.json", "NoSuchJob", FOREIGN_JOB),
    path("path-job-traversal", "/wps/jobs/..%2F..%2Fetc%2Fpasswd/outputs/x", "NoApplicableCode"),
    path("path-job-not-a-uuid", "/wps/jobs/..%2E/outputs/output.json", "NoSuchJob", "jobId"),
    path("path-status-traversal", "/wps/jobs/..%2F..%2Fjobs.sqlite", "NoApplicableCode"),
    path("path-status-not-a-uuid", "/wps/jobs/.bashrc", "NoSuchJob", "jobId"),
    path("path-unknown-route", "/wps/../etc/passwd", "NoApplicableCode"),
]

IDS = [case.id for case in CORPUS]
assert len(IDS) == len(set(IDS)), "duplicate case ids"


def _param(case: Case):  # type: ignore[no-untyped-def]
    marks = [pytest.mark.xfail(strict=True, reason=case.defect)] if case.defect else []
    return pytest.param(case, id=case.id, marks=marks)


# -- checks --------------------------------------------------------------------------------------------


def assert_exception_report(case: Case, status: int, content_type: str, body: bytes) -> etree._Element:
    """The answer ``case`` expects; returns the ows:Exception element."""
    for leak in LEAKS:
        assert leak not in body, f"{case.id}: the response contains {leak!r}:\n{body[:2000]!r}"
    assert content_type == "text/xml", f"{case.id}: Content-Type {content_type!r}"
    root = validate(body)
    ows = OWS20 if case.version.startswith("2") else OWS11
    assert root.tag == f"{{{ows}}}ExceptionReport", f"{case.id}: {root.tag}\n{body[:1500].decode(errors='replace')}"
    exception = root.find(f"{{{ows}}}Exception")
    assert exception is not None
    assert (exception.get("exceptionCode"), status) == (case.code, case.status), (
        f"{case.id}: {status} {exception.get('exceptionCode')} locator={exception.get('locator')!r}: "
        f"{exception.findtext(f'{{{ows}}}ExceptionText')}"
    )
    if case.locator != ANY:
        assert exception.get("locator") == case.locator, f"{case.id}: locator {exception.get('locator')!r}"
    return exception


def send(client, case: Case):  # type: ignore[no-untyped-def]
    if case.method == "GET":
        return client.get(case.target)
    return client.post(case.target, data=case.body, content_type=case.content_type)


@pytest.mark.parametrize("case", [_param(c) for c in CORPUS])
def test_bad_request(wps, case: Case):
    response = send(wps, case)
    assert_exception_report(case, response.status_code, response.headers.get("Content-Type", ""), response.get_data())


@pytest.mark.parametrize("case", [_param(c) for c in CORPUS if c.method == "GET"])
def test_head_answers_like_get(wps, case: Case):
    """HEAD of every GET case: the same status and headers, no body (it used to be parsed as an empty
    XML POST: HEAD of GetCapabilities was a 400)."""
    got, head = wps.client.get(case.target), wps.client.head(case.target)
    assert (head.status_code, head.get_data()) == (got.status_code, b""), case.id
    assert head.headers == got.headers, case.id


# -- cases that need a job, files or their own settings --------------------------------------------------


def _wordcounter_job(wps) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A finished job with one output file, by reference; returns (job id, file name)."""
    body = execute10(
        "wordcounter",
        input10("text", '<wps:Data><wps:ComplexData mimeType="text/plain">secret words</wps:ComplexData></wps:Data>'),
        '<wps:ResponseDocument><wps:Output asReference="true"><ows:Identifier>output</ows:Identifier>'
        "</wps:Output></wps:ResponseDocument>",
    )
    response = wps.post("/wps", data=body, content_type="text/xml")
    assert response.status_code == 200
    href = response.xml.find(f".//{{{WPS10}}}Reference").get("href")
    job_id, name = re.fullmatch(r"http://testserver/wps/jobs/([0-9a-f-]{36})/outputs/([^/]+)", href).groups()
    return job_id, name


def test_output_and_job_paths_never_leave_the_job_directory(wps, settings):
    job_id, name = _wordcounter_job(wps)
    assert wps.get(f"/wps/jobs/{job_id}/outputs/{name}").status_code == 200
    outputs = settings.jobs_dir / job_id / "outputs"
    # Files a traversal would like to reach: next to the output, in the job, in the work directory.
    (outputs / ".secret").write_text("SECRET-DOT", encoding="utf-8")
    (outputs / "unlisted.txt").write_text("SECRET-UNLISTED", encoding="utf-8")
    (settings.jobs_dir / job_id / "request.txt").write_text("SECRET-JOB", encoding="utf-8")
    (settings.server.workdir / "secret.txt").write_text("SECRET-WORKDIR", encoding="utf-8")
    attempts = [
        f"/wps/jobs/{job_id}/outputs/..%2F..%2F..%2Fetc%2Fpasswd",
        f"/wps/jobs/{job_id}/outputs/../../../etc/passwd",
        f"/wps/jobs/{job_id}/outputs/..%2Frequest.txt",
        f"/wps/jobs/{job_id}/outputs/..%2F..%2F..%2Fsecret.txt",
        f"/wps/jobs/{job_id}/outputs/%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt",
        f"/wps/jobs/{job_id}/outputs/..%5Crequest.txt",
        f"/wps/jobs/{job_id}/outputs/%2Fetc%2Fpasswd",
        f"/wps/jobs/{job_id}/outputs/{quote(str(settings.server.workdir / 'secret.txt'), safe='')}",
        f"/wps/jobs/{job_id}/outputs/.secret",
        f"/wps/jobs/{job_id}/outputs/%2Esecret",
        f"/wps/jobs/{job_id}/outputs/unlisted.txt",
        f"/wps/jobs/{job_id}/outputs/..",
        f"/wps/jobs/{job_id}/outputs/.",
        f"/wps/jobs/{job_id}/outputs/{name}%00",
        f"/wps/jobs/{job_id}/outputs/{name}%2F..%2F.secret",
        f"/wps/jobs/{job_id}/outputs/{'a' * 300}",
        f"/wps/jobs/{job_id.upper()}/outputs/{name}",
        f"/wps/jobs/{job_id}%2F..%2F{job_id}/outputs/{name}",
        f"/wps/jobs/..%2F{job_id}/outputs/{name}",
        f"/wps/jobs/{job_id}/..%2F..%2Fsecret.txt",
        f"/wps/jobs/{job_id}/outputs/{name}/..%2F..%2Frequest.txt",
    ]
    for attempt in attempts:
        response = wps.get(attempt)
        body = response.get_data()
        assert response.status_code == 404, (attempt, response.status_code, body[:500])
        assert response.headers["Content-Type"] == "text/xml", attempt
        assert response.xml.tag == f"{{{OWS11}}}ExceptionReport", attempt
        for secret in (b"SECRET-", b"root:x:0:0", b"Traceback", b"secret words"):
            assert secret not in body, (attempt, body[:500])


def test_file_references_outside_the_allowed_directories(wps, settings, tmp_path):
    allowed = settings.inputs.allowed_dirs[0]
    (allowed / "ok.txt").write_text("fine words", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("SECRET-OUTSIDE", encoding="utf-8")
    sibling = Path(f"{allowed}2")  # same prefix, another directory
    sibling.mkdir()
    (sibling / "secret.txt").write_text("SECRET-SIBLING", encoding="utf-8")
    (allowed / "escape").symlink_to(tmp_path)
    hrefs = [
        f"file://{tmp_path}/secret.txt",
        f"file://{allowed}/../secret.txt",
        f"file://{allowed}/%2E%2E/secret.txt",
        f"file://{sibling}/secret.txt",
        f"file://{allowed}/escape/secret.txt",
        f"file://{allowed}/./../../{tmp_path.name}/secret.txt",
        f"file://localhost{tmp_path}/secret.txt",
        f"file://{allowed}",  # a directory
        f"file://{allowed}/missing.txt",
    ]
    for href in hrefs:
        response = wps.get("/wps?" + href_query("wordcounter", "text", href))
        assert response.status_code == 400, (href, response.get_data()[:500])
        exception = response.xml.find(f"{{{OWS11}}}Exception")
        assert (exception.get("exceptionCode"), exception.get("locator")) == ("InvalidParameterValue", "text"), href
        assert b"SECRET-" not in response.get_data()
        body = execute20(
            "wordcounter",
            f'<wps:Input id="text"><wps:Reference xlink:href="{href}" mimeType="text/plain"/></wps:Input>',
        )
        response = wps.post("/wps", data=body, content_type="text/xml")
        assert response.status_code == 400, (href, response.get_data()[:500])
        exception = response.xml.find(f"{{{OWS20}}}Exception")
        assert (exception.get("exceptionCode"), exception.get("locator")) == ("DataNotAccessible", "text"), href
        assert b"SECRET-" not in response.get_data()
    ok = wps.get("/wps?" + href_query("wordcounter", "text", f"file://{allowed}/ok.txt"))
    assert ok.status_code == 200 and b"fine" in ok.get_data()


@pytest.fixture
def small_app(settings):  # type: ignore[no-untyped-def]
    application = create_app(settings.replace("server", max_request_size=2048))
    application.testing = True
    yield application
    application.extensions["hpc_wps"].engine.dispose()


def test_oversized_body_is_file_size_exceeded(small_app):
    client = ValidatingClient(small_app.test_client())
    words = "word " * 1000
    big = execute10(
        "wordcounter",
        input10("text", f'<wps:Data><wps:ComplexData mimeType="text/plain">{words}</wps:ComplexData></wps:Data>'),
    )
    for body, content_type in (
        (big, "text/xml"),
        (f"{K10}Execute&identifier=say_hello&DataInputs=name={'x' * 4000}", "application/x-www-form-urlencoded"),
        (b"\0" * 1_000_000, "application/octet-stream"),
    ):
        response = client.post("/wps", data=body, content_type=content_type)
        assert response.status_code == 413, response.get_data()[:500]
        assert response.headers["Content-Type"] == "text/xml"
        exception = response.xml.find(f"{{{OWS11}}}Exception")
        assert (exception.get("exceptionCode"), exception.get("locator")) == ("FileSizeExceeded", "request")
    # A 2.0 request over the limit: the service cannot read its namespace, but it is a report all the same.
    big20 = execute20(
        "wordcounter", f'<wps:Input id="text"><wps:Data mimeType="text/plain">{words}</wps:Data></wps:Input>'
    )
    response = client.post("/wps", data=big20, content_type="text/xml")
    assert response.status_code == 413
    assert response.xml.tag in (f"{{{OWS11}}}ExceptionReport", f"{{{OWS20}}}ExceptionReport")
    # Under the limit, the same service answers.
    small = execute10("say_hello", literal10("name", "small"))
    assert client.post("/wps", data=small, content_type="text/xml").status_code == 200


def test_separators_encoded_in_a_value_are_not_injected(wps):
    response = wps.get(
        "/wps?"
        + K10
        + "Execute&identifier=say_hello&DataInputs=name=a%3Bevil%3Db%40mimeType%3Dx%26request%3DGetCapabilities"
    )
    assert response.status_code == 200
    text = response.xml.findtext(f".//{{{WPS10}}}LiteralData")
    assert text == "Hello a;evil=b@mimeType=x&request=GetCapabilities"


def test_xinclude_in_complex_data_is_not_expanded(wps):
    payload = (
        '<doc xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd" parse="text"/></doc>'
    )
    body = execute10(
        "echo",
        input10(
            "complexInput", f'<wps:Data><wps:ComplexData mimeType="text/xml">{payload}</wps:ComplexData></wps:Data>'
        ),
    )
    response = wps.post("/wps", data=body, content_type="text/xml")
    assert response.status_code == 200
    assert b"root:x:0:0" not in response.get_data()
    assert response.xml.find(".//{http://www.w3.org/2001/XInclude}include") is not None


# Valid UTF-8, but not XML text: the renderer keeps it as text instead of falling back to base64.
BINARY = base64.b64encode(b"\x00\x01 binary").decode()


@pytest.mark.parametrize("version", ["kvp", "1.0.0", "2.0.0"])
def test_binary_base64_payload_is_answered(wps, version):
    if version == "kvp":
        response = wps.get("/wps?" + K10 + "Execute&identifier=echo&DataInputs=complexInput=%00%01@mimeType=text/plain")
        assert response.status_code < 500, response.get_data()[:500]
        return
    if version == "1.0.0":
        body = execute10(
            "echo",
            input10(
                "complexInput",
                f'<wps:Data><wps:ComplexData mimeType="text/plain" encoding="base64">{BINARY}</wps:ComplexData></wps:Data>',
            ),
        )
    else:
        body = execute20(
            "echo",
            f'<wps:Input id="complexInput"><wps:Data mimeType="text/plain" encoding="base64">{BINARY}</wps:Data></wps:Input>',
        )
    response = wps.post("/wps", data=body, content_type="text/xml")
    assert response.status_code < 500, response.get_data()[:500]


def test_stored_job_with_unrenderable_output_stays_readable(wps, app):
    """Text XML cannot carry is refused on input; a process that produces such text itself still gets
    readable, valid documents (the characters are shown as their code points)."""
    refused = wps.get("/wps?" + K10 + "Execute&identifier=echo&DataInputs=literalInput=%01&storeExecuteResponse=true")
    assert refused.status_code == 400
    assert refused.xml.find(f"{{{OWS11}}}Exception").get("locator") == "literalInput"
    from sqlalchemy import text, update

    from scheduler.models import JOBS

    engine = app.extensions["hpc_wps"].engine
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == 0
    stored = wps.get("/wps?" + K10 + "Execute&identifier=echo&DataInputs=literalInput=ok&storeExecuteResponse=true")
    job_id = stored.xml.get("statusLocation").rsplit("/", 1)[1]
    record = {"id": "literalOutput", "kind": "literal", "value": "bad\x01char", "data_type": "string"}
    with engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(status="succeeded", outputs=[record]))
    status = wps.get(f"/wps/jobs/{job_id}")
    assert status.status_code == 200
    assert status.xml.findtext(f".//{{{WPS10}}}LiteralData") == "bad\\x01char"
    assert wps.get(f"/wps?{K20}GetResult&jobId={job_id}").status_code == 200


@pytest.mark.parametrize("version", ["1.0.0", "2.0.0"])
def test_no_outputs_is_a_valid_response(wps, version):
    """A run that produces none of the outputs (echo without inputs) fails with that reason: a valid
    ProcessFailed document in 1.0.0, a valid exception report in 2.0 (a process failure is the server's)."""
    if version == "1.0.0":
        response = wps.get("/wps?" + K10 + "Execute&identifier=echo")
        assert response.status_code == 200
        failed = response.xml.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessFailed")
        assert "produced no output" in etree.tostring(failed, encoding="unicode")
    else:
        response = wps.post("/wps", data=execute20("echo"), content_type="text/xml")
        assert response.status_code == 500
        exception = response.xml.find(f"{{{OWS20}}}Exception")
        assert exception.get("exceptionCode") == "NoApplicableCode"
        assert "produced no output" in exception.findtext(f"{{{OWS20}}}ExceptionText")


# -- the whole corpus against real gunicorn workers ------------------------------------------------------


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.mark.slow
def test_corpus_against_live_server(live_server):
    base = live_server.url.rsplit("/wps", 1)[0]
    session = requests.Session()
    before = _descendants(live_server.process.pid)
    assert before, "the server has no worker processes"
    failures = []
    for case in CORPUS:
        url = base + case.target
        headers = {"Content-Type": case.content_type} if case.content_type else {}
        prepared = session.prepare_request(requests.Request(case.method, url, data=case.body, headers=headers))
        prepared.url = requote_uri(url)  # the path as written, as the test client sends it, not "/wps/../x" as "/x"
        response = session.send(prepared, timeout=30)
        body = response.content
        if case.method == "GET":  # HEAD answers as GET does, without the body, through gunicorn too
            prepared.method = "HEAD"
            head = session.send(prepared, timeout=30)
            if (head.status_code, head.content) != (response.status_code, b""):
                failures.append(f"{case.id}: HEAD {head.status_code} {head.content[:200]!r}")
        if case.defect:  # a known fault: it must still be an answer, and not kill anything
            assert b"Traceback (most recent call last)" not in body, case.id
            continue
        try:
            assert_exception_report(case, response.status_code, response.headers.get("Content-Type", ""), body)
        except AssertionError as exc:
            failures.append(f"{case.id}: {exc}")
    # A body beyond the default limit (10 MiB): refused with a report, not a reset connection.
    huge = b"<a>" + b"x" * (10 * 1024**2 + 10) + b"</a>"
    response = session.post(live_server.url, data=huge, headers={"Content-Type": "text/xml"}, timeout=60)
    assert response.status_code == 413 and response.headers["Content-Type"] == "text/xml"
    assert validate(response.content).find(f"{{{OWS11}}}Exception").get("exceptionCode") == "FileSizeExceeded"
    assert not failures, "\n".join(failures)

    # Still serving, with the same workers: nothing was killed or respawned.
    capabilities = session.get(live_server.url, params={"service": "WPS", "request": "GetCapabilities"}, timeout=30)
    assert capabilities.status_code == 200
    assert validate(capabilities.content).tag == f"{{{WPS10}}}Capabilities"
    hello = session.post(
        live_server.url,
        data=execute20("say_hello", literal20("name", "survivor") + '<wps:Output id="response" transmission="value"/>'),
        headers={"Content-Type": "text/xml"},
        timeout=30,
    )
    assert hello.status_code == 200
    result = validate(hello.content)
    assert result.tag == f"{{{WPS20}}}Result"
    assert result.findtext(f".//{{{WPS20}}}LiteralValue") == "Hello survivor"
    assert before <= _descendants(live_server.process.pid), "a server process died during the corpus"


def test_corpus_covers_both_versions_and_methods():
    assert {c.version for c in CORPUS} == {"1.0.0", "2.0.0"}
    assert {c.method for c in CORPUS} == {"GET", "POST"}
    assert all(400 <= c.status < 600 for c in CORPUS)


@pytest.mark.slow
def test_long_kvp_request_gets_a_wps_answer(live_server):
    name = "x" * 5000  # inline data in a KVP Execute: ordinary for WPS 1.0.0 clients
    response = requests.get(f"{live_server.url}?{K10}Execute&identifier=say_hello&DataInputs=name={name}", timeout=30)
    assert response.headers.get("Content-Type") == "text/xml", (response.status_code, response.content[:300])
    root = validate(response.content)
    assert response.status_code == 200 or root.tag == f"{{{OWS11}}}ExceptionReport"


# -- hostile credentials: [auth] mode = oidc and mode = header -------------------------------------------


def _segment(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt(header: object, claims: object = None, signature: str = "c2ln") -> str:
    return f"{_segment(header)}.{_segment(claims if claims is not None else {'sub': 'x'})}.{signature}"


HOSTILE_AUTHORIZATION = {
    "empty bearer": "Bearer x",
    "huge token": "Bearer " + "A" * 70000,
    "three dots": "Bearer ...",
    "not base64": "Bearer !!!.???.***",
    "header not JSON": f"Bearer {_segment(b'not json')}.e30.c2ln",
    "header a list": "Bearer " + _jwt(["RS256"]),
    "alg a list": "Bearer " + _jwt({"alg": ["RS256"], "kid": "k"}),
    "alg none": "Bearer " + _jwt({"alg": "none"}, signature=""),
    "alg None": "Bearer " + _jwt({"alg": "None"}, signature=""),
    "alg HS256": "Bearer " + _jwt({"alg": "HS256", "kid": "test-rsa"}),
    "kid an object": "Bearer " + _jwt({"alg": "RS256", "kid": {"$ne": 1}}),
    "kid a path": "Bearer " + _jwt({"alg": "RS256", "kid": "../../../etc/passwd"}),
    "jku and x5u": "Bearer " + _jwt({"alg": "RS256", "jku": "http://127.0.0.1:1/keys", "x5u": "http://127.0.0.1:1/"}),
    "embedded jwk": "Bearer " + _jwt({"alg": "RS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
    "claims not JSON": "Bearer " + f"{_segment({'alg': 'RS256', 'kid': 'test-rsa'})}.{_segment(b'[')}.c2ln",
    "deep JSON": "Bearer " + f"{_segment({'alg': 'RS256', 'kid': 'test-rsa'})}.{_segment(b'[' * 5000)}.c2ln",
    "control characters": "Bearer a\x01b.c\x7fd.e",
    "non-ASCII": "Bearer \u00e9t\u00e9.\u0661\u0662.\uff11",
    "two tokens": "Bearer a.b.c Bearer d.e.f",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_AUTHORIZATION))
def test_hostile_authorization_headers_are_401_reports(oidc_client, name: str):
    value = HOSTILE_AUTHORIZATION[name]
    for target, namespace in (
        ("/wps?service=WPS&version=2.0.0&request=GetStatus&jobId=" + FOREIGN_JOB, OWS20),
        ("/wps?service=WPS&request=GetCapabilities", OWS11),
        (f"/wps/jobs/{FOREIGN_JOB}", OWS11),
    ):
        response = oidc_client.get(target, headers={"Authorization": value})
        body = response.get_data()
        assert not any(leak in body for leak in LEAKS), name
        if name == "two tokens":  # not one Bearer token: as if none was sent
            assert response.status_code in (200, 401), name
            continue
        assert response.status_code == 401, (name, target, body[:300])
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="hpc-wps", error="invalid_token"')
        exception = response.xml.find(f"{{{namespace}}}Exception")
        assert (exception.get("exceptionCode"), exception.get("locator")) == ("NoApplicableCode", "Authorization")


@pytest.mark.parametrize(
    "user", ["", " ", "anonymous", "a\x01b", "x" * 256, " padded", "\u202eevil", "root\r\nX-Injected: 1"]
)
def test_hostile_user_headers_are_refused(header_client, user: str):
    execute = "/wps?service=WPS&version=1.0.0&request=Execute&identifier=echo&DataInputs=literalInput=x"
    for address in ("127.0.0.1", "192.0.2.1"):
        try:
            response = header_client.get(
                execute, headers={"X-Remote-User": user}, environ_base={"REMOTE_ADDR": address}
            )
        except ValueError:  # the test client itself refuses a header with a line break
            assert "\n" in user
            continue
        accepted = address == "127.0.0.1" and user == "\u202eevil"  # printable: a name like any other
        assert response.status_code == (200 if accepted else 403), (user, address)


def test_a_flood_of_executes_meets_the_quota_with_a_report(app, wps):
    """One client sending asynchronous Executes in a loop, in both versions and both methods, fills
    only its own queued_per_user: every refusal is a valid ServerBusy report (HTTP 429) naming the
    quota, never a 500, and exactly the quota's jobs exist."""
    service = app.extensions["hpc_wps"]
    service.settings = service.settings.replace("quotas", queued_per_user=3)
    sleep20 = execute20("sleep", literal20("delay", "0"), mode="async")
    get10 = (
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&storeExecuteResponse=true&DataInputs=delay=0"
    )
    answers = []
    for n in range(12):
        response = wps.post("/wps", data=sleep20, content_type="text/xml") if n % 2 else wps.get(get10)
        answers.append(response.status_code)
        if response.status_code != 200:
            ows = OWS20 if n % 2 else OWS11
            exception = response.xml.find(f"{{{ows}}}Exception")
            assert (response.status_code, exception.get("exceptionCode")) == (429, "ServerBusy")
            assert "queued_per_user" in exception.findtext(f"{{{ows}}}ExceptionText")
    assert answers.count(200) == 3 and answers.count(429) == 9
