"""PyWPS 4.8 itself, as the oracle of the PyWPS adapter's tests, and what its documents and hpc-wps's
say, read into plain values that can be compared.

The oracle is PyWPS's own WSGI application (``pywps.Service``) behind werkzeug's test client, serving the
very process classes hpc-wps serves. Documents are compared for what a client reads of them; the
differences hpc-wps documents (README, "Serving PyWPS processes") are normalized here, each where it
is read, and nowhere else:

- literal values are compared as PyWPS converts them (PyWPS writes ``True`` and ``2024-01-01 00:00:00``
  where XML Schema, and hpc-wps, write ``true`` and ``2024-01-01T00:00:00``);
- an empty ``ows:Abstract`` is no abstract; a literal input without a list of values allows any value
  (PyWPS writes no element there, which its schema does not allow);
- exception locators are not compared (PyWPS leaves most of them empty);
- a literal output's unit is its code (PyWPS writes OGC's URN for it, ``urn:ogc:def:uom:OGC:1.0:metre``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lxml import etree
from pywps import Service, configuration
from pywps.inout.literaltypes import convert
from werkzeug.test import Client

from tests.processes import pywps_procs

XLINK = "{http://www.w3.org/1999/xlink}"


class Oracle:
    """PyWPS serving ``pywps_procs``; every request reloads its configuration first, since hpc-wps's
    synchronous jobs in this test process point PyWPS's (global) configuration at themselves."""

    def __init__(self, workdir: Path) -> None:
        self.config = workdir / "pywps.cfg"
        (workdir / "outputs").mkdir()
        (workdir / "tmp").mkdir()
        self.config.write_text(
            "[server]\nurl = http://oracle/wps\noutputurl = http://oracle/outputs\n"
            f"outputpath = {workdir / 'outputs'}\nworkdir = {workdir / 'tmp'}\nmaxsingleinputsize = 10mb\n"
            "[logging]\nlevel = INFO\ndatabase = sqlite:///:memory:\n",
            encoding="utf-8",
        )
        processes = [p() if isinstance(p, type) else p for p in pywps_procs.PROCESSES]
        self.client = Client(Service(processes, [str(self.config)]))

    def get(self, query: str) -> tuple[int, bytes]:
        configuration.load_configuration([str(self.config)])
        response = self.client.get(f"/wps?service=WPS&version=1.0.0&{query}")
        return response.status_code, response.get_data()


@contextmanager
def oracle(workdir: Path) -> Iterator[Oracle]:
    yield Oracle(workdir)
    configuration.load_configuration([])


def _local(element: Any) -> str:
    return etree.QName(element).localname


def _child(element: Any, name: str) -> Any:
    return next((c for c in element if isinstance(c.tag, str) and _local(c) == name), None)


def _children(element: Any, name: str) -> list[Any]:
    return [c for c in element.iter() if isinstance(c.tag, str) and _local(c) == name]


def _text(element: Any, name: str) -> str:
    found = _child(element, name) if element is not None else None
    return (found.text or "").strip() if found is not None else ""


def literal(data_type: str, text: str) -> Any:
    """A literal as PyWPS reads it, so that both spellings of a value compare equal."""
    value = convert(data_type or "string", text)
    return value.geturl() if hasattr(value, "geturl") else value


def _format(fmt: Any) -> tuple[str, str, str]:
    return (_text(fmt, "MimeType"), _text(fmt, "Encoding"), _text(fmt, "Schema"))


def _domain(body: Any) -> dict[str, Any]:
    data_type = _text(body, "DataType")
    allowed = _child(body, "AllowedValues")
    values, ranges = [], []
    if allowed is not None:
        values = [literal(data_type, v.text) for v in _children(allowed, "Value")]
        for r in _children(allowed, "Range"):
            ranges.append(
                (
                    literal(data_type, _text(r, "MinimumValue")),
                    literal(data_type, _text(r, "MaximumValue")),
                    literal(data_type, _text(r, "Spacing")) if _text(r, "Spacing") else None,
                    r.get("{http://www.opengis.net/ows/1.1}rangeClosure") or "closed",
                )
            )
    reference = _child(body, "ValuesReference")
    uoms = _child(body, "UOMs")
    default = _text(body, "DefaultValue")
    return {
        "data_type": data_type,
        "values": values,
        "ranges": ranges,
        "values_reference": reference.get("{http://www.opengis.net/ows/1.1}reference")
        if reference is not None
        else None,
        "default": literal(data_type, default) if default else None,
        "uoms": [u.text for u in _children(_child(uoms, "Supported"), "UOM")] if uoms is not None else [],
    }


def _parameter(element: Any) -> dict[str, Any]:
    described: dict[str, Any] = {
        "identifier": _text(element, "Identifier"),
        "title": _text(element, "Title"),
        "abstract": _text(element, "Abstract"),
        "min_occurs": element.get("minOccurs"),
        "max_occurs": element.get("maxOccurs"),
    }
    for kind in ("LiteralData", "LiteralOutput"):
        if (body := _child(element, kind)) is not None:
            described |= {"kind": "literal"} | _domain(body)
    for kind in ("ComplexData", "ComplexOutput"):
        if (body := _child(element, kind)) is not None:
            described |= {
                "kind": "complex",
                "default": _format(_child(_child(body, "Default"), "Format")),
                "formats": [_format(f) for f in _children(_child(body, "Supported"), "Format")],
            }
    for kind in ("BoundingBoxData", "BoundingBoxOutput"):
        if (body := _child(element, kind)) is not None:
            described |= {
                "kind": "bbox",
                "default": _text(_child(body, "Default"), "CRS"),
                "crss": [c.text for c in _children(_child(body, "Supported"), "CRS")],
            }
    return described


def description(document: bytes) -> dict[str, Any]:
    """A WPS 1.0.0 ProcessDescription as a client reads it."""
    process = _children(etree.fromstring(document), "ProcessDescription")[0]
    inputs = _child(process, "DataInputs")
    return {
        "identifier": _text(process, "Identifier"),
        "title": _text(process, "Title"),
        "abstract": _text(process, "Abstract"),
        "version": process.get("{http://www.opengis.net/wps/1.0.0}processVersion"),
        "store": process.get("storeSupported"),
        "status": process.get("statusSupported"),
        "metadata": [
            (m.get(f"{XLINK}title"), m.get(f"{XLINK}href"), m.get(f"{XLINK}role"))
            for m in process
            if isinstance(m.tag, str) and _local(m) == "Metadata"
        ],
        "inputs": [_parameter(i) for i in (inputs if inputs is not None else [])],
        "outputs": [_parameter(o) for o in _child(process, "ProcessOutputs")],
    }


def outputs(document: bytes) -> dict[str, Any]:
    """The outputs of a WPS 1.0.0 ExecuteResponse: literals as PyWPS reads them, complex data as text
    (JSON as its value), bounding boxes as their numbers and CRS."""
    found: dict[str, Any] = {}
    for output in _children(etree.fromstring(document), "Output"):
        identifier = _text(output, "Identifier")
        data = _child(output, "Data")
        if data is None:
            found[identifier] = ("reference", _child(output, "Reference").get("mimeType"))
        elif (value := _child(data, "LiteralData")) is not None:
            uom = (value.get("uom") or "").rsplit(":", 1)[-1] or None  # PyWPS writes OGC's URN of the unit
            found[identifier] = (literal(value.get("dataType"), value.text or ""), uom)
        elif (value := _child(data, "ComplexData")) is not None:
            text = "".join(value.itertext()).strip()
            mime = value.get("mimeType")
            found[identifier] = (json.loads(text) if "json" in (mime or "") else text, mime)
        elif (value := _child(data, "BoundingBoxData")) is not None:
            corners = [float(n) for n in (_text(value, "LowerCorner") + " " + _text(value, "UpperCorner")).split()]
            found[identifier] = (corners, value.get("crs"))
    return found


def failure(document: bytes) -> tuple[str, str]:
    """(exceptionCode, text) of an ExceptionReport, or of the ProcessFailed status of an ExecuteResponse."""
    exception = _children(etree.fromstring(document), "Exception")[0]
    return exception.get("exceptionCode"), _text(exception, "ExceptionText")
