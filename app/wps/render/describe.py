"""DescribeProcess documents for WPS 1.0.0 and 2.0, from the process model alone.

WPS 1.0.0 declares the elements below ProcessDescription unqualified (as its official example
shows); WPS 2.0 qualifies them, except LiteralDataDomain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lxml import etree
from lxml.builder import E

from app.wps.namespaces import (
    OWS1,
    OWS2,
    WPS1,
    WPS2,
    WPS10,
    WPS10_SCHEMA,
    WPS20,
    WPS20_SCHEMA,
    XLINK_HREF,
    XML_LANG,
    Maker,
)
from app.wps.render.common import process_version_20, serialize
from processes.model import (
    UNBOUNDED,
    BoundingBoxInput,
    BoundingBoxOutput,
    ComplexInput,
    ComplexOutput,
    Format,
    LiteralInput,
    LiteralOutput,
    Metadata,
    Process,
    Range,
)

PROCESS_VERSION_10 = f"{{{WPS10}}}processVersion"
XLINK_TITLE = "{http://www.w3.org/1999/xlink}title"
XLINK_ROLE = "{http://www.w3.org/1999/xlink}role"


def _metadata(ows: Maker, items: Sequence[Metadata]) -> list[etree._Element]:
    return [ows.Metadata({XLINK_TITLE: m.title, XLINK_HREF: m.href, XLINK_ROLE: m.role}) for m in items]


def _allowed(ows: Maker, spec: LiteralInput) -> etree._Element:
    if spec.values_reference is not None:
        # WPS 1.0.0 has an unqualified element of its own; 2.0 takes OWS 2.0's.
        if ows is OWS1:
            return E.ValuesReference({f"{{{ows.namespace}}}reference": spec.values_reference})
        return ows.ValuesReference({f"{{{ows.namespace}}}reference": spec.values_reference})
    if spec.allowed_values is None:
        return ows.AnyValue()
    fmt = spec.type.format
    items = []
    for allowed in spec.allowed_values:
        if isinstance(allowed, Range):
            items.append(
                ows.Range(
                    ows.MinimumValue(fmt(allowed.minimum)) if allowed.minimum is not None else None,
                    ows.MaximumValue(fmt(allowed.maximum)) if allowed.maximum is not None else None,
                    ows.Spacing(fmt(allowed.spacing)) if allowed.spacing is not None else None,
                    {f"{{{ows.namespace}}}rangeClosure": allowed.closure},
                )
            )
        else:
            items.append(ows.Value(fmt(allowed)))
    return ows.AllowedValues(items)


def _data_type(ows: Maker, spec: LiteralInput | LiteralOutput) -> etree._Element:
    return ows.DataType(spec.data_type, {f"{{{ows.namespace}}}reference": spec.type.reference})


# -- WPS 1.0.0 ---------------------------------------------------------------------------------------


def _format10(fmt: Format) -> etree._Element:
    return E.Format(
        E.MimeType(fmt.mime_type),
        *([E.Encoding(fmt.encoding)] if fmt.encoding else []),
        *([E.Schema(fmt.schema)] if fmt.schema else []),
    )


def _formats10(formats: Sequence[Format]) -> list[etree._Element]:
    return [E.Default(_format10(formats[0])), E.Supported(*[_format10(f) for f in formats])]


def _uoms10(uoms: Sequence[str]) -> list[etree._Element]:
    if not uoms:
        return []
    return [E.UOMs(E.Default(OWS1.UOM(uoms[0])), E.Supported(*[OWS1.UOM(u) for u in uoms]))]


def _crss10(crss: Sequence[str]) -> list[etree._Element]:
    return [E.Default(E.CRS(crss[0])), E.Supported(*[E.CRS(c) for c in crss])]


def _header10(spec: Any) -> list[etree._Element]:
    return [
        OWS1.Identifier(spec.identifier),
        OWS1.Title(spec.title),
        *([OWS1.Abstract(spec.abstract)] if spec.abstract else []),
        *_metadata(OWS1, spec.metadata),
    ]


def _input10(spec: Any, default_megabytes: int) -> etree._Element:
    if isinstance(spec, LiteralInput):
        body = E.LiteralData(
            _data_type(OWS1, spec),
            *_uoms10(spec.uoms),
            _allowed(OWS1, spec),
            *([E.DefaultValue(spec.default)] if spec.default is not None else []),
        )
    elif isinstance(spec, ComplexInput):
        body = E.ComplexData(*_formats10(spec.formats))
        body.set("maximumMegabytes", str(spec.maximum_megabytes or default_megabytes))
    else:
        body = E.BoundingBoxData(*_crss10(spec.crss))
    max_occurs = "unbounded" if spec.max_occurs == UNBOUNDED else str(spec.max_occurs)
    return E.Input(*_header10(spec), body, minOccurs=str(spec.min_occurs), maxOccurs=max_occurs)


def _output10(spec: Any) -> etree._Element:
    if isinstance(spec, LiteralOutput):
        body = E.LiteralOutput(_data_type(OWS1, spec), *_uoms10(spec.uoms))
    elif isinstance(spec, ComplexOutput):
        body = E.ComplexOutput(*_formats10(spec.formats))
    else:
        body = E.BoundingBoxOutput(*_crss10(spec.crss))
    return E.Output(*_header10(spec), body)


def process_description_10(process: Process, default_megabytes: int) -> etree._Element:
    """``default_megabytes``: the maximumMegabytes of complex inputs that declare none ([inputs] max_size)."""
    return E.ProcessDescription(
        *_header10(process),
        *([E.DataInputs(*[_input10(i, default_megabytes) for i in process.inputs])] if process.inputs else []),
        E.ProcessOutputs(*[_output10(o) for o in process.outputs]),
        {
            PROCESS_VERSION_10: process.version,
            "storeSupported": str(process.store_supported).lower(),
            "statusSupported": str(process.status_supported).lower(),
        },
    )


def describe_10(processes: Sequence[etree._Element], language: str) -> bytes:
    """``processes``: elements from :func:`process_description_10`, rendered once and copied in."""
    root = WPS1.ProcessDescriptions(list(processes), {XML_LANG: language}, service="WPS", version="1.0.0")
    return serialize(root, f"{WPS10} {WPS10_SCHEMA}/wpsDescribeProcess_response.xsd")


# -- WPS 2.0 -----------------------------------------------------------------------------------------


def _header20(spec: Any) -> list[Any]:
    return [
        OWS2.Title(spec.title),
        OWS2.Abstract(spec.abstract) if spec.abstract else None,
        OWS2.Keywords([OWS2.Keyword(k) for k in spec.keywords]) if spec.keywords else None,
        OWS2.Identifier(spec.identifier),
        _metadata(OWS2, spec.metadata),
    ]


def _formats20(formats: Sequence[Format], maximum_megabytes: int | None = None) -> list[etree._Element]:
    return [
        WPS2.Format(
            mimeType=f.mime_type,
            encoding=f.encoding,
            schema=f.schema,
            maximumMegabytes=maximum_megabytes,
            default="true" if i == 0 else None,
        )
        for i, f in enumerate(formats)
    ]


def _literal20(spec: LiteralInput | LiteralOutput) -> etree._Element:
    domain = E.LiteralDataDomain(
        _allowed(OWS2, spec) if isinstance(spec, LiteralInput) else OWS2.AnyValue(),
        _data_type(OWS2, spec),
        *([OWS2.UOM(spec.uoms[0])] if spec.uoms else []),
        *([OWS2.DefaultValue(spec.default)] if isinstance(spec, LiteralInput) and spec.default is not None else []),
        default="true",
    )
    return WPS2.LiteralData(_formats20((Format("text/plain"), Format("text/xml"))), domain)


def _data20(spec: Any, default_megabytes: int | None = None) -> etree._Element:
    if isinstance(spec, (LiteralInput, LiteralOutput)):
        return _literal20(spec)
    if isinstance(spec, ComplexInput):
        return WPS2.ComplexData(_formats20(spec.formats, spec.maximum_megabytes or default_megabytes))
    if isinstance(spec, ComplexOutput):
        return WPS2.ComplexData(_formats20(spec.formats))
    assert isinstance(spec, (BoundingBoxInput, BoundingBoxOutput))
    return WPS2.BoundingBoxData(
        _formats20((Format("text/plain"),)),
        [WPS2.SupportedCRS(c, default="true" if i == 0 else None) for i, c in enumerate(spec.crss)],
    )


def process_offering_20(process: Process, default_megabytes: int) -> etree._Element:
    """``default_megabytes``: the maximumMegabytes of complex inputs that declare none ([inputs] max_size)."""
    inputs = [
        WPS2.Input(
            _header20(i),
            _data20(i, default_megabytes),
            minOccurs=i.min_occurs,
            maxOccurs="unbounded" if i.max_occurs == UNBOUNDED else i.max_occurs,
        )
        for i in process.inputs
    ]
    outputs = [WPS2.Output(_header20(o), _data20(o)) for o in process.outputs]
    return WPS2.ProcessOffering(
        WPS2.Process(_header20(process), inputs, outputs),
        jobControlOptions=" ".join(process.job_control_options),
        outputTransmission="value reference",
        processVersion=process_version_20(process.version),
    )


def describe_20(offerings: Sequence[etree._Element]) -> bytes:
    return serialize(WPS2.ProcessOfferings(list(offerings)), f"{WPS20} {WPS20_SCHEMA}")
