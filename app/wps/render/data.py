"""Output data by value: how a complex output file is embedded in a response document."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from lxml import etree

from app.outputs import is_xml, text_of
from app.wps.namespaces import Maker, is_xml_safe
from app.wps.parse_xml import PARSER


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
    text = text_of(record, raw)
    if text is not None and is_xml_safe(text):
        return text, record.get("encoding")
    return base64.b64encode(raw).decode("ascii"), "base64"


def corners(ows: Maker, lower: list[float], upper: list[float]) -> list[etree._Element]:
    """ows:LowerCorner and ows:UpperCorner of a bounding box, in either OWS version."""
    return [ows.LowerCorner(" ".join(map(str, lower))), ows.UpperCorner(" ".join(map(str, upper)))]
