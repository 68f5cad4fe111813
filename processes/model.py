"""Declarative descriptions of processes, their inputs and outputs.

The protocol renderers read these objects to describe a process, the request parsers to validate an
Execute, and the runtime to run it: one declaration serves all three, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from processes.literals import LiteralType, LiteralValueError, literal_type

if TYPE_CHECKING:
    from processes.context import JobContext

UNBOUNDED = 0  # max_occurs value meaning "any number"


@dataclass(frozen=True)
class Format:
    """A format a complex input or output accepts; the first of a list is the default."""

    mime_type: str
    encoding: str | None = None
    schema: str | None = None
    extension: str = ".dat"

    def matches(self, mime_type: str | None, encoding: str | None = None, schema: str | None = None) -> bool:
        return (
            (not mime_type or mime_type == self.mime_type)
            and (not encoding or encoding == (self.encoding or encoding))
            and (not schema or schema == (self.schema or schema))
        )


FORMAT_TEXT = Format("text/plain", extension=".txt")
FORMAT_JSON = Format("application/json", extension=".json")
FORMAT_XML = Format("text/xml", extension=".xml")
FORMAT_XML_APP = Format("application/xml", extension=".xml")
FORMAT_BINARY = Format("application/octet-stream", extension=".bin")


@dataclass(frozen=True)
class Range:
    """A closed, open or half-open interval of an ordered literal type, with an optional spacing."""

    minimum: Any = None
    maximum: Any = None
    spacing: Any = None
    closure: str = "closed"  # closed | open | closed-open | open-closed

    def contains(self, value: Any) -> bool:
        low_open = self.closure in ("open", "open-closed")
        high_open = self.closure in ("open", "closed-open")
        if self.minimum is not None and (value < self.minimum or (low_open and value == self.minimum)):
            return False
        return not (self.maximum is not None and (value > self.maximum or (high_open and value == self.maximum)))


@dataclass(frozen=True)
class Metadata:
    title: str
    href: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class _Parameter:
    identifier: str
    title: str
    abstract: str = ""
    keywords: tuple[str, ...] = ()
    metadata: tuple[Metadata, ...] = ()


@dataclass(frozen=True)
class _InputOccurs:
    min_occurs: int = 1
    max_occurs: int = 1  # UNBOUNDED for any number


@dataclass(frozen=True)
class LiteralInput(_InputOccurs, _Parameter):
    data_type: str = "string"
    allowed_values: tuple[Any | Range, ...] | None = None  # None: any value
    default: str | None = None
    uoms: tuple[str, ...] = ()
    # The URL of a list of the allowed values kept elsewhere (OWS ValuesReference): shown, not checked.
    values_reference: str | None = None

    kind = "literal"

    @property
    def type(self) -> LiteralType:
        return literal_type(self.data_type)

    def read(self, text: str) -> Any:
        """The typed value of ``text``, checked against the allowed values."""
        value = self.type.read(text)
        if self.allowed_values is None:
            return value
        for allowed in self.allowed_values:
            if isinstance(allowed, Range):
                if allowed.contains(value):
                    return value
            elif value == allowed:
                return value
        raise LiteralValueError(f"{text!r} is not among the allowed values of {self.identifier}")


@dataclass(frozen=True)
class ComplexInput(_InputOccurs, _Parameter):
    formats: tuple[Format, ...] = (FORMAT_TEXT,)
    maximum_megabytes: int | None = None

    kind = "complex"


@dataclass(frozen=True)
class BoundingBoxInput(_InputOccurs, _Parameter):
    crss: tuple[str, ...] = ("EPSG:4326",)
    dimensions: int = 2

    kind = "bbox"


@dataclass(frozen=True)
class LiteralOutput(_Parameter):
    data_type: str = "string"
    uoms: tuple[str, ...] = ()

    kind = "literal"

    @property
    def type(self) -> LiteralType:
        return literal_type(self.data_type)


@dataclass(frozen=True)
class ComplexOutput(_Parameter):
    formats: tuple[Format, ...] = (FORMAT_TEXT,)

    kind = "complex"


@dataclass(frozen=True)
class BoundingBoxOutput(_Parameter):
    crss: tuple[str, ...] = ("EPSG:4326",)
    dimensions: int = 2

    kind = "bbox"


Input = LiteralInput | ComplexInput | BoundingBoxInput
Output = LiteralOutput | ComplexOutput | BoundingBoxOutput
Handler = Callable[["JobContext"], None]


@dataclass(frozen=True)
class Process:
    """A process: its description, its handler, and how it may be run.

    ``inline_async`` lets the web worker run an asynchronous job itself before answering, as a WPS 2.0
    server may: meant for processes that finish in milliseconds (OGC's test suite polls an echo job's
    status right after submitting it and expects it to have succeeded).

    ``rerunnable`` declares that running a job again from the start is harmless (it changes nothing
    outside its own job directory): a job of it interrupted by a restart of the service is then
    queued again, once, instead of failed.
    """

    identifier: str
    title: str
    handler: Handler
    abstract: str = ""
    version: str = "1.0.0"
    keywords: tuple[str, ...] = ()
    metadata: tuple[Metadata, ...] = ()
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    store_supported: bool = True
    status_supported: bool = True
    sync_allowed: bool = True
    async_allowed: bool = True
    inline_async: bool = False
    rerunnable: bool = False
    aliases: tuple[str, ...] = ()
    resources: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for group in (self.inputs, self.outputs):
            ids = [p.identifier for p in group]
            if len(ids) != len(set(ids)):
                raise ValueError(f"process {self.identifier}: duplicate parameter identifiers {ids}")

    def input(self, identifier: str) -> Input | None:
        return next((i for i in self.inputs if i.identifier == identifier), None)

    def output(self, identifier: str) -> Output | None:
        return next((o for o in self.outputs if o.identifier == identifier), None)

    @property
    def job_control_options(self) -> tuple[str, ...]:
        options = []
        if self.sync_allowed:
            options.append("sync-execute")
        if self.async_allowed:
            options += ["async-execute", "dismiss"]
        return tuple(options)
