"""A PyWPS process as the process model: its description, once, at start.

Literal values are read by PyWPS itself (``PywpsLiteralInput.read``), so conversion, allowed values,
ranges and the validation ``mode`` behave exactly as under PyWPS; everything else the model holds is
plain data that travels to nodes with the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pywps import BoundingBoxInput, BoundingBoxOutput, ComplexInput, ComplexOutput

from processes import model
from processes.literals import LiteralValueError, literal_type
from processes.pywps_adapter.load import Source, prototype
from processes.pywps_adapter.values import plain, typed


def _metadata(items: Any) -> tuple[model.Metadata, ...]:
    return tuple(model.Metadata(m.title, m.href, m.role) for m in items or ())


def _header(put: Any) -> dict[str, Any]:
    return {
        "identifier": put.identifier,
        "title": put.title or put.identifier,
        "abstract": put.abstract or "",
        "keywords": tuple(put.keywords or ()),
        "metadata": _metadata(getattr(put, "metadata", ())),
    }


def _occurs(put: Any) -> dict[str, int]:
    return {"min_occurs": put.min_occurs, "max_occurs": put.max_occurs or model.UNBOUNDED}


def _format(fmt: Any) -> model.Format:
    return model.Format(fmt.mime_type, fmt.encoding or None, fmt.schema or None, fmt.extension or ".dat")


def _formats(put: Any) -> tuple[model.Format, ...]:
    return tuple(_format(f) for f in put.supported_formats) or (model.FORMAT_TEXT,)


def _uoms(put: Any) -> tuple[str, ...]:
    return tuple(u.uom for u in put.uoms or ())


@dataclass(frozen=True)
class PywpsLiteralInput(model.LiteralInput):
    """A literal input whose values PyWPS reads: its converters, allowed values and ``mode``."""

    source: Source | None = None

    def read(self, text: str) -> Any:
        assert self.source is not None
        declared = next(i for i in prototype(self.source).inputs if i.identifier == self.identifier)
        occurrence = declared.clone()
        try:
            occurrence.data = text
        except Exception as exc:  # PyWPS raises InvalidParameterValue, and ValueError from its converters
            raise LiteralValueError(getattr(exc, "description", None) or str(exc)) from None
        return plain(occurrence.data)


def _allowed(put: Any) -> tuple[Any, ...] | None:
    """PyWPS allowed values as the model's, typed so DescribeProcess writes them as XML Schema does."""
    if put.any_value or not put.allowed_values:
        return None
    items: list[Any] = []
    for allowed in put.allowed_values:
        if allowed.allowed_type == "range":
            items.append(
                model.Range(
                    typed(put.data_type, allowed.minval),
                    typed(put.data_type, allowed.maxval),
                    typed(put.data_type, allowed.spacing),
                    allowed.range_closure,
                )
            )
        else:
            items.append(typed(put.data_type, allowed.value))
    return tuple(items)


def _literal_input(put: Any, source: Source) -> model.LiteralInput:
    default = put._default  # PyWPS keeps the declared default here; .data holds it converted
    return PywpsLiteralInput(
        **_header(put),
        **_occurs(put),
        data_type=put.data_type,
        allowed_values=None if put.values_reference else _allowed(put),
        default=None if default is None else literal_type(put.data_type).format(put.data),
        uoms=_uoms(put),
        values_reference=put.values_reference.reference if put.values_reference else None,
        source=Source(source.path, source.identifier),
    )


def _input(put: Any, source: Source) -> model.Input:
    if isinstance(put, ComplexInput):
        return model.ComplexInput(**_header(put), **_occurs(put), formats=_formats(put))
    if isinstance(put, BoundingBoxInput):
        return model.BoundingBoxInput(
            **_header(put), **_occurs(put), crss=tuple(put.crss), dimensions=put.dimensions or 2
        )
    return _literal_input(put, source)


def _output(put: Any) -> model.Output:
    if isinstance(put, ComplexOutput):
        return model.ComplexOutput(**_header(put), formats=_formats(put))
    if isinstance(put, BoundingBoxOutput):
        return model.BoundingBoxOutput(**_header(put), crss=tuple(put.crss), dimensions=put.dimensions or 2)
    return model.LiteralOutput(**_header(put), data_type=put.data_type, uoms=_uoms(put))


def describe(process: Any, handler: Any) -> model.Process:
    """The model of one PyWPS process; ``handler`` runs it. An asynchronous job needs its response
    stored, so a process that does not support storing runs synchronously only."""
    source = handler.source
    store = process.store_supported == "true"
    return model.Process(
        identifier=process.identifier,
        title=process.title or process.identifier,
        handler=handler,
        abstract=process.abstract or "",
        version=str(process.version),
        keywords=tuple(process.keywords or ()),
        metadata=_metadata(process.metadata),
        inputs=tuple(_input(i, source) for i in process.inputs),
        outputs=tuple(_output(o) for o in process.outputs),
        store_supported=store,
        status_supported=process.status_supported == "true",
        async_allowed=store,
    )
