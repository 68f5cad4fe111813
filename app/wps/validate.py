"""Check an Execute against the process it names and normalize it into the request the job stores.

Everything a client can get wrong is caught here, before a job exists, with the exception code each
protocol version defines for it. References are not fetched here: that happens when the job runs.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from typing import Any

from app.wps.errors import OWSException, invalid, missing
from app.wps.namespaces import is_xml_safe
from app.wps.requests import Execute
from processes.literals import LiteralValueError
from processes.model import UNBOUNDED, BoundingBoxInput, ComplexInput, ComplexOutput, LiteralInput, Process
from processes.numbers import XML_SPACE, parse_double
from scheduler.models import JobMode
from scheduler.resources import REQUEST_PREFIX, REQUESTABLE


def _code(version: str, v1: str, v2: str) -> str:
    return v2 if version.startswith("2") else v1


def _check_kind(declared: LiteralInput | ComplexInput | BoundingBoxInput, spec: dict[str, Any]) -> None:
    """Data sent as one kind to an input of another (a bounding box to a literal input) is refused;
    literal data for a complex input is accepted as its text."""
    sent, wanted = spec.get("data_kind"), declared.kind
    if sent is not None and sent != wanted and not (sent == "literal" and wanted == "complex"):
        raise invalid(declared.identifier, f"{declared.identifier} takes {wanted} data, not {sent} data")


def _literal(declared: LiteralInput, spec: dict[str, Any], version: str) -> dict[str, Any]:
    _check_kind(declared, spec)
    if not is_xml_safe(spec.get("value") or ""):
        raise invalid(declared.identifier, f"{declared.identifier} holds characters XML cannot carry")
    out = {"id": declared.identifier, "kind": "literal"}
    if spec.get("uom"):
        if declared.uoms and spec["uom"] not in declared.uoms:
            raise invalid(declared.identifier, f"unit {spec['uom']} is not one of {', '.join(declared.uoms)}")
        out["uom"] = spec["uom"]
    if spec.get("href"):
        return out | {k: spec[k] for k in ("href", "method", "body", "headers") if spec.get(k)}
    try:
        declared.read(spec.get("value") or "")
    except LiteralValueError as exc:
        raise OWSException(
            _code(version, "InvalidParameterValue", "InvalidParameterValue"), str(exc), declared.identifier
        ) from None
    return out | {"value": spec.get("value") or ""}


def _complex(declared: ComplexInput, spec: dict[str, Any], version: str) -> dict[str, Any]:
    _check_kind(declared, spec)
    mime = spec.get("mime_type")
    if mime and not any(f.matches(mime) for f in declared.formats):
        supported = ", ".join(f.mime_type for f in declared.formats)
        raise OWSException(
            _code(version, "InvalidParameterValue", "NoSuchFormat"),
            f"{declared.identifier} does not accept {mime}; it accepts {supported}",
            declared.identifier,
        )
    out = {"id": declared.identifier, "kind": "complex"}
    out.update(
        {k: spec[k] for k in ("href", "method", "body", "headers", "mime_type", "encoding", "schema") if spec.get(k)}
    )
    if not spec.get("href"):
        value = spec.get("value") or ""
        if (spec.get("encoding") or "").lower() == "base64":
            try:
                base64.b64decode(value, validate=False)
            except (binascii.Error, ValueError):
                raise invalid(declared.identifier, "complex data is not valid base64") from None
        if declared.maximum_megabytes and len(value) > declared.maximum_megabytes * 1024**2:
            raise OWSException(
                _code(version, "FileSizeExceeded", "SizeExceeded"),
                f"{declared.identifier} is larger than {declared.maximum_megabytes} MB",
                declared.identifier,
            )
        out["value"] = value
    return out


def _bbox(declared: BoundingBoxInput, spec: dict[str, Any]) -> dict[str, Any]:
    _check_kind(declared, spec)
    ident = declared.identifier
    if spec.get("data_kind") == "bbox":
        lower, upper, crs = spec["lower"], spec["upper"], spec.get("crs")
    else:  # KVP: minx,miny,maxx,maxy[,crs]
        parts = [p.strip(XML_SPACE) for p in (spec.get("value") or "").split(",")]
        crs = spec.get("crs")
        if len(parts) % 2 == 1:
            crs = parts.pop()
        try:
            numbers = [parse_double(p) for p in parts]
        except ValueError:
            raise invalid(ident, f"{spec.get('value')!r} is not a bounding box (minx,miny,maxx,maxy[,crs])") from None
        half = len(numbers) // 2
        lower, upper = numbers[:half], numbers[half:]
    if not lower or len(lower) != len(upper):
        raise invalid(ident, "the corners of a bounding box need the same number of coordinates")
    if any(lo > hi for lo, hi in zip(lower, upper, strict=False)):
        raise invalid(ident, "the lower corner of a bounding box lies above its upper corner")
    if crs:
        # CRS identifiers are compared without regard to case (OWSLib sends epsg:4326 by default).
        known = {c.lower(): c for c in declared.crss}
        if crs.lower() not in known:
            raise invalid(ident, f"CRS {crs} is not one of {', '.join(declared.crss)}")
        crs = known[crs.lower()]
    return {"id": ident, "kind": "bbox", "lower": lower, "upper": upper, "crs": crs or declared.crss[0]}


def _resources(request: Execute) -> dict[str, str]:
    """Resource requests sent as literal inputs named ``resources.<name>`` (batch jobs only)."""
    requested = {}
    for spec in request.inputs:
        if spec["id"].startswith(REQUEST_PREFIX):
            name = spec["id"][len(REQUEST_PREFIX) :]
            if name not in REQUESTABLE or spec.get("href"):
                raise invalid(spec["id"], f"resources that can be requested: {', '.join(REQUESTABLE)}, by value")
            requested[name] = spec.get("value") or ""
    return requested


def _inputs(process: Process, request: Execute) -> list[dict[str, Any]]:
    normalized = []
    for spec in request.inputs:
        if spec["id"].startswith(REQUEST_PREFIX):
            continue
        declared = process.input(spec["id"])
        if declared is None:
            raise OWSException(
                _code(request.version, "InvalidParameterValue", "NoSuchInput"),
                f"{process.identifier} has no input {spec['id']}",
                spec["id"],
            )
        if isinstance(declared, LiteralInput):
            normalized.append(_literal(declared, spec, request.version))
        elif isinstance(declared, ComplexInput):
            normalized.append(_complex(declared, spec, request.version))
        else:
            normalized.append(_bbox(declared, spec))
    counts = Counter(spec["id"] for spec in normalized)
    for declared in process.inputs:
        count = counts.get(declared.identifier, 0)
        has_default = isinstance(declared, LiteralInput) and declared.default is not None
        if count < declared.min_occurs and not has_default:
            raise missing(declared.identifier)
        if declared.max_occurs != UNBOUNDED and count > declared.max_occurs:
            raise OWSException(
                _code(request.version, "InvalidParameterValue", "TooManyInputs"),
                f"{declared.identifier} takes at most {declared.max_occurs} value(s)",
                declared.identifier,
            )
    return normalized


def _outputs(process: Process, request: Execute) -> list[dict[str, Any]]:
    seen = set()
    for definition in request.outputs:
        declared = process.output(definition.identifier)
        if declared is None:
            raise OWSException(
                _code(request.version, "InvalidParameterValue", "NoSuchOutput"),
                f"{process.identifier} has no output {definition.identifier}",
                definition.identifier,
            )
        if definition.identifier in seen:
            raise invalid(definition.identifier, f"output {definition.identifier} is requested twice")
        seen.add(definition.identifier)
        if (
            definition.mime_type
            and isinstance(declared, ComplexOutput)
            and not any(f.matches(definition.mime_type) for f in declared.formats)
        ):
            raise OWSException(
                _code(request.version, "InvalidParameterValue", "NoSuchFormat"),
                f"{declared.identifier} cannot be given as {definition.mime_type}",
                declared.identifier,
            )
    return [o.as_dict() for o in request.outputs]


def raw_output(process: Process, request: Execute) -> None:
    """WPS: a raw response is one output, as it is (OGC API - Processes sends several as multipart)."""
    if request.response == "raw" and len(request.outputs) > 1:
        raise OWSException("OptionNotSupported", "a raw response carries exactly one output", "response")
    if request.response == "raw" and not request.outputs and len(process.outputs) != 1:
        raise missing("Output")


def execution_mode(process: Process, request: Execute) -> JobMode:
    """sync or async, from what the client asked and what the process permits."""
    if request.version.startswith("1"):
        if request.status and not request.store:
            raise invalid("status", "status=true needs storeExecuteResponse=true")
        if request.store and not process.store_supported:
            raise OWSException(
                "StorageNotSupported", f"{process.identifier} does not store responses", "storeExecuteResponse"
            )
        if request.status and not process.status_supported:
            raise OWSException("StatusNotSupported", f"{process.identifier} does not report status", "status")
        return JobMode.ASYNC if request.store else JobMode.SYNC
    if request.mode == "auto":
        mode = JobMode.ASYNC if process.async_allowed else JobMode.SYNC
    else:
        mode = JobMode(request.mode)  # the parser admits sync, async and auto only
    allowed = process.async_allowed if mode == JobMode.ASYNC else process.sync_allowed
    if not allowed:
        raise OWSException("NoSuchMode", f"{process.identifier} does not run in {mode} mode", "mode")
    return mode


def job_request(process: Process, request: Execute) -> dict[str, Any]:
    """The JSON the job table stores: enough to run the job anywhere and to render every response."""
    return {
        "resources": _resources(request),
        "inputs": _inputs(process, request),
        "outputs": _outputs(process, request),
        "response": request.response,
        "lineage": request.lineage,
        "status": request.status,
        "store": request.store,
    }
