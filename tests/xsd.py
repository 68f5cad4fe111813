"""Offline validation against the official OGC schemas in ../shared/ogc-schemas, read in place.

Each schema is loaded once per test session (loading wpsAll.xsd or wps.xsd takes a noticeable
fraction of a second). The schemas import each other by http URLs; a resolver maps them to the files.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HPC_WPS_SHARED", ROOT.parent / "shared"))
SCHEMAS = SHARED / "ogc-schemas"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

WPS10 = "http://www.opengis.net/wps/1.0.0"
WPS20 = "http://www.opengis.net/wps/2.0"
OWS11 = "http://www.opengis.net/ows/1.1"
OWS20 = "http://www.opengis.net/ows/2.0"

ENTRY = {
    WPS10: "schemas.opengis.net/wps/1.0.0/wpsAll.xsd",
    WPS20: "schemas.opengis.net/wps/2.0/wps.xsd",
    OWS11: "schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd",
    OWS20: "schemas.opengis.net/ows/2.0/owsExceptionReport.xsd",
}
PREFIXES = {
    "http://schemas.opengis.net/": "schemas.opengis.net/",
    "https://schemas.opengis.net/": "schemas.opengis.net/",
    "http://www.w3.org/": "www.w3.org/",
}


def require(path: Path, what: str) -> None:
    """Skip outside CI when shared material is missing; in CI a missing piece is a failure."""
    if path.exists():
        return
    message = f"{what} not found at {path} (set HPC_WPS_SHARED to the shared/ folder)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class _Resolver(etree.Resolver):
    def resolve(self, url, public_id, context):  # type: ignore[no-untyped-def]
        for prefix, local in PREFIXES.items():
            if url and url.startswith(prefix):
                return self.resolve_filename(str(SCHEMAS / (local + url[len(prefix) :])), context)
        return None


@functools.cache
def schema_for(namespace: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Resolver())
    return etree.XMLSchema(etree.parse(str(SCHEMAS / ENTRY[namespace]), parser))


def validate(document: bytes) -> etree._Element:
    """Parse and validate ``document``; fails the test with the schema's own error message."""
    require(SCHEMAS, "the OGC schemas")
    root = etree.fromstring(document)
    namespace = etree.QName(root).namespace
    assert namespace in ENTRY, f"document in unknown namespace {namespace}: {document[:200]!r}"
    schema = schema_for(namespace)
    if not schema.validate(root):
        raise AssertionError(f"not valid against {ENTRY[namespace]}: {schema.error_log}\n{document[:3000].decode()}")
    return root
