"""Outputs in browsers, what a POST may declare, HEAD, ASCII numbers, control characters in messages.

Issue 10, section 4, as a client sees it:

- every output (a download and a raw Execute response) carries ``nosniff`` and a sandboxing CSP;
  HTML, XHTML, JavaScript and unknown types are attachments; XML and SVG render inline but inert;
  plain data stays inline (``app/served.py``). Checked with real ``echo`` jobs whose input is an
  SVG or HTML body, in both protocol versions, raw and by reference, and with ``mirror``
  (``tests/processes/mirror.py``) for every kind of type;
- an XML POST must say it is XML; a form post stays KVP; anything else is a 415;
- HEAD answers every GET route as the GET does, without the body;
- numbers are ASCII only, XML Schema's lexical forms;
- control characters in a job's message never make a document unreadable, in a synchronous answer or
  in the 1.0.0 status document of an asynchronous job.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import text, update

from app import create_app
from processes.numbers import parse_double, parse_integer
from scheduler import lifecycle
from scheduler.models import JOBS, JobStatus
from tests.conftest import ApiClient, ValidatingClient, client_of, wait_for
from tests.web.test_bad_input import K10, K20, execute20
from tests.xsd import OWS11, OWS20, WPS10, WPS20, validate

SVG = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script><circle r="5"/></svg>'
XHTML = '<html xmlns="http://www.w3.org/1999/xhtml"><body><script>alert(document.cookie)</script></body></html>'
HTML = "<html><body><script>alert(document.cookie)</script><form action=https://evil.example/></form></body></html>"
NASTY = "a\x01b\x1b[31mc\x7fd\x85e\ufffe"  # C0, an ANSI escape, DEL, C1, a non-character
CLEANED = "ab[31mcde"


def assert_sandboxed(response) -> None:  # type: ignore[no-untyped-def]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = response.headers["Content-Security-Policy"]
    assert policy.startswith("sandbox;") and "default-src 'none'" in policy and "script-src" not in policy


def assert_served(response, treatment: str, filename: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """``treatment``: data (inline), viewable (inline, sandboxed), attachment."""
    assert response.status_code == 200, response.get_data()[:500]
    assert_sandboxed(response)
    disposition = response.headers.get("Content-Disposition")
    if treatment == "attachment":
        assert disposition == (f'attachment; filename="{filename}"' if filename else "attachment"), disposition
    else:  # send_file names a file inline; a raw literal has no name
        assert disposition is None or disposition.startswith("inline"), disposition


# -- echo: an SVG or HTML body, both versions, raw and by reference ------------------------------------


def _echo10(wps: ValidatingClient, body: str, mime: str, form: str):  # type: ignore[no-untyped-def]
    inputs = f"complexInput={quote(body, safe='')}@mimeType={quote(mime, safe='')}"
    if form == "raw":
        return wps.client.get(f"/wps?{K10}Execute&identifier=echo&DataInputs={inputs}&RawDataOutput=complexOutput")
    document = wps.get(
        f"/wps?{K10}Execute&identifier=echo&DataInputs={inputs}&ResponseDocument=complexOutput@asReference=true"
    )
    assert document.status_code == 200, document.get_data()[:800]
    return wps.client.get(urlsplit(document.xml.find(f".//{{{WPS10}}}Reference").get("href")).path)


def output20(client: ValidatingClient, process: str, ids: tuple[str, str], data: str, mime: str, form: str):  # type: ignore[no-untyped-def]
    """A 2.0 sync Execute of ``process`` with ``data`` as its complex input; ``ids``: (input, output).
    Returns the output raw, or downloaded from the Result's reference."""
    content = data if mime.endswith("xml") else f"<![CDATA[{data}]]>"
    transmission = "value" if form == "raw" else "reference"
    request = execute20(
        process,
        f'<wps:Input id="{ids[0]}"><wps:Data mimeType="{mime}">{content}</wps:Data></wps:Input>'
        f'<wps:Output id="{ids[1]}" transmission="{transmission}"/>',
        response="raw" if form == "raw" else "document",
    )
    if form == "raw":
        return client.client.post("/wps", data=request, content_type="application/xml")
    result = client.post("/wps", data=request, content_type="application/xml")
    assert result.status_code == 200, result.get_data()[:800]
    href = result.xml.find(f".//{{{WPS20}}}Reference").get("{http://www.w3.org/1999/xlink}href")
    return client.client.get(urlsplit(href).path)


@pytest.mark.parametrize("form", ["raw", "reference"])
@pytest.mark.parametrize("version", ["1.0.0", "2.0.0"])
@pytest.mark.parametrize(
    ("body", "mime", "treatment", "served_as"),
    [
        (SVG, "text/xml", "viewable", "text/xml"),
        (XHTML, "application/xml", "viewable", "application/xml"),
        (HTML, "text/plain", "data", "text/plain"),
    ],
    ids=["svg-as-xml", "xhtml-as-xml", "html-as-text"],
)
def test_echo_output_never_runs_in_a_browser(wps, version, form, body, mime, treatment, served_as):
    if version == "1.0.0":
        response = _echo10(wps, body, mime, form)
    else:
        response = output20(wps, "echo", ("complexInput", "complexOutput"), body, mime, form)
    assert_served(response, treatment)
    assert response.mimetype == served_as
    assert b"<script>" in response.get_data()  # the data itself is the client's, unchanged


# -- mirror: every kind of type, raw and by reference ---------------------------------------------------

EXPECTED = {
    "text/html": "attachment",
    "application/xhtml+xml": "attachment",
    "application/javascript": "attachment",
    "application/x-unheard-of": "attachment",
    "application/pdf": "attachment",
    "image/svg+xml": "viewable",
    "text/xml": "viewable",
    "application/gml+xml": "viewable",
    "application/json": "data",
    "text/plain": "data",
    "text/csv": "data",
    "image/png": "data",
    "application/x-netcdf": "data",
    "application/octet-stream": "data",
}


@pytest.fixture
def mirror(settings):  # type: ignore[no-untyped-def]
    application = create_app(settings.replace("processing", processes=("tests.processes.mirror:PROCESS",)))
    application.testing = True
    yield ValidatingClient(application.test_client())
    application.extensions["hpc_wps"].engine.dispose()


@pytest.mark.parametrize("form", ["raw", "reference"])
@pytest.mark.parametrize("mime", list(EXPECTED))
def test_each_output_type_is_served_as_chosen(mirror, mime, form):
    from tests.processes.mirror import MIME_TYPES

    response = output20(mirror, "mirror", ("data", "data"), SVG if mime.endswith("xml") else HTML, mime, form)
    assert_served(response, EXPECTED[mime], f"data{MIME_TYPES[mime]}")
    assert response.mimetype == mime


@pytest.mark.parametrize("mime", ["text/html", "image/svg+xml", "application/json"])
def test_raw_output_through_the_api_keeps_its_sandbox(settings, mime):
    """A raw Execute response of OGC API - Processes is an output like any other: an HTML one is not a
    page of the monitor, and gets the outputs' sandbox, not the pages' policy that lets scripts run."""
    from tests.processes.mirror import MIME_TYPES

    body = {
        "inputs": {"data": {"value": SVG if mime.endswith("xml") else HTML, "mediaType": mime}},
        "outputs": {"data": {"format": {"mediaType": mime}}},
        "response": "raw",
    }
    mirrored = settings.replace("processing", processes=("tests.processes.mirror:PROCESS",))
    for api in client_of(mirrored, ApiClient):
        response = api.post("/processes/mirror/execution", json=body, headers={"Accept": "text/html"})
        assert_served(response, EXPECTED[mime], f"data{MIME_TYPES[mime]}" if mime == "text/html" else None)
        assert response.mimetype == mime


@pytest.mark.parametrize(
    "path", ["/health/live", "/static/monitor/monitor.js", "/no/such/path", "/processes", "/wps?service=WPS"]
)
def test_every_answer_carries_nosniff(api, path):
    """Whatever part of the app answers (a probe, a static file, a 404 outside every blueprint, the
    API, a WPS exception), the browser takes the declared type as the type. (The raw client: a 404
    outside the API is a problem of no protocol's, without the OGC schema's ``type``.)"""
    response = api.client.get(path)
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"], (response.status_code, path)


def test_literal_output_raw_is_plain_text_without_sniffing(wps):
    response = wps.client.get(
        f"/wps?{K10}Execute&identifier=echo&DataInputs=literalInput={quote(HTML, safe='')}&RawDataOutput=literalOutput"
    )
    assert_served(response, "data")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.get_data().decode() == HTML


def test_documents_and_reports_render_inert_too(wps):
    """ExecuteResponse and Result documents embed a client's XML by value: they are sandboxed as well."""
    document = wps.get(
        f"/wps?{K10}Execute&identifier=echo&DataInputs=complexInput={quote(SVG, safe='')}@mimeType=text/xml"
    )
    assert document.status_code == 200
    assert document.xml.find(".//{http://www.w3.org/2000/svg}svg") is not None
    assert_sandboxed(document)
    assert_sandboxed(wps.get("/wps?" + K10 + "Frobnicate"))
    assert_sandboxed(wps.get("/wps/jobs/00000000-0000-4000-8000-000000000000/outputs/x.html"))


# -- the content type of a POST -------------------------------------------------------------------------

CAPABILITIES_XML = (
    '<wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0" '
    'xmlns:ows="http://www.opengis.net/ows/1.1"/>'
)


@pytest.mark.parametrize(
    "content_type",
    ["text/xml", "application/xml", "TEXT/XML; charset=UTF-8", "application/xml;charset=utf-8", "application/wps+xml"],
)
def test_xml_post_with_an_xml_type_is_parsed(wps, content_type):
    response = wps.post("/wps", data=CAPABILITIES_XML, content_type=content_type)
    assert response.status_code == 200
    assert response.xml.tag == f"{{{WPS10}}}Capabilities"


def test_form_post_stays_kvp(wps):
    response = wps.post(
        "/wps", data=K20 + "GetCapabilities", content_type="application/x-www-form-urlencoded; charset=utf-8"
    )
    assert response.status_code == 200
    assert response.xml.tag == f"{{{WPS20}}}Capabilities"


@pytest.mark.parametrize(
    ("content_type", "body", "ows"),
    [
        ("text/plain", CAPABILITIES_XML, OWS11),  # what a cross-site HTML form can send without a preflight
        ("text/plain; charset=utf-8", execute20("say_hello"), OWS20),
        (None, CAPABILITIES_XML, OWS11),
        ("multipart/form-data; boundary=x", f"--x\r\n\r\n{CAPABILITIES_XML}\r\n--x--", OWS11),
        ("application/json", '{"service": "WPS"}', OWS11),
        ("application/xhtml", CAPABILITIES_XML, OWS11),
        ("text/html", execute20("say_hello"), OWS20),
    ],
)
def test_other_post_types_are_415(wps, content_type, body, ows):
    response = wps.post("/wps", data=body, content_type=content_type)
    assert response.status_code == 415
    exception = response.xml.find(f"{{{ows}}}Exception")
    assert (exception.get("exceptionCode"), exception.get("locator")) == ("InvalidParameterValue", "Content-Type")
    assert "application/x-www-form-urlencoded" in response.headers["Accept-Post"]
    assert_sandboxed(response)


def test_a_415_runs_nothing(wps, app):
    """A cross-site form's Execute is refused before any job exists."""
    body = execute20(
        "say_hello", '<wps:Input id="name"><wps:Data><wps:LiteralValue>x</wps:LiteralValue></wps:Data></wps:Input>'
    )
    assert wps.post("/wps", data=body, content_type="text/plain").status_code == 415
    with app.extensions["hpc_wps"].engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == 0


# -- HEAD -----------------------------------------------------------------------------------------------


def _finished_job_with_file(wps) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    document = wps.get(
        f"/wps?{K10}Execute&identifier=echo&DataInputs=complexInput=%7B%7D@mimeType=application/json"
        "&ResponseDocument=complexOutput@asReference=true&storeExecuteResponse=true"
    )
    assert document.status_code == 200
    job_id = document.xml.get("statusLocation").rsplit("/", 1)[1]
    wait_for(lambda: wps.get(f"/wps/jobs/{job_id}").xml.find(f".//{{{WPS10}}}ProcessSucceeded") is not None)
    href = wps.get(f"/wps/jobs/{job_id}").xml.find(f".//{{{WPS10}}}Reference").get("href")
    return job_id, urlsplit(href).path


def test_head_answers_every_get_route_like_get(wps):
    job_id, output = _finished_job_with_file(wps)
    targets = [
        f"/wps?{K10}GetCapabilities",
        "/wps?service=WPS&request=GetCapabilities",
        f"/wps?{K20}GetCapabilities",
        f"/wps?{K10}DescribeProcess&identifier=echo",
        f"/wps?{K20}GetStatus&jobId={job_id}",
        f"/wps?{K20}GetStatus&jobId=00000000-0000-4000-8000-000000000000",
        f"/wps/jobs/{job_id}",
        output,
        f"/wps/jobs/{job_id}/outputs/missing.json",
        "/health",
        "/health/live",
        "/health/ready",
    ]
    # /health reports live figures (ages, counts) whose digits, and so its length, change between two calls.
    changing = {"/health"}
    for target in targets:
        got, head = wps.client.get(target), wps.client.head(target)
        assert head.status_code == got.status_code, (target, head.status_code, got.status_code)
        assert head.get_data() == b"", target
        for name in ("Content-Type", "Content-Length", "Content-Disposition", "Content-Security-Policy"):
            if name == "Content-Length" and target in changing:
                assert int(head.headers[name]) > 0, target
                continue
            assert head.headers.get(name) == got.headers.get(name), (target, name)
    assert wps.client.head(f"/wps?{K10}GetCapabilities").status_code == 200


# -- numbers: ASCII, XML Schema's lexical forms ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"), [("10", 10), ("+10", 10), ("-0", 0), (" 7\n", 7), ("0012", 12), ("\t-3\r", -3)]
)
def test_integers_xml_schema_allows(text, value):
    assert parse_integer(text) == value


@pytest.mark.parametrize(
    "text",
    ["1_0", "１０", "١٠", "۱۰", "१०", "߁", "1.0", "1e3", "0x10", "", " ", "+", "\u00a010", "10\u3000", "1 0", "²"],
)
def test_integers_refused(text):
    with pytest.raises(ValueError):
        parse_integer(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1.0), ("-1.5", -1.5), (".5", 0.5), ("5.", 5.0), ("1e3", 1000.0), ("2E-3", 0.002), (" +0.25 ", 0.25)],
)
def test_doubles_xml_schema_allows(text, value):
    assert parse_double(text) == value


@pytest.mark.parametrize(
    "text",
    ["1_0.5", "１.5", "٣", "inf", "-inf", "nan", "Infinity", "INF", "-INF", "NaN", "1e400", "-1e999", "1,5", "e3", "."],
)
def test_doubles_refused(text):
    with pytest.raises(ValueError):
        parse_double(text)


# -- control characters in messages -------------------------------------------------------------------------


@pytest.fixture
def message_file(settings) -> str:
    """A file in the allowed directory holding a message with control characters: a literal input by
    reference reaches the process with them, no fetch from loopback needed."""
    path = settings.inputs.allowed_dirs[0] / "message.txt"
    path.write_bytes(NASTY.encode("utf-8"))
    return path.as_uri()


def test_sync_failure_with_control_characters_10(wps, message_file):
    response = wps.get(f"/wps?{K10}Execute&identifier=fail&DataInputs=message=@xlink:href={quote(message_file)}")
    assert response.status_code == 200, response.get_data()[:800]  # was a 500 with a traceback
    failed = response.xml.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessFailed")
    assert failed.findtext(f".//{{{OWS11}}}ExceptionText") == CLEANED


def test_sync_failure_with_control_characters_20(wps, message_file):
    body = execute20("fail", f'<wps:Input id="message"><wps:Reference xlink:href="{message_file}"/></wps:Input>')
    response = wps.post("/wps", data=body, content_type="text/xml")
    assert response.status_code == 500  # a process failure is the server's in WPS 2.0; the report is valid
    assert response.xml.findtext(f".//{{{OWS20}}}ExceptionText") == CLEANED


def test_async_status_document_with_control_characters(wps, dispatcher, message_file):
    response = wps.get(
        f"/wps?{K10}Execute&identifier=fail&DataInputs=message=@xlink:href={quote(message_file)}"
        "&storeExecuteResponse=true&status=true"
    )
    job_id = response.xml.get("statusLocation").rsplit("/", 1)[1]
    gone = f"/wps?{K20}GetStatus&jobId={job_id}"
    wait_for(lambda: wps.get(gone).xml.findtext(f"{{{WPS20}}}Status") == "Failed")
    document = wps.get(f"/wps/jobs/{job_id}")  # was a 500, for ever
    assert document.status_code == 200
    assert document.xml.findtext(f".//{{{WPS10}}}ProcessFailed//{{{OWS11}}}ExceptionText") == CLEANED


def test_messages_are_cleaned_when_stored_and_when_read(wps, app):
    engine = app.extensions["hpc_wps"].engine
    request = {"inputs": [], "outputs": [], "response": "document", "status": True, "store": True, "resources": {}}
    stored = lifecycle.create_job(engine, "fail", "1.0.0", "async", request, JobStatus.RUNNING)["id"]
    assert lifecycle.update_progress(engine, stored, "step " + NASTY, 10)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT message FROM jobs WHERE id = :id"), {"id": stored}).scalar() == (
            "step " + CLEANED
        )
    started = wps.get(f"/wps/jobs/{stored}").xml.find(f".//{{{WPS10}}}ProcessStarted")
    assert started.text == "step " + CLEANED
    # A row written before messages were cleaned (or by hand) renders cleaned as well.
    with engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == stored).values(status="failed", message=NASTY))
    failed = wps.get(f"/wps/jobs/{stored}")
    assert failed.status_code == 200
    assert failed.xml.findtext(f".//{{{OWS11}}}ExceptionText") == CLEANED
    assert wps.get(f"/wps?{K20}GetStatus&jobId={stored}").xml.findtext(f"{{{WPS20}}}Status") == "Failed"


def test_any_document_stays_well_formed_whatever_a_row_holds(wps, app):
    """Rendering never fails on stored text: the request's own values (an href, a complex value) with
    characters XML cannot carry are shown as code points in the lineage."""
    engine = app.extensions["hpc_wps"].engine
    request = {
        "inputs": [
            {"id": "complexInput", "kind": "complex", "value": "x\x01y", "mime_type": "text/plain"},
            {"id": "literalInput", "kind": "literal", "href": "http://h.example/\x02"},
        ],
        "outputs": [],
        "response": "document",
        "lineage": True,
        "status": False,
        "store": True,
        "resources": {},
    }
    job_id = lifecycle.create_job(engine, "echo", "1.0.0", "async", request)["id"]
    document = wps.get(f"/wps/jobs/{job_id}")
    assert document.status_code == 200
    assert "x\\x01y" in document.get_data(as_text=True)
    assert re.search(r'href="http://h\.example/\\x02"', document.get_data(as_text=True))


def test_xml_cannot_carry_a_control_character_in_a_request(wps):
    """The other way in: XML 1.0 has no U+0001, not even as &#1;, so the parser refuses the request."""
    body = execute20(
        "fail", '<wps:Input id="message"><wps:Data><wps:LiteralValue>a&#1;b</wps:LiteralValue></wps:Data></wps:Input>'
    )
    response = wps.post("/wps", data=body, content_type="text/xml")
    assert response.status_code == 400
    assert validate(response.get_data()).find(f"{{{OWS20}}}Exception").get("locator") == "request"
