"""Job metrics: every job end counted exactly once (the table's shape, read at scrape time, is
``queries.table_shape``).

A job has ended for good when its row is final and no executor holds it any more
(``native_active`` false). Whichever conditional UPDATE makes that true first is the one that counts
it, in the process that ran it: the web worker of a synchronous job, the dispatcher for everything
an executor ran (a batch job's launcher on a compute node may record the outcome first, but it
leaves ``native_active`` set, so the dispatcher counts the job when it releases it), the web worker
that dismisses a job still waiting. The count waits for the transaction to commit: a rolled-back
settle is settled again later and must not count twice. In a multi-process server (``hpc-wps
serve`` sets PROMETHEUS_MULTIPROC_DIR) prometheus_client keeps each process's counts in a file of
that directory and /metrics adds them up.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import SQLAlchemyError

from scheduler.failure_reasons import failure_reason
from scheduler.models import FINAL_VALUES, JOBS, JobStatus

NO_EXECUTOR = "none"  # label of jobs that ended before an executor took them
ENDED_COLUMNS = (
    JOBS.c.status,
    JOBS.c.message,
    JOBS.c.process_id,
    JOBS.c.executor,
    JOBS.c.native_active,
    JOBS.c.created_at,
    JOBS.c.started_at,
    JOBS.c.finished_at,
)
_DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, float("inf"))
_PENDING = "hpc_wps_job_ends"  # key in a connection's info: ends seen in its open transaction

JOBS_ENDED = Counter("hpc_wps_jobs_ended", "Jobs that reached a final state", ["process", "status"])
JOB_FAILURES = Counter("hpc_wps_job_failures", "Failed jobs by reason", ["reason", "executor"])
JOB_DURATION = Histogram(
    "hpc_wps_job_duration_seconds",
    "Running time of ended jobs that started, from start to end",
    ["process", "status"],
    buckets=_DURATION_BUCKETS,
)
JOB_WAIT = Histogram(
    "hpc_wps_job_wait_seconds",
    "Time ended jobs that started waited between acceptance and start",
    ["executor"],
    buckets=_DURATION_BUCKETS,
)
_watched: weakref.WeakSet[Engine] = weakref.WeakSet()


def note_settled(conn: Connection, row: Row[Any]) -> None:
    """``row`` (``ENDED_COLUMNS`` as an UPDATE returned them) was just changed in ``conn``'s
    transaction; count the job if that change ended it for good."""
    if row.native_active or row.status not in FINAL_VALUES:
        return
    engine = conn.engine
    if engine not in _watched:
        event.listen(engine, "commit", _count_pending)
        event.listen(engine, "rollback", _drop_pending)
        _watched.add(engine)
    conn.info.setdefault(_PENDING, []).append(row)


def _count_pending(conn: Connection) -> None:
    for row in conn.info.pop(_PENDING, ()):
        count(row)


def _drop_pending(conn: Connection) -> None:
    # The info dictionary lives with the DBAPI connection: when a lost database has invalidated it,
    # the ends noted there go with it, and reaching for them would only raise.
    with contextlib.suppress(SQLAlchemyError):
        conn.info.pop(_PENDING, None)


def count(row: Row[Any]) -> None:
    process, status, executor = row.process_id, row.status, row.executor or NO_EXECUTOR
    JOBS_ENDED.labels(process, status).inc()
    if status == JobStatus.FAILED.value:
        JOB_FAILURES.labels(failure_reason(row.message), executor).inc()
    started, finished = row.started_at, row.finished_at
    if started is not None and finished is not None:
        JOB_DURATION.labels(process, status).observe(max(0.0, (finished - started).total_seconds()))
        JOB_WAIT.labels(executor).observe(max(0.0, (started - row.created_at).total_seconds()))
