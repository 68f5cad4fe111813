"""Numbers as XML Schema writes them: ASCII digits only, whatever Python's ``int`` and ``float`` admit.

Python reads far more than a number in a WPS request may be: ``int("1_0")`` is 10, ``int("１０")``
(full-width) and ``int("١٠")`` (Arabic-Indic) are 10 as well, ``float("inf")``, ``float("nan")`` and
``float("infinity")`` are accepted, and ``str.strip`` removes non-breaking and ideographic spaces. A
value another implementation (a client, a batch scheduler, a process in another language) would read
differently, or not at all, must not be read here as a number either; so every number a request carries
(literal inputs, bounding box corners, resource requests) is matched against the lexical space of
xs:integer or xs:double first, with ASCII ``[0-9]`` (never ``\\d``, which matches every Unicode digit).

xs:double also allows ``INF``, ``-INF`` and ``NaN``, and exponents that overflow (``1e400`` reads as
INF). They are lexically doubles, but no input of this service has a use for a value that is not
finite, so :func:`parse_double` refuses them, with a message that says so.
"""

from __future__ import annotations

import math
import re

# XML's whitespace (xs:whitespace="collapse" trims only these four), not Unicode's.
XML_SPACE = " \t\n\r"
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DOUBLE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?INF|NaN")


def parse_integer(text: str) -> int:
    """An xs:integer: optional sign, ASCII digits; XML whitespace around it is ignored."""
    stripped = text.strip(XML_SPACE)
    if not _INTEGER.fullmatch(stripped):
        raise ValueError(f"{text!r} is not an integer (ASCII digits, optionally signed)")
    return int(stripped)


def parse_double(text: str) -> float:
    """A finite xs:double: ``12``, ``-1.5``, ``.5``, ``2E-3``; never INF, NaN or an overflowing exponent."""
    stripped = text.strip(XML_SPACE)
    if not _DOUBLE.fullmatch(stripped):
        raise ValueError(f"{text!r} is not a number (ASCII digits, an optional fraction and exponent)")
    value = float(stripped)
    if not math.isfinite(value):
        raise ValueError(f"{stripped!r} is not a finite number")
    return value
