"""Literal data types: the XML Schema names WPS uses, and how values are read and written.

Both protocol versions name a literal type by its XML Schema type name (``ows:DataType`` text), and the
OGC test suite picks inputs by that text, so the names here are exactly those names.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from processes.numbers import XML_SPACE, parse_double, parse_integer

XSD_REFERENCE = "http://www.w3.org/TR/xmlschema-2/#"


class LiteralValueError(ValueError):
    """A literal value that does not read as its declared type or lies outside its allowed values."""


def _parse_boolean(text: str) -> bool:
    lowered = text.strip(XML_SPACE).lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise LiteralValueError(f"{text!r} is not a boolean (true, false, 1 or 0)")


def _parse_datetime(text: str) -> _dt.datetime:
    cleaned = text.strip(XML_SPACE)
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    return _dt.datetime.fromisoformat(cleaned)


def _parse_date(text: str) -> _dt.date:
    return _dt.date.fromisoformat(text.strip(XML_SPACE))


def _parse_time(text: str) -> _dt.time:
    cleaned = text.strip(XML_SPACE)
    return _dt.time.fromisoformat(cleaned[:-1] + "+00:00" if cleaned.endswith("Z") else cleaned)


def _parse_non_negative(text: str) -> int:
    value = parse_integer(text)
    if value < 0:
        raise LiteralValueError(f"{text!r} is negative")
    return value


def _parse_positive(text: str) -> int:
    value = parse_integer(text)
    if value < 1:
        raise LiteralValueError(f"{text!r} is not positive")
    return value


def _parse_anyuri(text: str) -> str:
    if any(c.isspace() for c in text.strip()) or not text.strip():
        raise LiteralValueError(f"{text!r} is not a URI")
    return text.strip()


def _format_boolean(value: Any) -> str:
    return "true" if value else "false"


def _format_number(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def _format_datetime(value: Any) -> str:
    return value.isoformat() if isinstance(value, _dt.date | _dt.time) else str(value)


@dataclass(frozen=True)
class LiteralType:
    """One XML Schema type: its name, how text becomes a Python value, and back."""

    name: str
    parse: Callable[[str], Any]
    format: Callable[[Any], str]
    ordered: bool

    @property
    def reference(self) -> str:
        return XSD_REFERENCE + self.name

    def read(self, text: str) -> Any:
        """Parse ``text``; every failure becomes :class:`LiteralValueError` with a readable reason."""
        try:
            return self.parse(text)
        except LiteralValueError:
            raise
        except (ValueError, TypeError, OverflowError):
            raise LiteralValueError(f"{text!r} is not a valid {self.name}") from None


TYPES: dict[str, LiteralType] = {
    t.name: t
    for t in (
        LiteralType("string", str, str, False),
        LiteralType("integer", parse_integer, str, True),
        LiteralType("double", parse_double, _format_number, True),
        LiteralType("float", parse_double, _format_number, True),
        LiteralType("boolean", _parse_boolean, _format_boolean, False),
        LiteralType("dateTime", _parse_datetime, _format_datetime, True),
        LiteralType("anyURI", _parse_anyuri, str, False),
        # The further types PyWPS processes declare (angle and scale are OGC's names, read as doubles).
        LiteralType("date", _parse_date, _format_datetime, True),
        LiteralType("time", _parse_time, _format_datetime, True),
        LiteralType("nonNegativeInteger", _parse_non_negative, str, True),
        LiteralType("positiveInteger", _parse_positive, str, True),
        LiteralType("angle", parse_double, _format_number, True),
        LiteralType("scale", parse_double, _format_number, True),
    )
}


def literal_type(name: str) -> LiteralType:
    try:
        return TYPES[name]
    except KeyError:
        raise ValueError(f"unknown literal data type {name!r}; known: {', '.join(TYPES)}") from None
