"""Every read of the job table, beside each other; the writes are in ``lifecycle.py``.

Web workers, the dispatcher, /health and /metrics and ``hpc-wps jobs`` all read the same table, and
the hot ones (a job by id, the queue depth, the oldest accepted jobs, an executor's active jobs) must
stay on the table's indexes: with every SELECT here, what the table is asked and which index answers
can be seen in one place. Reads take an Engine or an open Connection, as the writes do (``db.Bind``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.engine import RowMapping

from scheduler.db import Bind, transaction
from scheduler.job_metrics import NO_EXECUTOR
from scheduler.models import ACTIVE_STATES, FINAL_VALUES, JOBS, JobStatus, utcnow


def removable() -> ColumnElement[bool]:
    """The SQL condition for jobs whose files and row may go: final, and released by their executor."""
    return JOBS.c.status.in_(sorted(FINAL_VALUES)) & JOBS.c.native_active.is_(False)


def get_job(bind: Bind, job_id: str) -> RowMapping | None:
    with transaction(bind) as conn:
        return conn.execute(select(JOBS).where(JOBS.c.id == job_id)).mappings().first()


_COUNT_WAITING = select(func.count()).select_from(JOBS).where(JOBS.c.status == JobStatus.ACCEPTED.value)


def count_waiting(bind: Bind) -> int:
    with transaction(bind, write=False) as conn:
        return conn.execute(_COUNT_WAITING).scalar_one()


_OLDEST_ACCEPTED = (
    select(JOBS.c.id, JOBS.c.process_id, JOBS.c.request)
    .where(JOBS.c.status == JobStatus.ACCEPTED.value)
    .order_by(JOBS.c.created_at, JOBS.c.id)
    .limit(bindparam("limit"))
)


_OLDEST_ACCEPTED_LOCKED = _OLDEST_ACCEPTED.with_for_update(skip_locked=True)  # SQLite ignores the clause


def oldest_accepted(bind: Bind, limit: int, lock: bool = False) -> list[RowMapping]:
    """``lock``: on PostgreSQL, lock the rows read until the transaction ends, skipping rows another
    dispatcher holds."""
    with transaction(bind) as conn:
        return list(conn.execute(_OLDEST_ACCEPTED_LOCKED if lock else _OLDEST_ACCEPTED, {"limit": limit}).mappings())


_ACTIVE_NATIVE = select(
    JOBS.c.id, JOBS.c.status, JOBS.c.native_id, JOBS.c.process_id, JOBS.c.updated_at, JOBS.c.claimed_by
).where(JOBS.c.executor == bindparam("executor"), JOBS.c.native_active.is_(True))


def active_native_jobs(bind: Bind, executor: str) -> list[RowMapping]:
    """Jobs an executor may still hold: running or queued there, or dismissed but not yet cancelled."""
    with transaction(bind) as conn:
        return list(conn.execute(_ACTIVE_NATIVE, {"executor": executor}).mappings())


def active_jobs(bind: Bind, executor: str) -> list[RowMapping]:
    """Jobs of ``executor`` not yet final, with who runs them and when they last changed: enough to
    tell whether they were abandoned. For the synchronous jobs of the web workers: a few per worker."""
    stmt = select(JOBS.c.id, JOBS.c.updated_at, JOBS.c.claimed_by).where(
        JOBS.c.executor == executor, JOBS.c.status.in_([s.value for s in ACTIVE_STATES])
    )
    with transaction(bind, write=False) as conn:
        return list(conn.execute(stmt).mappings())


def expired_jobs(bind: Bind, limit: int) -> list[str]:
    """Ids of removable jobs whose expiration date has passed."""
    stmt = select(JOBS.c.id).where(JOBS.c.expires_at < utcnow(), removable()).limit(limit)
    with transaction(bind, write=False) as conn:
        return [row[0] for row in conn.execute(stmt)]


_OLDEST_FINISHED = (
    select(JOBS.c.id, JOBS.c.process_id, JOBS.c.status, JOBS.c.finished_at)
    .where(removable())
    .order_by(func.coalesce(JOBS.c.finished_at, JOBS.c.created_at), JOBS.c.id)
    .limit(bindparam("limit"))
)


def oldest_finished(bind: Bind, limit: int) -> list[RowMapping]:
    """Removable jobs, those that finished first first: the ones to evict when the disk fills."""
    with transaction(bind, write=False) as conn:
        return list(conn.execute(_OLDEST_FINISHED, {"limit": limit}).mappings())


def find_jobs(
    bind: Bind,
    statuses: Sequence[str] | None = None,
    processes: Sequence[str] | None = None,
    created_before: dt.datetime | None = None,
    limit: int = 0,
    removable_only: bool = False,
) -> list[RowMapping]:
    """Whole rows of the jobs every given filter matches (None: no filter), newest first; at most
    ``limit`` (0: all). ``removable_only``: only jobs whose files and row may go."""
    conditions = []
    if statuses is not None:
        conditions.append(JOBS.c.status.in_(statuses))
    if processes is not None:
        conditions.append(JOBS.c.process_id.in_(processes))
    if created_before is not None:
        conditions.append(JOBS.c.created_at < created_before)
    if removable_only:
        conditions.append(removable())
    stmt = select(JOBS).where(*conditions).order_by(JOBS.c.created_at.desc(), JOBS.c.id)
    if limit:
        stmt = stmt.limit(limit)
    with transaction(bind, write=False) as conn:
        return list(conn.execute(stmt).mappings())


def jobs_by_id_prefix(bind: Bind, prefix: str, limit: int) -> list[RowMapping]:
    """Whole rows of at most ``limit`` jobs whose id begins with ``prefix`` (lower-case hex and dashes)."""
    with transaction(bind, write=False) as conn:
        return list(conn.execute(select(JOBS).where(JOBS.c.id.like(f"{prefix}%")).limit(limit)).mappings())


# -- the table's shape ------------------------------------------------------------------------------


@dataclass
class TableShape:
    """Queue depth and jobs per executor, as the table says now: /health and /metrics read it when
    asked, with one GROUP BY, so every web worker answers the same."""

    waiting: int = 0  # accepted, not yet handed to an executor: the queue depth
    oldest_waiting: dt.datetime | None = None
    queued: dict[str, int] = field(default_factory=dict)  # per executor: handed over, not started
    running: dict[str, int] = field(default_factory=dict)  # per executor ("web": synchronous jobs)

    def waiting_seconds(self) -> float:
        """How long the oldest waiting job has waited; 0 when none waits."""
        if self.oldest_waiting is None:
            return 0.0
        return max(0.0, (utcnow() - self.oldest_waiting).total_seconds())


_SHAPE = (
    select(JOBS.c.status, JOBS.c.executor, func.count(), func.min(JOBS.c.created_at))
    .where(JOBS.c.status.in_([s.value for s in ACTIVE_STATES]))
    .group_by(JOBS.c.status, JOBS.c.executor)
)


def table_shape(bind: Bind) -> TableShape:
    shape = TableShape()
    with transaction(bind, write=False) as conn:
        grouped = conn.execute(_SHAPE).all()
    for status, executor, number, oldest in grouped:
        if status == JobStatus.ACCEPTED.value:
            shape.waiting += number
            shape.oldest_waiting = oldest if shape.oldest_waiting is None else min(oldest, shape.oldest_waiting)
        else:
            counts = shape.running if status == JobStatus.RUNNING.value else shape.queued
            key = executor or NO_EXECUTOR
            counts[key] = counts.get(key, 0) + number
    return shape
