"""Which executor class serves which ``[scheduler] system``; imported lazily, so a site without a
DRMAA library never loads one."""

from __future__ import annotations

from app.settings import Settings
from scheduler.base import Executor


def build_batch_executor(settings: Settings) -> Executor:
    system = settings.scheduler.system
    if system == "slurm":
        from scheduler.slurm import SlurmExecutor

        return SlurmExecutor(settings.scheduler, settings.jobs_dir)
    if system == "drmaa":
        from scheduler.drmaa_executor import DrmaaExecutor

        return DrmaaExecutor(settings.scheduler, settings.jobs_dir)
    raise ValueError(f"unknown scheduler system {system!r}")
