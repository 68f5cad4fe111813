"""The job table: the single truth about every job, read by every web worker and the dispatcher."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Text, false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class JobStatus(enum.StrEnum):
    """Stored as text. ``queued`` means handed to an executor that has not started it yet."""

    ACCEPTED = "accepted"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DISMISSED = "dismissed"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


class JobMode(enum.StrEnum):
    """Stored as text: how the request that created a job wants its result, in the reply or later."""

    SYNC = "sync"
    ASYNC = "async"


FINAL_STATES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DISMISSED})
ACTIVE_STATES = frozenset({JobStatus.ACCEPTED, JobStatus.QUEUED, JobStatus.RUNNING})
FINAL_VALUES = frozenset(s.value for s in FINAL_STATES)  # as stored: compared with rows without an Enum


ANONYMOUS = "anonymous"  # the owner of every job when no user is known


def utcnow() -> dt.datetime:
    """Naive UTC: SQLite keeps no zone, so every timestamp in the table is UTC without one."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# The condition of the partial index on notify_due, written as SQLAlchemy writes ``WHERE jobs.notify_due``
# for each database: SQLite uses a partial index only for a query whose WHERE repeats its condition.
NOTIFY_DUE = {"postgresql_where": text("notify_due"), "sqlite_where": text("notify_due = 1")}


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    process_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    # The WPS version and execution mode of the request that created the job ("1.0.0"/"2.0.0", "sync"/"async").
    version: Mapped[str] = mapped_column(String(8))
    mode: Mapped[str] = mapped_column(String(8))
    # Inputs as sent (values and references) and the requested outputs: enough to run the job anywhere.
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Output records written when the job succeeds (literal values inline, complex ones as file names).
    outputs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    executor: Mapped[str | None] = mapped_column(String(32))
    native_id: Mapped[str | None] = mapped_column(String(255))
    # The dispatcher that claimed it, as host/pid:starttime: the one handing it to its executor.
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    # True while the executor may still hold the job: the dispatcher polls, cancels and cleans up these.
    native_active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # Who submitted it: the authenticated user, or ANONYMOUS (no authentication, or jobs from before it).
    owner: Mapped[str] = mapped_column(String(255), default=ANONYMOUS, server_default=ANONYMOUS)
    # Where the job's subscribers want to hear of it (scheduler/subscribers.py: URIs shown redacted,
    # credentials sealed); None: nobody asked.
    subscribers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # True while a notification may still be owed: the dispatcher's notifier reads only these rows.
    notify_due: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The state last notified (running, succeeded, failed) and the updated_at of the row it was read from:
    # a notifier claims a notification by moving these, so several dispatchers never send one twice.
    notified: Mapped[str | None] = mapped_column(String(16))
    notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # Times a dispatcher stopped while handing it over (an exception, or killed): at HANDOVER_CRASH_LIMIT
    # the job fails instead of stopping the next dispatcher too (scheduler/dispatcher.py).
    handover_crashes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_executor_active", "executor", "native_active"),
        Index("ix_jobs_expires_at", "expires_at"),
        Index("ix_jobs_owner_status", "owner", "status"),
        # Covers the dispatcher's ranking of waiting jobs within their owner's queue (queries.next_to_start).
        Index("ix_jobs_status_owner_created", "status", "owner", "created_at", "id"),
        # Partial: the few jobs that may still owe a notification, not the many that never will.
        Index("ix_jobs_notify_due", "notify_due", **NOTIFY_DUE),
        # The job listings of OGC API - Processes, newest first, a page from a cursor (queries.find_jobs).
        Index("ix_jobs_owner_created", "owner", "created_at", "id"),
        Index("ix_jobs_created", "created_at", "id"),
    )


JOBS = Job.__table__


class DispatcherBeat(Base):
    """One row per running dispatcher, rewritten every heartbeat interval: /health and the metrics
    tell from it whether a dispatcher is alive, and operators see where each one runs."""

    __tablename__ = "dispatchers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    # The executors it runs jobs on, comma-separated ("local,slurm").
    executors: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    beat_at: Mapped[dt.datetime] = mapped_column(DateTime)
    # Set when it stopped on an exception (its type in ``failure``); a dispatcher stopped on purpose
    # deletes its row instead, and one killed leaves its beat to go stale.
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    failure: Mapped[str | None] = mapped_column(String(255))


DISPATCHERS = DispatcherBeat.__table__
