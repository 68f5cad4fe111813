"""Every change of a job's state, one named function each.

Each transition is one conditional UPDATE (``WHERE status IN (allowed previous states)``), so a web
worker dismissing a job, the dispatcher settling it and the job itself reporting progress can race
without ever moving a final state or running a job twice: the loser's UPDATE matches no row.

Every function takes an Engine (it then runs in a transaction of its own) or an open Connection (it
joins the caller's transaction): the dispatcher settles a whole poll cycle in one transaction, which
on SQLite means one write lock instead of one per job.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.sql.dml import Update

from scheduler.models import ACTIVE_STATES, JOBS, JobStatus, utcnow

MESSAGE_LIMIT = 4000
Bind = Engine | Connection
_INSERT = JOBS.insert()
_COUNT_WAITING = select(func.count()).select_from(JOBS).where(JOBS.c.status == JobStatus.ACCEPTED.value)


def new_job_id() -> str:
    """A uuid4: 122 random bits, so job ids (and with them status and output URLs) cannot be guessed."""
    return str(uuid.uuid4())


@contextmanager
def _transaction(bind: Bind) -> Iterator[Connection]:
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


def _values(status: JobStatus | None = None, **values: Any) -> dict[str, Any]:
    now = utcnow()
    if status is not None:
        values["status"] = status.value
        if status.is_final:
            values.setdefault("finished_at", now)
    if isinstance(values.get("message"), str):
        values["message"] = values["message"][:MESSAGE_LIMIT]
    values["updated_at"] = now
    return values


@functools.cache
def _update(allowed: frozenset[JobStatus], columns: tuple[str, ...]) -> Update:
    """One UPDATE per transition shape, built once: on the hot path only parameters change."""
    stmt = update(JOBS).where(JOBS.c.id == bindparam("job_id"))
    if allowed:
        stmt = stmt.where(JOBS.c.status.in_([s.value for s in sorted(allowed)]))
    return stmt.values({c: bindparam(f"v_{c}") for c in columns})


def _transition(bind: Bind, job_id: str, allowed: Iterable[JobStatus], **values: Any) -> bool:
    values = _values(**values)
    stmt = _update(frozenset(allowed), tuple(sorted(values)))
    params = {f"v_{k}": v for k, v in values.items()} | {"job_id": job_id}
    with _transaction(bind) as conn:
        return conn.execute(stmt, params).rowcount == 1


def create_job(
    bind: Bind,
    process_id: str,
    version: str,
    mode: str,
    request: dict[str, Any],
    status: JobStatus = JobStatus.ACCEPTED,
    executor: str | None = None,
) -> dict[str, Any]:
    """Insert a job; returns its row as inserted, so the caller need not read it back."""
    now = utcnow()
    running = status is JobStatus.RUNNING
    row = {
        "id": new_job_id(),
        "process_id": process_id,
        "status": status.value,
        "progress": 0,
        "message": "running" if running else "accepted",
        "version": version,
        "mode": mode,
        "request": request,
        "outputs": None,
        "executor": executor,
        "native_id": None,
        "native_active": False,
        "created_at": now,
        "started_at": now if running else None,
        "finished_at": None,
        "updated_at": now,
        "expires_at": None,
    }
    with _transaction(bind) as conn:
        conn.execute(_INSERT, row)  # parameters, not .values(): the compiled statement is reused
    return row


def get_job(bind: Bind, job_id: str) -> RowMapping | None:
    with _transaction(bind) as conn:
        return conn.execute(select(JOBS).where(JOBS.c.id == job_id)).mappings().first()


def count_waiting(bind: Bind) -> int:
    with _transaction(bind) as conn:
        return conn.execute(_COUNT_WAITING).scalar_one()


_OLDEST_ACCEPTED = (
    select(JOBS.c.id, JOBS.c.process_id, JOBS.c.request)
    .where(JOBS.c.status == JobStatus.ACCEPTED.value)
    .order_by(JOBS.c.created_at, JOBS.c.id)
    .limit(bindparam("limit"))
)


def oldest_accepted(bind: Bind, limit: int) -> list[RowMapping]:
    with _transaction(bind) as conn:
        return list(conn.execute(_OLDEST_ACCEPTED, {"limit": limit}).mappings())


_CLAIM = (
    update(JOBS)
    .where(JOBS.c.id.in_(bindparam("ids", expanding=True)), JOBS.c.status == JobStatus.ACCEPTED.value)
    .values(
        executor=bindparam("executor"),
        native_active=True,
        status=bindparam("new_status"),
        started_at=bindparam("started_at"),
        message=bindparam("message"),
        updated_at=bindparam("now"),
    )
    .returning(JOBS.c.id)
)


def claim_many(bind: Bind, job_ids: list[str], executor: str, starts_now: bool) -> set[str]:
    """Take accepted jobs for an executor in one UPDATE; returns the ids it got (a Dismiss or another
    dispatcher may have taken some). ``starts_now``: the executor runs them at once (local pool)."""
    if not job_ids:
        return set()
    now = utcnow()
    params = {
        "ids": job_ids,
        "executor": executor,
        "new_status": (JobStatus.RUNNING if starts_now else JobStatus.QUEUED).value,
        "started_at": now if starts_now else None,
        "message": "running" if starts_now else f"submitting to {executor}",
        "now": now,
    }
    with _transaction(bind) as conn:
        return {row[0] for row in conn.execute(_CLAIM, params)}


_MARK_SUBMITTED = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"))
    .values(
        native_id=bindparam("native_id"),
        message=func.coalesce(bindparam("new_message"), JOBS.c.message),
        updated_at=bindparam("now"),
    )
)


def mark_submitted_many(bind: Bind, submitted: list[tuple[str, str, str | None]]) -> None:
    """Record native ids, one executemany for a cycle's jobs: (job id, native id, message or None)."""
    if not submitted:
        return
    now = utcnow()
    params = [{"job_id": j, "native_id": n, "new_message": m, "now": now} for j, n, m in submitted]
    with _transaction(bind) as conn:
        conn.execute(_MARK_SUBMITTED, params)


def release(bind: Bind, job_id: str, message: str) -> bool:
    """Give a claimed job back to the queue (its executor could not take it now)."""
    return _transition(
        bind,
        job_id,
        [JobStatus.QUEUED, JobStatus.RUNNING],
        status=JobStatus.ACCEPTED,
        native_active=False,
        started_at=None,
        message=message,
    )


def mark_running(bind: Bind, job_id: str, message: str = "running") -> bool:
    return _transition(
        bind,
        job_id,
        [JobStatus.ACCEPTED, JobStatus.QUEUED],
        status=JobStatus.RUNNING,
        started_at=utcnow(),
        message=message,
    )


def update_progress(bind: Bind, job_id: str, message: str, percent: int | None) -> bool:
    values: dict[str, Any] = {"message": message}
    if percent is not None:
        values["progress"] = percent
    return _transition(bind, job_id, [JobStatus.RUNNING], **values)


def mark_succeeded(
    bind: Bind, job_id: str, outputs: list[dict[str, Any]], expires_at: dt.datetime | None, **extra: Any
) -> bool:
    """``extra``: further columns set in the same UPDATE (the dispatcher clears native_active with it)."""
    return _transition(
        bind,
        job_id,
        ACTIVE_STATES,
        status=JobStatus.SUCCEEDED,
        outputs=outputs,
        progress=100,
        message="succeeded",
        expires_at=expires_at,
        **extra,
    )


def mark_failed(bind: Bind, job_id: str, message: str, expires_at: dt.datetime | None = None, **extra: Any) -> bool:
    return _transition(
        bind, job_id, ACTIVE_STATES, status=JobStatus.FAILED, message=message, expires_at=expires_at, **extra
    )


def dismiss(bind: Bind, job_id: str) -> bool:
    """Mark a job dismissed, running or finished; the dispatcher then cancels it and removes its files."""
    allowed = ACTIVE_STATES | {JobStatus.SUCCEEDED, JobStatus.FAILED}
    return _transition(bind, job_id, allowed, status=JobStatus.DISMISSED, message="dismissed by the client")


_ACTIVE_NATIVE = select(JOBS.c.id, JOBS.c.status, JOBS.c.native_id, JOBS.c.process_id).where(
    JOBS.c.executor == bindparam("executor"), JOBS.c.native_active.is_(True)
)


def active_native_jobs(bind: Bind, executor: str) -> list[RowMapping]:
    """Jobs an executor may still hold: running or queued there, or dismissed but not yet cancelled."""
    with _transaction(bind) as conn:
        return list(conn.execute(_ACTIVE_NATIVE, {"executor": executor}).mappings())


def mark_native_done(bind: Bind, job_id: str) -> None:
    _transition(bind, job_id, (), native_active=False)


def is_final(status: str) -> bool:
    return JobStatus(status).is_final
