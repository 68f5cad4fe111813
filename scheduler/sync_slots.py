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

The requests of one web worker wait in turn: only the first tries the locks, so one that arrived later
cannot take a freed slot from one that has waited longer (the 50-client load test got a ServerBusy
from that: a request that lost every race for five seconds while others went by).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from scheduler.errors import SyncSlotsBusy

POLL_INTERVAL = 0.05  # seconds between two tries while every slot is taken

_waiting: deque[object] = deque()  # this process's requests waiting for a slot, first come first
_turns = threading.Condition()  # notified when the first of them changes or a slot of this process frees


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
    fd = _take_in_turn(directory, slots, time.monotonic() + wait)
    try:
        yield
    finally:
        os.close(fd)  # and the lock with it
        with _turns:
            _turns.notify_all()


def _take_in_turn(directory: Path, slots: int, deadline: float) -> int:
    ticket = object()
    with _turns:
        _waiting.append(ticket)
        try:
            while True:
                if _waiting[0] is ticket and (fd := _try_take(directory, slots)) is not None:
                    return fd
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SyncSlotsBusy(slots)
                _turns.wait(min(POLL_INTERVAL, left))
        finally:
            _waiting.remove(ticket)
            _turns.notify_all()
