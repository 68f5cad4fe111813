"""The JSON Schema of each input and output of a process, as its description shows it
(``schema`` of an input or output description, OGC 18-062r2 7.11.2.4).

Literal types become JSON types with their allowed values (an enumeration, or minimum and maximum of
a range); complex data becomes a string of each media type it accepts (``contentMediaType``; a JSON
format also admits a JSON value), binary ones base64 (``contentEncoding``); a bounding box the
standard's ``bbox`` object, its ``crs`` one of the process's CRSs as URIs.
"""

from __future__ import annotations

from typing import Any

from app.outputs import is_text
from processes.model import (
    BoundingBoxOutput,
    ComplexInput,
    ComplexOutput,
    Format,
    Input,
    LiteralInput,
    LiteralOutput,
    Output,
    Range,
)

JSON_TYPES = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "double": {"type": "number"},
    "float": {"type": "number"},
    "boolean": {"type": "boolean"},
    "dateTime": {"type": "string", "format": "date-time"},
    "anyURI": {"type": "string", "format": "uri"},
}
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/"


def crs_uri(crs: str) -> str:
    """``EPSG:4326`` and ``urn:ogc:def:crs:EPSG::4326`` as the OGC's URI; any other name unchanged."""
    lowered = crs.lower()
    for prefix in ("epsg:", "urn:ogc:def:crs:epsg::"):
        if lowered.startswith(prefix) and crs[len(prefix) :].isdigit():
            return EPSG_URI + crs[len(prefix) :]
    return crs


def _literal(data_type: str, allowed: tuple[Any, ...] | None, default: str | None = None) -> dict[str, Any]:
    schema = dict(JSON_TYPES.get(data_type, {"type": "string"}))
    ranges = [a for a in allowed or () if isinstance(a, Range)]
    values = [a for a in allowed or () if not isinstance(a, Range)]
    if values and not ranges:
        schema["enum"] = values
    elif len(ranges) == 1 and not values:
        schema.update(_range(ranges[0]))
    elif allowed:  # values and ranges, or several ranges: any one of them
        choices = [{**schema, **_range(r)} for r in ranges]
        if values:
            choices.insert(0, {**schema, "enum": values})
        schema = {"anyOf": choices}
    if default is not None:
        schema["default"] = default
    return schema


def _range(allowed: Range) -> dict[str, Any]:
    """OpenAPI 3.0 spelling (boolean exclusiveMinimum), as the standard's schemas are written."""
    schema: dict[str, Any] = {}
    if allowed.minimum is not None:
        schema["minimum"] = allowed.minimum
        if allowed.closure in ("open", "open-closed"):
            schema["exclusiveMinimum"] = True
    if allowed.maximum is not None:
        schema["maximum"] = allowed.maximum
        if allowed.closure in ("open", "closed-open"):
            schema["exclusiveMaximum"] = True
    return schema


def _format(fmt: Format) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "contentMediaType": fmt.mime_type}
    if fmt.encoding == "base64" or not is_text(fmt.mime_type):
        schema["contentEncoding"] = "base64"
    if fmt.schema:
        schema["contentSchema"] = fmt.schema
    if fmt.mime_type == "application/json" or fmt.mime_type.endswith("+json"):
        return {"anyOf": [schema, {"type": "object", "contentMediaType": fmt.mime_type}]}
    return schema


def _complex(formats: tuple[Format, ...]) -> dict[str, Any]:
    schemas = [_format(f) for f in formats]
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def _bbox(crss: tuple[str, ...], dimensions: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["bbox"],
        "properties": {
            "bbox": {
                "type": "array",
                "items": {"type": "number"},
                "minItems": 2 * dimensions,
                "maxItems": 2 * dimensions,
            },
            "crs": {"type": "string", "format": "uri", "enum": [crs_uri(c) for c in crss]},
        },
    }


def input_schema(declared: Input) -> dict[str, Any]:
    if isinstance(declared, LiteralInput):
        return _literal(declared.data_type, declared.allowed_values, declared.default)
    if isinstance(declared, ComplexInput):
        return _complex(declared.formats)
    return _bbox(declared.crss, declared.dimensions)


def output_schema(declared: Output) -> dict[str, Any]:
    if isinstance(declared, LiteralOutput):
        return _literal(declared.data_type, None)
    if isinstance(declared, ComplexOutput):
        return _complex(declared.formats)
    assert isinstance(declared, BoundingBoxOutput)
    return _bbox(declared.crss, declared.dimensions)
