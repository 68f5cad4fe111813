"""Removing jobs: a dismissal with its files, and finished jobs deleted for good (files, then rows).

Every path that removes jobs goes through here, so they all keep one rule: a job an executor may
still hold (active, or ``native_active``) never loses its directory; the dispatcher removes that once
the executor has let go. Expiry, the disk high-water mark, ``hpc-wps jobs purge`` and ``cancel``
differ only in which jobs they pick.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.engine import Engine, RowMapping

from scheduler import lifecycle, queries
from scheduler.models import JOBS


def directory_size(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (what deleting it frees); 0 if it does not exist."""
    total = 0
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += directory_size(Path(entry.path))
            else:
                total += entry.stat(follow_symlinks=False).st_blocks * 512
        except OSError:  # removed meanwhile
            continue
    return total


def delete_finished_jobs(engine: Engine, jobs_dir: Path, job_ids: Sequence[str]) -> int:
    """Delete the directories, then the rows, of jobs picked as removable; returns the rows deleted.

    A final state is terminal and a released job is never claimed again, so a job picked by
    :func:`queries.removable` stays removable while its files go; the DELETE checks it once more anyway.
    """
    if not job_ids:
        return 0
    for job_id in job_ids:
        shutil.rmtree(jobs_dir / job_id, ignore_errors=True)
    with engine.begin() as conn:
        return conn.execute(delete(JOBS).where(JOBS.c.id.in_(list(job_ids)), queries.removable())).rowcount


def dismiss_job(
    engine: Engine, jobs_dir: Path, job_id: str, message: str = lifecycle.DISMISSED_BY_CLIENT
) -> RowMapping | None:
    """Dismiss a job (queued, running or finished) and remove its files; returns its row, None if unknown.

    A job an executor still holds keeps its directory: the dispatcher cancels it, then removes it.
    """
    lifecycle.dismiss(engine, job_id, message)
    job = queries.get_job(engine, job_id)
    if job is not None and not job["native_active"]:
        shutil.rmtree(jobs_dir / job_id, ignore_errors=True)
    return job
