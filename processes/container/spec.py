"""Container processes: an image, a command template, and typed WPS inputs and outputs.

A container process is an ordinary :class:`processes.model.Process` (so describing, validating and the
job table treat it like any other) whose ``resources["container"]`` holds a :class:`ContainerSpec`. Its
handler runs the container and waits for it, which serves synchronous Execute requests and the local
pool; asynchronous jobs go to the docker executor, which runs the same spec without blocking the
dispatcher.

The command is a list of argument templates. ``{input}`` is replaced by the input's value (a literal's
text, or the path below ``/inputs`` of a complex input's file), never through a shell: a value such as
``; rm -rf / #`` arrives as one argument, verbatim. A template that is exactly ``{input}`` expands to one
argument per value (none for an absent optional input); a nested list of templates is a group, dropped
whole when one of its inputs is absent (``["--mode", "{mode}"]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from processes.model import (
    Input,
)

INPUTS_DIR = "/inputs"
OUTPUTS_DIR = "/outputs"
# Placeholders every command may use besides its inputs.
BUILTIN_PLACEHOLDERS = {"inputs": INPUTS_DIR, "outputs": OUTPUTS_DIR}

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.\-]*)\}|[{}]")

Arg = str | tuple[str, ...]


class TemplateError(ValueError):
    """A command template that cannot be rendered (unknown placeholder, stray brace)."""


@dataclass(frozen=True)
class OutputSource:
    """Where an output comes from: a file below ``/outputs`` (``file``) or the standard output."""

    file: str | None = None  # relative path below /outputs; None: standard output
    optional: bool = False  # a missing file leaves the output out instead of failing the job

    def __post_init__(self) -> None:
        if self.file is not None:
            path = PurePosixPath(self.file)
            if not self.file or path.is_absolute() or ".." in path.parts or str(path) in (".", ""):
                raise ValueError(f"output file {self.file!r} must be a relative path below {OUTPUTS_DIR}")

    @property
    def is_stdout(self) -> bool:
        return self.file is None

    def describe(self) -> str:
        return "its standard output" if self.file is None else f"{OUTPUTS_DIR}/{self.file}"


STDOUT = OutputSource()


def source(value: OutputSource | str) -> OutputSource:
    """``"stdout"`` or a relative file path, or an OutputSource as it is."""
    if isinstance(value, OutputSource):
        return value
    return STDOUT if value == "stdout" else OutputSource(value)


@dataclass(frozen=True)
class Relaxations:
    """What an administrator allows one process beyond the hardened defaults (configuration only)."""

    network: str = "none"  # a network mode: none, bridge, host, or a network's name
    root: bool = False  # run as uid 0 instead of [docker] user
    read_only: bool = True  # False: a writable root filesystem
    cap_add: tuple[str, ...] = ()  # capabilities given back after dropping all

    @property
    def relaxed(self) -> bool:
        return self != Relaxations()


HARDENED = Relaxations()


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    command: tuple[Arg, ...]
    outputs: tuple[tuple[str, OutputSource], ...] = ()  # (output identifier, where it comes from)
    literal_files: frozenset[str] = frozenset()  # literal inputs handed over as files, not as arguments
    entrypoint: tuple[str, ...] | None = None  # None: the image's own
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = OUTPUTS_DIR
    memory: int | None = None  # bytes; None: [docker] memory
    cores: float | None = None  # None: [docker] cores
    pids: int | None = None  # None: [docker] pids
    walltime: float | None = None  # seconds; None: [docker] walltime

    def source(self, output_id: str) -> OutputSource | None:
        return next((s for i, s in self.outputs if i == output_id), None)


def placeholders(template: str) -> list[str]:
    """The placeholder names in one argument template (raises TemplateError for stray braces)."""
    names = []
    for match in _TOKEN.finditer(template):
        text = match.group(0)
        if text in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise TemplateError(f"stray {text!r} in {template!r} (write {text * 2} for a literal brace)")
        names.append(match.group(1))
    return names


def _substitute(template: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text in ("{{", "}}"):
            return text[0]
        return values[match.group(1)]

    return _TOKEN.sub(replace, template)


def render_command(command: Sequence[Arg], arguments: Mapping[str, Sequence[str]]) -> list[str]:
    """The argument list: ``arguments`` maps each input to the argument strings of its values.

    A template that is exactly one placeholder gives one argument per value; a placeholder inside
    other text takes the input's single value (several values are an error); a group (nested
    sequence) is dropped whole when one of its inputs has no value. Values are never re-parsed.
    """
    available = {**{k: [v] for k, v in BUILTIN_PLACEHOLDERS.items()}, **arguments}
    argv: list[str] = []

    def render(template: str) -> list[str] | None:
        names = placeholders(template)
        for name in names:
            if name not in available:
                raise TemplateError(f"unknown placeholder {{{name}}} in {template!r}")
        if any(not available[name] for name in names):
            return None  # an absent input
        if len(names) == 1 and template == f"{{{names[0]}}}":
            return list(available[names[0]])
        for name in names:
            if len(available[name]) > 1:
                raise TemplateError(f"{{{name}}} has several values but stands inside {template!r}")
        return [_substitute(template, {n: available[n][0] for n in names})]

    for item in command:
        if isinstance(item, str):
            argv.extend(render(item) or [])
        else:
            group = [render(t) for t in item]
            if all(part is not None for part in group):
                argv.extend(a for part in group for a in part or [])
    return argv


def check_command(command: Sequence[Arg], inputs: Iterable[Input]) -> None:
    """Raise TemplateError unless every placeholder names an input or a built-in one."""
    known = set(BUILTIN_PLACEHOLDERS) | {i.identifier for i in inputs}
    for item in command:
        for template in [item] if isinstance(item, str) else item:
            if not isinstance(template, str):
                raise TemplateError(f"command items are strings or lists of strings, not {template!r}")
            for name in placeholders(template):
                if name not in known:
                    raise TemplateError(f"unknown placeholder {{{name}}} in {template!r}; inputs: {sorted(known)}")


__all__ = [
    "HARDENED",
    "STDOUT",
    "ContainerSpec",
    "OutputSource",
    "Relaxations",
    "TemplateError",
    "check_command",
    "render_command",
]
