"""What a handler receives: its inputs, a place to put outputs, and a way to report progress.

The context knows nothing about where it runs; the runtime gives it a ``report`` callable that writes
progress wherever this executor keeps it (the job table, or a status file on a compute node).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from processes.model import ComplexOutput, Process
from processes.values import BoundingBox, InputValue, LiteralValue

if TYPE_CHECKING:  # processes.container imports this module: importing it here first would be a cycle
    from processes.container.settings import DockerSettings

Reporter = Callable[[str, int | None], None]


class ProcessError(Exception):
    """Raised by a handler to fail its job with a message meant for the client."""


class JobContext:
    def __init__(
        self,
        process: Process,
        inputs: dict[str, list[InputValue]],
        workdir: Path,
        output_dir: Path,
        report: Reporter,
        docker: DockerSettings | None = None,
        requested_outputs: list[dict[str, Any]] | None = None,
        resources: dict[str, Any] | None = None,
    ) -> None:
        self.process = process
        # What the request asked for (resources.cores, memory, walltime), checked against the
        # administrator's limits before the job existed: a container process's limits.
        self.resources = dict(resources or {})
        # The site's container engine, for processes that run an image: handed in by whoever runs the
        # job, since a process never reads the configuration itself.
        if docker is None:
            from processes.container.settings import DockerSettings

            docker = DockerSettings()
        self.docker = docker
        self.inputs = inputs
        self.workdir = workdir
        self.output_dir = output_dir
        # The outputs the client asked for, with the format, unit and transmission it chose for each.
        self.requested_outputs = list(requested_outputs or ())
        self._report = report
        self.outputs: dict[str, Any] = {}
        self.published: list[str] = []

    def value(self, identifier: str, default: Any = None) -> Any:
        """The first value of an input: the Python value of a literal, the object for others."""
        values = self.inputs.get(identifier)
        if not values:
            return default
        first = values[0]
        return first.value if isinstance(first, LiteralValue) else first

    def values(self, identifier: str) -> list[InputValue]:
        return list(self.inputs.get(identifier, ()))

    def update_status(self, message: str, percent: int | None = None) -> None:
        """Report progress; it reaches WPS 1.0.0 status documents and WPS 2.0 GetStatus alike."""
        if percent is not None:
            percent = max(0, min(100, int(percent)))
        self._report(message, percent)

    def output_path(self, identifier: str) -> Path:
        """A file to write a complex output into directly: the way to produce large outputs."""
        spec = self.process.output(identifier)
        if not isinstance(spec, ComplexOutput):
            raise KeyError(f"{identifier} is not a complex output of {self.process.identifier}")
        path = self.output_dir / f"{identifier}{spec.formats[0].extension}"
        self.outputs[identifier] = path
        return path

    def publish(self, path: Path) -> None:
        """Serve a file the handler wrote in the output directory beside the outputs (the members of a
        Metalink output); its URL is the one of an output file named by its path in that directory."""
        name = path.relative_to(self.output_dir).as_posix()
        if path.is_symlink() or not path.is_file():
            raise ValueError(f"{name} is not a file of the output directory")
        self.published.append(name)

    def set_output(self, identifier: str, value: Any) -> None:
        """Set an output: a literal value, a BoundingBox, or for a complex output str, bytes, JSON-able
        data or a Path to a file the handler wrote."""
        if self.process.output(identifier) is None:
            raise KeyError(f"{identifier} is not an output of {self.process.identifier}")
        self.outputs[identifier] = value


__all__ = ["BoundingBox", "JobContext", "ProcessError", "Reporter"]
