"""Container processes declared in a TOML file (``[docker] processes``), and per-process relaxations.

The file has one ``[[process]]`` table per process (see ``config/containers.example.toml``) and
optional ``[relax.PROCESS_ID]`` tables that relax the hardening of a process declared in code. A
relaxation inside a ``[[process]]`` table (``relax = {...}``) applies to that process. Only this file,
which the administrator owns, can relax the hardening: code cannot.

Every mistake raises :class:`ContainerConfigError` naming the file, the process and the key.
"""

from __future__ import annotations

import mimetypes
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processes.container.declare import container_process, relaxed
from processes.container.images import ImageRefused, admitted
from processes.container.settings import DockerSettings
from processes.container.spec import OutputSource, Relaxations, TemplateError
from processes.literals import TYPES
from processes.model import (
    FORMAT_BINARY,
    FORMAT_JSON,
    FORMAT_TEXT,
    FORMAT_XML,
    FORMAT_XML_APP,
    UNBOUNDED,
    BoundingBoxInput,
    BoundingBoxOutput,
    ComplexInput,
    ComplexOutput,
    Format,
    Input,
    LiteralInput,
    LiteralOutput,
    Output,
    Process,
    Range,
)
from processes.setting_fields import SettingsError, parse_size

KNOWN_FORMATS = {f.mime_type: f for f in (FORMAT_TEXT, FORMAT_JSON, FORMAT_XML, FORMAT_XML_APP, FORMAT_BINARY)}
PROCESS_KEYS = {
    "identifier",
    "title",
    "abstract",
    "version",
    "keywords",
    "image",
    "command",
    "entrypoint",
    "env",
    "workdir",
    "sync",
    "resources",
    "relax",
    "inputs",
    "outputs",
}
INPUT_KEYS = {
    "identifier",
    "title",
    "abstract",
    "type",
    "formats",
    "min_occurs",
    "max_occurs",
    "default",
    "allowed_values",
    "minimum",
    "maximum",
    "maximum_megabytes",
    "as_file",
    "crs",
}
OUTPUT_KEYS = {"identifier", "title", "abstract", "type", "formats", "from", "optional", "crs"}
RESOURCE_KEYS = {"memory", "cores", "pids", "walltime"}
RELAX_KEYS = {"network", "root", "read_only", "cap_add"}


class ContainerConfigError(SettingsError):
    pass


@dataclass(frozen=True)
class ContainerConfig:
    processes: tuple[Process, ...] = ()
    relax: dict[str, Relaxations] = field(default_factory=dict)

    def relaxations(self, process_id: str) -> Relaxations:
        return self.relax.get(process_id, Relaxations())

    def apply(self, processes: Sequence[Process]) -> list[Process]:
        """The processes with the relaxations this file grants baked into their container handlers, so
        whoever runs one (a web worker, the local pool, a node) needs no configuration to find them."""
        return [relaxed(p, self.relaxations(p.identifier)) for p in processes]


def _check_keys(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ContainerConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")


def _typed(value: Any, kind: type | tuple[type, ...], where: str, key: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ContainerConfigError(f"{where}: {key} must be a {names}, not {value!r}")
    return value


def _strings(value: Any, where: str, key: str) -> tuple[str, ...]:
    items = _typed(value, list, where, key)
    return tuple(_typed(item, str, where, key) for item in items)


def _format(value: Any, where: str) -> Format:
    if isinstance(value, str):
        if value in KNOWN_FORMATS:
            return KNOWN_FORMATS[value]
        return Format(value, extension=mimetypes.guess_extension(value, strict=False) or ".dat")
    table = _typed(value, dict, where, "formats")
    _check_keys(table, {"mime_type", "encoding", "schema", "extension"}, f"{where} format")
    if "mime_type" not in table:
        raise ContainerConfigError(f"{where}: a format needs its mime_type")
    mime = table["mime_type"]
    default_ext = KNOWN_FORMATS[mime].extension if mime in KNOWN_FORMATS else None
    return Format(
        mime,
        table.get("encoding"),
        table.get("schema"),
        table.get("extension") or default_ext or mimetypes.guess_extension(mime, strict=False) or ".dat",
    )


def _kind(table: dict[str, Any], where: str) -> str:
    """complex (formats given), bbox, or a literal data type (string by default)."""
    kind = table.get("type", "complex" if "formats" in table else "string")
    if kind not in ("complex", "bbox", *TYPES):
        raise ContainerConfigError(f"{where}: type {kind!r} is none of complex, bbox, {', '.join(TYPES)}")
    return kind


def _literal_text(value: Any, where: str, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(_typed(value, (str, int, float), where, key))


def _input(table: dict[str, Any], where: str) -> tuple[Input, bool]:
    _typed(table, dict, where, "inputs")
    _check_keys(table, INPUT_KEYS, where)
    if "identifier" not in table:
        raise ContainerConfigError(f"{where}: an input needs an identifier")
    ident = _typed(table["identifier"], str, where, "identifier")
    where = f"{where} {ident}"
    kind = _kind(table, where)
    common: dict[str, Any] = {
        "identifier": ident,
        "title": _typed(table.get("title", ident), str, where, "title"),
        "abstract": _typed(table.get("abstract", ""), str, where, "abstract"),
        "min_occurs": _typed(table.get("min_occurs", 0 if "default" in table else 1), int, where, "min_occurs"),
        "max_occurs": _typed(table.get("max_occurs", 1), int, where, "max_occurs"),
    }
    if common["max_occurs"] != UNBOUNDED and common["max_occurs"] < max(1, common["min_occurs"]):
        raise ContainerConfigError(f"{where}: max_occurs is below min_occurs (0 means any number)")
    as_file = _typed(table.get("as_file", False), bool, where, "as_file")
    if kind == "complex":
        formats = tuple(_format(f, where) for f in _typed(table.get("formats", ["text/plain"]), list, where, "formats"))
        if not formats:
            raise ContainerConfigError(f"{where}: formats is empty")
        for key in ("default", "allowed_values", "minimum", "maximum", "as_file", "crs"):
            if key in table:
                raise ContainerConfigError(f"{where}: {key} does not apply to a complex input")
        maximum = table.get("maximum_megabytes")
        return (
            ComplexInput(
                **common,
                formats=formats,
                maximum_megabytes=None if maximum is None else _typed(maximum, int, where, "maximum_megabytes"),
            ),
            False,
        )
    if kind == "bbox":
        return BoundingBoxInput(**common, crss=_strings(table.get("crs", ["EPSG:4326"]), where, "crs")), False
    allowed: list[Any] | None = None
    probe = LiteralInput(ident, ident, data_type=kind)
    try:
        if "allowed_values" in table:
            allowed = [probe.read(_literal_text(v, where, "allowed_values")) for v in table["allowed_values"]]
        if "minimum" in table or "maximum" in table:
            low = table.get("minimum")
            high = table.get("maximum")
            allowed = [
                *(allowed or []),
                Range(
                    None if low is None else probe.read(_literal_text(low, where, "minimum")),
                    None if high is None else probe.read(_literal_text(high, where, "maximum")),
                ),
            ]
        default = None if "default" not in table else _literal_text(table["default"], where, "default")
        literal = LiteralInput(
            **common, data_type=kind, allowed_values=tuple(allowed) if allowed else None, default=default
        )
        if default is not None:
            literal.read(default)
    except ValueError as exc:
        raise ContainerConfigError(f"{where}: {exc}") from None
    return literal, as_file


def _output(table: dict[str, Any], where: str) -> tuple[Output, OutputSource]:
    _typed(table, dict, where, "outputs")
    _check_keys(table, OUTPUT_KEYS, where)
    if "identifier" not in table or "from" not in table:
        raise ContainerConfigError(f"{where}: an output needs an identifier and from (stdout or a file)")
    ident = _typed(table["identifier"], str, where, "identifier")
    where = f"{where} {ident}"
    title = _typed(table.get("title", ident), str, where, "title")
    abstract = _typed(table.get("abstract", ""), str, where, "abstract")
    origin = _typed(table["from"], str, where, "from")
    optional = _typed(table.get("optional", False), bool, where, "optional")
    try:
        src = OutputSource(None if origin == "stdout" else origin, optional)
    except ValueError as exc:
        raise ContainerConfigError(f"{where}: {exc}") from None
    kind = _kind(table, where)
    output: Output
    if kind == "complex":
        formats = tuple(_format(f, where) for f in _typed(table.get("formats", ["text/plain"]), list, where, "formats"))
        output = ComplexOutput(ident, title, abstract, formats=formats)
    elif kind == "bbox":
        output = BoundingBoxOutput(ident, title, abstract, crss=_strings(table.get("crs", ["EPSG:4326"]), where, "crs"))
    else:
        output = LiteralOutput(ident, title, abstract, data_type=kind)
    return output, src


def relaxations(table: Any, where: str) -> Relaxations:
    table = _typed(table, dict, where, "relax")
    _check_keys(table, RELAX_KEYS, f"{where} relax")
    network = table.get("network", "none")
    if isinstance(network, bool):
        network = "bridge" if network else "none"
    return Relaxations(
        network=_typed(network, str, where, "relax.network"),
        root=_typed(table.get("root", False), bool, where, "relax.root"),
        read_only=_typed(table.get("read_only", True), bool, where, "relax.read_only"),
        cap_add=tuple(c.upper() for c in _strings(table.get("cap_add", []), where, "relax.cap_add")),
    )


def _resources(table: Any, where: str) -> dict[str, Any]:
    table = _typed(table, dict, where, "resources")
    _check_keys(table, RESOURCE_KEYS, f"{where} resources")
    out: dict[str, Any] = {}
    if "memory" in table:
        memory = table["memory"]
        try:
            out["memory"] = memory if isinstance(memory, int) and not isinstance(memory, bool) else parse_size(memory)
        except (TypeError, ValueError):
            raise ContainerConfigError(f"{where}: resources.memory {memory!r} is not a size such as 64MB") from None
    if "cores" in table:
        out["cores"] = float(_typed(table["cores"], (int, float), where, "resources.cores"))
    if "pids" in table:
        out["pids"] = _typed(table["pids"], int, where, "resources.pids")
    if "walltime" in table:
        out["walltime"] = float(_typed(table["walltime"], (int, float), where, "resources.walltime"))
    return out


def _process(table: Any, where: str, images: Sequence[str] | None) -> tuple[Process, Relaxations]:
    table = _typed(table, dict, where, "process")
    _check_keys(table, PROCESS_KEYS, where)
    if isinstance(table.get("identifier"), str):
        where = f"{where} {table['identifier']}"
    for key in ("identifier", "image", "command"):
        if key not in table:
            raise ContainerConfigError(f"{where}: a process needs {key}")
    ident = _typed(table["identifier"], str, where, "identifier")
    image = _typed(table["image"], str, where, "image")
    if images is not None:
        try:
            admitted(image, images)
        except ImageRefused as exc:
            raise ContainerConfigError(f"{where}: {exc}") from None
    command: list[str | tuple[str, ...]] = []
    for item in _typed(table["command"], list, where, "command"):
        command.append(item if isinstance(item, str) else _strings(item, where, "command"))
    inputs = [_input(t, f"{where} input") for t in _typed(table.get("inputs", []), list, where, "inputs")]
    outputs = [_output(t, f"{where} output") for t in _typed(table.get("outputs", []), list, where, "outputs")]
    env = _typed(table.get("env", {}), dict, where, "env")
    try:
        process = container_process(
            ident,
            _typed(table.get("title", ident), str, where, "title"),
            image,
            command,
            [i for i, _as_file in inputs],
            outputs,
            abstract=_typed(table.get("abstract", ""), str, where, "abstract"),
            version=_typed(table.get("version", "1.0.0"), str, where, "version"),
            keywords=_strings(table.get("keywords", []), where, "keywords"),
            literal_files=[i.identifier for i, as_file in inputs if as_file],
            entrypoint=None if "entrypoint" not in table else _strings(table["entrypoint"], where, "entrypoint"),
            env={_typed(k, str, where, "env"): _typed(v, str, where, f"env.{k}") for k, v in env.items()},
            workdir=_typed(table.get("workdir", "/outputs"), str, where, "workdir"),
            sync_allowed=_typed(table.get("sync", True), bool, where, "sync"),
            **_resources(table.get("resources", {}), where),
        )
    except (TemplateError, ValueError) as exc:
        raise ContainerConfigError(f"{where}: {exc}") from None
    return process, relaxations(table.get("relax", {}), where)


def parse_config(text: str, origin: str, images: Sequence[str] | None = None) -> ContainerConfig:
    """The processes and relaxations of a TOML document; ``images``: the allow-list to check them against."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContainerConfigError(f"{origin}: not valid TOML: {exc}") from None
    _check_keys(data, {"process", "relax"}, origin)
    processes: list[Process] = []
    relax: dict[str, Relaxations] = {}
    for index, table in enumerate(_typed(data.get("process", []), list, origin, "process")):
        process, relaxed = _process(table, f"{origin}: process #{index + 1}", images)
        if process.identifier in relax or any(p.identifier == process.identifier for p in processes):
            raise ContainerConfigError(f"{origin}: two processes have the identifier {process.identifier!r}")
        processes.append(process)
        if relaxed.relaxed:
            relax[process.identifier] = relaxed
    for ident, table in _typed(data.get("relax", {}), dict, origin, "relax").items():
        if ident in relax:
            raise ContainerConfigError(f"{origin}: [relax.{ident}] relaxes a process already relaxed in its table")
        relax[ident] = relaxations(table, f"{origin}: [relax.{ident}]")
    return ContainerConfig(tuple(processes), relax)


_CACHE: dict[tuple[str, int], ContainerConfig] = {}


def load_config(path: str | os.PathLike[str], images: Sequence[str] | None = None) -> ContainerConfig:
    """The file's processes and relaxations, read again only when the file changes."""
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
        key = (f"{path.resolve()}|{','.join(images) if images is not None else '-'}", stamp)
        if key not in _CACHE:
            _CACHE[key] = parse_config(path.read_text(encoding="utf-8"), str(path), images)
        return _CACHE[key]
    except OSError as exc:
        raise ContainerConfigError(f"{path}: cannot read the container processes: {exc.strerror}") from None


def configured(docker: DockerSettings) -> ContainerConfig:
    """The configuration named by ``[docker] processes`` (empty when none is named)."""
    if str(docker.processes) in ("", "."):
        return ContainerConfig()
    return load_config(docker.processes, docker.images)
