"""The vocabulary every room's settings are declared in: a documented field, the value parsers, and
the error a bad value raises.

It sits in the lowest room so that each room can declare the settings it reads beside its own code
(``scheduler/settings.py``, ``processes/container/settings.py``) without importing the web app; the
app reads the INI file once and hands each room its part.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import field
from typing import Any

from processes.numbers import XML_SPACE, parse_double


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the file, section and key."""


def parse_size(text: str) -> int:
    """Bytes from ``10MB``, ``512KiB``, ``1G`` or a bare number (units are powers of 1024)."""
    # re.ASCII: without it \d matches every Unicode digit (full-width, Arabic-Indic...), and float() reads them.
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*", text, re.IGNORECASE | re.ASCII)
    if not match:
        raise ValueError(f"{text!r} is not a size such as 10MB")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def parse_percent(text: str) -> float:
    """A share of something in percent, from ``90%`` or ``90``; 0 means the limit is off."""
    number = parse_double(text.strip(XML_SPACE).removesuffix("%"))
    if not 0 <= number <= 100:
        raise ValueError(f"{text!r} is not a percentage between 0 and 100")
    return number


def setting(
    default: Any, doc: str, *, parse: Callable[[str], Any] | None = None, choices: tuple[str, ...] | None = None
) -> Any:
    """A settings field with what the loader and ``hpc-wps config reference`` need to know of it:
    its documentation, and a parser or the allowed choices when plain type conversion is not enough."""
    metadata: dict[str, Any] = {"doc": doc}
    if parse is not None:
        metadata["parse"] = parse
    if choices is not None:
        metadata["choices"] = choices
    return field(default=default, metadata=metadata)


def size_setting(default: int, doc: str) -> Any:
    return setting(default, doc, parse=parse_size)


def derived(default: Any, doc: str) -> Any:
    """A field the app fills in from other settings (never a key of the INI file): the loader refuses
    it as a key and the reference leaves it out."""
    return field(default=default, metadata={"doc": doc, "derived": True})
