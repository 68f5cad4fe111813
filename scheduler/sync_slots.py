"""The synchronous slots of one host: ``[processing] sync_slots`` lock files, one locked (``flock``)
by each job running in the web tier (synchronous, or asynchronous of an ``inline_async`` process).

Why locks on files rather than a count of rows in the job table: the kernel releases a lock when its
holder ends, however it ends (a web worker killed, the job's child killed with it), and taking one needs
no database. Counted in the table, a job whose outcome could not be written while the database was out
of reach (its row says running until the dispatcher's sweep, a minute later) held its slot on, and after
an outage every slot was taken by such rows. ``flock`` locks belong to an open file description, so two
threads of one worker, each opening the file, exclude each other as two processes do.

The limit is per host (the files are in the host's temporary directory, named after the service's job
directory, so two services on one host do not share them): a web tier on several hosts runs
``sync_slots`` on each. A request waits up to ``[processing] sync_slot_wait`` for a slot, so that a
burst of short jobs queues for a moment instead of being refused, then gets :class:`SyncSlotsBusy`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from scheduler.errors import SyncSlotsBusy

POLL_INTERVAL = 0.05  # seconds between two tries while every slot is taken


def slots_dir(jobs_dir: Path) -> Path:
    """Where the lock files of the service whose job directories are ``jobs_dir`` live on this host."""
    digest = hashlib.sha256(str(jobs_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"hpc-wps-sync-slots-{digest}"


def _try_take(directory: Path, slots: int) -> int | None:
    """An open descriptor holding one of the ``slots`` locks, or None when all are held."""
    for index in range(slots):
        fd = os.open(directory / f"{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None


@contextlib.contextmanager
def sync_slot(jobs_dir: Path, slots: int, wait: float) -> Iterator[None]:
    """Hold one slot for the block; raises :class:`SyncSlotsBusy` after ``wait`` seconds without one."""
    directory = slots_dir(jobs_dir)
    directory.mkdir(mode=0o700, exist_ok=True)
    deadline = time.monotonic() + wait
    while (fd := _try_take(directory, slots)) is None:
        if time.monotonic() >= deadline:
            raise SyncSlotsBusy(slots)
        time.sleep(POLL_INTERVAL)
    try:
        yield
    finally:
        os.close(fd)  # and the lock with it
