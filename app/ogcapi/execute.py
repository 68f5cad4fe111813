"""An execute request (``POST /processes/{id}/execution``, OGC 18-062r2 7.11) read into what the
WPS Execute parsers produce (``app.wps.requests.Execute``), so one set of checks
(``app/wps/validate.py: job_request``) turns either into the request a job stores: every rule about
inputs, formats, occurrences, bounding boxes, references and resources holds the same whichever
protocol a client speaks.

What is this encoding's own is read here: the JSON forms of a value (plain, qualified with a format,
a link, a bounding box, an array of them for inputs that take several), outputs with a format and a
transmission mode, ``response`` (raw or document), the ``subscriber`` callbacks, and the execution
mode from the ``Prefer`` header and the process's job control options.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.ogcapi.errors import bad_request
from app.ogcapi.schemas import crs_uri
from app.wps.requests import Execute, OutputDefinition
from processes.model import BoundingBoxInput, ComplexInput, Input, Process
from scheduler.models import JobMode

VERSION = "2.0.0"  # the WPS version whose exception codes the shared checks use; its codes are the richer
RESPONSES = ("raw", "document")
TRANSMISSIONS = ("value", "reference")
SUBSCRIBER_KEYS = {"successUri": "success_uri", "failedUri": "failed_uri", "inProgressUri": "in_progress_uri"}
MAX_URI = 2048


@dataclass(frozen=True)
class ExecuteRequest:
    execute: Execute  # inputs and outputs as the shared checks read them
    # The callbacks as ``scheduler/subscribers.py: Subscribers`` takes them (success_uri, failed_uri,
    # in_progress_uri); None when the request names none.
    subscribers: dict[str, str] | None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be a JSON object", where)
    return value


def _given(body: dict[str, Any], key: str) -> Any:
    """A member that may be left out or null (an empty object then), never another falsy value."""
    value = body.get(key)
    return {} if value is None else value


def _text(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{where} must be a string", where)
    return value


def _scalar(ident: str, value: Any) -> str:
    """A JSON string, number or boolean as the text a literal is read from."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value
    raise bad_request(f"input {ident}: a literal value is a string, number or boolean", ident)


def _data(ident: str, declared: Input | None, value: Any) -> dict[str, Any]:
    """An inline value: a literal's text, or a complex input's content (JSON values serialized)."""
    if isinstance(declared, ComplexInput) and not isinstance(value, str):
        if value is None:
            raise bad_request(f"input {ident}: null is not a value", ident)
        return {"value": json.dumps(value), "mime_type": "application/json"}
    return {"value": _scalar(ident, value)}


def _bbox(ident: str, declared: Input | None, value: dict[str, Any]) -> dict[str, Any]:
    numbers = value["bbox"]
    if (
        not isinstance(numbers, list)
        or len(numbers) not in (4, 6)
        or not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers)
    ):
        raise bad_request(f"input {ident}: bbox is a list of 4 or 6 numbers", ident)
    half = len(numbers) // 2
    spec: dict[str, Any] = {"data_kind": "bbox", "lower": numbers[:half], "upper": numbers[half:]}
    crs = _text(value.get("crs"), f"{ident}.crs")
    if crs and isinstance(declared, BoundingBoxInput):  # a URI of a CRS the process names otherwise
        crs = next((c for c in declared.crss if crs_uri(c) == crs), crs)
    return spec | {"crs": crs}


def _occurrence(ident: str, declared: Input | None, value: Any) -> dict[str, Any]:
    """One value of an input, in any of the forms of ``inlineOrRefData``, as the shared checks read it."""
    # The kind of data sent, for the shared checks; a bounding box in text is read as WPS KVP writes it.
    kind = declared.kind if declared is not None and not isinstance(declared, BoundingBoxInput) else None
    spec: dict[str, Any] = {"id": ident}
    if isinstance(value, dict) and "href" in value:
        href = _text(value["href"], f"{ident}.href")
        if not href:
            raise bad_request(f"input {ident}: href is empty", ident)
        return spec | {"href": href, "mime_type": _text(value.get("type"), f"{ident}.type")}
    if isinstance(value, dict) and "bbox" in value:
        return spec | _bbox(ident, declared, value)
    if isinstance(value, dict) and "value" in value:  # qualified: a value with its format
        data = _data(ident, declared, value["value"])
        schema = value.get("schema")
        return (
            spec
            | data
            | {
                "data_kind": kind,
                "mime_type": _text(value.get("mediaType"), f"{ident}.mediaType") or data.get("mime_type"),
                "encoding": _text(value.get("encoding"), f"{ident}.encoding"),
                "schema": _text(schema, f"{ident}.schema") if not isinstance(schema, dict) else json.dumps(schema),
            }
        )
    if isinstance(value, dict) and not isinstance(declared, ComplexInput):
        raise bad_request(f"input {ident}: an object is a value only for complex inputs", ident)
    return spec | _data(ident, declared, value) | {"data_kind": kind}


def _input_values(process: Process, ident: str, value: Any) -> list[dict[str, Any]]:
    """An array gives several values of an input; for a complex input that takes one, it is one JSON value."""
    declared = process.input(ident)
    if isinstance(value, list) and not (isinstance(declared, ComplexInput) and declared.max_occurs == 1):
        return [_occurrence(ident, declared, v) for v in value]
    return [_occurrence(ident, declared, value)]


def _outputs(body: dict[str, Any]) -> list[OutputDefinition]:
    definitions = []
    for ident, wanted in _object(_given(body, "outputs"), "outputs").items():
        wanted = _object(wanted, f"outputs.{ident}")
        transmission = wanted.get("transmissionMode")
        if transmission is not None and transmission not in TRANSMISSIONS:
            raise bad_request(f"output {ident}: transmissionMode is value or reference", ident)
        fmt = _object(_given(wanted, "format"), f"outputs.{ident}.format")
        schema = fmt.get("schema")
        definitions.append(
            OutputDefinition(
                ident,
                transmission,
                _text(fmt.get("mediaType"), f"outputs.{ident}.format.mediaType"),
                _text(fmt.get("encoding"), f"outputs.{ident}.format.encoding"),
                _text(schema, f"outputs.{ident}.format.schema") if not isinstance(schema, dict) else json.dumps(schema),
            )
        )
    return definitions


def _response(body: dict[str, Any]) -> str:
    """``raw`` (the standard's default): one output as it is, several as a multipart body."""
    response = body.get("response", "raw")
    if response not in RESPONSES:
        raise bad_request("response is raw or document", "response")
    return response


def _uri(value: Any, where: str) -> str:
    text = _text(value, where) or ""
    parts = urlsplit(text)
    if len(text) > MAX_URI or parts.scheme not in ("http", "https") or not parts.hostname or not text.isprintable():
        raise bad_request(f"{where} must be an http or https URL", where)
    if any(c.isspace() for c in text):
        raise bad_request(f"{where} must be an http or https URL", where)
    return text


def _subscribers(body: dict[str, Any]) -> dict[str, str] | None:
    if body.get("subscriber") is None:
        return None
    given = _object(body["subscriber"], "subscriber")
    unknown = sorted(set(given) - set(SUBSCRIBER_KEYS))
    if unknown:
        raise bad_request(f"subscriber has no {unknown[0]}; it takes {', '.join(SUBSCRIBER_KEYS)}", "subscriber")
    return {SUBSCRIBER_KEYS[key]: _uri(uri, f"subscriber.{key}") for key, uri in given.items() if uri is not None}


def parse_execute(process: Process, body: Any) -> ExecuteRequest:
    body = _object(body, "body")
    inputs = []
    for ident, value in _object(_given(body, "inputs"), "inputs").items():
        inputs.extend(_input_values(process, ident, value))
    outputs = _outputs(body)
    execute = Execute(VERSION, process.identifier, inputs, outputs, response=_response(body))
    return ExecuteRequest(execute, _subscribers(body))


def execution_mode(process: Process, prefer: str) -> tuple[JobMode, bool]:
    """(the mode, whether it is the one ``Prefer`` asked for): asynchronous when the client prefers it
    and the process allows it, else synchronous when the process allows that, else asynchronous."""
    wants_async = any(p.split(";", 1)[0].strip().lower() == "respond-async" for p in prefer.split(","))
    if wants_async and process.async_allowed:
        return JobMode.ASYNC, True
    if process.sync_allowed:
        return JobMode.SYNC, False
    return JobMode.ASYNC, False
