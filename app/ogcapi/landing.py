"""The landing page at the service root and the conformance declaration."""

from __future__ import annotations

from typing import Any

from app.ogcapi.processes import JOB_LIST_REL
from app.ogcapi.urls import OPENAPI, Urls, link

CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
CONFORMANCE = tuple(
    CONF + name
    for name in ("core", "ogc-process-description", "json", "html", "oas30", "job-list", "dismiss", "callback")
)


def landing_page(urls: Urls, title: str, description: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "links": [
            link(urls.landing(), "self", "this document"),
            link(urls.of("/api"), "service-desc", "the API definition (OpenAPI 3.0)", OPENAPI),
            link(urls.of("/api"), "service-doc", "the API documentation (OpenAPI 3.0)", OPENAPI),
            link(urls.of("/conformance"), "http://www.opengis.net/def/rel/ogc/1.0/conformance", "conformance"),
            link(urls.of("/processes"), "http://www.opengis.net/def/rel/ogc/1.0/processes", "processes"),
            link(urls.of("/jobs"), JOB_LIST_REL, "jobs"),
            link(urls.wps + "?service=WPS&request=GetCapabilities", "alternate", "WPS capabilities", "text/xml"),
        ],
    }


def conformance() -> dict[str, Any]:
    return {"conformsTo": list(CONFORMANCE)}
