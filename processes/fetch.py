"""Inputs given by reference: http(s) through one guarded path, file:// only below allowed dirs.

Every http(s) fetch, of complex and literal inputs, GET or POST, and every redirect it follows, goes
through :func:`fetch_http`:

- its connections resolve the host once, check every address against :class:`Destinations` (public
  unicast addresses only, unless ``[inputs] allowed_hosts`` says otherwise; never ``denied_hosts``,
  never the service itself) and connect only to a checked address, so DNS rebinding cannot slip
  through; redirects are followed here, a bounded number, each hop checked again;
- only GET and POST, and only an allow-list of request headers (credentials only where the
  administrator allows them); proxy variables and ``.netrc`` only when configured;
- a connect timeout, a per-read timeout and an overall deadline, and a size limit on the bytes after
  decoding, so a URL that never answers, sends endless data or a compression bomb fails the job
  instead of hanging it or filling the memory.

A destination that is not allowed gets one message, whatever is there, so an error text never tells
whether an internal port speaks HTTP or what it answered. Credentials (a URL's user and password, the
values of credential headers) never appear in messages: :func:`redact_url` shows them as ``***``, and
the job table keeps them sealed (:func:`seal_inputs`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, unquote_plus, urljoin, urlparse, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection

from processes.destinations import Destinations, RefusedDestination, parse_host_entries
from processes.setting_fields import derived, setting, size_setting

CHUNK = 1 << 16
METHODS = ("GET", "POST")
# Request headers a reference may carry: content negotiation and who asks. Authorization and Cookie
# only with [inputs] forward_credentials. Anything else (Host, hop-by-hop, Proxy-*, X-Forwarded-*...)
# is refused, so a client cannot make the service speak for a proxy or another virtual host.
PLAIN_HEADERS = ("Accept", "Accept-Language", "Content-Type", "User-Agent")
CREDENTIAL_HEADERS = ("Authorization", "Cookie")
HIDDEN = "***"
KEY_FILE = ".input-credentials.key"  # in the jobs directory: whoever runs a job can unseal its credentials
SEALED = "sealed"
REDIRECTS = (301, 302, 303, 307, 308)


class InputError(Exception):
    """An input (or a notification's destination) that cannot be used. ``reason`` is one of invalid,
    not_accessible, too_large."""

    def __init__(self, identifier: str, message: str, reason: str = "invalid", transient: bool = False) -> None:
        super().__init__(message)
        self.identifier = identifier
        self.reason = reason
        self.transient = transient  # a timeout or a network error: the same request may succeed later


@dataclass(frozen=True)
class FetchLimits:
    """The ``[inputs]`` section: where references may point and how long and large a fetch may be."""

    allowed_dirs: tuple[Path, ...] = setting((), "directories file:// inputs may be read from (none: file:// refused)")
    allow_http: bool = setting(True, "accept http(s) references")
    allowed_hosts: tuple[str, ...] = setting(
        (),
        "hosts, domain suffixes (.example.org) and networks (10.1.0.0/16) inputs may be fetched from although"
        " they are not public addresses (an internal THREDDS, the cluster's data server); comma-separated",
        parse=parse_host_entries,
    )
    denied_hosts: tuple[str, ...] = setting(
        (),
        "hosts, domain suffixes and networks inputs are never fetched from, even when allowed",
        parse=parse_host_entries,
    )
    forward_credentials: bool = setting(
        False, "forward Authorization and Cookie headers, and user:password in URLs, of references"
    )
    use_environment_proxies: bool = setting(
        False, "use the proxy variables (http_proxy, https_proxy, no_proxy) and ~/.netrc of the service's environment"
    )
    max_redirects: int = setting(5, "redirects a fetch follows, each to an allowed destination")
    connect_timeout: float = setting(10.0, "seconds to connect to a remote input")
    read_timeout: float = setting(60.0, "seconds to wait for each read of a remote input")
    total_timeout: float = setting(600.0, "seconds a whole fetch of a remote input may take")
    sync_fetch_timeout: float = setting(
        15.0, "seconds all fetches of a job run by a web worker (synchronous Execute) may take together"
    )
    max_size: int = size_setting(
        1024**3,
        "largest input fetched by reference, after decoding (gzip, deflate, br); also the maximumMegabytes"
        " DescribeProcess shows for complex inputs that declare none",
    )
    max_inline_size: int = size_setting(10 * 1024**2, "largest complex input sent inline, after base64 decoding")
    own_endpoints: tuple[str, ...] = derived((), "host:port of the service itself, from [server]: never fetched")
    deadline: float | None = derived(None, "time.monotonic() by which every fetch of this job must have ended")

    def in_web_worker(self) -> FetchLimits:
        """The limits of a job run by a web worker: all its fetches end within ``sync_fetch_timeout``."""
        budget = self.sync_fetch_timeout
        return dataclasses.replace(
            self,
            connect_timeout=min(self.connect_timeout, budget),
            read_timeout=min(self.read_timeout, budget),
            total_timeout=min(self.total_timeout, budget),
            deadline=time.monotonic() + budget,
        )

    @property
    def default_megabytes(self) -> int:
        """``max_size`` in whole megabytes (at least 1): what DescribeProcess shows for complex inputs."""
        return max(1, self.max_size // 1024**2)

    def size_for(self, maximum_megabytes: int | None) -> int:
        """The byte limit of an input declaring ``maximum_megabytes`` (None: ``max_size``)."""
        return min(self.max_size, maximum_megabytes * 1024**2) if maximum_megabytes else self.max_size


# -- credentials: never shown, sealed in the job table --------------------------------------------------


# Query parameters that carry credentials in the URLs clients send (OAuth bearer tokens, API keys, signed
# cloud-storage URLs): shown as ``***`` wherever the URL is shown, and sealed with the rest.
CREDENTIAL_QUERY_KEYS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "client_secret",
        "key",
        "passwd",
        "password",
        "secret",
        "sig",
        "signature",
        "token",
        "x-amz-credential",
        "x-amz-security-token",
        "x-amz-signature",
        "x-goog-credential",
        "x-goog-signature",
    }
)


def _redact_query(query: str) -> str:
    """The query with the values of credential parameters as ``***``; every other byte as it was."""
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and unquote_plus(name).strip().lower() in CREDENTIAL_QUERY_KEYS:
            pair = f"{name}={HIDDEN}"
        pairs.append(pair)
    return "&".join(pairs)


def redact_url(href: str) -> str:
    """``href`` with a password (or a user name alone, often a token) and the values of credential
    query parameters (``access_token``, ``api_key``, signatures...) shown as ``***``."""
    try:
        parts = urlsplit(href)
    except ValueError:
        return href
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _password = userinfo.partition(":")
        netloc = f"{user}:{HIDDEN}@{hostport}" if has_password else f"{HIDDEN}@{hostport}"
    query = _redact_query(parts.query) if parts.query else parts.query
    if netloc == parts.netloc and query == parts.query:
        return href
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _credentials_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What of a reference is secret: a URL with user info, the values of credential headers."""
    secret: dict[str, Any] = {}
    href = spec.get("href") or ""
    if redact_url(href) != href:
        secret["href"] = href
    headers = spec.get("headers") or {}
    hidden = {k: v for k, v in headers.items() if k.lower() in {h.lower() for h in CREDENTIAL_HEADERS}}
    if hidden:
        secret["headers"] = hidden
    return secret


def _fernet(jobs_dir: Path) -> Any:
    """The key that seals credentials, created once in the jobs directory (mode 0600): every host that
    runs jobs reads job directories there, so each can unseal what a web worker sealed."""
    from cryptography.fernet import Fernet

    path = jobs_dir / KEY_FILE
    if not path.exists():
        jobs_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker was first
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
    for _attempt in range(50):  # the first writer may not have written yet
        key = path.read_bytes()
        if key:
            return Fernet(key)
        time.sleep(0.01)
    raise OSError(f"{path} holds no key")


def seal_inputs(inputs: list[dict[str, Any]], jobs_dir: Path) -> list[dict[str, Any]]:
    """The inputs as the job table keeps them: credentials shown as ``***``, their real values
    encrypted in ``sealed`` (Fernet, from the well-kept ``cryptography``), which only
    :func:`unseal_inputs` with the jobs directory's key reads back where the job runs."""
    sealed = []
    for spec in inputs:
        secret = _credentials_of(spec)
        if secret:
            token = _fernet(jobs_dir).encrypt(json.dumps(secret).encode()).decode("ascii")
            headers = spec.get("headers") or {}
            spec = spec | {
                "href": redact_url(spec["href"]),
                SEALED: token,
                **(
                    {"headers": {k: HIDDEN if k in secret.get("headers", {}) else v for k, v in headers.items()}}
                    if headers
                    else {}
                ),
            }
        sealed.append(spec)
    return sealed


def unseal_inputs(inputs: list[dict[str, Any]], jobs_dir: Path) -> list[dict[str, Any]]:
    """The inputs with their credentials back, for the fetch itself."""
    from cryptography.fernet import InvalidToken

    opened = []
    for spec in inputs:
        if SEALED in spec:
            try:
                secret = json.loads(_fernet(jobs_dir).decrypt(spec[SEALED].encode("ascii")))
            except (InvalidToken, OSError, ValueError):
                message = "the credentials of this reference cannot be read here (another key in the jobs directory)"
                raise InputError(spec["id"], message, "not_accessible") from None
            spec = {k: v for k, v in spec.items() if k != SEALED}
            spec["href"] = secret.get("href", spec["href"])
            if "headers" in secret:
                spec["headers"] = (spec.get("headers") or {}) | secret["headers"]
        opened.append(spec)
    return opened


# -- what a reference may ask for, and where --------------------------------------------------------------------------


def _method(identifier: str, method: str) -> str:
    if method.upper() not in METHODS:
        raise InputError(identifier, f"references are fetched with GET or POST, not {method!r}")
    return method.upper()


def _request_headers(identifier: str, headers: Mapping[str, str], limits: FetchLimits) -> dict[str, str]:
    """The headers sent, as the allow-list spells them; others refuse the reference (the message names
    the header, never its value)."""
    allowed = {h.lower(): h for h in PLAIN_HEADERS}
    if limits.forward_credentials:
        allowed |= {h.lower(): h for h in CREDENTIAL_HEADERS}
    sent = {}
    for key, value in headers.items():
        name = allowed.get(str(key).strip().lower())
        if name is None:
            if str(key).strip().lower() in {h.lower() for h in CREDENTIAL_HEADERS}:
                message = f"the header {key} is not forwarded here ([inputs] forward_credentials is off)"
            else:
                message = f"the header {key!r} is not forwarded; references may carry {', '.join(allowed.values())}"
            raise InputError(identifier, message)
        if not str(value).isprintable():
            raise InputError(identifier, f"the value of the header {name} holds control characters")
        sent[name] = str(value)
    return sent


def _destinations(limits: FetchLimits) -> Destinations:
    return Destinations.of(limits.allowed_hosts, limits.denied_hosts, limits.own_endpoints)


def _refused(identifier: str, shown: str) -> InputError:
    """The one message of every destination that is not allowed, whatever answers there (if anything)."""
    return InputError(identifier, f"cannot fetch {shown}: not an allowed destination for inputs", "not_accessible")


def _checked_url(identifier: str, url: str, original: str, limits: FetchLimits, destinations: Destinations) -> str:
    """``url`` if it is http(s), names a host, carries credentials only where allowed, and is not
    refused by name or by a literal address; a refusal names ``original`` (what the client sent)."""
    shown = redact_url(original)
    try:
        parts = urlsplit(url)
        port = _port(parts)
        host = parts.hostname
    except ValueError:
        raise InputError(identifier, f"not a usable URL: {shown}", "not_accessible") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError(identifier, f"unsupported reference scheme in {shown}", "not_accessible")
    if not host:
        raise InputError(identifier, f"no host in {shown}", "not_accessible")
    if "@" in parts.netloc and not limits.forward_credentials:
        message = f"credentials in {shown} are not forwarded here ([inputs] forward_credentials is off)"
        raise InputError(identifier, message, "not_accessible")
    try:
        destinations.check_name(host, port)
    except RefusedDestination:
        raise _refused(identifier, shown) from None
    return url


# -- the guarded connection --------------------------------------------------------------------------------


class _GuardedConnection(HTTPConnection):
    """Resolves once, lets :class:`Destinations` check every address, connects only to a checked one."""

    destinations: Destinations

    def _new_conn(self) -> socket.socket:
        try:
            addresses = self.destinations.check(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        error: OSError | None = None
        for address in addresses:
            try:
                return connection.create_connection(
                    (str(address), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"failed to establish a new connection: {error}") from error


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    pass


class _GuardedAdapter(HTTPAdapter):
    """A requests adapter whose pools (direct connections) use the guarded connections. Through a
    configured proxy the proxy connects; the names and literal addresses of each URL are still checked."""

    def __init__(self, destinations: Destinations) -> None:
        super().__init__(max_retries=0)
        http = type("GuardedConnection", (_GuardedConnection,), {"destinations": destinations})
        https = type("GuardedHTTPSConnection", (_GuardedHTTPSConnection,), {"destinations": destinations})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }


def _session(limits: FetchLimits, destinations: Destinations) -> requests.Session:
    session = requests.Session()
    session.trust_env = limits.use_environment_proxies  # proxy variables and .netrc: only when configured
    adapter = _GuardedAdapter(destinations)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _port(parts: SplitResult) -> int:
    """The port a URL connects to (raises ValueError for one out of range)."""
    return parts.port or (443 if parts.scheme.lower() == "https" else 80)


def _same_origin(a: str, b: str) -> bool:
    """Both URLs passed :func:`_checked_url`, so their ports can be read."""
    first, second = urlsplit(a), urlsplit(b)
    return (first.scheme.lower(), first.hostname, _port(first)) == (
        second.scheme.lower(),
        second.hostname,
        _port(second),
    )


@contextlib.contextmanager
def _follow(
    identifier: str,
    href: str,
    limits: FetchLimits,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    timeouts: Callable[[], tuple[float, float]],
) -> Iterator[requests.Response]:
    """The final response, redirects followed here: at most ``max_redirects``, each hop http(s) and an
    allowed destination, credentials dropped when a hop leaves the origin, 301/302/303 turning a POST
    into a GET as browsers do."""
    destinations = _destinations(limits)
    url = _checked_url(identifier, href, href, limits, destinations)
    with _session(limits, destinations) as session:
        for _hop in range(limits.max_redirects + 1):
            try:
                response = session.request(
                    method, url, data=body, headers=headers, stream=True, timeout=timeouts(), allow_redirects=False
                )
            except RefusedDestination:
                raise _refused(identifier, redact_url(href)) from None
            with response:
                if response.status_code not in REDIRECTS or "Location" not in response.headers:
                    yield response
                    return
            try:
                target = urljoin(url, response.headers["Location"])
            except ValueError:
                raise InputError(
                    identifier, f"{redact_url(href)} redirected to an unusable URL", "not_accessible"
                ) from None
            target = _checked_url(identifier, target, href, limits, destinations)
            if not _same_origin(url, target):
                headers = {k: v for k, v in headers.items() if k not in CREDENTIAL_HEADERS}
            if response.status_code in (301, 302, 303) and method == "POST":
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k != "Content-Type"}
            url = target
    message = f"{redact_url(href)} redirected more than {limits.max_redirects} times"
    raise InputError(identifier, message, "not_accessible")


@contextlib.contextmanager
def _exchange(
    identifier: str,
    href: str,
    limits: FetchLimits,
    method: str,
    body: bytes | None,
    headers: Mapping[str, str],
) -> Iterator[tuple[requests.Response, Callable[[], None]]]:
    """The final response of one request through the guarded path, within the connect, read and total
    timeouts of ``limits``; what goes wrong, also while the caller reads the body, raised as
    :class:`InputError` (``transient`` for timeouts and network errors, worth trying again). Yields the
    response and a check the caller runs between reads: it raises once the total timeout has passed."""
    shown = redact_url(href)
    sent = _request_headers(identifier, headers, limits)
    method = _method(identifier, method)
    ends = time.monotonic() + limits.total_timeout
    if limits.deadline is not None:
        ends = min(ends, limits.deadline)
    took_too_long = f"{shown} took longer than the total timeout of {limits.total_timeout:g} s"

    def in_time() -> None:
        if time.monotonic() > ends:
            raise InputError(identifier, took_too_long, "not_accessible", transient=True)

    def timeouts() -> tuple[float, float]:
        left = ends - time.monotonic()
        if left <= 0:
            raise InputError(identifier, took_too_long, "not_accessible", transient=True)
        return min(limits.connect_timeout, left), min(limits.read_timeout, left)

    try:
        with _follow(identifier, href, limits, method, body, sent, timeouts) as response:
            yield response, in_time
    except requests.ConnectTimeout:
        message = f"{shown} did not accept a connection within the connect timeout of {limits.connect_timeout:g} s"
        raise InputError(identifier, message, "not_accessible", transient=True) from None
    except (requests.Timeout, urllib3.exceptions.TimeoutError):
        message = f"{shown} sent nothing for the read timeout of {limits.read_timeout:g} s"
        raise InputError(identifier, message, "not_accessible", transient=True) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        message = f"cannot fetch {shown}: {type(exc).__name__}"
        raise InputError(identifier, message, "not_accessible", transient=True) from None


def fetch_http(
    identifier: str,
    href: str,
    dest: Path,
    limits: FetchLimits,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Fetch ``href`` into ``dest`` within ``limits``; raises :class:`InputError` naming what went wrong."""
    shown = redact_url(href)
    if not limits.allow_http:
        raise InputError(identifier, "inputs by http(s) reference are not accepted here", "not_accessible")
    too_large = f"{shown} is larger than the size limit of {limits.max_size} bytes"
    sent = body.encode("utf-8") if body is not None else None
    with _exchange(identifier, href, limits, method, sent, headers or {}) as (response, in_time):
        if response.status_code >= 400:
            raise InputError(identifier, f"{shown} answered HTTP {response.status_code}", "not_accessible")
        declared = response.headers.get("Content-Length")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > limits.max_size:
            raise InputError(identifier, too_large, "too_large")
        size = 0
        with dest.open("wb") as out:
            # read1 returns whatever has arrived (at most CHUNK bytes, decoded: urllib3 inflates no
            # more than it is asked for) instead of waiting for a full chunk, so a sender that
            # trickles a byte now and then still meets the overall deadline, and a compression bomb
            # stops at the size limit without ever being held whole.
            while chunk := response.raw.read1(CHUNK, decode_content=True):
                size += len(chunk)
                if size > limits.max_size:
                    raise InputError(identifier, too_large, "too_large")
                in_time()
                out.write(chunk)


def post_http(identifier: str, href: str, body: bytes, media_type: str, limits: FetchLimits) -> int:
    """POST ``body`` to ``href`` through the same guarded path as every fetch (destinations, redirects,
    credentials, timeouts) and return the final HTTP status; the answer's body is not read. For the
    service's own notifications (``scheduler/notifier.py``), which obey the rules of inputs."""
    with _exchange(identifier, href, limits, "POST", body, {"Content-Type": media_type}) as (response, _in_time):
        return response.status_code


# -- file:// and inline data -------------------------------------------------------------------------------


def resolve_file(identifier: str, href: str, limits: FetchLimits) -> Path:
    """The real path of a file:// reference, refused unless it lies below an allowed directory.

    The check is on the resolved path, so ``..`` segments and symbolic links cannot lead outside.
    """
    parsed = urlparse(href)
    if parsed.netloc not in ("", "localhost"):
        raise InputError(identifier, f"file reference with a host is not accepted: {href}", "not_accessible")
    try:
        path = Path(unquote(parsed.path)).resolve()
        path.stat()
    except ValueError:  # a NUL byte, or a path the file system cannot name
        raise InputError(identifier, f"not a usable file reference: {href!r}", "not_accessible") from None
    except OSError:
        pass  # reported below, once the path is known to be allowed
    for allowed in limits.allowed_dirs:
        if path.is_relative_to(allowed.resolve()):
            if not path.is_file():
                raise InputError(identifier, f"no such file: {href}", "not_accessible")
            if path.stat().st_size > limits.max_size:
                raise InputError(identifier, f"{href} is larger than {limits.max_size} bytes", "too_large")
            return path
    raise InputError(identifier, f"file inputs are not allowed from {href}", "not_accessible")


def inline_bytes(identifier: str, spec: Mapping[str, Any], limits: FetchLimits) -> bytes:
    """The bytes of complex data sent inline, base64 decoded if so encoded, within ``max_inline_size``."""
    data = spec.get("value") or ""
    if (spec.get("encoding") or "").lower() == "base64":
        try:
            content = base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            raise InputError(identifier, "complex data is not valid base64") from None
    else:
        content = data.encode("utf-8")
    if len(content) > limits.max_inline_size:
        message = f"inline data larger than the limit of {limits.max_inline_size} bytes; send it by reference"
        raise InputError(identifier, message, "too_large")
    return content
