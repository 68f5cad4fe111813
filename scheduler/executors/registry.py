"""Which executor class serves which name: ``local``, each ``[scheduler] system`` and ``docker``.

The dispatcher builds its executors only here. Each class is imported when it is first built, so a
site without a DRMAA library or the docker package never loads one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from processes.registry import Registry
from scheduler.executor_names import DOCKER, LOCAL
from scheduler.executors.base import Executor, JobSpec
from scheduler.settings import JobSettings


@dataclass(frozen=True)
class LocalHooks:
    """What the local pool takes from the dispatcher that forks it."""

    run: Callable[[JobSpec], None]  # runs one job in a worker
    prepare_worker: Callable[[], None]  # in a freshly forked worker
    identity: str  # the dispatcher, host/pid:starttime, that owns the pool's jobs


Builder = Callable[[JobSettings, Registry, LocalHooks], Executor]


def _local(settings: JobSettings, processes: Registry, hooks: LocalHooks) -> Executor:
    from scheduler.executors.local import LocalExecutor

    pool = settings.processing
    return LocalExecutor(pool.slots, hooks.run, hooks.prepare_worker, pool.worker_max_jobs, hooks.identity)


def _slurm(settings: JobSettings, processes: Registry, hooks: LocalHooks) -> Executor:
    from scheduler.executors.batch.slurm import SlurmExecutor

    return SlurmExecutor(settings.scheduler, settings.jobs_dir)


def _drmaa(settings: JobSettings, processes: Registry, hooks: LocalHooks) -> Executor:
    from scheduler.executors.batch.drmaa import DrmaaExecutor

    return DrmaaExecutor(settings.scheduler, settings.jobs_dir)


def _docker(settings: JobSettings, processes: Registry, hooks: LocalHooks) -> Executor:
    from scheduler.executors.docker import DockerExecutor

    return DockerExecutor(settings, processes.get)


# The executor of each ``[scheduler] system``, and of every name a job's ``executor`` column may hold but ``web``.
BATCH_SYSTEMS: dict[str, Builder] = {"slurm": _slurm, "drmaa": _drmaa}
EXECUTORS: dict[str, Builder] = {LOCAL: _local, **BATCH_SYSTEMS, DOCKER: _docker}


def build_executors(settings: JobSettings, processes: Registry, hooks: LocalHooks) -> dict[str, Executor]:
    """The executors a dispatcher needs, by name: the local pool always; the ``[scheduler] system`` when
    some job may go to it; docker when some asynchronous job may (mode = docker, or container processes)."""
    names = [LOCAL]
    system = settings.scheduler.system
    if settings.processing.mode == "scheduler" or settings.scheduler.scheduler_processes:
        if system not in BATCH_SYSTEMS:
            raise ValueError(f"unknown scheduler system {system!r}")
        names.append(system)
    if any(settings.executor_for(process) == DOCKER for process in processes):
        names.append(DOCKER)
    return {name: EXECUTORS[name](settings, processes, hooks) for name in names}
