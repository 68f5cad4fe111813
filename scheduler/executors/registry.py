"""Which executor class serves which name: ``local``, each ``[scheduler] system`` and ``docker``, and
the optional packages each one needs.

The dispatcher builds its executors only here. Each class is imported when it is first built, so a
site without a DRMAA library or the docker package never loads one; what it does need is checked
before, so that ``hpc-wps serve``, ``dispatcher`` and ``config check`` refuse a configuration whose
executor could not run a single job, naming the ``pip install`` that fixes it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from processes.registry import Registry
from processes.setting_fields import SettingsError
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


def _gridengine(settings: JobSettings, processes: Registry, hooks: LocalHooks) -> Executor:
    from scheduler.executors.batch.gridengine_cli import GridEngineExecutor

    return GridEngineExecutor(settings.scheduler, settings.jobs_dir)


def _drmaa(settings: JobSettings, processes: Registry, hooks: LocalHooks) -> Executor:
    from scheduler.executors.batch.drmaa import DrmaaExecutor

    return DrmaaExecutor(settings.scheduler, settings.jobs_dir)


def _docker(settings: JobSettings, processes: Registry, hooks: LocalHooks) -> Executor:
    from scheduler.executors.docker import DockerExecutor

    return DockerExecutor(settings, processes.get)


# The executor of each ``[scheduler] system``, and of every name a job's ``executor`` column may hold but ``web``.
BATCH_SYSTEMS: dict[str, Builder] = {"slurm": _slurm, "gridengine": _gridengine, "drmaa": _drmaa}
EXECUTORS: dict[str, Builder] = {LOCAL: _local, **BATCH_SYSTEMS, DOCKER: _docker}


@dataclass(frozen=True)
class Packages:
    """Modules an executor imports beyond the service's own dependencies, and the extra of
    ``pyproject.toml`` that installs them."""

    modules: tuple[str, ...]
    extra: str


# dill writes a batch job's payload (and a Python process's run in a container); drmaa is the DRMAA binding.
PACKAGES: dict[str, Packages] = {
    "slurm": Packages(("dill",), "scheduler"),
    "gridengine": Packages(("dill",), "scheduler"),
    "drmaa": Packages(("dill", "drmaa"), "scheduler"),
    DOCKER: Packages(("docker", "dill"), "docker"),
}


class MissingPackages(SettingsError):
    """The configuration needs an executor whose packages this Python does not have."""


def needed_executors(settings: JobSettings, processes: Registry) -> list[str]:
    """The executors a dispatcher needs: the local pool always; the ``[scheduler] system`` when some
    job may go to it; docker when some asynchronous job may (mode = docker, or container processes)."""
    names = [LOCAL]
    system = settings.scheduler.system
    if settings.processing.mode == "scheduler" or settings.scheduler.scheduler_processes:
        if system not in BATCH_SYSTEMS:
            raise ValueError(f"unknown scheduler system {system!r}")
        names.append(system)
    if any(settings.executor_for(process) == DOCKER for process in processes):
        names.append(DOCKER)
    return names


def check_packages(names: Iterable[str]) -> None:
    """Raise MissingPackages naming each executor's missing modules and the command that installs them.

    ``find_spec`` looks for a module without importing it: the drmaa binding, imported, would already
    want its C library, which is the dispatcher's to load.
    """
    problems = []
    for name in names:
        needs = PACKAGES.get(name)
        missing = [m for m in needs.modules if importlib.util.find_spec(m) is None] if needs else []
        if needs and missing:
            packages = f"package {missing[0]}" if len(missing) == 1 else f"packages {' and '.join(missing)}"
            problems.append(
                f"the {name} executor needs the Python {packages}, which {sys.executable} does not have:"
                f" pip install 'hpc-wps[{needs.extra}]'"
            )
    if problems:
        raise MissingPackages("; ".join(problems))


def build_executors(settings: JobSettings, processes: Registry, hooks: LocalHooks) -> dict[str, Executor]:
    """The executors a dispatcher needs (``needed_executors``), by name, once their packages are there."""
    names = needed_executors(settings, processes)
    check_packages(names)
    return {name: EXECUTORS[name](settings, processes, hooks) for name in names}
