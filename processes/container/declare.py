"""Declaring a container process: the factory, and the handler that runs its container in the caller.

Kept apart from ``spec.py`` (what a container process is) and ``engine.py`` (how a container is run),
so that the handler can call the engine and the administrator's file (``config.py``) can declare
processes without any of them importing the others in a circle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from processes.container.engine import run_in_handler
from processes.container.spec import (
    OUTPUTS_DIR,
    Arg,
    ContainerSpec,
    OutputSource,
    Relaxations,
    check_command,
    source,
)
from processes.context import JobContext
from processes.model import BoundingBoxInput, ComplexInput, Input, LiteralInput, Metadata, Output, Process


@dataclass(frozen=True)
class ContainerHandler:
    """The handler of a container process: runs the container here and waits for it (synchronous
    Execute, the local pool). Picklable, so batch payloads can carry it, relaxations included."""

    spec: ContainerSpec
    relax: Relaxations = field(default_factory=Relaxations)  # only the administrator's file grants any

    def __call__(self, job: JobContext) -> None:
        run_in_handler(self.spec, self.relax, job)


def container_process(
    identifier: str,
    title: str,
    image: str,
    command: Sequence[str | Sequence[str]],
    inputs: Sequence[Input] = (),
    outputs: Sequence[tuple[Output, OutputSource | str]] = (),
    *,
    abstract: str = "",
    version: str = "1.0.0",
    keywords: Sequence[str] = (),
    metadata: Sequence[Metadata] = (),
    literal_files: Iterable[str] = (),
    entrypoint: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    workdir: str = OUTPUTS_DIR,
    memory: int | None = None,
    cores: float | None = None,
    pids: int | None = None,
    walltime: float | None = None,
    sync_allowed: bool = True,
) -> Process:
    """A Process that runs ``command`` in ``image``; each output is paired with where it comes from
    (``"stdout"``, a file path relative to ``/outputs``, or an :class:`OutputSource`).

    Relaxations of the hardening are not arguments: only the administrator's configuration grants them.
    """
    command_t: tuple[Arg, ...] = tuple(c if isinstance(c, str) else tuple(c) for c in command)
    check_command(command_t, inputs)
    literal_files = frozenset(literal_files)
    for name in literal_files:
        if not isinstance(next((i for i in inputs if i.identifier == name), None), LiteralInput):
            raise ValueError(f"process {identifier}: literal_files names {name!r}, which is no literal input")
    for declared in inputs:
        if not isinstance(declared, (LiteralInput, ComplexInput, BoundingBoxInput)):
            raise ValueError(f"process {identifier}: unsupported input {declared!r}")
    pairs = tuple((out.identifier, source(src)) for out, src in outputs)
    if len({i for i, _src in pairs}) != len(pairs):
        raise ValueError(f"process {identifier}: an output is listed twice")
    spec = ContainerSpec(
        image=image,
        command=command_t,
        outputs=pairs,
        literal_files=literal_files,
        entrypoint=tuple(entrypoint) if entrypoint is not None else None,
        env=tuple(sorted((env or {}).items())),
        workdir=workdir,
        memory=memory,
        cores=cores,
        pids=pids,
        walltime=walltime,
    )
    for name, value in (("memory", memory), ("cores", cores), ("pids", pids), ("walltime", walltime)):
        if value is not None and value <= 0:
            raise ValueError(f"process {identifier}: {name} must be above 0")
    process = Process(
        identifier=identifier,
        title=title,
        handler=ContainerHandler(spec),
        abstract=abstract,
        version=version,
        keywords=tuple(keywords),
        metadata=tuple(metadata),
        inputs=tuple(inputs),
        outputs=tuple(out for out, _src in outputs),
        sync_allowed=sync_allowed,
        resources={"container": spec},
    )
    return process


def container_spec(process: Process) -> ContainerSpec | None:
    spec = process.resources.get("container")
    return spec if isinstance(spec, ContainerSpec) else None


def is_container_process(process: Process) -> bool:
    """True for a process that runs an image: its asynchronous jobs go to the docker executor in every
    mode. Decided by the process itself, so routing never depends on what has been imported."""
    return container_spec(process) is not None


def relaxed(process: Process, relax: Relaxations) -> Process:
    """The container process with the hardening the administrator's file relaxes for it; any other
    process as it is."""
    spec = container_spec(process)
    if spec is None or not relax.relaxed:
        return process
    return dataclasses.replace(process, handler=ContainerHandler(spec, relax))
