"""Every change of a job's state, one named function each; the reads are in ``queries.py``.

Each transition is one conditional UPDATE (``WHERE status IN (allowed previous states)``), so a web
worker dismissing a job, the dispatcher settling it and the job itself reporting progress can race
without ever moving a final state or running a job twice: the loser's UPDATE matches no row. The
allowed previous states all come from one table, ``TRANSITIONS``, so the rules can be read (and
tested) in one place.

Every function takes an Engine (it then runs in a transaction of its own) or an open Connection (it
joins the caller's transaction): the dispatcher settles a whole poll cycle in one transaction, which
on SQLite means one write lock instead of one per job.

A change that ends a job for good hands the row (returned by the UPDATE itself) to the job metrics,
which count it when the transaction commits (``scheduler/job_metrics.py``).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlalchemy.sql.dml import Update

from processes.text import clean_message
from scheduler import job_metrics, quotas
from scheduler.db import Bind, transaction
from scheduler.models import ACTIVE_STATES, ANONYMOUS, FINAL_VALUES, JOBS, JobMode, JobStatus, utcnow
from scheduler.quotas import Quota

MESSAGE_LIMIT = 4000
DISMISSED_BY_CLIENT = "dismissed by the client"
_INSERT = JOBS.insert()

# Every move a job may make, from -> to. A finished job only ever goes on to dismissed; a dismissed
# one never moves again. running -> running is a progress report (no change of state).
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.ACCEPTED: frozenset(
        {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DISMISSED}
    ),
    JobStatus.QUEUED: frozenset(
        {JobStatus.ACCEPTED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DISMISSED}
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.ACCEPTED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DISMISSED}
    ),
    JobStatus.SUCCEEDED: frozenset({JobStatus.DISMISSED}),
    JobStatus.FAILED: frozenset({JobStatus.DISMISSED}),
    JobStatus.DISMISSED: frozenset(),
}


def moves_into(to: JobStatus) -> frozenset[JobStatus]:
    """The states a job may change to ``to`` from; ``to`` itself is no change of state, so never one."""
    return frozenset(s for s, targets in TRANSITIONS.items() if to in targets and s is not to)


# The guard of each transition function, taken from the table once, next to the UPDATEs using them.
# A claim that starts its jobs at once (running) still takes only those that could be queued: jobs
# no executor holds yet, never one another dispatcher has queued already.
_CLAIMABLE = moves_into(JobStatus.QUEUED)
_RELEASABLE = moves_into(JobStatus.ACCEPTED)
_STARTABLE = moves_into(JobStatus.RUNNING)
_REPORTING = TRANSITIONS[JobStatus.RUNNING] & {JobStatus.RUNNING}  # progress: only a running job reports
_SUCCEEDABLE = moves_into(JobStatus.SUCCEEDED)
_FAILABLE = moves_into(JobStatus.FAILED)
# A dismissal ends an active job, or takes back a finished one: two UPDATEs, so that the job metrics
# count only the first (see ``dismiss``).
_DISMISSIBLE_ACTIVE = moves_into(JobStatus.DISMISSED) & ACTIVE_STATES
_DISMISSIBLE_ENDED = moves_into(JobStatus.DISMISSED) - ACTIVE_STATES


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
        values["message"] = clean_message(values["message"])[:MESSAGE_LIMIT]
    values["updated_at"] = now
    return values


@functools.cache
def _update(allowed: frozenset[JobStatus], columns: tuple[str, ...], ends: bool) -> Update:
    """One UPDATE per transition shape, built once: on the hot path only parameters change."""
    stmt = update(JOBS).where(JOBS.c.id == bindparam("job_id"), JOBS.c.status.in_([s.value for s in sorted(allowed)]))
    stmt = stmt.values({c: bindparam(f"v_{c}") for c in columns})
    return stmt.returning(*job_metrics.ENDED_COLUMNS) if ends else stmt


def _transition(bind: Bind, job_id: str, allowed: frozenset[JobStatus], **values: Any) -> bool:
    """``allowed``: the previous states the row must be in, one of the guards taken from ``TRANSITIONS``."""
    values = _values(**values)
    # From an active state to a final one: the job may have ended for good, which the metrics count.
    ends = values.get("status") in FINAL_VALUES and bool(allowed) and allowed <= ACTIVE_STATES
    stmt = _update(allowed, tuple(sorted(values)), ends)
    params = {f"v_{k}": v for k, v in values.items()} | {"job_id": job_id}
    with transaction(bind) as conn:
        result = conn.execute(stmt, params)
        if not ends:
            return result.rowcount == 1
        row = result.first()
        if row is not None:
            job_metrics.note_settled(conn, row)
        return row is not None


def create_job(
    bind: Bind,
    process_id: str,
    version: str,
    mode: JobMode,
    request: dict[str, Any],
    status: JobStatus = JobStatus.ACCEPTED,
    executor: str | None = None,
    claimed_by: str | None = None,
    owner: str = ANONYMOUS,
    within: Quota | None = None,
    subscribers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Insert a job; returns its row as inserted, so the caller need not read it back.

    ``claimed_by``: the process that runs it from the start (a web worker, see ``pids.holder``).
    ``subscribers``: as ``scheduler.subscribers.stored`` keeps them; the dispatcher notifies them.
    ``within``: a quota of ``owner`` the new row must stay within, counted and inserted at once
    (``scheduler/quotas.py``); raises :class:`~scheduler.errors.QuotaExceeded` when it is reached."""
    now = utcnow()
    running = status is JobStatus.RUNNING
    row = {
        "id": new_job_id(),
        "process_id": process_id,
        "status": status.value,
        "progress": 0,
        "message": "running" if running else "accepted",
        "version": version,
        "mode": JobMode(mode).value,  # plain text, as a row read back has it
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
        "claimed_by": claimed_by,
        "owner": owner,
        "subscribers": subscribers,
        "notify_due": bool(subscribers),
        "notified": None,
        "notified_at": None,
        "handover_crashes": 0,
    }
    with transaction(bind) as conn:
        if within is None:
            conn.execute(_INSERT, row)  # parameters, not .values(): the compiled statement is reused
        else:
            quotas.lock_owner(conn, owner)
            inserted = conn.execute(quotas.conditional_insert(within.name), row | {"maximum": within.maximum})
            if inserted.first() is None:
                raise within.refusal()
    return row


_CLAIM = (
    update(JOBS)
    .where(JOBS.c.id.in_(bindparam("ids", expanding=True)), JOBS.c.status.in_([s.value for s in sorted(_CLAIMABLE)]))
    .values(
        executor=bindparam("executor"),
        claimed_by=bindparam("claimed_by"),
        native_active=True,
        status=bindparam("new_status"),
        started_at=bindparam("started_at"),
        message=bindparam("message"),
        updated_at=bindparam("now"),
    )
    .returning(JOBS.c.id)
)


def claim_many(bind: Bind, job_ids: list[str], executor: str, starts_now: bool, claimed_by: str) -> set[str]:
    """Take accepted jobs for an executor in one UPDATE; returns the ids it got (a Dismiss or another
    dispatcher may have taken some). ``starts_now``: the executor runs them at once (local pool);
    ``claimed_by``: the dispatcher, as ``host/pid:starttime``."""
    if not job_ids:
        return set()
    now = utcnow()
    params = {
        "ids": job_ids,
        "executor": executor,
        "claimed_by": claimed_by,
        "new_status": (JobStatus.RUNNING if starts_now else JobStatus.QUEUED).value,
        "started_at": now if starts_now else None,
        "message": "running" if starts_now else f"submitting to {executor}",
        "now": now,
    }
    with transaction(bind) as conn:
        return {row[0] for row in conn.execute(_CLAIM, params)}


_COUNT_HANDOVER_CRASH = (
    update(JOBS)
    # Only a claim still waiting for its id: a recovery that another dispatcher has just done counts once.
    .where(
        JOBS.c.id == bindparam("job_id"),
        JOBS.c.native_active.is_(True),
        JOBS.c.native_id.is_(None),
        JOBS.c.status.in_([s.value for s in sorted(_RELEASABLE & _FAILABLE)]),
    )
    .values(handover_crashes=JOBS.c.handover_crashes + 1, updated_at=bindparam("now"))
    .returning(JOBS.c.handover_crashes)
)


def count_handover_crash(bind: Bind, job_id: str) -> int | None:
    """One more dispatcher stopped while handing the claimed job over; returns how many have now, or
    None if the job is no longer a claim waiting for its native id (recovered already, or dismissed)."""
    with transaction(bind) as conn:
        return conn.execute(_COUNT_HANDOVER_CRASH, {"job_id": job_id, "now": utcnow()}).scalar()


_MARK_SUBMITTED = (
    update(JOBS)
    # Only a claim still waiting for its id: never one that recovery has since queued again or failed.
    .where(JOBS.c.id == bindparam("job_id"), JOBS.c.native_active.is_(True), JOBS.c.native_id.is_(None))
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
    with transaction(bind) as conn:
        conn.execute(_MARK_SUBMITTED, params)


def release(bind: Bind, job_id: str, message: str, **extra: Any) -> bool:
    """Give a claimed job back to the queue: its executor could not take it now, or it was interrupted
    and is safe to run again (``Process.rerunnable``). It leaves no trace of a native job behind, so
    the next claim starts from scratch and a restart cannot re-attach to the old one. ``extra``: other
    columns to set (``handover_crashes``)."""
    return _transition(
        bind,
        job_id,
        _RELEASABLE,
        status=JobStatus.ACCEPTED,
        native_active=False,
        native_id=None,
        started_at=None,
        progress=0,
        message=message,
        **extra,
    )


def mark_running(bind: Bind, job_id: str, message: str = "running") -> bool:
    return _transition(
        bind,
        job_id,
        _STARTABLE,
        status=JobStatus.RUNNING,
        started_at=utcnow(),
        message=message,
    )


def update_progress(bind: Bind, job_id: str, message: str, percent: int | None) -> bool:
    values: dict[str, Any] = {"message": message}
    if percent is not None:
        values["progress"] = percent
    return _transition(bind, job_id, _REPORTING, **values)


def mark_succeeded(
    bind: Bind, job_id: str, outputs: list[dict[str, Any]], expires_at: dt.datetime | None, **extra: Any
) -> bool:
    """``extra``: further columns set in the same UPDATE (the dispatcher clears native_active with it)."""
    return _transition(
        bind,
        job_id,
        _SUCCEEDABLE,
        status=JobStatus.SUCCEEDED,
        outputs=outputs,
        progress=100,
        message="succeeded",
        expires_at=expires_at,
        **extra,
    )


def mark_failed(bind: Bind, job_id: str, message: str, expires_at: dt.datetime | None = None, **extra: Any) -> bool:
    return _transition(
        bind, job_id, _FAILABLE, status=JobStatus.FAILED, message=message, expires_at=expires_at, **extra
    )


def dismiss(bind: Bind, job_id: str, message: str = DISMISSED_BY_CLIENT) -> bool:
    """Mark a job dismissed, running or finished; the dispatcher then cancels it and removes its files.

    Two UPDATEs in one transaction, so that a job that had ended already is not counted twice."""
    with transaction(bind) as conn:
        if _transition(conn, job_id, _DISMISSIBLE_ACTIVE, status=JobStatus.DISMISSED, message=message):
            return True
        return _transition(conn, job_id, _DISMISSIBLE_ENDED, status=JobStatus.DISMISSED, message=message)


_NATIVE_DONE = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"), JOBS.c.native_active.is_(True))
    .values(native_active=False, updated_at=bindparam("now"))
    .returning(*job_metrics.ENDED_COLUMNS)
)


def mark_native_done(bind: Bind, job_id: str) -> None:
    """The executor no longer holds a job that is final already (its launcher or a Dismiss made it so)."""
    with transaction(bind) as conn:
        row = conn.execute(_NATIVE_DONE, {"job_id": job_id, "now": utcnow()}).first()
        if row is not None:
            job_metrics.note_settled(conn, row)


_CLAIM_NOTIFICATION = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("job_id"),
        JOBS.c.notify_due.is_(True),
        JOBS.c.status == bindparam("state"),
        JOBS.c.notified.is_not_distinct_from(bindparam("old_notified")),
        JOBS.c.notified_at.is_not_distinct_from(bindparam("old_notified_at")),
    )
    .values(notified=bindparam("state"), notified_at=bindparam("read_at"), notify_due=bindparam("still_due"))
)


def claim_notification(bind: Bind, row: Mapping[str, Any], still_due: bool) -> bool:
    """Record that the state of ``row`` (as the notifier read it) is being notified; False when the job
    moved since, or another dispatcher claimed it first. ``still_due``: the job may owe more later
    (it runs on); False takes it out of the notifier's reads. Not a transition: ``updated_at`` stays,
    so the job's own changes are still told from the notifier's."""
    params = {
        "job_id": row["id"],
        "state": row["status"],
        "old_notified": row["notified"],
        "old_notified_at": row["notified_at"],
        "read_at": row["updated_at"],
        "still_due": still_due,
    }
    with transaction(bind) as conn:
        return conn.execute(_CLAIM_NOTIFICATION, params).rowcount == 1
