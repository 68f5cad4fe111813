"""Logging wrappers for a batch system's commands, first on a server's PATH: each call is written to a
log as "time name args" before the real command runs, so a benchmark counts what the server really
ran (the system's own view), not what the executor says it ran."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Iterable
from pathlib import Path


def write_wrappers(directory: Path, names: Iterable[str]) -> Path:
    """A wrapper for each command in ``directory`` (created); the log file they append to."""
    directory.mkdir(parents=True)
    log = directory / "calls.log"
    for name in names:
        real = shutil.which(name)
        if real is None:
            raise RuntimeError(f"{name} is not installed: start the cluster with scripts/clusters.sh start")
        wrapper = directory / name
        wrapper.write_text(
            "#!/bin/bash\n"
            f'printf "%s %s %s\\n" "$EPOCHREALTIME" {name} "$*" >> {shlex.quote(str(log))}\n'
            f'exec {shlex.quote(real)} "$@"\n',
            encoding="utf-8",
        )
        wrapper.chmod(0o755)
    return log


def read_calls(log: Path, since: float) -> list[tuple[float, str, str]]:
    """(time, command, arguments) of every call logged at or after ``since`` (a time.time() value)."""
    calls = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        stamp, _, rest = line.partition(" ")
        name, _, args = rest.partition(" ")
        when = float(stamp.replace(",", "."))
        if when >= since:
            calls.append((when, name, args))
    return calls
