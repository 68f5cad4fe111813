"""Which executor class serves which ``[scheduler] system``, and the docker executor; imported lazily,
so a site without a DRMAA library or the docker package never loads one."""

from __future__ import annotations

from app.settings import Settings
from processes.registry import Registry
from scheduler.base import Executor
from scheduler.executor_names import DOCKER


def build_batch_executor(settings: Settings) -> Executor:
    system = settings.scheduler.system
    if system == "slurm":
        from scheduler.slurm import SlurmExecutor

        return SlurmExecutor(settings.scheduler, settings.jobs_dir)
    if system == "drmaa":
        from scheduler.drmaa_executor import DrmaaExecutor

        return DrmaaExecutor(settings.scheduler, settings.jobs_dir)
    raise ValueError(f"unknown scheduler system {system!r}")


def wants_docker(settings: Settings, registry: Registry) -> bool:
    """True when some asynchronous job may go to the docker executor."""
    return any(settings.executor_name(p.identifier) == DOCKER for p in registry)


def build_docker_executor(settings: Settings, registry: Registry) -> Executor:
    from scheduler.docker_executor import DockerExecutor

    return DockerExecutor(settings, registry.get)
