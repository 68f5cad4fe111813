"""Inputs by reference from hostile hosts: one that never answers, one that sends data without end,
one that trickles a few bytes now and then, one that announces a body over the limit; and the guard
of every fetch, through the WSGI app: loopback and private ranges refused by default, redirects,
methods, headers, a gzip bomb, credentials kept out of the job table, the service's own address.

A real HTTP server in a thread plays the remote host; ``hpc-wps serve`` runs with short limits. Each
job, synchronous or asynchronous, must end Failed within a bounded time, with a message that names the
limit it ran into; a synchronous one answers the OWS exception of the input at fault.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

import pytest
import requests
from lxml import etree
from sqlalchemy import create_engine
from sqlalchemy import text as text_sql

from app import create_app
from app.settings import Settings
from scheduler.launcher import ProgressReporter, run_to_outcome
from tests.conftest import LOCAL_HOSTS, LiveServer, ValidatingClient, free_port, wait_for
from tests.xsd import OWS11, OWS20, WPS10, WPS20, validate

NS = {"wps": WPS10, "ows": OWS11, "wps2": WPS20, "ows2": OWS20}
MAX_SIZE = 1024 * 1024
LIMITS = f"""
[inputs]
allowed_hosts = {LOCAL_HOSTS}
connect_timeout = 2
read_timeout = 1
total_timeout = 3
max_size = {MAX_SIZE}
"""
BLOCK = b"word " * 13107  # 64 KiB less a byte


class HostileHandler(BaseHTTPRequestHandler):
    """``/silent`` never answers, ``/endless`` streams without end, ``/trickle`` sends a word every
    0.2 s (each read comes well within the read timeout), ``/announced`` declares a body over the limit."""

    server: HostileServer

    def do_GET(self) -> None:
        if self.path == "/silent":
            self.server.stopping.wait(120)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if self.path == "/announced":
            self.send_header("Content-Length", str(100 * MAX_SIZE))
        self.end_headers()
        with contextlib.suppress(OSError):  # the service hangs up: that is the point
            while not self.server.stopping.is_set():
                if self.path == "/endless":
                    self.wfile.write(BLOCK)
                elif self.path == "/trickle":
                    self.wfile.write(b"word ")
                    self.wfile.flush()
                    self.server.stopping.wait(0.2)
                else:
                    self.server.stopping.wait(0.2)

    def log_message(self, format: str, *args: object) -> None:
        pass


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HostileHandler)
        self.stopping = threading.Event()


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    server = HostileServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("remote-inputs"), LIMITS).start()
    yield server
    server.stop()


# path on the hostile host -> (what the message must name, exception codes in 1.0.0 and in 2.0)
CASES = {
    "silent": ("read timeout of 1 s", "InvalidParameterValue", "DataNotAccessible"),
    "endless": (f"size limit of {MAX_SIZE} bytes", "FileSizeExceeded", "SizeExceeded"),
    "trickle": ("total timeout of 3 s", "InvalidParameterValue", "DataNotAccessible"),
    "announced": (f"size limit of {MAX_SIZE} bytes", "FileSizeExceeded", "SizeExceeded"),
}


def execute20(href: str, mode: str) -> bytes:
    return (
        f'<wps:Execute xmlns:wps="{WPS20}" xmlns:ows="{OWS20}" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'service="WPS" version="2.0.0" mode="{mode}" response="document">'
        "<ows:Identifier>wordcounter</ows:Identifier>"
        f'<wps:Input id="text"><wps:Reference xlink:href="{href}" mimeType="text/plain"/></wps:Input>'
        '<wps:Output id="output" transmission="value"/></wps:Execute>'
    ).encode()


def exception(response: requests.Response, ows: str) -> etree._Element:
    report = validate(response.content)
    found = report.find(f"{{{ows}}}Exception")
    assert found is not None, response.text
    return found


@pytest.mark.parametrize("version", ["1.0.0", "2.0.0"])
@pytest.mark.parametrize("path", CASES)
def test_sync_execute_answers_the_exception_of_the_input(service: LiveServer, hostile: str, path: str, version: str):
    named, code10, code20 = CASES[path]
    if version == "1.0.0":
        # DataInputs as KVP writes it: its = and @ are syntax, the URL in it is percent-encoded.
        inputs = f"text=@xlink:href={quote(f'{hostile}/{path}', safe='')}@mimeType=text/plain"
        query = f"service=WPS&version=1.0.0&request=Execute&identifier=wordcounter&DataInputs={inputs}"
        response = requests.get(f"{service.url}?{query}", timeout=30)
        ows, code = OWS11, code10
    else:
        body = execute20(f"{hostile}/{path}", "sync")
        response = requests.post(service.url, data=body, headers={"Content-Type": "text/xml"}, timeout=30)
        ows, code = OWS20, code20
    assert response.status_code == (413 if code == "FileSizeExceeded" else 400), response.text
    found = exception(response, ows)
    assert (found.get("exceptionCode"), found.get("locator")) == (code, "text")
    assert named in found.findtext(f"{{{ows}}}ExceptionText")


@pytest.mark.parametrize("path", CASES)
def test_async_job_ends_failed_naming_the_limit(service: LiveServer, hostile: str, path: str):
    named, _code10, _code20 = CASES[path]
    response = requests.post(
        service.url, data=execute20(f"{hostile}/{path}", "async"), headers={"Content-Type": "text/xml"}, timeout=30
    )
    accepted = validate(response.content)
    job_id = accepted.findtext("wps2:JobID", namespaces=NS)
    assert job_id, response.text

    def state() -> str | None:
        status = requests.get(
            service.url,
            params={"service": "WPS", "version": "2.0.0", "request": "GetStatus", "jobId": job_id},
            timeout=30,
        )
        return validate(status.content).findtext("wps2:Status", namespaces=NS)

    wait_for(lambda: state() in ("Succeeded", "Failed", "Dismissed"), timeout=60, interval=0.2)
    assert state() == "Failed"
    document = validate(requests.get(f"{service.url}/jobs/{job_id}", timeout=30).content)
    failed = document.find("wps:Status/wps:ProcessFailed", NS)
    assert failed is not None
    assert named in failed.findtext(".//ows:ExceptionText", namespaces=NS)


# -- the guard, through the WSGI app (both protocol versions, SQLite and PostgreSQL) -------------------------------

REFUSED = "not an allowed destination for inputs"


class ProbeHandler(BaseHTTPRequestHandler):
    """What a service inside might be: ``/health`` answers a secret, ``/redirect?to=URL`` sends a
    client on, ``/gzip-bomb`` is 100 MiB of zeros gzipped, ``/private`` wants credentials, ``/nowhere`` is not found; every
    request is recorded (method, path, headers)."""

    server: ProbeServer

    def _answer(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        path, _, query = self.path.partition("?")
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", unquote(query.removeprefix("to=")))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body, extra = b"internal secret: hostname and pids", {}
        if path == "/gzip-bomb":
            body, extra = GZIP_BOMB, {"Content-Encoding": "gzip"}
        elif path in ("/private", "/nowhere"):
            authorized = self.headers.get("Authorization") == "Basic YWxpY2U6czNjcmV0"
            if path == "/nowhere" or not authorized or self.headers.get("Cookie") != "k=c00kie":
                self.send_response(404 if path == "/nowhere" else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"to be or not to be"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_SET = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


GZIP_BOMB = gzip.compress(b"\0" * (100 * 1024**2), 9)


class ProbeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ProbeHandler)
        self.seen: list[tuple[str, str, dict[str, str]]] = []


@pytest.fixture(scope="module")
def probe_server() -> Iterator[ProbeServer]:
    server = ProbeServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def probe(probe_server: ProbeServer) -> ProbeServer:
    """The probe, having seen nothing yet in this test."""
    probe_server.seen.clear()
    return probe_server


@pytest.fixture
def default_wps(settings: Settings) -> Iterator[ValidatingClient]:
    """The app with the default [inputs] destinations: no allowed hosts."""
    application = create_app(settings.replace("inputs", allowed_hosts=()))
    application.testing = True
    yield ValidatingClient(application.test_client())
    application.extensions["hpc_wps"].engine.dispose()


def reference20(href: str, extra: str = "", method: str = "", identifier: str = "wordcounter") -> str:
    attribute = f' method="{method}"' if method else ""
    input_id = "text" if identifier == "wordcounter" else "complexInput"
    return (
        f'<wps:Input id="{input_id}"><wps:Reference xlink:href="{escape(href, {chr(34): "&quot;"})}"'
        f' mimeType="text/plain"{attribute}>{extra}</wps:Reference></wps:Input>'
    )


def sync20(client: ValidatingClient, reference: str, identifier: str = "wordcounter"):  # type: ignore[no-untyped-def]
    body = (
        f'<wps:Execute xmlns:wps="{WPS20}" xmlns:ows="{OWS20}" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'service="WPS" version="2.0.0" mode="sync" response="document"><ows:Identifier>{identifier}</ows:Identifier>'
        f"{reference}</wps:Execute>"
    )
    return client.post("/wps", data=body, content_type="text/xml")


def kvp10(client: ValidatingClient, href: str, identifier: str = "wordcounter", input_id: str = "text"):  # type: ignore[no-untyped-def]
    inputs = f"{input_id}=@xlink:href={quote(href, safe='')}@mimeType=text/plain"
    return client.get(f"/wps?service=WPS&version=1.0.0&request=Execute&identifier={identifier}&DataInputs={inputs}")


def report(response, ows: str) -> tuple[int, str | None, str | None, str]:  # type: ignore[no-untyped-def]
    found = response.xml.find(f"{{{ows}}}Exception")
    assert found is not None, response.get_data(as_text=True)
    return (
        response.status_code,
        found.get("exceptionCode"),
        found.get("locator"),
        found.findtext(f"{{{ows}}}ExceptionText"),
    )


LOOPBACK_SPELLINGS = ["127.0.0.1", "localhost", "0x7f000001", "2130706433", "127.1", "[::ffff:127.0.0.1]", "[::1]"]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_loopback_is_refused_by_default_in_both_versions(default_wps, probe: ProbeServer, host: str):
    href = f"http://{host}:{probe.server_port}/health"
    status, code, locator, text = report(kvp10(default_wps, href), OWS11)
    assert (status, code, locator) == (400, "InvalidParameterValue", "text")
    assert text == f"input text: cannot fetch {href}: {REFUSED}"
    status, code, locator, text = report(sync20(default_wps, reference20(href)), OWS20)
    assert (status, code, locator) == (400, "DataNotAccessible", "text")
    assert REFUSED in text and "secret" not in text
    assert probe.seen == []


@pytest.mark.parametrize("href", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://100.64.0.1/",
                                  "http://192.168.0.1/", "http://[fd00::1]/", "http://[fe80::1]/", "http://224.0.0.1/"])  # fmt: skip
def test_private_ranges_are_refused_by_default(default_wps, href: str):
    status, code, locator, text = report(sync20(default_wps, reference20(href)), OWS20)
    assert (status, code, locator, text) == (
        400,
        "DataNotAccessible",
        "text",
        f"input text: cannot fetch {href}: {REFUSED}",
    )


def test_an_internal_port_and_a_closed_one_give_the_same_answer(default_wps, probe: ProbeServer):
    """Whether something speaks HTTP there, and what it answers, is not told."""
    answers = set()
    for port in (probe.server_port, free_port()):
        status, code, locator, text = report(kvp10(default_wps, f"http://127.0.0.1:{port}/health"), OWS11)
        answers.add((status, code, locator, text.replace(str(port), "PORT")))
    assert len(answers) == 1


def test_a_redirect_to_loopback_is_refused(wps, probe: ProbeServer):
    """The probe is allowed (127.0.0.1/32); where it redirects, [::1] and 127.0.0.2, is not."""
    for target in (f"http://[::1]:{probe.server_port}/health", f"http://127.0.0.2:{probe.server_port}/health"):
        href = f"http://127.0.0.1:{probe.server_port}/redirect?to={target}"
        status, code, locator, text = report(kvp10(wps, href), OWS11)
        assert (status, code, locator) == (400, "InvalidParameterValue", "text")
        assert text == f"input text: cannot fetch {href}: {REFUSED}"
    assert {path.partition("?")[0] for _method, path, _headers in probe.seen} == {"/redirect"}


@pytest.mark.parametrize("method", ["SET", "DELETE", "PUT"])
def test_methods_other_than_get_and_post_are_refused(wps, probe: ProbeServer, method: str):
    href = f"http://127.0.0.1:{probe.server_port}/health"
    status, code, locator, text = report(sync20(wps, reference20(href, method=method)), OWS20)
    assert (status, code, locator) == (400, "WrongInputData", "text")
    assert "GET or POST" in text
    body = execute10_reference(href, f' method="{method}"')
    status, code, locator, text = report(wps.post("/wps", data=body, content_type="text/xml"), OWS11)
    assert (status, code, locator) == (400, "InvalidParameterValue", "text")
    assert probe.seen == []


def execute10_reference(href: str, attributes: str = "", inner: str = "") -> str:
    return (
        f'<wps:Execute service="WPS" version="1.0.0" xmlns:wps="{WPS10}" xmlns:ows="{OWS11}" '
        'xmlns:xlink="http://www.w3.org/1999/xlink"><ows:Identifier>wordcounter</ows:Identifier><wps:DataInputs>'
        f'<wps:Input><ows:Identifier>text</ows:Identifier><wps:Reference xlink:href="{escape(href)}" '
        f'mimeType="text/plain"{attributes}>{inner}</wps:Reference></wps:Input></wps:DataInputs></wps:Execute>'
    )


@pytest.mark.parametrize("header", ["Host", "X-Forwarded-For", "Proxy-Authorization", "Connection", "Authorization"])
def test_headers_outside_the_allow_list_are_refused(wps, probe: ProbeServer, header: str):
    href = f"http://127.0.0.1:{probe.server_port}/health"
    extra = f'<wps:Header key="{header}" value="hidden-v4lue"/>'
    status, code, locator, text = report(sync20(wps, reference20(href, extra)), OWS20)
    assert (status, code, locator) == (400, "WrongInputData", "text")
    assert header in text and "hidden-v4lue" not in text
    assert probe.seen == []


def test_a_gzip_bomb_stops_at_the_size_limit(settings: Settings, probe: ProbeServer):
    """100 MiB of zeros in 100 KiB of gzip, against a limit of 1 MiB on the decoded bytes."""
    application = create_app(settings.replace("inputs", max_size=1024**2))
    application.testing = True
    client = ValidatingClient(application.test_client())
    try:
        href = f"http://127.0.0.1:{probe.server_port}/gzip-bomb"
        status, code, locator, text = report(kvp10(client, href), OWS11)
        assert (status, code, locator) == (413, "FileSizeExceeded", "text")
        assert f"size limit of {1024**2} bytes" in text
        status, code, locator, text = report(sync20(client, reference20(href)), OWS20)
        assert (status, code, locator) == (400, "SizeExceeded", "text")
    finally:
        application.extensions["hpc_wps"].engine.dispose()


def test_inline_data_over_its_own_limit(settings: Settings):
    application = create_app(settings.replace("inputs", max_inline_size=1000))
    application.testing = True
    client = ValidatingClient(application.test_client())
    try:
        encoded = base64.b64encode(b"x" * 1001).decode()
        data = f'<wps:Data mimeType="text/plain" encoding="base64">{encoded}</wps:Data>'
        body = (
            f'<wps:Execute xmlns:wps="{WPS20}" xmlns:ows="{OWS20}" service="WPS" version="2.0.0" mode="sync" '
            f'response="document"><ows:Identifier>echo</ows:Identifier><wps:Input id="complexInput">{data}</wps:Input>'
            "</wps:Execute>"
        )
        status, code, locator, text = report(client.post("/wps", data=body, content_type="text/xml"), OWS20)
        assert (status, code, locator) == (400, "SizeExceeded", "complexInput")
        assert "limit of 1000 bytes" in text
        # 1000 bytes decoded (1336 as base64) are within it.
        fits = body.replace(encoded, base64.b64encode(b"x" * 1000).decode())
        assert client.post("/wps", data=fits, content_type="text/xml").status_code == 200
    finally:
        application.extensions["hpc_wps"].engine.dispose()


def test_every_complex_input_shows_a_maximum_megabytes(wps):
    described = wps.get("/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=echo,wordcounter")
    maxima = {
        element.getparent().findtext(f"{{{OWS11}}}Identifier"): element.get("maximumMegabytes")
        for element in described.xml.iter("ComplexData")
    }
    assert maxima == {"complexInput": "1024", "text": "100"}  # [inputs] max_size 1 GiB; wordcounter declares 100
    offering = wps.get("/wps?service=WPS&version=2.0.0&request=DescribeProcess&identifier=echo")
    formats = offering.xml.findall(f".//{{{WPS20}}}Input/{{{WPS20}}}ComplexData/{{{WPS20}}}Format")
    assert formats and {f.get("maximumMegabytes") for f in formats} == {"1024"}


def stored_rows(database_url: str) -> list[str]:
    """Every job's stored request and message, as JSON text to search for secrets."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = [json.dumps(dict(r)) for r in conn.execute(text_sql("SELECT request, message FROM jobs")).mappings()]
    engine.dispose()
    return rows


def test_credentials_reach_the_remote_host_and_nowhere_else(settings: Settings, probe: ProbeServer, caplog):
    """Forwarded where the administrator allows it; never in the stored row, a response or the log."""
    opened = settings.replace("inputs", forward_credentials=True)
    application = create_app(opened)
    application.testing = True
    client = ValidatingClient(application.test_client())
    caplog.set_level(logging.DEBUG)
    try:
        good = f"http://alice:s3cret@127.0.0.1:{probe.server_port}/private"
        bad = f"http://alice:s3cret@127.0.0.1:{probe.server_port}/nowhere"
        cookie = '<wps:Header key="Cookie" value="k=c00kie"/>'
        ok = sync20(client, reference20(good, cookie))
        assert ok.status_code == 200, ok.get_data(as_text=True)
        assert "to" in ok.get_data(as_text=True)
        lineage = execute10_reference(good, "", "").replace(
            "</wps:Execute>",
            '<wps:ResponseForm><wps:ResponseDocument lineage="true"/></wps:ResponseForm></wps:Execute>',
        )
        failed = client.post("/wps", data=lineage, content_type="text/xml")  # no cookie: the probe answers 401
        print("SEEN", probe.seen, lineage)
        status, code, locator, text = report(failed, OWS11)
        assert (status, code, locator) == (400, "InvalidParameterValue", "text")
        assert f"http://alice:***@127.0.0.1:{probe.server_port}/private answered HTTP 401" in text
        also_failed = report(kvp10(client, bad), OWS11)[3]
        responses = ok.get_data(as_text=True) + failed.get_data(as_text=True) + also_failed
        rows = stored_rows(opened.database_url)
        assert len(rows) == 3
        stored = "\n".join(rows)
        assert "alice:***@" in stored
        for secret in ("s3cret", "c00kie", "YWxpY2U6czNjcmV0"):
            assert secret not in stored and secret not in responses
            assert secret not in caplog.text
        # The real values did reach the remote host.
        assert any(
            h.get("Cookie") == "k=c00kie" and h.get("Authorization") for _m, p, h in probe.seen if p == "/private"
        )
    finally:
        application.extensions["hpc_wps"].engine.dispose()


def test_a_token_in_the_query_reaches_the_remote_host_and_nowhere_else(
    settings: Settings, wps: ValidatingClient, probe: ProbeServer, caplog
):
    """OAuth tokens, API keys and signatures travel in query strings too: shown as ``***`` in the stored
    row, the lineage and the log, sealed for the fetch, which sends the real value."""
    caplog.set_level(logging.DEBUG)
    href = f"http://127.0.0.1:{probe.server_port}/data?layer=a&access_token=t0psecret&X-Amz-Signature=s1gned"
    ok = sync20(wps, reference20(href))
    assert ok.status_code == 200, ok.get_data(as_text=True)
    lineage = execute10_reference(f"http://127.0.0.1:{probe.server_port}/nowhere?api_key=k3yvalue", "", "")
    text = report(wps.post("/wps", data=lineage, content_type="text/xml"), OWS11)[3]
    assert f"http://127.0.0.1:{probe.server_port}/nowhere?api_key=*** answered HTTP 404" in text
    stored = "\n".join(stored_rows(settings.database_url))
    assert "layer=a&access_token=***&X-Amz-Signature=***" in stored
    for secret in ("t0psecret", "s1gned", "k3yvalue"):
        assert secret not in stored and secret not in ok.get_data(as_text=True) + text
        assert secret not in caplog.text
    assert any(p == "/data?layer=a&access_token=t0psecret&X-Amz-Signature=s1gned" for _m, p, _h in probe.seen)


def test_a_reference_to_the_service_itself_is_refused(service: LiveServer):
    """Its own address is refused although 127.0.0.1/32 is allowed in its configuration."""
    port = service.port
    for href in (
        f"{service.url}?service=WPS&request=GetCapabilities",
        f"http://localhost:{port}/health",
        f"http://2130706433:{port}/metrics",
    ):
        body = execute20(escape(href), "sync")
        response = requests.post(service.url, data=body, headers={"Content-Type": "text/xml"}, timeout=30)
        found = exception(response, OWS20)
        assert (response.status_code, found.get("exceptionCode"), found.get("locator")) == (
            400,
            "DataNotAccessible",
            "text",
        )
        assert REFUSED in found.findtext(f"{{{OWS20}}}ExceptionText")


def test_a_synchronous_fetch_ends_within_the_web_worker_budget(settings: Settings):
    """A trickling host under a long total timeout: the web worker's budget (1 s here) ends it. The
    bound asserted (10 s) is generous: only the budget, not the total timeout (60 s), can meet it."""
    server = HostileServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    limited = settings.replace("inputs", sync_fetch_timeout=1.0, total_timeout=60.0, read_timeout=30.0)
    application = create_app(limited)
    application.testing = True
    client = ValidatingClient(application.test_client())
    try:
        started = time.monotonic()
        response = kvp10(client, f"http://127.0.0.1:{server.server_port}/trickle")
        took = time.monotonic() - started
        status, code, locator, text = report(response, OWS11)
        assert (status, code, locator) == (400, "InvalidParameterValue", "text")
        assert "total timeout of 1 s" in text
        assert took < 10, took
    finally:
        application.extensions["hpc_wps"].engine.dispose()
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_an_asynchronous_job_fetches_with_credentials_the_row_does_not_hold(settings: Settings, probe: ProbeServer):
    """The row keeps the credentials sealed; whoever runs the job later (a pool worker, a node reading
    the shared jobs directory) opens them with the key beside the job directories."""
    opened = settings.replace("inputs", forward_credentials=True)
    application = create_app(opened)
    application.testing = True
    client = ValidatingClient(application.test_client())
    try:
        href = f"http://alice:s3cret@127.0.0.1:{probe.server_port}/private"
        cookie = '<wps:Header key="Cookie" value="k=c00kie"/>'
        body = (
            execute20(escape(href), "async")
            .decode()
            .replace("/></wps:Input>", f">{cookie}</wps:Reference></wps:Input>")
        )
        accepted = client.post("/wps", data=body, content_type="text/xml")
        job_id = accepted.xml.findtext(f"{{{WPS20}}}JobID")
        assert job_id, accepted.get_data(as_text=True)
        jobs = application.extensions["hpc_wps"]
        job = jobs.get(job_id)
        assert "s3cret" not in json.dumps(job.request) and "c00kie" not in json.dumps(job.request)
        outcome = run_to_outcome(
            jobs.process("wordcounter"), job.request, jobs.settings.job_dir(job_id), jobs.settings.inputs,
            ProgressReporter(None, job_id),
        )  # fmt: skip
        assert outcome.status == "succeeded", outcome.message
        assert json.loads((jobs.outputs_dir(job_id) / outcome.outputs[0]["file"]).read_text()) == {
            "to": 2, "be": 2, "or": 1, "not": 1
        }  # fmt: skip
    finally:
        application.extensions["hpc_wps"].engine.dispose()
