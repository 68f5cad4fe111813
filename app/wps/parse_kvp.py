"""KVP (HTTP GET) requests: parameter names case-insensitive, values percent-decoded per component.

``DataInputs``, ``ResponseDocument`` and ``RawDataOutput`` hold entries ``id=value@attr=v;id2=...``.
They reach the service in one of two forms, told apart from the still-encoded value (``_entry_text``):

- Separators literal, as WPS 1.0.0 writes them (``DataInputs=name=a%3Bb``): the value is split on ``;``,
  ``@`` and ``=`` first and each part decoded after, so an encoded separator inside a value stays part
  of it (``a;b``). This is the form of the standard, of curl and of hand-written URLs.
- Encoded as a whole (``DataInputs=name%3DWorld``): what a client sends that hands the string
  ``name=World`` to its URL builder, as Python's ``requests``, ``urllib.parse.urlencode``, JavaScript's
  ``URLSearchParams`` and HTML forms do. PyWPS (werkzeug's ``request.args``) and GeoServer (the servlet's
  parameters) decode every parameter once before they split it, so for them this is simply
  ``name=World``; hpc-wps reads it the same way.

The rule: a value with a literal ``;``, ``@`` or ``=`` has literal separators; so has one with no
separator, literal or encoded. A value with none literal whose decoding has one was encoded as a whole:
read literally it would be one entry whose identifier holds the separator (``name=World``, an input
without a value; the refusal clients met before). It is decoded once and the result read as the first
form, each part decoded once more, as PyWPS's ``get_data_from_kvp`` does.
That second step is how a client of such a URL builder puts a separator inside a value: it encodes the
value itself first (``quote("a;b")``), as it must for PyWPS. GeoServer skips that step; the two differ
only for a value that still holds a ``%xx`` after the first decoding, read here as its client meant it.

In both forms ``+`` is a space, as in every other parameter and as PyWPS and GeoServer read it
(``%2B`` is a plus).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote, unquote_plus

from app.wps.errors import OWSException, invalid, missing
from app.wps.requests import DescribeProcess, Execute, GetCapabilities, JobRequest, OutputDefinition, WPSRequest

SEPARATORS = ";@="
ATTRIBUTE_NAMES = {
    "mimetype": "mime_type",
    "encoding": "encoding",
    "schema": "schema",
    "uom": "uom",
    "datatype": "data_type",
    "href": "href",
    "xlink:href": "href",
    "method": "method",
    "asreference": "as_reference",
    "crs": "crs",
}


def raw_params(query: bytes) -> dict[str, str]:
    """Lower-cased names to still-encoded values; a repeated name keeps its first value."""
    params: dict[str, str] = {}
    for pair in query.decode("latin-1").split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        params.setdefault(unquote_plus(name).strip().lower(), value)
    return params


def _value(params: dict[str, str], name: str) -> str | None:
    raw = params.get(name)
    return None if raw is None else unquote_plus(raw, encoding="utf-8").strip()


def _required(params: dict[str, str], name: str) -> str:
    value = _value(params, name)
    if not value:
        raise missing(name)
    return value


def _entry_text(raw: str) -> tuple[str, Callable[[str], str]]:
    """The text whose ``;``, ``@`` and ``=`` separate entries, and how each part of it is decoded (the
    rule of the module's docstring): the raw value itself when it has a literal separator or none hides
    under its encoding, else its one decoding."""
    if not any(separator in raw for separator in SEPARATORS):
        decoded = unquote_plus(raw, encoding="utf-8")
        if any(separator in decoded for separator in SEPARATORS):
            return decoded, unquote
    return raw, unquote_plus


def _split_entries(raw: str, locator: str) -> list[tuple[str, str | None, dict[str, str]]]:
    """``id=value@attr=v;id2`` into (id, value, attributes), each part decoded on its own."""
    text, decode = _entry_text(raw)
    entries = []
    for entry in text.split(";"):
        if not entry.strip():
            continue
        head, *attr_parts = entry.split("@")
        ident, has_value, value = head.partition("=")
        ident = decode(ident).strip()
        if not ident:
            raise invalid(locator, f"an entry of {locator} has no identifier")
        attributes = {}
        for part in attr_parts:
            name, _, attr_value = part.partition("=")
            key = ATTRIBUTE_NAMES.get(decode(name).strip().lower())
            if key is None:
                raise invalid(locator, f"unknown attribute {decode(name)!r} of {ident} in {locator}")
            attributes[key] = decode(attr_value)
        entries.append((ident, decode(value) if has_value else None, attributes))
    return entries


def _bool(params: dict[str, str], name: str) -> bool:
    value = (_value(params, name) or "false").lower()
    if value not in ("true", "false"):
        raise invalid(name, f"{name} must be true or false")
    return value == "true"


def _execute(params: dict[str, str], version: str) -> Execute:
    request = Execute(version=version, identifier=_required(params, "identifier"), language=_value(params, "language"))
    for ident, value, attributes in _split_entries(params.get("datainputs", ""), "DataInputs"):
        spec: dict[str, object] = {"id": ident, "data_kind": None}
        if "href" in attributes:
            spec["href"] = attributes.pop("href")
        elif value is None:
            raise invalid("DataInputs", f"input {ident} has no value")
        else:
            spec["value"] = value
        spec.update(attributes)
        request.inputs.append(spec)
    raw_output = params.get("rawdataoutput")
    document = params.get("responsedocument")
    if raw_output is not None and document is not None:
        raise invalid("ResponseForm", "RawDataOutput and ResponseDocument exclude each other")
    for ident, _value_unused, attributes in _split_entries(raw_output or document or "", "ResponseForm"):
        as_reference = attributes.pop("as_reference", "false").lower()
        if as_reference not in ("true", "false"):
            raise invalid(ident, "asReference must be true or false")
        request.outputs.append(
            OutputDefinition(
                ident,
                "reference" if as_reference == "true" else ("value" if raw_output is None else None),
                attributes.get("mime_type"),
                attributes.get("encoding"),
                attributes.get("schema"),
                attributes.get("uom"),
            )
        )
    if raw_output is not None:
        if len(request.outputs) != 1:
            raise invalid("RawDataOutput", "RawDataOutput names exactly one output")
        request.response = "raw"
    request.store = _bool(params, "storeexecuteresponse")
    request.status = _bool(params, "status")
    request.lineage = _bool(params, "lineage")
    request.mode = "async" if request.store else "sync"
    return request


def parse_kvp(query: bytes) -> WPSRequest:
    params = raw_params(query)
    operation = _value(params, "request")
    if not operation:
        raise missing("request")
    service = _value(params, "service")
    if not service:
        raise missing("service")
    if service.upper() != "WPS":
        raise invalid("service", f"service must be WPS, not {service}")
    lowered = operation.lower()
    if lowered == "getcapabilities":
        versions = _value(params, "acceptversions") or _value(params, "version") or ""
        return GetCapabilities(tuple(v.strip() for v in versions.split(",") if v.strip()), _value(params, "language"))
    version = _value(params, "version")
    if not version:
        raise missing("version")
    if lowered == "describeprocess":
        identifiers = tuple(i.strip() for i in _required(params, "identifier").split(",") if i.strip())
        return DescribeProcess(version, identifiers, _value(params, "language"))
    if lowered == "execute":
        if version.startswith("2"):
            raise OWSException("OperationNotSupported", "WPS 2.0 Execute is XML POST only", "request")
        return _execute(params, version)
    if lowered in ("getstatus", "getresult", "dismiss"):
        return JobRequest(
            operation={"getstatus": "GetStatus", "getresult": "GetResult", "dismiss": "Dismiss"}[lowered],
            job_id=_required(params, "jobid"),
            version=version,
        )
    raise OWSException("OperationNotSupported", f"the operation {operation} is not supported", operation)
