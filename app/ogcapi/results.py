"""A job's results: the results document (``/jobs/{id}/results``, a synchronous execution with
``response=document``) and one output as it is (``response=raw``).

Outputs by value are JSON values: a literal as its JSON type, a bounding box as the standard's bbox
object, complex data as a qualified value (JSON content as JSON, other text as text, anything else
base64). Outputs by reference are links to the file, served where WPS serves it
(``/wps/jobs/{id}/outputs/{file}``) with the same headers and the same owner check.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.ogcapi.schemas import crs_uri
from app.ogcapi.urls import JSON, RESULTS_REL, Urls
from app.outputs import selected_outputs, text_of
from app.served import SANDBOX, output_headers
from scheduler.job import Job

BINARY = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"


def literal(record: dict[str, Any]) -> Any:
    """A literal output's text as the JSON value of its type (a number that JSON cannot write stays text)."""
    text, data_type = record["value"], record.get("data_type")
    if data_type == "boolean":
        return text == "true"
    if data_type == "integer":
        return int(text)
    if data_type in ("double", "float"):
        number = float(text)
        return number if math.isfinite(number) else text
    return text


def bbox(record: dict[str, Any]) -> dict[str, Any]:
    box: dict[str, Any] = {"bbox": record["lower"] + record["upper"]}
    if record.get("crs"):
        box["crs"] = crs_uri(record["crs"])
    return box


def _is_json(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


def complex_value(record: dict[str, Any], path: Path) -> dict[str, Any]:
    mime = record.get("mime_type") or BINARY
    raw = path.read_bytes()
    qualified: dict[str, Any] = {"mediaType": mime}
    text = text_of(record, raw)
    if text is not None and _is_json(mime):
        try:
            return qualified | {"value": json.loads(text)}
        except ValueError:
            pass
    if text is not None:
        return qualified | {"value": text}
    return qualified | {"value": base64.b64encode(raw).decode("ascii"), "encoding": "base64"}


def output_link(record: dict[str, Any], job: Job, urls: Urls) -> dict[str, Any]:
    return {"href": urls.output(job.id, record["file"]), "type": record.get("mime_type") or BINARY, "rel": RESULTS_REL}


def results(job: Job, urls: Urls, outputs_dir: Path) -> dict[str, Any]:
    """The outputs the request asked for (every output when it named none), by value or by reference."""
    document: dict[str, Any] = {}
    for record, by_reference in selected_outputs(job):
        if by_reference:
            document[record["id"]] = output_link(record, job, urls)
        elif record["kind"] == "literal":
            document[record["id"]] = literal(record)
        elif record["kind"] == "bbox":
            document[record["id"]] = bbox(record)
        else:
            document[record["id"]] = complex_value(record, outputs_dir / record["file"])
    return document


@dataclass
class Raw:
    """One output as it is: a file streamed from disk, or bytes; or, by reference, no content and a Link."""

    status: int = 200
    body: bytes = b""
    file: Path | None = None
    content_type: str = TEXT
    headers: dict[str, str] = field(default_factory=dict)


def raw(job: Job, urls: Urls, outputs_dir: Path) -> Raw:
    """``response=raw``: one output as it is, several as the parts of a ``multipart/related`` body."""
    selected = selected_outputs(job)  # the job service fails a run without an output asked for
    if len(selected) > 1:
        return _multipart(job, urls, outputs_dir, selected)
    record, by_reference = selected[0]
    if by_reference:
        target = output_link(record, job, urls)
        return Raw(204, headers={"Link": f'<{target["href"]}>; rel="{RESULTS_REL}"; type="{target["type"]}"'})
    content_type, content = _content(record, outputs_dir)
    headers = output_headers(content_type, record.get("file"))
    if isinstance(content, Path):
        return Raw(file=content, content_type=content_type, headers=headers)
    return Raw(body=content, content_type=content_type, headers=headers)


def _content(record: dict[str, Any], outputs_dir: Path) -> tuple[str, Path | bytes]:
    """(content type, content) of an output by value: its file, a bounding box in JSON, or a literal's text."""
    if record.get("file"):
        return record.get("mime_type") or BINARY, outputs_dir / record["file"]
    if record["kind"] == "bbox":
        return JSON, json.dumps(bbox(record)).encode()
    return TEXT, record["value"].encode("utf-8")


def _part(record: dict[str, Any], by_reference: bool, job: Job, urls: Urls, outputs_dir: Path) -> tuple[str, bytes]:
    """(headers, content) of one output in a multipart body: by reference, no content and its location."""
    if by_reference:
        target = output_link(record, job, urls)
        return f"Content-Type: {target['type']}\r\nContent-Location: {target['href']}\r\n", b""
    content_type, content = _content(record, outputs_dir)
    return f"Content-Type: {content_type}\r\n", content.read_bytes() if isinstance(content, Path) else content


def _multipart(job: Job, urls: Urls, outputs_dir: Path, selected: list[tuple[dict[str, Any], bool]]) -> Raw:
    """OGC 18-062r2 7.11.4.3: each output a part named by its identifier (``Content-ID``)."""
    boundary = f"hpc-wps-{uuid.uuid4().hex}"  # never found in an output by chance
    body = bytearray()
    for record, by_reference in selected:
        headers, content = _part(record, by_reference, job, urls, outputs_dir)
        body += f"--{boundary}\r\nContent-ID: <{record['id']}>\r\n{headers}\r\n".encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    content_type = f'multipart/related; boundary="{boundary}"; type="{JSON}"'
    return Raw(body=bytes(body), content_type=content_type, headers={"Content-Security-Policy": SANDBOX})
