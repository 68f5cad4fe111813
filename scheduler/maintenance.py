"""Periodic upkeep the dispatcher runs between cycles: jobs whose web worker died, local jobs of hosts
gone for good, expired jobs, and finished jobs evicted while the job directories are over their
high-water mark.

A synchronous Execute (and an ``inline_async`` one) runs inside a web worker; if gunicorn kills that
worker (timeout, OOM, kill -9) nothing else would ever end its job. The job names its worker, so a
dispatcher that can see that worker (same host, same pid namespace) fails the job as soon as the worker
is gone; elsewhere, such a job cannot outlive its time limit, so one still running well past it is
failed here. Expired jobs lose their files and their row:
their ``ExpirationDate`` has passed, and clients then get NoSuchJob. When the disk fills faster than
jobs expire, the oldest finished jobs go early, so that new jobs still have room to write; a job
that is waiting or running is never touched.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import shutil
import socket
from pathlib import Path

from sqlalchemy.engine import Engine, RowMapping

from scheduler import lifecycle, queries
from scheduler.executor_names import WEB
from scheduler.executors.local import LocalExecutor
from scheduler.heartbeat import dispatchers
from scheduler.models import utcnow
from scheduler.pids import holder_gone
from scheduler.removal import delete_finished_jobs, directory_size

log = logging.getLogger(__name__)

GRACE = 60.0  # seconds past the time limit before a web job counts as abandoned
EXPIRED_BATCH = 500
EVICTION_BATCH = 100  # oldest finished jobs looked at per pass; usage is measured again after each pass


def fail_abandoned_web_jobs(engine: Engine, time_limit: float, expires_at: dt.datetime) -> int:
    """Jobs whose web worker is known to be gone (same host and pid namespace as this dispatcher), at
    once; the others once they are past their time limit plus GRACE."""
    cutoff = utcnow() - dt.timedelta(seconds=time_limit + GRACE)
    rows = queries.active_jobs(engine, WEB)
    ids = [row["id"] for row in rows if row["updated_at"] < cutoff or holder_gone(row["claimed_by"] or "")]
    failed = sum(
        lifecycle.mark_failed(
            engine, job_id, "interrupted: the web worker running it stopped before it ended", expires_at
        )
        for job_id in ids
    )
    if failed:
        log.warning("failed %d job(s) abandoned by their web worker", failed)
    return failed


def jobs_of_lost_hosts(engine: Engine, silent_for: float) -> list[tuple[RowMapping, str]]:
    """Local jobs of other hosts on which no dispatcher has beaten for ``silent_for`` seconds, and that
    have not changed for as long either, each with its host.

    Only a dispatcher on a job's own host can see its process, so a host that never comes back (its
    hardware gone, or a container started again under a new hostname) would leave its jobs running
    for ever. A job still reporting progress is never among them, even while its host has no
    dispatcher (one stopped for maintenance): the last change must be as old as the silence.
    """
    cutoff = utcnow() - dt.timedelta(seconds=silent_for)
    here = socket.gethostname()
    candidates = []
    for row in queries.active_native_jobs(engine, LocalExecutor.name):
        owner = (row["native_id"] or "").split("/")  # host, dispatcher, worker
        if len(owner) == 3 and owner[0] != here and row["updated_at"] < cutoff:
            candidates.append((row, owner[0]))
    if not candidates:
        return []
    with engine.connect() as conn:
        live = {state.host for state in dispatchers(conn, silent_for) if state.alive}
    return [(row, host) for row, host in candidates if host not in live]


def remove_expired(engine: Engine, jobs_dir: Path) -> int:
    """Delete finished jobs past their expiration date: directory first, then the row."""
    removed = delete_finished_jobs(engine, jobs_dir, queries.expired_jobs(engine, EXPIRED_BATCH))
    if removed:
        log.info("removed %d expired job(s)", removed)
    return removed


def bytes_over_high_water(jobs_dir: Path, high_water: float, budget: int) -> int:
    """How many bytes must go for the job directories to be within both limits (0: they are).

    ``high_water`` is a percentage of the filesystem holding ``jobs_dir``, counted as ``df`` counts it
    (space reserved for root is not space the service can use); ``budget`` caps the bytes under
    ``jobs_dir`` itself, for a filesystem shared with others. 0 switches either off.
    """
    over = 0.0
    if high_water:
        usage = shutil.disk_usage(jobs_dir)
        over = usage.used - (usage.used + usage.free) * high_water / 100
    if budget:
        over = max(over, directory_size(jobs_dir) - budget)
    return max(0, math.ceil(over))


def evict_over_high_water(engine: Engine, jobs_dir: Path, high_water: float, budget: int) -> list[str]:
    """While the job directories are over a limit, delete the oldest finished jobs (files and rows).

    Usage is measured again after each batch rather than trusted to the sizes counted, since a file
    still open elsewhere or hard-linked frees nothing. Returns the ids evicted, oldest first.
    """
    if not (high_water or budget) or not jobs_dir.is_dir():
        return []
    evicted: list[str] = []
    over = bytes_over_high_water(jobs_dir, high_water, budget)
    while over > 0:
        rows = queries.oldest_finished(engine, EVICTION_BATCH)
        if not rows:
            log.warning(
                "the job directories are still %s over their high-water mark with no finished job left to evict",
                _mib(over),
            )
            break
        batch, freed = [], 0
        for row in rows:
            size = directory_size(jobs_dir / row["id"])
            batch.append(row["id"])
            freed += size
            log.warning(
                "evicted job %s (%s, %s, finished %s) to free disk space: %s",
                row["id"],
                row["process_id"],
                row["status"],
                row["finished_at"],
                _mib(size),
            )
            if freed >= over:
                break
        delete_finished_jobs(engine, jobs_dir, batch)
        evicted.extend(batch)
        over = bytes_over_high_water(jobs_dir, high_water, budget)
    if evicted:
        log.warning("disk high-water mark: evicted %d finished job(s), oldest first", len(evicted))
    return evicted


def _mib(size: float) -> str:
    return f"{size / 1024**2:.1f} MiB"
