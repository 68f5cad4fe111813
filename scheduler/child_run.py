"""A job of the web tier (synchronous, or asynchronous of an ``inline_async`` process) run in a child
process forked by the request thread that waits for it.

Why a child: web workers serve requests from several threads (gunicorn's ``gthread``), so that one
slow client or one waiting Execute holds a thread, not a whole worker. But the SIGALRM that bounds a
job's time (``launcher.time_limit``) works only in a process's main thread, and a Python thread
cannot be stopped at all. A child forked for the job is single-threaded, the forking thread being its
main thread, so the launcher's time limit works there exactly as in a local pool worker; and the
waiting thread can end it outright: at the time limit plus ``KILL_GRACE`` (a handler stuck in C code
that never returns to Python to see the alarm), or as soon as the client that asked has gone.

The child shares nothing with its parent but copied memory pages: it opens no connection to the job
table (so no SQLite lock state or pooled connection crosses the fork; see ``db._closing_before_fork``)
and writes its outcome to ``result.json`` in the job directory; the waiting thread records it in the
table. The child is a process group of its own, so killing it takes a handler's own subprocesses
too, and it dies with the web worker (``PR_SET_PDEATHSIG``), so a ``kill -9`` of the worker leaves no
job running that nobody waits for; the dispatcher's sweep then fails the row as before
(``maintenance.fail_abandoned_web_jobs``, the row names the worker, not the child).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from scheduler.launcher import RESULT_FILE, Outcome, read_result, write_result
from scheduler.models import JobStatus
from scheduler.pids import describe_wait_status

log = logging.getLogger(__name__)

KILL_GRACE = 5.0  # seconds past the time limit before a child that ignored its alarm is killed
CLIENT_CHECK_INTERVAL = 0.25  # seconds between two looks at whether the client is still there
CLIENT_GONE = "interrupted: the client closed its connection before the synchronous job ended"
PR_SET_PDEATHSIG = 1  # prctl(2)
# Signals the web worker handles for itself (gunicorn's graceful stop, log reopening...): the child
# must not run the worker's handlers, nor write into its signal wake-up pipe.
_WORKER_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGABRT,
)

ClientGone = Callable[[], bool]


def run_in_child(
    run: Callable[[], Outcome], job_dir: Path, seconds: float, client_gone: ClientGone | None = None
) -> Outcome:
    """Fork, call ``run`` (a ``launcher.run_to_outcome`` under the time limit) in the child, wait for
    it and return its outcome. ``client_gone``: polled while waiting; True ends the job at once."""
    job_dir.mkdir(parents=True, exist_ok=True)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        _child(run, job_dir, parent)
    with contextlib.suppress(OSError):  # the child does it too; whichever comes first
        os.setpgid(pid, pid)
    ended_by = _wait(pid, job_dir, seconds, client_gone)
    if ended_by is not None:
        _kill(pid)
    _, status = os.waitpid(pid, 0)
    if ended_by is not None:
        # What run_to_outcome would have removed had it ended by itself: no output of a failed job is served.
        for leftover in ("work", "outputs"):
            shutil.rmtree(job_dir / leftover, ignore_errors=True)
        return Outcome(JobStatus.FAILED.value, ended_by)
    outcome = read_result(job_dir)
    (job_dir / RESULT_FILE).unlink(missing_ok=True)  # only the way here: the table keeps the outcome
    if outcome is None:  # it died before writing a result: a crash of the handler's own native code
        return Outcome(JobStatus.FAILED.value, f"the job's process {describe_wait_status(status)}")
    return outcome


def _wait(pid: int, job_dir: Path, seconds: float, client_gone: ClientGone | None) -> str | None:
    """Wait for the child to end by itself; else why it must be ended."""
    deadline = time.monotonic() + seconds + KILL_GRACE
    pidfd = os.pidfd_open(pid)  # readable once the child has ended: no polling, no SIGCHLD handler
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return f"time limit of {seconds:g} s exceeded"
            step = remaining if client_gone is None else min(remaining, CLIENT_CHECK_INTERVAL)
            ready, _, _ = select.select([pidfd], [], [], step)
            if ready:
                return None
            if client_gone is not None and client_gone():
                log.info("the client of job %s has gone: ending the job", job_dir.name)
                return CLIENT_GONE
    finally:
        os.close(pidfd)


def _kill(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the group, and the child itself should it not lead one yet
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


class _WebWorker(logging.Filter):
    """Adds ``web_worker`` (its pid) to the records of a job's child: in the JSON log, beside the
    child's own ``pid``, it names the worker that served the request and ran the job."""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.pid = pid

    def filter(self, record: logging.LogRecord) -> bool:
        record.web_worker = self.pid
        return True


def _child(run: Callable[[], Outcome], job_dir: Path, parent: int) -> NoReturn:
    code = 1
    try:
        os.setpgid(0, 0)
        # Die with the thread that forked us (the web worker's request thread lives as long as the worker).
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the worker died before the line above took effect
            os._exit(1)
        signal.set_wakeup_fd(-1)
        for signum in _WORKER_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        for handler in logging.getLogger().handlers:  # the job's records say which web worker ran it
            handler.addFilter(_WebWorker(parent))
        write_result(job_dir, run())
        code = 0
    except BaseException:
        log.exception("the child running the job in %s failed", job_dir)
    finally:
        os._exit(code)
