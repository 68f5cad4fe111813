"""A job's outputs as every protocol binding shows them: which ones a response carries, by value or by
reference, and whether an output's bytes are text. The encodings (WPS XML, OGC API JSON) are the
bindings' own."""

from __future__ import annotations

from typing import Any

from scheduler.job import Job

TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/geo+json")


def is_xml(mime_type: str) -> bool:
    return mime_type in ("text/xml", "application/xml") or mime_type.endswith("+xml")


def is_text(mime_type: str) -> bool:
    return mime_type.startswith("text/") or mime_type in TEXT_TYPES or mime_type.endswith(("+xml", "+json"))


def text_of(record: dict[str, Any], raw: bytes) -> str | None:
    """An output's bytes as text, when its type is a text type, it is not declared base64 and the
    bytes are UTF-8; None otherwise (a document then carries it base64)."""
    mime = record.get("mime_type") or "application/octet-stream"
    if not is_text(mime) or record.get("encoding") == "base64":
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


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
