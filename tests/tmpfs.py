"""A small real filesystem for tests of a full disk: a tmpfs of a given size mounted on a directory."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import need_backend


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (as mount takes it: ``1m``) on ``path``; unmounted afterwards.

    Needs root (CI runs as root): elsewhere the test skips, in CI it fails.
    """
    if os.geteuid() != 0:
        need_backend("mounting a small tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        need_backend(f"cannot mount a tmpfs on {path}: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], check=True)  # a child still holds a file there


def fill(directory: Path, name: str = "filler") -> Path:
    """Write zeros into ``directory`` until its filesystem is full; returns the file that took the space."""
    path = directory / name
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC, not some other failure
    return path
