"""Input values as a handler sees them, whichever way the client sent them (inline, base64, reference).

Complex data always lives in a file in the job directory, so a large input is never held in memory
unless the handler asks for its bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LiteralValue:
    value: Any
    uom: str | None = None


@dataclass(frozen=True)
class ComplexValue:
    path: Path
    mime_type: str
    encoding: str | None = None
    schema: str | None = None
    href: str | None = None  # the reference it was fetched from; None for data sent inline

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass(frozen=True)
class BoundingBox:
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    crs: str | None = None

    @property
    def dimensions(self) -> int:
        return len(self.lower)


InputValue = LiteralValue | ComplexValue | BoundingBox
