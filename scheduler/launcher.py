"""Run one job to its end in this process: the same code for every executor.

The result is written twice: atomically into the job directory (``result.json``, which survives a
database that is out of reach, as on a compute node) and into the job table. The dispatcher uses the
file to settle a job whose process ended without reaching the table.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from processes.container.settings import DockerSettings
from processes.context import ProcessError
from processes.fetch import FetchLimits, InputError
from processes.model import Process
from processes.runtime import OutputsNotProduced, run_process
from scheduler import lifecycle, queries
from scheduler.db import Bind, make_engine
from scheduler.interrupts import ClientCheck, ClientGone, Interruptible, TimeLimitExceeded
from scheduler.logs import job_context
from scheduler.models import JobStatus, utcnow

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
STATUS_FILE = "status.json"
CLIENT_GONE = "the client hung up before its synchronous job ended, so the job was stopped"
PROGRESS_INTERVAL = 0.2  # seconds between progress writes: enough for any poller, cheap for the table


@dataclass
class Outcome:
    status: str
    message: str
    outputs: list[dict[str, Any]] = field(default_factory=list)
    # For a failure caused by an input: which input and why (invalid, not_accessible, too_large).
    input_id: str | None = None
    input_reason: str | None = None
    # Outputs the request asked for that the run did not produce.
    missing_outputs: tuple[str, ...] = ()


class ProgressReporter:
    """Writes progress to the table at most every PROGRESS_INTERVAL seconds.

    The first write waits one interval too: a job that ends sooner has nothing worth polling for, and
    its final state comes with its outcome, so short jobs cost the table no progress writes at all.
    Without a reachable table (a compute node cut off from the database) progress goes to
    ``status.json`` in the job directory, where the dispatcher picks it up.
    """

    def __init__(self, engine: Engine | None, job_id: str, job_dir: Path | None = None) -> None:
        self.engine = engine
        self.job_id = job_id
        self.job_dir = job_dir
        self._last = time.monotonic()
        self._pending: tuple[str, int | None] | None = None

    def __call__(self, message: str, percent: int | None) -> None:
        self._pending = (message, percent)
        if time.monotonic() - self._last >= PROGRESS_INTERVAL:
            self.flush()

    def flush(self) -> None:
        if self._pending is None:
            return
        message, percent = self._pending
        self._pending = None
        self._last = time.monotonic()
        if self.engine is not None:
            try:
                lifecycle.update_progress(self.engine, self.job_id, message, percent)
                return
            except SQLAlchemyError:
                log.warning("job %s: the job table is out of reach; progress goes to the job directory", self.job_id)
                self.engine = None
        if self.job_dir is not None:
            write_json(self.job_dir / STATUS_FILE, {"message": message, "percent": percent})


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def read_status(job_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((job_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_result(job_dir: Path, outcome: Outcome) -> None:
    write_json(job_dir / RESULT_FILE, asdict(outcome))


def read_result(job_dir: Path) -> Outcome | None:
    try:
        return Outcome(**json.loads((job_dir / RESULT_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def expiry(retention: float) -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=retention)


def record_outcome(bind: Bind, job_id: str, outcome: Outcome, retention: float, **extra: Any) -> bool:
    """Apply a finished job's outcome to the table, unless it reached a final state already."""
    if outcome.status == JobStatus.SUCCEEDED.value:
        return lifecycle.mark_succeeded(bind, job_id, outcome.outputs, expiry(retention), **extra)
    return lifecycle.mark_failed(bind, job_id, outcome.message, expiry(retention), **extra)


DISK_FULL = {
    errno.ENOSPC: "the disk holding the job's files is full (no space left on device)",
    errno.EDQUOT: "the disk quota of the job's files is used up (disk quota exceeded)",
}


def disk_full_reason(exc: BaseException) -> str | None:
    """The readable reason when ``exc`` or an exception it was raised from is a full disk, else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL:
            return DISK_FULL[seen.errno]
        seen = seen.__cause__ or seen.__context__
    return None


def run_to_outcome(
    process: Process,
    request: dict[str, Any],
    job_dir: Path,
    limits: FetchLimits,
    reporter: ProgressReporter,
    seconds: float | None = None,
    docker: DockerSettings | None = None,
    client_gone: ClientCheck | None = None,
) -> Outcome:
    """Run the process and turn whatever happens into an Outcome; never raises for the job's faults.

    ``seconds`` and ``client_gone``: a job run by a web worker ends at its time limit, or once the
    client waiting for it has gone (:mod:`scheduler.interrupts`).

    A failed job keeps no outputs: none is ever served, and on a full disk their space is what the
    result file and the next jobs need.
    """
    with job_context(reporter.job_id):  # every record logged while it runs names the job
        try:
            outcome = _outcome(
                lambda: run_process(process, request, job_dir, limits, reporter, docker), job_dir, seconds, client_gone
            )
        finally:
            shutil.rmtree(job_dir / "work", ignore_errors=True)
    if outcome.status != JobStatus.SUCCEEDED.value:
        shutil.rmtree(job_dir / "outputs", ignore_errors=True)
    return outcome


def _outcome(
    run: Callable[[], list[dict[str, Any]]], job_dir: Path, seconds: float | None, client_gone: ClientCheck | None
) -> Outcome:
    try:
        with Interruptible(seconds, client_gone):
            outputs = run()
        return Outcome(JobStatus.SUCCEEDED.value, "succeeded", outputs)
    except InputError as exc:
        return Outcome(JobStatus.FAILED.value, f"input {exc.identifier}: {exc}", [], exc.identifier, exc.reason)
    except OutputsNotProduced as exc:
        return Outcome(JobStatus.FAILED.value, str(exc), missing_outputs=tuple(exc.identifiers))
    except ProcessError as exc:
        return Outcome(JobStatus.FAILED.value, str(exc) or "the process failed")
    except TimeLimitExceeded:
        return Outcome(JobStatus.FAILED.value, f"time limit of {seconds:g} s exceeded")
    except ClientGone:
        return Outcome(JobStatus.FAILED.value, CLIENT_GONE)
    except Exception as exc:  # the process's own bug, or its environment: report it, keep the traceback in the log
        log.warning("job in %s failed: %s", job_dir, traceback.format_exc())
        reason = disk_full_reason(exc)
        if reason is None and isinstance(exc, OSError):
            reason = f"{type(exc).__name__}: {exc.strerror or exc}"
        return Outcome(JobStatus.FAILED.value, reason or f"the process raised {type(exc).__name__}: {exc}")


def run_job_dir(job_dir: Path) -> int:
    """``python -m scheduler.run_job DIR``: run a batch job on a compute node, from its payload.

    Reports to the job table when it can reach it; the result file is written in any case, so the
    dispatcher settles the job either way. Exit status 0 whenever a result was written.
    """
    from scheduler.payload import read_payload  # dill is needed only by batch executors

    try:
        payload = read_payload(job_dir)
    except Exception as exc:  # the node cannot import the process, or the payload is damaged
        write_result(
            job_dir, Outcome(JobStatus.FAILED.value, f"the launcher cannot load the job: {type(exc).__name__}: {exc}")
        )
        return 2
    engine: Engine | None = None
    try:
        engine = make_engine(payload.database_url)
        running_on = f"running on {socket.gethostname()}"
        if not lifecycle.mark_running(engine, payload.job_id, running_on):
            row = queries.get_job(engine, payload.job_id)
            if row is not None and row["status"] == JobStatus.DISMISSED.value:
                return 0
            # The dispatcher saw the batch job start first and marked it running; say where it runs.
            lifecycle.update_progress(engine, payload.job_id, running_on, None)
    except (SQLAlchemyError, OSError):  # OSError: a SQLite file whose directory this node's user cannot reach
        log.warning("job %s: the job table is out of reach from this node", payload.job_id)
        engine = None
    if engine is None:  # the file is the dispatcher's only news of a node cut off from the table
        write_json(job_dir / STATUS_FILE, {"message": f"running on {socket.gethostname()}", "percent": 0})
    reporter = ProgressReporter(engine, payload.job_id, job_dir)
    outcome = run_to_outcome(
        payload.process, payload.request, job_dir, payload.fetch_limits, reporter, docker=payload.docker
    )
    write_result(job_dir, outcome)
    if engine is not None:
        try:
            record_outcome(engine, payload.job_id, outcome, payload.retention)
        except SQLAlchemyError:
            log.warning("job %s: outcome left in %s for the dispatcher", payload.job_id, job_dir)
        engine.dispose()
    return 0
