"""Inputs given by reference: http(s) with timeouts and a size limit, file:// only below allowed dirs.

Every remote read has a connect timeout, a per-read timeout and an overall deadline, and stops at the
size limit, so a URL that never answers or sends endless data fails the job instead of hanging it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
import urllib3

from processes.setting_fields import setting, size_setting

CHUNK = 1 << 16


class InputError(Exception):
    """An input that cannot be used. ``reason`` is one of invalid, not_accessible, too_large."""

    def __init__(self, identifier: str, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.identifier = identifier
        self.reason = reason


@dataclass(frozen=True)
class FetchLimits:
    """The ``[inputs]`` section: where references may point and how long and large a fetch may be."""

    allowed_dirs: tuple[Path, ...] = setting((), "directories file:// inputs may be read from (none: file:// refused)")
    allow_http: bool = setting(True, "accept http(s) references")
    connect_timeout: float = setting(10.0, "seconds to connect to a remote input")
    read_timeout: float = setting(60.0, "seconds to wait for each read of a remote input")
    total_timeout: float = setting(600.0, "seconds a whole fetch of a remote input may take")
    max_size: int = size_setting(1024**3, "largest input fetched by reference")


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


def fetch_http(
    identifier: str,
    href: str,
    dest: Path,
    limits: FetchLimits,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    if not limits.allow_http:
        raise InputError(identifier, "inputs by http(s) reference are not accepted here", "not_accessible")
    deadline = time.monotonic() + limits.total_timeout
    too_large = f"{href} is larger than the size limit of {limits.max_size} bytes"
    try:
        with requests.request(
            method,
            href,
            data=body.encode("utf-8") if body is not None else None,
            headers=headers or {},
            stream=True,
            timeout=(limits.connect_timeout, limits.read_timeout),
            allow_redirects=True,
        ) as response:
            if response.status_code >= 400:
                raise InputError(identifier, f"{href} answered HTTP {response.status_code}", "not_accessible")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limits.max_size:
                raise InputError(identifier, too_large, "too_large")
            size = 0
            with dest.open("wb") as out:
                # read1 returns whatever has arrived (at most CHUNK bytes) instead of waiting for a full
                # chunk, so a sender that trickles a byte now and then still meets the overall deadline.
                while chunk := response.raw.read1(CHUNK, decode_content=True):
                    size += len(chunk)
                    if size > limits.max_size:
                        raise InputError(identifier, too_large, "too_large")
                    if time.monotonic() > deadline:
                        message = f"{href} took longer than the total timeout of {limits.total_timeout:g} s"
                        raise InputError(identifier, message, "not_accessible")
                    out.write(chunk)
    except requests.ConnectTimeout:
        message = f"{href} did not accept a connection within the connect timeout of {limits.connect_timeout:g} s"
        raise InputError(identifier, message, "not_accessible") from None
    except (requests.Timeout, urllib3.exceptions.TimeoutError):
        message = f"{href} sent nothing for the read timeout of {limits.read_timeout:g} s"
        raise InputError(identifier, message, "not_accessible") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise InputError(identifier, f"cannot fetch {href}: {type(exc).__name__}", "not_accessible") from None
