"""Every read of the job table, beside each other; the writes are in ``lifecycle.py``.

Web workers, the dispatcher, /health and /metrics and ``hpc-wps jobs`` all read the same table, and
the hot ones (a job by id, the queue depth, the next jobs to start, an executor's active jobs) must
stay on the table's indexes: with every SELECT here, what the table is asked and which index answers
can be seen in one place. Reads take an Engine or an open Connection, as the writes do (``db.Bind``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, bindparam, func, select, tuple_
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from scheduler.db import Bind, transaction
from scheduler.executor_names import WEB
from scheduler.job_metrics import NO_EXECUTOR
from scheduler.models import ACTIVE_STATES, FINAL_VALUES, JOBS, JobStatus, utcnow


def removable() -> ColumnElement[bool]:
    """The SQL condition for jobs whose files and row may go: final, and released by their executor."""
    return JOBS.c.status.in_(sorted(FINAL_VALUES)) & JOBS.c.native_active.is_(False)


# Built once: building a select and its cache key cost as much as running it (a status poll's query).
_GET_JOB = select(JOBS).where(JOBS.c.id == bindparam("job_id"))


def get_job(bind: Bind, job_id: str) -> RowMapping | None:
    with transaction(bind, write=False) as conn:
        return conn.execute(_GET_JOB, {"job_id": job_id}).mappings().first()


_COUNT_WAITING = select(func.count()).select_from(JOBS).where(JOBS.c.status == JobStatus.ACCEPTED.value)


def count_waiting(bind: Bind) -> int:
    with transaction(bind, write=False) as conn:
        return conn.execute(_COUNT_WAITING).scalar_one()


# Which of a user's rows each quota counts (``scheduler/quotas.py``).
WAITING = JOBS.c.status.in_([JobStatus.ACCEPTED.value, JobStatus.QUEUED.value])
IN_WEB_WORKERS = (JOBS.c.status == JobStatus.RUNNING.value) & (JOBS.c.executor == WEB)
ON_EXECUTORS = JOBS.c.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]) & (JOBS.c.executor != WEB)


CANDIDATES_PER_JOB = 4  # jobs ranked per job asked for: room to skip the rows other dispatchers hold


def _next_to_start(capped: bool) -> Select[tuple[str, str, Any]]:
    """Accepted jobs in the order they should start: round robin between users, first in first out
    within a user, in one query.

    Each accepted job's turn is its place in its owner's queue (``row_number() over (partition by
    owner order by created_at)``) plus the owner's jobs already on executors: the first job of a user
    with none running comes before the second of a user with one running, and before the 1001st of a
    user with a thousand waiting, whoever submitted first; equal turns go oldest first. ``capped``:
    only jobs whose turn is within ``:cap`` (``running_per_user``); the others stay accepted.

    The ranking reads narrow rows only (id, owner, creation time) and keeps the best ``:candidates``;
    only those are joined to their whole rows (by primary key) and locked, since window functions
    cannot be locked (FOR UPDATE) themselves. A row another dispatcher holds is skipped but keeps its
    place in the ranking, so no dispatcher takes a job beyond the cap for rows another is about to
    start; with more dispatchers claiming at the same moment than ``CANDIDATES_PER_JOB`` allows for,
    one gets fewer jobs this cycle and the rest in its next.
    """
    place = func.row_number().over(partition_by=JOBS.c.owner, order_by=(JOBS.c.created_at, JOBS.c.id))
    ranked = (
        select(JOBS.c.id, JOBS.c.owner, JOBS.c.created_at, place.label("place"))
        .where(JOBS.c.status == JobStatus.ACCEPTED.value)
        .subquery("ranked")
    )
    busy = select(JOBS.c.owner, func.count().label("jobs")).where(ON_EXECUTORS).group_by(JOBS.c.owner).subquery("busy")
    turn = ranked.c.place + func.coalesce(busy.c.jobs, 0)
    best = (
        select(ranked.c.id, ranked.c.created_at, turn.label("turn"))
        .select_from(ranked.outerjoin(busy, busy.c.owner == ranked.c.owner))
        .order_by(turn, ranked.c.created_at, ranked.c.id)
        .limit(bindparam("candidates"))
    )
    if capped:
        best = best.where(turn <= bindparam("cap"))
    candidates = best.subquery("candidates")
    # No condition on the status of ``jobs`` itself, which would let a planner with stale statistics
    # join through the status index (quadratic) instead of the primary key. A job another dispatcher
    # claimed meanwhile may come back: the conditional claim (``claim_many``) leaves it.
    return (
        select(JOBS.c.id, JOBS.c.process_id, JOBS.c.request)
        .join(candidates, candidates.c.id == JOBS.c.id)
        .order_by(candidates.c.turn, candidates.c.created_at, candidates.c.id)
        .limit(bindparam("limit"))
    )


_NEXT_TO_START = {capped: _next_to_start(capped) for capped in (False, True)}
_NEXT_TO_START_LOCKED = {  # SQLite ignores the clause
    capped: stmt.with_for_update(skip_locked=True, of=JOBS) for capped, stmt in _NEXT_TO_START.items()
}
# With one user waiting and no cap, the fair order is first in, first out: the oldest rows, read
# through the (status, created_at) index without ranking every waiting job. Whether only one user
# waits is two seeks in the (status, owner, ...) index.
_OLDEST_ACCEPTED = (
    select(JOBS.c.id, JOBS.c.process_id, JOBS.c.request)
    .where(JOBS.c.status == JobStatus.ACCEPTED.value)
    .order_by(JOBS.c.created_at, JOBS.c.id)
    .limit(bindparam("limit"))
)
_OLDEST_ACCEPTED_LOCKED = _OLDEST_ACCEPTED.with_for_update(skip_locked=True)
_OWNERS_WAITING = select(func.min(JOBS.c.owner), func.max(JOBS.c.owner)).where(
    JOBS.c.status == JobStatus.ACCEPTED.value
)


def next_to_start(bind: Bind, limit: int, cap: int = 0, lock: bool = False) -> list[RowMapping]:
    """At most ``limit`` accepted jobs, fairly across users (see ``_next_to_start``); ``cap``: the most
    jobs one user may have on executors (``[quotas] running_per_user``), 0: no such limit.
    ``lock``: on PostgreSQL, lock the rows read until the transaction ends, skipping rows another
    dispatcher holds."""
    with transaction(bind) as conn:
        if not cap:
            first, last = conn.execute(_OWNERS_WAITING).one()
            if first == last:
                # (another user's job inserted meanwhile waits one cycle for the fair order)
                oldest = _OLDEST_ACCEPTED_LOCKED if lock else _OLDEST_ACCEPTED
                return list(conn.execute(oldest, {"limit": limit}).mappings())
        stmt = (_NEXT_TO_START_LOCKED if lock else _NEXT_TO_START)[bool(cap)]
        params = {"limit": limit, "candidates": limit * CANDIDATES_PER_JOB, "cap": cap}
        return list(conn.execute(stmt, params).mappings())


_FINISHED_OF_OWNER = select(JOBS.c.id).where(
    JOBS.c.owner == bindparam("owner"),
    JOBS.c.status.in_([JobStatus.SUCCEEDED.value, JobStatus.FAILED.value]),
)


def finished_job_ids(bind: Bind, owner: str) -> list[str]:
    """Ids of the user's finished jobs whose files are kept (not dismissed); on the (owner, status) index."""
    with transaction(bind, write=False) as conn:
        return list(conn.scalars(_FINISHED_OF_OWNER, {"owner": owner}))


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


def still_active(bind: Bind, job_ids: Collection[str]) -> set[str]:
    """Those of ``job_ids`` whose jobs exist and are not final: what may still own a container."""
    if not job_ids:
        return set()
    stmt = select(JOBS.c.id).where(JOBS.c.id.in_(list(job_ids)), JOBS.c.status.in_([s.value for s in ACTIVE_STATES]))
    with transaction(bind, write=False) as conn:
        return set(conn.execute(stmt).scalars())


NOTIFICATIONS_PER_SCAN = 256  # rows the notifier reads at once; more wait for its next scan
# The bare column, as the partial index ix_jobs_notify_due is written, so both databases use it.
_NOTIFY_DUE = select(JOBS).where(JOBS.c.notify_due).order_by(JOBS.c.updated_at).limit(NOTIFICATIONS_PER_SCAN)


def notifications_due(bind: Bind) -> list[RowMapping]:
    """Whole rows of the jobs that may still owe their subscribers a notification, least recently
    changed first (``scheduler/notifier.py`` decides which do)."""
    with transaction(bind, write=False) as conn:
        return list(conn.execute(_NOTIFY_DUE).mappings())


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


class seconds_between(FunctionElement[float]):
    """Seconds from the first timestamp to the second, in SQL: the table's dialects have no common spelling."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between)
def _seconds_epoch(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


@compiles(seconds_between, "sqlite")
def _seconds_julian(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def duration() -> ColumnElement[float]:
    """How long a job has run: from its start to its end, or to now while it runs; NULL before it starts."""
    return seconds_between(
        JOBS.c.started_at, func.coalesce(JOBS.c.finished_at, bindparam("now", type_=JOBS.c.created_at.type))
    )


Cursor = tuple[dt.datetime, str]  # (created_at, id) of a job: where a page of a listing starts or ends


def find_jobs(
    bind: Bind,
    statuses: Sequence[str] | None = None,
    processes: Sequence[str] | None = None,
    created_before: dt.datetime | None = None,
    limit: int = 0,
    removable_only: bool = False,
    owners: Sequence[str] | None = None,
    created_within: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
    durations: tuple[float | None, float | None] = (None, None),
    after: Cursor | None = None,
    before: Cursor | None = None,
    columns: tuple[str, ...] | None = None,
) -> list[RowMapping]:
    """Whole rows (or only ``columns``) of the jobs every given filter matches (None: no filter), newest
    first (ties by id); at most ``limit`` (0: all). ``removable_only``: only jobs whose files and row may go.
    ``created_within``: created at or after the first, at or before the second. ``durations``: jobs that
    have run at least, at most so many seconds (never a job not yet started).

    ``after``/``before``: a page of a listing (keyset paging): the jobs that come after (older) or
    before (newer) the job at that cursor, read along the (owner, created_at, id) or (created_at, id)
    index from the cursor on, so a page costs the same however deep it is."""
    given = {
        "statuses": None if statuses is None else list(statuses),
        "processes": None if processes is None else list(processes),
        "owners": None if owners is None else list(owners),
        "created_before": created_before,
        "created_from": created_within[0],
        "created_to": created_within[1],
        "min_duration": durations[0],
        "max_duration": durations[1],
        "limit": limit or None,
    }
    params = {name: value for name, value in given.items() if value is not None}
    for name, cursor in (("after", after), ("before", before)):
        if cursor is not None:
            params[f"{name}_created"], params[f"{name}_id"] = cursor
    if durations != (None, None):
        params["now"] = utcnow()
    shape = tuple(name in params for name in _FILTERS)
    with transaction(bind, write=False) as conn:
        rows = list(conn.execute(_found(shape, removable_only, columns), params).mappings())
    return rows[::-1] if before is not None else rows


# find_jobs' filters, each a parameter of its statement; which are given is the statement's shape.
_FILTERS = (
    "statuses",
    "processes",
    "owners",
    "created_before",
    "created_from",
    "created_to",
    "min_duration",
    "max_duration",
    "after_id",
    "before_id",
    "limit",
)


@functools.cache
def _found(shape: tuple[bool, ...], removable_only: bool, columns: tuple[str, ...] | None) -> Select[Any]:
    """find_jobs' statement for one shape, built once: building it and its cache key cost as much as
    running it (half of a ``GET /jobs?limit=50`` at 100,000 jobs)."""
    given = dict(zip(_FILTERS, shape, strict=True))
    created = JOBS.c.created_at.type
    conditions = []
    for name, column in (("statuses", JOBS.c.status), ("processes", JOBS.c.process_id), ("owners", JOBS.c.owner)):
        if given[name]:
            conditions.append(column.in_(bindparam(name, expanding=True)))
    if given["created_before"]:
        conditions.append(JOBS.c.created_at < bindparam("created_before", type_=created))
    if given["created_from"]:
        conditions.append(JOBS.c.created_at >= bindparam("created_from", type_=created))
    if given["created_to"]:
        conditions.append(JOBS.c.created_at <= bindparam("created_to", type_=created))
    if given["min_duration"]:
        conditions.append(duration() >= bindparam("min_duration", type_=Float()))
    if given["max_duration"]:
        conditions.append(duration() <= bindparam("max_duration", type_=Float()))
    if removable_only:
        conditions.append(removable())
    key = tuple_(JOBS.c.created_at, JOBS.c.id)
    order = (JOBS.c.created_at.desc(), JOBS.c.id.desc())
    if given["after_id"]:
        conditions.append(key < tuple_(bindparam("after_created", type_=created), bindparam("after_id")))
    if given["before_id"]:  # read upwards from the cursor, then turned newest first again
        conditions.append(key > tuple_(bindparam("before_created", type_=created), bindparam("before_id")))
        order = (JOBS.c.created_at, JOBS.c.id)
    chosen = [JOBS] if columns is None else [JOBS.c[name] for name in columns]
    stmt = select(*chosen).where(*conditions).order_by(*order)
    return stmt.limit(bindparam("limit")) if given["limit"] else stmt


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
