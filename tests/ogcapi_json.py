"""Validation of OGC API - Processes JSON documents against the official Part 1 1.0 schemas in
../shared/ogcapi-schemas, read in place through a ``referencing`` registry (never copied).

The schemas are OpenAPI 3.0 schema objects, validated with JSON Schema draft 4 semantics as the
folder's README says. ``results.json`` has a known flaw (a plain string value matches two branches of
a ``oneOf``), so result documents are checked output by output against the branch their structure
names (``validate_results``).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.xsd import SHARED, require

SCHEMAS = SHARED / "ogcapi-schemas"
BASE = "https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi/schemas/"


def _retrieve(uri: str) -> Resource[Any]:
    if not uri.startswith(BASE):
        raise LookupError(f"not a schema of the shared folder: {uri}")
    contents = json.loads((SCHEMAS / uri[len(BASE) :]).read_text(encoding="utf-8"))
    return Resource.from_contents(contents, default_specification=DRAFT4)


@functools.cache
def _validator(name: str) -> Draft4Validator:
    return Draft4Validator(
        {"$ref": f"{BASE}{name}.json"},
        registry=Registry(retrieve=_retrieve),  # type: ignore[call-arg]
        format_checker=Draft4Validator.FORMAT_CHECKER,
    )


def validate(document: Any, name: str) -> Any:
    """``document`` valid against the official schema ``name`` (``statusInfo``, ``jobList``...), or a
    failure listing every error; returns the document."""
    require(SCHEMAS, "the OGC API - Processes schemas")
    errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return document


def validate_results(document: dict[str, Any]) -> dict[str, Any]:
    """A results document, output by output: a link, a qualified value (its format; its value shows
    the flaw), a bounding box or a plain value.

    A bounding box's ``bbox`` is checked against bbox.json; its ``crs`` is not, as 1.0's bbox.json
    admits the two CRS84 URIs only, and a process's boxes are in the CRSs it declares."""
    assert isinstance(document, dict)
    for value in document.values():
        if isinstance(value, dict) and "href" in value:
            validate(value, "link")
        elif isinstance(value, dict) and "bbox" in value:
            validate({"bbox": value["bbox"]}, "bbox")
        elif isinstance(value, dict):  # qualifiedInputValue.json, but for the flaw its value shares
            assert "value" in value, value
            validate({k: v for k, v in value.items() if k != "value"}, "format")
        else:
            assert isinstance(value, str | int | float | bool | list), value
    return document
