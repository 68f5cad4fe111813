"""The ``request`` a PyWPS handler reads: a genuine ``WPSRequest`` whose ``inputs`` hold clones of the
process's own input objects, filled from the inputs the runtime has already fetched and checked.

Complex data is always a file in the job's working directory by now (references are fetched by the
runtime within the service's limits, never again by PyWPS): ``.file``, ``.data`` and ``.stream`` read
it, ``.url`` is the reference the client gave, or the file's URI for data sent inline.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pywps.app.WPSRequest import WPSRequest
from pywps.inout.basic import UrlHandler

from processes.context import JobContext
from processes.values import BoundingBox, ComplexValue, InputValue, LiteralValue


def _format(declared: Any, value: ComplexValue) -> Any:
    """The supported format the client named (mimeType, encoding, schema), else the default one."""
    for fmt in declared.supported_formats:
        if (
            fmt.mime_type == value.mime_type
            and (not value.encoding or (fmt.encoding or value.encoding) == value.encoding)
            and (not value.schema or (fmt.schema or value.schema) == value.schema)
        ):
            return fmt
    return declared.get_format(value.mime_type) or declared.data_format


def _complex(declared: Any, value: ComplexValue) -> Any:
    occurrence = declared.clone()
    occurrence.data_format = _format(declared, value)
    if value.href:
        handler = UrlHandler(value.href, occurrence)
        handler._file = str(value.path)  # already fetched: PyWPS must not fetch it again
        occurrence._iohandler = handler
        occurrence._check_valid()
    else:
        occurrence.file = str(value.path)
    return occurrence


def _occurrence(declared: Any, value: InputValue) -> Any:
    if isinstance(value, ComplexValue):
        return _complex(declared, value)
    occurrence = declared.clone()
    if isinstance(value, BoundingBox):
        occurrence.data = [*value.lower, *value.upper]
        occurrence.crs = value.crs or declared.crss[0]
        occurrence.dimensions = value.dimensions
    elif isinstance(value, LiteralValue):
        occurrence.data = value.value
        occurrence.uom = value.uom  # as PyWPS: the unit the client named, else the declared default
    return occurrence


def build_request(process: Any, job: JobContext, requested: list[dict[str, Any]]) -> Any:
    """A ``WPSRequest`` for ``process`` (a per-job copy) as PyWPS builds one for an Execute."""
    request = WPSRequest()
    request.operation = "execute"
    request.version = "1.0.0"
    request.language = "en-US"
    request.identifier = process.identifier
    request.inputs = {}
    for declared in process.inputs:
        values = job.values(declared.identifier)
        if values:
            request.inputs[declared.identifier] = deque(
                (_occurrence(declared, v) for v in values), maxlen=declared.max_occurs
            )
    request.outputs = {
        r["id"]: {
            "identifier": r["id"],
            "mimetype": r.get("mime_type") or "",
            "encoding": r.get("encoding") or "",
            "schema": r.get("schema") or "",
            "uom": r.get("uom") or "",
            "asReference": "true" if r.get("transmission") == "reference" else "false",
        }
        for r in requested
    }
    request.raw = False
    request.store_execute = "false"
    request.status = "false"
    request.lineage = "false"
    return request
