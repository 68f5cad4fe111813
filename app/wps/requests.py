"""Parsed requests: what KVP and XML decoders both produce, and all the service code reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUPPORTED_VERSIONS = ("1.0.0", "2.0.0")


@dataclass
class GetCapabilities:
    accept_versions: tuple[str, ...] = ()
    language: str | None = None


@dataclass
class DescribeProcess:
    version: str
    identifiers: tuple[str, ...]
    language: str | None = None


@dataclass
class OutputDefinition:
    identifier: str
    transmission: str | None = None  # value | reference; None: the service chooses
    mime_type: str | None = None
    encoding: str | None = None
    schema: str | None = None
    uom: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None} | {"id": self.identifier}


@dataclass
class Execute:
    version: str
    identifier: str
    # One dict per input value as sent: id, and value or href, plus attributes (mime_type, uom, crs...).
    # ``data_kind`` is literal/complex/bbox when the encoding said so (XML), None when it cannot (KVP).
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[OutputDefinition] = field(default_factory=list)
    mode: str = "sync"  # sync | async | auto
    response: str = "document"  # document | raw
    lineage: bool = False
    status: bool = False  # 1.0.0: the client wants progress in the stored document
    store: bool = False  # 1.0.0: storeExecuteResponse
    language: str | None = None


@dataclass
class JobRequest:
    """WPS 2.0 GetStatus, GetResult and Dismiss: an operation on one job."""

    operation: str
    job_id: str
    version: str = "2.0.0"


WPSRequest = GetCapabilities | DescribeProcess | Execute | JobRequest
