"""The guard of every remote fetch: which addresses are refused, which headers are forwarded, what a
redirect may do, and that a compression bomb stops at the size limit.

A real HTTP server of the test's own listens on 127.0.0.1 (and one on 127.0.0.2, another loopback
address the rules do not allow); only the resolver is replaced where a test needs a name to answer
what the test says, never the connection.
"""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import json
import threading
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import brotli
import pytest

from processes import destinations
from processes.destinations import Destinations, RefusedDestination, is_public, parse_host_entry
from processes.fetch import (
    FetchLimits,
    InputError,
    _request_headers,
    fetch_http,
    redact_url,
    seal_inputs,
    unseal_inputs,
)

MIB = 1024**2
BOMB_SIZE = 100 * MIB
REFUSED = "not an allowed destination for inputs"


def _bomb(compress) -> bytes:  # type: ignore[no-untyped-def]
    return compress(b"\0" * BOMB_SIZE)


GZIP_BOMB = _bomb(lambda data: gzip.compress(data, 9))
BR_BOMB = _bomb(lambda data: brotli.compress(data, quality=5))


class Handler(BaseHTTPRequestHandler):
    """``/data``: a few words; ``/headers``: the request headers as JSON; ``/redirect?to=URL&code=N``;
    ``/loop``: a redirect to itself; ``/gzip-bomb`` and ``/br-bomb``: 100 MiB of zeros compressed
    (100 KiB and less) with a matching Content-Encoding. Every request is counted by path."""

    server: Server

    def _answer(self) -> None:
        path, _, query = self.path.partition("?")
        self.server.hits.append(path)
        args = {k: v[0] for k, v in parse_qs(query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path == "/redirect":
            self.send_response(int(args.get("code", "302")))
            self.send_header("Location", args["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        encoding = None
        if path == "/headers":
            payload = json.dumps(
                {"method": self.command, "headers": dict(self.headers), "body": body.decode()}
            ).encode()
        elif path == "/gzip-bomb":
            payload, encoding = GZIP_BOMB, "gzip"
        elif path == "/br-bomb":
            payload, encoding = BR_BOMB, "br"
        else:
            payload = b"to be or not to be"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client stops reading a bomb: that is the point
            self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), Handler)
        self.hits: list[str] = []

    @property
    def base(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_port}"


@contextlib.contextmanager
def running(host: str) -> Iterator[Server]:
    server = Server(host)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def local() -> Iterator[Server]:
    with running("127.0.0.1") as server:
        yield server


@pytest.fixture(scope="module")
def other() -> Iterator[Server]:
    """A server on 127.0.0.2: loopback too, and not among the allowed hosts of these tests."""
    with running("127.0.0.2") as server:
        yield server


@pytest.fixture(autouse=True)
def _no_hits(local: Server, other: Server) -> None:
    local.hits.clear()
    other.hits.clear()


DEFAULT = FetchLimits()  # the default configuration: nothing but public addresses
OPENED = FetchLimits(allowed_hosts=("127.0.0.1/32",), connect_timeout=2, read_timeout=2, total_timeout=10)


def fetch(url: str, limits: FetchLimits, tmp_path: Path, **kwargs) -> bytes:  # type: ignore[no-untyped-def]
    dest = tmp_path / "fetched"
    fetch_http("input", url, dest, limits, **kwargs)
    return dest.read_bytes()


def refused(url: str, limits: FetchLimits, tmp_path: Path, **kwargs) -> InputError:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as raised:
        fetch(url, limits, tmp_path, **kwargs)
    return raised.value


# -- which addresses are public ------------------------------------------------------------------------------

NOT_PUBLIC = [
    "127.0.0.1",
    "127.255.255.254",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.18.0.1",
    "::",
    "::1",
    "fc00::1",
    "fd12:3456::1",  # unique-local
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:8.8.8.8",  # mapped is refused whatever it maps
    "::127.0.0.1",  # IPv4-compatible
    "::a00:1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b:1::1",
    "2001:db8::1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2002:808:808::1", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_addresses_that_are_not_public_unicast_are_refused(address: str):
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(RefusedDestination):
        Destinations.of((), (), ()).check_name(address, 80)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_addresses_pass(address: str):
    assert is_public(ipaddress.ip_address(address))


# Numeric spellings and names of loopback: each resolves to 127.0.0.1 (or ::1), and the address is what is checked.
TRICKS = ["127.0.0.1", "localhost", "LOCALHOST.", "0x7f000001", "2130706433", "127.1", "0177.0.0.1", "017700000001",
          "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]"]  # fmt: skip


@pytest.mark.parametrize("host", TRICKS)
def test_every_spelling_of_loopback_is_refused_by_default(host: str, local: Server, tmp_path: Path):
    error = refused(f"http://{host}:{local.server_port}/data", DEFAULT, tmp_path)
    assert REFUSED in str(error) and error.reason == "not_accessible"
    assert local.hits == []  # refused before any connection


def test_a_refusal_says_the_same_for_an_http_port_a_closed_port_and_an_unused_address(local: Server, tmp_path: Path):
    """Nothing in the message tells whether something listens there, or what it would answer."""
    urls = [f"{local.base}/data", "http://127.0.0.1:9/data", "http://10.255.255.1:80/data", "http://169.254.169.254/x"]
    texts = {str(refused(url, DEFAULT, tmp_path)).replace(url, "URL") for url in urls}
    assert texts == {f"cannot fetch URL: {REFUSED}"}


# -- allowed and denied hosts ------------------------------------------------------------------------------------


def test_allowed_hosts_open_a_network_and_no_more(local: Server, other: Server, tmp_path: Path):
    assert fetch(f"{local.base}/data", OPENED, tmp_path) == b"to be or not to be"
    assert REFUSED in str(refused(f"{other.base}/data", OPENED, tmp_path))
    assert other.hits == []


def test_denied_hosts_win_over_allowed_ones(local: Server, tmp_path: Path):
    limits = replace(OPENED, denied_hosts=("127.0.0.0/8",))
    assert REFUSED in str(refused(f"{local.base}/data", limits, tmp_path))
    by_name = replace(OPENED, allowed_hosts=("localhost", "127.0.0.0/8", "::1/128"), denied_hosts=("localhost",))
    assert REFUSED in str(refused(f"http://localhost:{local.server_port}/data", by_name, tmp_path))
    assert local.hits == []


def test_names_and_domain_suffixes_are_allowed_by_what_they_resolve_to_now(monkeypatch, local: Server, tmp_path):
    """``.data.test`` allows every name below it, whatever private address it resolves to."""
    monkeypatch.setattr(destinations, "resolve", lambda host, port: [ipaddress.ip_address("127.0.0.1")])
    limits = replace(OPENED, allowed_hosts=(".data.test",))
    assert fetch(f"http://thredds.data.test:{local.server_port}/data", limits, tmp_path) == b"to be or not to be"
    assert REFUSED in str(refused(f"http://thredds.other.test:{local.server_port}/data", limits, tmp_path))


def test_a_name_with_one_address_refused_is_refused_whole(monkeypatch, local: Server, tmp_path: Path):
    answer = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.1")]
    monkeypatch.setattr(destinations, "resolve", lambda host, port: answer)
    assert REFUSED in str(refused(f"http://mixed.test:{local.server_port}/data", OPENED, tmp_path))
    assert local.hits == []


def test_the_connection_goes_to_the_address_checked_and_resolves_once(monkeypatch, local: Server, tmp_path: Path):
    """DNS rebinding: the connection never asks the resolver again after the check, so a second,
    different answer is never used. Here the name exists only in the patched resolver: a second
    lookup by anything else would fail, and a second call of it would answer 10.0.0.1."""
    answers = iter([[ipaddress.ip_address("127.0.0.1")], [ipaddress.ip_address("10.0.0.1")]])
    calls: list[str] = []

    def resolve(host: str, port: int) -> list:  # type: ignore[type-arg]
        calls.append(host)
        return next(answers)

    monkeypatch.setattr(destinations, "resolve", resolve)
    assert fetch(f"http://rebinding.invalid:{local.server_port}/data", OPENED, tmp_path) == b"to be or not to be"
    assert calls == ["rebinding.invalid"]


def test_a_name_that_rebinds_to_a_private_address_is_refused_at_connect_time(monkeypatch, local: Server, tmp_path):
    """The first answer a resolver gives a name may be public; what is checked is the answer the
    connection uses, at connect time: here the name answers loopback then, and is refused."""
    monkeypatch.setattr(destinations, "resolve", lambda host, port: [ipaddress.ip_address("127.0.0.1")])
    assert REFUSED in str(refused(f"http://public-then-private.test:{local.server_port}/data", DEFAULT, tmp_path))
    assert local.hits == []


def test_the_service_itself_is_refused_even_where_its_network_is_allowed(local: Server, tmp_path: Path):
    port = local.server_port
    for own in (f"127.0.0.1:{port}", f"0.0.0.0:{port}", f"localhost:{port}"):
        limits = replace(OPENED, own_endpoints=(own,))
        for url in (f"{local.base}/data", f"http://localhost:{port}/data", f"http://0x7f000001:{port}/data"):
            assert REFUSED in str(refused(url, limits, tmp_path)), (own, url)
    assert local.hits == []
    # Another port of the same host is not the service.
    assert fetch(f"{local.base}/data", replace(OPENED, own_endpoints=(f"127.0.0.1:{port + 1}",)), tmp_path)


@pytest.mark.parametrize(
    ("entry", "ok"),
    [("127.0.0.1/32", True), ("10.0.0.0/8", True), ("::1", True), (".example.org", True), ("THREDDS.local", True),
     ("exa mple.org", False), ("http://x", False), (".", False), ("10.0.0.0/33", False), ("-bad.org", False)],
)  # fmt: skip
def test_host_entries_are_checked(entry: str, ok: bool):
    if ok:
        assert parse_host_entry(entry) == entry.lower()
    else:
        with pytest.raises(ValueError):
            parse_host_entry(entry)


# -- redirects ----------------------------------------------------------------------------------------------------


def redirect(server: Server, to: str, code: int = 302) -> str:
    return f"{server.base}/redirect?to={to}&code={code}"


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_to_a_destination_not_allowed_is_refused(local: Server, other: Server, tmp_path: Path, code: int):
    for target in (f"{other.base}/data", f"http://[::1]:{local.server_port}/data", "http://169.254.169.254/"):
        error = refused(redirect(local, target, code), OPENED, tmp_path)
        assert str(error) == f"cannot fetch {redirect(local, target, code)}: {REFUSED}"
    assert other.hits == []


def test_a_redirect_within_allowed_destinations_is_followed(local: Server, tmp_path: Path):
    assert fetch(redirect(local, "/data"), OPENED, tmp_path) == b"to be or not to be"
    assert local.hits == ["/redirect", "/data"]


def test_redirects_are_bounded_and_only_to_http(local: Server, tmp_path: Path):
    assert "redirected more than 5 times" in str(refused(f"{local.base}/loop", OPENED, tmp_path))
    assert len(local.hits) == 6
    assert "unsupported reference scheme" in str(refused(redirect(local, "file:///etc/passwd"), OPENED, tmp_path))
    assert "unsupported reference scheme" in str(refused(redirect(local, "gopher://127.0.0.1:70/"), OPENED, tmp_path))


def test_a_post_redirected_by_303_becomes_a_get_and_by_307_stays_a_post(local: Server, tmp_path: Path):
    sent = {"method": "POST", "body": "query", "headers": {"Content-Type": "text/plain"}}
    after_303 = json.loads(fetch(redirect(local, "/headers", 303), OPENED, tmp_path, **sent))
    assert (after_303["method"], after_303["body"]) == ("GET", "")
    after_307 = json.loads(fetch(redirect(local, "/headers", 307), OPENED, tmp_path, **sent))
    assert (after_307["method"], after_307["body"]) == ("POST", "query")


def test_credentials_do_not_follow_a_redirect_to_another_origin(monkeypatch, local: Server, tmp_path: Path):
    monkeypatch.setattr(destinations, "resolve", lambda host, port: [ipaddress.ip_address("127.0.0.1")])
    limits = replace(OPENED, forward_credentials=True, allowed_hosts=("127.0.0.1/32", ".data.test"))
    headers = {"Authorization": "Bearer s3cret", "Cookie": "session=s3cret", "Accept": "text/plain"}
    same = json.loads(fetch(redirect(local, "/headers"), limits, tmp_path, headers=headers))["headers"]
    assert same["Authorization"] == "Bearer s3cret" and same["Cookie"] == "session=s3cret"
    elsewhere = f"http://other.data.test:{local.server_port}/headers"
    moved = json.loads(fetch(redirect(local, elsewhere), limits, tmp_path, headers=headers))["headers"]
    assert "Authorization" not in moved and "Cookie" not in moved and moved["Accept"] == "text/plain"


# -- methods and headers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["SET", "DELETE", "PUT", "CONNECT", "TRACE", "get\r\nX: y"])
def test_only_get_and_post(local: Server, tmp_path: Path, method: str):
    error = refused(f"{local.base}/headers", OPENED, tmp_path, method=method)
    assert "GET or POST" in str(error) and error.reason == "invalid"
    assert local.hits == []


REFUSED_HEADERS = ["Host", "host", "X-Forwarded-For", "X-Forwarded-Host", "Forwarded", "Proxy-Authorization",
                   "Connection", "Transfer-Encoding", "Upgrade", "TE", "Keep-Alive", "Content-Length", "X-Api-Key"]  # fmt: skip


@pytest.mark.parametrize("name", REFUSED_HEADERS)
def test_headers_outside_the_allow_list_are_refused_naming_the_header_not_its_value(name: str):
    with pytest.raises(InputError) as raised:
        _request_headers("input", {name: "hidden-value"}, replace(DEFAULT, forward_credentials=True))
    assert name in str(raised.value) and "hidden-value" not in str(raised.value)


def test_credential_headers_only_where_the_administrator_forwards_them():
    for name in ("Authorization", "cookie"):
        with pytest.raises(InputError) as raised:
            _request_headers("input", {name: "Bearer s3cret"}, DEFAULT)
        assert "forward_credentials" in str(raised.value) and "s3cret" not in str(raised.value)
    allowed = _request_headers(
        "input", {"authorization": "Bearer x", "ACCEPT": "a/b"}, replace(DEFAULT, forward_credentials=True)
    )
    assert allowed == {"Authorization": "Bearer x", "Accept": "a/b"}


def test_a_header_value_with_a_line_break_is_refused():
    with pytest.raises(InputError, match="control characters"):
        _request_headers("input", {"Accept": "text/plain\r\nHost: evil"}, DEFAULT)


def test_only_allowed_headers_reach_the_remote_host(local: Server, tmp_path: Path):
    sent = {"Accept": "text/plain", "Accept-Language": "de", "User-Agent": "tester/1"}
    received = json.loads(fetch(f"{local.base}/headers", OPENED, tmp_path, headers=sent))["headers"]
    for name, value in sent.items():
        assert received[name] == value
    assert not {n for n in received if n.lower().startswith(("x-forwarded", "proxy-", "authorization", "cookie"))}


def test_url_credentials_only_where_forwarded_and_never_in_a_message(local: Server, tmp_path: Path):
    url = f"http://alice:s3cret@127.0.0.1:{local.server_port}/headers"
    error = refused(url, OPENED, tmp_path)
    assert "forward_credentials" in str(error) and "s3cret" not in str(error)
    received = json.loads(fetch(url, replace(OPENED, forward_credentials=True), tmp_path))["headers"]
    assert received["Authorization"] == "Basic YWxpY2U6czNjcmV0"  # alice:s3cret
    missing = refused("http://alice:s3cret@127.0.0.1:9/x", replace(OPENED, forward_credentials=True), tmp_path)
    assert "alice:***@127.0.0.1:9" in str(missing) and "s3cret" not in str(missing)


def test_proxy_variables_apply_only_when_configured(monkeypatch, local: Server, other: Server, tmp_path: Path):
    """A proxy named in the environment (here the server on 127.0.0.2) is not used by default."""
    monkeypatch.setenv("http_proxy", other.base)
    monkeypatch.setenv("HTTP_PROXY", other.base)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert fetch(f"{local.base}/data", OPENED, tmp_path) == b"to be or not to be"
    assert other.hits == [] and local.hits == ["/data"]
    fetch(f"{local.base}/data", replace(OPENED, use_environment_proxies=True), tmp_path)
    assert other.hits == [f"{local.base}/data"]  # the proxy was asked for the absolute URL


# -- sizes and time ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/gzip-bomb", "/br-bomb"])
def test_a_compression_bomb_stops_at_the_limit_without_being_held(local: Server, tmp_path: Path, path: str):
    """100 MiB of zeros in at most 100 KiB: the size limit (1 MiB) counts decoded bytes, and the fetch
    never holds much more than one chunk. The bound on Python's allocations is generous (16 MiB,
    against the 100 MiB the whole body would take): it only has to tell streaming from inflating whole."""
    assert len(GZIP_BOMB) < 110 * 1024 and len(BR_BOMB) < 110 * 1024
    limits = replace(OPENED, max_size=MIB)
    tracemalloc.start()
    try:
        error = refused(f"{local.base}{path}", limits, tmp_path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.reason == "too_large" and f"size limit of {MIB} bytes" in str(error)
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB"
    assert (tmp_path / "fetched").stat().st_size <= MIB


def test_a_web_worker_caps_every_timeout_by_its_budget():
    limits = replace(DEFAULT, sync_fetch_timeout=3).in_web_worker()
    assert (limits.connect_timeout, limits.read_timeout, limits.total_timeout) == (3, 3, 3)
    assert limits.deadline is not None


def test_a_budget_already_spent_refuses_the_next_fetch(local: Server, tmp_path: Path):
    spent = replace(OPENED, deadline=0.0)
    assert "total timeout" in str(refused(f"{local.base}/data", spent, tmp_path))
    assert local.hits == []


# -- credentials in what is stored ---------------------------------------------------------------------------------


def test_redact_url():
    assert redact_url("https://alice:s3cret@example.org/x?y=1") == "https://alice:***@example.org/x?y=1"
    assert redact_url("https://t0ken@example.org/x") == "https://***@example.org/x"
    assert redact_url("https://example.org/a@b") == "https://example.org/a@b"
    assert redact_url("https://example.org/x?access_token=abc&layer=t&Signature=s") == (
        "https://example.org/x?access_token=***&layer=t&Signature=***"
    )
    assert (
        redact_url("https://example.org/x?API%5FKEY=abc&key=&q=token")
        == "https://example.org/x?API%5FKEY=***&key=&q=token"
    )
    assert redact_url("https://example.org/x?layer=t&time=2020") == "https://example.org/x?layer=t&time=2020"


def test_sealed_inputs_hold_no_secret_and_open_again_where_the_key_is(tmp_path: Path):
    spec = {
        "id": "text",
        "href": "http://alice:s3cret@example.org/x",
        "headers": {"Authorization": "Bearer t0ken", "Accept": "text/plain"},
    }
    plain = {"id": "n", "value": "1"}
    stored = seal_inputs([spec, plain], tmp_path)
    text = json.dumps(stored)
    assert "s3cret" not in text and "t0ken" not in text
    assert stored[0]["href"] == "http://alice:***@example.org/x"
    assert stored[0]["headers"] == {"Authorization": "***", "Accept": "text/plain"}
    assert stored[1] == plain
    assert (tmp_path / ".input-credentials.key").stat().st_mode & 0o777 == 0o600
    assert unseal_inputs(json.loads(text), tmp_path) == [spec, plain]
    with pytest.raises(InputError, match="cannot be read here"):
        unseal_inputs(stored, tmp_path / "elsewhere")
