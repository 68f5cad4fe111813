"""Every change of a job's state, one named function each.

Each transition is one conditional UPDATE (``WHERE status IN (allowed previous states)``), so a web
worker dismissing a job, the dispatcher reconciling it and the job itself reporting its end can race
without ever moving a final state or running a job twice: the loser's UPDATE matches no row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine, RowMapping

from scheduler.models import ACTIVE_STATES, FINAL_STATES, JOBS, JobStatus, utcnow

MESSAGE_LIMIT = 4000


def new_job_id() -> str:
    """A uuid4: 122 random bits, so job ids (and with them status and output URLs) cannot be guessed."""
    return str(uuid.uuid4())


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


def _transition(conn: Connection, job_id: str, allowed: Iterable[JobStatus], **values: Any) -> bool:
    stmt = (
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.status.in_([s.value for s in allowed]))
        .values(**_values(**values))
    )
    return conn.execute(stmt).rowcount == 1


def create_job(
    engine: Engine,
    process_id: str,
    version: str,
    mode: str,
    request: dict[str, Any],
    status: JobStatus = JobStatus.ACCEPTED,
    executor: str | None = None,
    message: str | None = None,
) -> str:
    job_id = new_job_id()
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            JOBS.insert().values(
                id=job_id,
                process_id=process_id,
                status=status.value,
                progress=0,
                message=message,
                version=version,
                mode=mode,
                request=request,
                executor=executor,
                native_active=False,
                created_at=now,
                started_at=now if status is JobStatus.RUNNING else None,
                updated_at=now,
            )
        )
    return job_id


def get_job(engine: Engine, job_id: str) -> RowMapping | None:
    with engine.connect() as conn:
        return conn.execute(select(JOBS).where(JOBS.c.id == job_id)).mappings().first()


def count_waiting(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(JOBS).where(JOBS.c.status == JobStatus.ACCEPTED.value)
        ).scalar_one()


def oldest_accepted(engine: Engine, limit: int) -> list[RowMapping]:
    with engine.connect() as conn:
        stmt = (
            select(JOBS)
            .where(JOBS.c.status == JobStatus.ACCEPTED.value)
            .order_by(JOBS.c.created_at, JOBS.c.id)
            .limit(limit)
        )
        return list(conn.execute(stmt).mappings())


def claim(engine: Engine, job_id: str, executor: str) -> bool:
    """Take an accepted job for an executor; False if someone else (or a Dismiss) got there first."""
    with engine.begin() as conn:
        return _transition(
            conn, job_id, [JobStatus.ACCEPTED], status=JobStatus.QUEUED, executor=executor, native_active=True
        )


def mark_submitted(engine: Engine, job_id: str, native_id: str, message: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(**_values(native_id=native_id, message=message)))


def release(engine: Engine, job_id: str, message: str) -> bool:
    """Give a claimed job back to the queue (its executor could not take it now)."""
    with engine.begin() as conn:
        return _transition(
            conn, job_id, [JobStatus.QUEUED], status=JobStatus.ACCEPTED, native_active=False, message=message
        )


def mark_running(engine: Engine, job_id: str, message: str = "running") -> bool:
    with engine.begin() as conn:
        return _transition(
            conn,
            job_id,
            [JobStatus.ACCEPTED, JobStatus.QUEUED],
            status=JobStatus.RUNNING,
            started_at=utcnow(),
            message=message,
        )


def update_progress(engine: Engine, job_id: str, message: str, percent: int | None) -> bool:
    values: dict[str, Any] = {"message": message}
    if percent is not None:
        values["progress"] = percent
    with engine.begin() as conn:
        return _transition(conn, job_id, [JobStatus.RUNNING], **values)


def mark_succeeded(engine: Engine, job_id: str, outputs: list[dict[str, Any]], expires_at: dt.datetime | None) -> bool:
    with engine.begin() as conn:
        return _transition(
            conn,
            job_id,
            ACTIVE_STATES,
            status=JobStatus.SUCCEEDED,
            outputs=outputs,
            progress=100,
            message="succeeded",
            expires_at=expires_at,
        )


def mark_failed(engine: Engine, job_id: str, message: str, expires_at: dt.datetime | None = None) -> bool:
    with engine.begin() as conn:
        return _transition(conn, job_id, ACTIVE_STATES, status=JobStatus.FAILED, message=message, expires_at=expires_at)


def dismiss(engine: Engine, job_id: str) -> bool:
    """Mark a job dismissed, running or finished; the dispatcher then cancels it and removes its files."""
    allowed = ACTIVE_STATES | {JobStatus.SUCCEEDED, JobStatus.FAILED}
    with engine.begin() as conn:
        return _transition(conn, job_id, allowed, status=JobStatus.DISMISSED, message="dismissed by the client")


def active_native_jobs(engine: Engine, executor: str) -> list[RowMapping]:
    """Jobs an executor may still hold: running or queued there, or dismissed but not yet cancelled."""
    with engine.connect() as conn:
        stmt = select(JOBS.c.id, JOBS.c.status, JOBS.c.native_id, JOBS.c.process_id).where(
            JOBS.c.executor == executor, JOBS.c.native_active.is_(True)
        )
        return list(conn.execute(stmt).mappings())


def mark_native_done(engine: Engine, job_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(native_active=False))


def is_final(status: str) -> bool:
    return JobStatus(status) in FINAL_STATES
