"""Output data by value: how a complex output file is embedded in a response document."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from lxml import etree

from app.wps.namespaces import Maker, is_xml_safe
from app.wps.parse_xml import PARSER
from scheduler.job import Job

TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/geo+json")


def is_xml(mime_type: str) -> bool:
    return mime_type in ("text/xml", "application/xml") or mime_type.endswith("+xml")


def is_text(mime_type: str) -> bool:
    return mime_type.startswith("text/") or mime_type in TEXT_TYPES or mime_type.endswith(("+xml", "+json"))


def embed(record: dict[str, Any], path: Path) -> tuple[Any, str | None]:
    """(content to put inside the data element, the encoding to declare).

    XML is embedded as elements when it parses; other text as text; anything else as base64.
    """
    mime = record.get("mime_type") or "application/octet-stream"
    raw = path.read_bytes()
    if is_xml(mime):
        try:
            return etree.fromstring(raw, PARSER), record.get("encoding")
        except etree.XMLSyntaxError:
            pass
    if is_text(mime) and record.get("encoding") != "base64":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and is_xml_safe(text):
            return text, record.get("encoding")
    return base64.b64encode(raw).decode("ascii"), "base64"


def selected_outputs(job: Job) -> list[tuple[dict[str, Any], bool]]:
    """(record, by reference) for each output the request asked for, or every output if it named none."""
    requested = {o["id"]: o for o in job.request.get("outputs", [])}
    selected = []
    for record in job.outputs or []:
        if requested and record["id"] not in requested:
            continue
        by_reference = requested.get(record["id"], {}).get("transmission") == "reference" and bool(record.get("file"))
        selected.append((record, by_reference))
    return selected


def corners(ows: Maker, lower: list[float], upper: list[float]) -> list[etree._Element]:
    """ows:LowerCorner and ows:UpperCorner of a bounding box, in either OWS version."""
    return [ows.LowerCorner(" ".join(map(str, lower))), ows.UpperCorner(" ".join(map(str, upper)))]
