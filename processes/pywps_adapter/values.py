"""Values as PyWPS holds them, made into the Python values the process model writes."""

from __future__ import annotations

from typing import Any
from urllib.parse import ParseResult

from pywps.inout.literaltypes import convert


def plain(value: Any) -> Any:
    """PyWPS keeps an anyURI as the ``urlparse`` result: the model writes the URI itself."""
    return value.geturl() if isinstance(value, ParseResult) else value


def typed(data_type: str, value: Any) -> Any:
    """``value`` converted as PyWPS converts a value of ``data_type``; None stays None."""
    if value is None:
        return None
    return plain(convert(data_type, value))
