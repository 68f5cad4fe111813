"""XML (HTTP POST) requests: a hardened parser, dispatch by namespace and local name, never by prefix.

Documents with a DTD are refused outright: no entity of any kind is ever expanded or fetched.
"""

from __future__ import annotations

from lxml import etree

from app.wps.errors import OWSException, invalid, missing
from app.wps.namespaces import OWS11, OWS20, WPS10, WPS20, XLINK_HREF
from app.wps.requests import DescribeProcess, Execute, GetCapabilities, JobRequest, OutputDefinition, WPSRequest
from processes.numbers import parse_double

PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False, remove_comments=True
)


def parse_document(body: bytes) -> etree._Element:
    if not body.strip():
        raise missing("request body")
    try:
        root = etree.fromstring(body, PARSER)
    except etree.XMLSyntaxError as exc:
        raise OWSException(
            "NoApplicableCode", f"the request is not well-formed XML: {exc.msg}", "request", status=400
        ) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise invalid("request", "documents with a DTD or entity declarations are not accepted")
    return root


def _text(element: etree._Element | None) -> str:
    return "".join(element.itertext()).strip() if element is not None else ""


def _identifier(element: etree._Element, ows: str, locator: str = "Identifier") -> str:
    text = _text(element.find(f"{{{ows}}}Identifier"))
    if not text:
        raise missing(locator)
    return text


def _complex_content(data: etree._Element) -> str:
    """The content of a complex data element: its XML children serialized, or its text (JSON, CDATA, base64)."""
    children = [c for c in data if isinstance(c.tag, str)]
    if children:
        return "".join(etree.tostring(c, encoding="unicode", with_tail=False) for c in children)
    return data.text or ""


def _floats(text: str, locator: str) -> list[float]:
    try:
        return [parse_double(v) for v in text.split()]
    except ValueError:
        raise invalid(locator, f"{text!r} is not a list of numbers") from None


def _bbox(element: etree._Element, ows: str, ident: str) -> dict[str, object]:
    lower = _floats(_text(element.find(f"{{{ows}}}LowerCorner")), ident)
    upper = _floats(_text(element.find(f"{{{ows}}}UpperCorner")), ident)
    return {"id": ident, "data_kind": "bbox", "lower": lower, "upper": upper, "crs": element.get("crs")}


def _reference(ref: etree._Element, wps: str, ident: str, kind: str | None) -> dict[str, object]:
    href = ref.get(XLINK_HREF) or ref.get("href")
    if not href:
        raise missing(f"{ident} xlink:href")
    spec: dict[str, object] = {
        "id": ident,
        "data_kind": kind,
        "href": href,
        "method": (ref.get("method") or "GET").upper(),
        "mime_type": ref.get("mimeType"),
        "encoding": ref.get("encoding"),
        "schema": ref.get("schema"),
    }
    headers = {h.get("key"): h.get("value") for h in ref.findall(f"{{{wps}}}Header") if h.get("key")}
    if headers:
        spec["headers"] = headers
    body = ref.find(f"{{{wps}}}Body")
    if body is not None:
        spec["body"] = _complex_content(body)
        spec["method"] = "POST"
    return spec


def _input10(element: etree._Element) -> dict[str, object]:
    ident = _identifier(element, OWS11, "Input Identifier")
    ref = element.find(f"{{{WPS10}}}Reference")
    if ref is not None:
        return _reference(ref, WPS10, ident, None)
    data = element.find(f"{{{WPS10}}}Data")
    if data is None or len(data) == 0:
        raise missing(ident)
    child = data[0]
    local = etree.QName(child).localname
    if local == "LiteralData":
        return {"id": ident, "data_kind": "literal", "value": child.text or "", "uom": child.get("uom")}
    if local == "ComplexData":
        return {
            "id": ident,
            "data_kind": "complex",
            "value": _complex_content(child),
            "mime_type": child.get("mimeType"),
            "encoding": child.get("encoding"),
            "schema": child.get("schema"),
        }
    if local == "BoundingBoxData":
        return _bbox(child, OWS11, ident) | {"crs": child.get("crs")}
    raise invalid(ident, f"unknown data element {local}")


def _output10(element: etree._Element, transmission: str | None) -> OutputDefinition:
    as_reference = element.get("asReference")
    if as_reference is not None:
        transmission = "reference" if as_reference.lower() == "true" else "value"
    return OutputDefinition(
        _identifier(element, OWS11, "Output Identifier"),
        transmission,
        element.get("mimeType"),
        element.get("encoding"),
        element.get("schema"),
        element.get("uom"),
    )


def _flag(element: etree._Element, name: str) -> bool:
    value = (element.get(name) or "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise invalid(name, f"{name} must be true or false")
    return value in ("true", "1")


def _execute10(root: etree._Element) -> Execute:
    request = Execute(
        version=root.get("version") or "1.0.0", identifier=_identifier(root, OWS11), language=root.get("language")
    )
    request.inputs = [_input10(e) for e in root.iterfind(f"{{{WPS10}}}DataInputs/{{{WPS10}}}Input")]
    form = root.find(f"{{{WPS10}}}ResponseForm")
    if form is not None:
        raw = form.find(f"{{{WPS10}}}RawDataOutput")
        document = form.find(f"{{{WPS10}}}ResponseDocument")
        if raw is not None:
            request.response = "raw"
            request.outputs = [_output10(raw, None)]
        elif document is not None:
            request.outputs = [_output10(e, "value") for e in document.iterfind(f"{{{WPS10}}}Output")]
            request.store = _flag(document, "storeExecuteResponse")
            request.status = _flag(document, "status")
            request.lineage = _flag(document, "lineage")
    request.mode = "async" if request.store else "sync"
    return request


def _input20(element: etree._Element) -> list[dict[str, object]]:
    ident = element.get("id")
    if not ident:
        raise missing("Input id")
    ref = element.find(f"{{{WPS20}}}Reference")
    if ref is not None:
        return [_reference(ref, WPS20, ident, None)]
    data = element.find(f"{{{WPS20}}}Data")
    if data is None:
        if element.find(f"{{{WPS20}}}Input") is not None:
            raise OWSException("OptionNotSupported", "nested inputs are not supported", ident)
        raise missing(ident)
    literal = data.find(f"{{{WPS20}}}LiteralValue")
    if literal is not None:
        return [{"id": ident, "data_kind": "literal", "value": literal.text or "", "uom": literal.get("uom")}]
    bbox = data.find(f"{{{OWS20}}}BoundingBox")
    if bbox is not None:
        return [_bbox(bbox, OWS20, ident)]
    return [
        {
            "id": ident,
            "data_kind": None,  # text in wps:Data is a literal for a literal input, complex data otherwise
            "value": _complex_content(data),
            "mime_type": data.get("mimeType"),
            "encoding": data.get("encoding"),
            "schema": data.get("schema"),
        }
    ]


def _execute20(root: etree._Element) -> Execute:
    mode = root.get("mode") or "auto"
    response = root.get("response") or "document"
    if mode not in ("sync", "async", "auto"):
        raise OWSException("NoSuchMode", f"unknown execution mode {mode}", "mode")
    if response not in ("document", "raw"):
        raise invalid("response", f"response must be document or raw, not {response}")
    request = Execute(version="2.0.0", identifier=_identifier(root, OWS20), mode=mode, response=response)
    for element in root.iterfind(f"{{{WPS20}}}Input"):
        request.inputs.extend(_input20(element))
    for element in root.iterfind(f"{{{WPS20}}}Output"):
        ident = element.get("id")
        if not ident:
            raise missing("Output id")
        transmission = element.get("transmission")
        if transmission not in (None, "value", "reference"):
            raise invalid(ident, f"transmission must be value or reference, not {transmission}")
        request.outputs.append(
            OutputDefinition(
                ident, transmission, element.get("mimeType"), element.get("encoding"), element.get("schema")
            )
        )
    return request


def _versions(root: etree._Element, ows: str) -> tuple[str, ...]:
    accept = root.find(f"{{{ows}}}AcceptVersions")
    if accept is None:
        return ()
    return tuple(_text(v) for v in accept.iterfind(f"{{{ows}}}Version"))


def parse_xml(body: bytes) -> WPSRequest:
    root = parse_document(body)
    qname = etree.QName(root)
    namespace, local = qname.namespace, qname.localname
    if namespace not in (WPS10, WPS20):
        raise OWSException("OperationNotSupported", f"unknown request element {root.tag}", local)
    if root.get("service", "WPS").upper() != "WPS":
        raise invalid("service", "service must be WPS")
    ows = OWS11 if namespace == WPS10 else OWS20
    version = "1.0.0" if namespace == WPS10 else "2.0.0"
    if local == "GetCapabilities":
        versions = _versions(root, ows)
        return GetCapabilities(versions or ((version,) if namespace == WPS20 else ()), root.get("language"))
    if local == "DescribeProcess":
        identifiers = tuple(t for e in root.iterfind(f"{{{ows}}}Identifier") if (t := _text(e)))
        if not identifiers:
            raise missing("Identifier")
        return DescribeProcess(root.get("version") or version, identifiers, root.get("language"))
    if local == "Execute":
        return _execute10(root) if namespace == WPS10 else _execute20(root)
    if namespace == WPS20 and local in ("GetStatus", "GetResult", "Dismiss"):
        job_id = _text(root.find(f"{{{WPS20}}}JobID"))
        if not job_id:
            raise missing("JobID")
        return JobRequest(local, job_id)
    raise OWSException("OperationNotSupported", f"the operation {local} is not supported", local)
