"""Namespaces and element makers, one set per protocol version.

Makers drop ``None`` children and attributes, so an optional element is written ``X(...) if y else
None`` and each encoder reads like the schema it follows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML = "http://www.w3.org/XML/1998/namespace"
OWS11 = "http://www.opengis.net/ows/1.1"
OWS20 = "http://www.opengis.net/ows/2.0"
WPS10 = "http://www.opengis.net/wps/1.0.0"
WPS20 = "http://www.opengis.net/wps/2.0"

SCHEMAS = "http://schemas.opengis.net"
WPS10_SCHEMA = f"{SCHEMAS}/wps/1.0.0"
WPS20_SCHEMA = f"{SCHEMAS}/wps/2.0/wps.xsd"

# Characters XML 1.0 cannot carry at all, not even escaped.
NOT_XML_CHAR = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """``text`` with every character XML cannot carry shown as its code point, e.g. ``\\x00``."""
    return NOT_XML_CHAR.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def is_xml_safe(text: str) -> bool:
    return NOT_XML_CHAR.search(text) is None


XLINK_HREF = f"{{{XLINK}}}href"
XML_LANG = f"{{{XML}}}lang"
XSI_SCHEMA_LOCATION = f"{{{XSI}}}schemaLocation"

NSMAP10 = {"wps": WPS10, "ows": OWS11, "xlink": XLINK, "xsi": XSI}
NSMAP20 = {"wps": WPS20, "ows": OWS20, "xlink": XLINK, "xsi": XSI}


def _flatten(children: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for child in children:
        if child is None:
            continue
        if isinstance(child, (list, tuple)):
            out.extend(_flatten(tuple(child)))
        elif isinstance(child, (int, float)):
            out.append(str(child))
        elif isinstance(child, str):
            out.append(xml_safe(child))
        elif isinstance(child, dict):
            out.append({k: xml_safe(str(v)) for k, v in child.items() if v is not None})
        else:
            out.append(child)
    return out


class Maker:
    """An ElementMaker for one namespace that skips None and flattens lists of children.

    Every text and attribute value passes through :func:`xml_safe` here, the one door all documents
    are built through: whatever a job's row holds (a message, a value, an href), rendering it can never
    fail, and every document stays well-formed. Messages are cleaned before (``processes.text``)."""

    def __init__(self, namespace: str, nsmap: dict[str, str]) -> None:
        self.namespace = namespace
        self._maker = ElementMaker(namespace=namespace, nsmap=nsmap)

    def __getattr__(self, tag: str) -> Callable[..., etree._Element]:
        make = getattr(self._maker, tag)

        def build(*children: Any, **attrib: Any) -> etree._Element:
            return make(*_flatten(children), **{k: xml_safe(str(v)) for k, v in attrib.items() if v is not None})

        return build


WPS1 = Maker(WPS10, NSMAP10)
OWS1 = Maker(OWS11, NSMAP10)
WPS2 = Maker(WPS20, NSMAP20)
OWS2 = Maker(OWS20, NSMAP20)
