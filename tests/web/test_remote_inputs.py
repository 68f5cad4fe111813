"""Inputs by reference from hostile hosts: one that never answers, one that sends data without end,
one that trickles a few bytes now and then, one that announces a body over the limit.

A real HTTP server in a thread plays the remote host; ``hpc-wps serve`` runs with short limits. Each
job, synchronous or asynchronous, must end Failed within a bounded time, with a message that names the
limit it ran into; a synchronous one answers the OWS exception of the input at fault.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
import requests
from lxml import etree

from tests.conftest import LOCAL_HOSTS, LiveServer, wait_for
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
