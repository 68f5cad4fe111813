"""Periodic upkeep the dispatcher runs between cycles: jobs whose web worker died, expired jobs.

A synchronous Execute (and an ``inline_async`` one) runs inside a web worker; if gunicorn kills that
worker (timeout, OOM, kill -9) nothing else would ever end its job. Such a job cannot outlive its time
limit, so one still running well past it is failed here. Expired jobs lose their files and their row:
their ``ExpirationDate`` has passed, and clients then get NoSuchJob.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from scheduler import lifecycle
from scheduler.models import ACTIVE_STATES, JOBS, JobStatus, utcnow

log = logging.getLogger(__name__)

WEB_EXECUTOR = "web"
GRACE = 60.0  # seconds past the time limit before a web job counts as abandoned
EXPIRED_BATCH = 500


def fail_abandoned_web_jobs(engine: Engine, time_limit: float, expires_at: dt.datetime) -> int:
    cutoff = utcnow() - dt.timedelta(seconds=time_limit + GRACE)
    stmt = select(JOBS.c.id).where(
        JOBS.c.executor == WEB_EXECUTOR,
        JOBS.c.status.in_([s.value for s in ACTIVE_STATES]),
        JOBS.c.updated_at < cutoff,
    )
    with engine.connect() as conn:
        ids = [row[0] for row in conn.execute(stmt)]
    failed = sum(
        lifecycle.mark_failed(
            engine, job_id, "interrupted: the web worker running it stopped before it ended", expires_at
        )
        for job_id in ids
    )
    if failed:
        log.warning("failed %d job(s) abandoned by their web worker", failed)
    return failed


def remove_expired(engine: Engine, jobs_dir: Path) -> int:
    """Delete finished jobs past their expiration date: directory first, then the row."""
    stmt = (
        select(JOBS.c.id)
        .where(
            JOBS.c.expires_at < utcnow(),
            JOBS.c.status.in_([JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.DISMISSED.value]),
            JOBS.c.native_active.is_(False),
        )
        .limit(EXPIRED_BATCH)
    )
    with engine.connect() as conn:
        ids = [row[0] for row in conn.execute(stmt)]
    for job_id in ids:
        shutil.rmtree(jobs_dir / job_id, ignore_errors=True)
    if ids:
        with engine.begin() as conn:
            conn.execute(delete(JOBS).where(JOBS.c.id.in_(ids)))
        log.info("removed %d expired job(s)", len(ids))
    return len(ids)
