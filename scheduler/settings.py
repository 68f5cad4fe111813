"""The settings the job system reads: the ``[processing]`` and ``[scheduler]`` sections, and
:class:`JobSettings`, the part of the whole configuration the app hands to the job service, the
dispatcher and the executors.

Nothing here reads a file or the environment: the app (or the CLI) loads and validates the INI file
once and builds a :class:`JobSettings` from it.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes.container import is_container_process
from processes.container.runtimes import RUNTIMES
from processes.container.settings import DockerSettings
from processes.fetch import FetchLimits
from processes.model import Process
from processes.setting_fields import parse_percent, setting, size_setting
from scheduler.access import ProcessAccess
from scheduler.accounts import AccountMap, parse_account_name
from scheduler.executor_names import DOCKER, LOCAL


def parse_name(text: str) -> str:
    """A name passed to a batch system as one word: letters, digits, ``_ . -`` and ``*`` wildcards."""
    value = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.*][A-Za-z0-9_.*-]*", value):
        raise ValueError(f"{value!r} is not one word of letters, digits, '_', '.', '-' and '*'")
    return value


@dataclass(frozen=True)
class SshDestination:
    """A login host as ``[scheduler] remote`` names it: ``ssh://user@host[:port]``."""

    user: str
    host: str
    port: int | None = None

    @classmethod
    def parse(cls, url: str) -> SshDestination:
        parts = urllib.parse.urlsplit(url.strip())
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{url!r}: the port is not a number from 1 to 65535") from None
        if parts.scheme != "ssh" or parts.path not in ("", "/") or parts.query or parts.fragment or parts.password:
            raise ValueError(f"{url!r} is not ssh://user@host[:port]")
        user, host = parts.username or "", parts.hostname or ""
        # Neither may start with "-" (ssh would read an option) nor hold what a shell or ssh reads specially.
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", user):
            raise ValueError(f"{url!r}: name the user on the login host (ssh://user@host), in letters, digits, _ . -")
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*", host):
            raise ValueError(f"{url!r}: {host!r} is not a host name or address")
        return cls(user, host, port)

    def __str__(self) -> str:
        return f"{self.user}@{self.host}" + (f":{self.port}" if self.port else "")


def parse_container_runtime(text: str) -> str:
    """Empty (the Engine API of ``[docker]``) or one of the runtimes a compute node runs containers with."""
    value = text.strip()
    if value and value not in RUNTIMES:
        raise ValueError(f"{value!r} is not a container runtime hpc-wps knows: {', '.join(RUNTIMES)}, or empty")
    return value


def parse_remote(text: str) -> str:
    """``ssh://user@host[:port]`` or empty, checked here so that a typo fails at start, not at the first job."""
    value = text.strip()
    if value:
        SshDestination.parse(value)
    return value


@dataclass(frozen=True)
class ProcessingSettings:
    mode: str = setting("local", "where asynchronous jobs run", choices=("local", "scheduler", "docker"))
    slots: int = setting(2, "jobs the local pool runs at once")
    worker_max_jobs: int = setting(100, "jobs a local pool worker runs before a fresh one replaces it")
    worker_nice: int = setting(10, "niceness (0-19) of local pool workers, so that jobs yield the CPU to requests")
    queue_length: int = setting(1000, "accepted jobs waiting for a slot before Execute answers ServerBusy")
    sync_time_limit: float = setting(600.0, "seconds a synchronous Execute may run")
    sync_slots: int = setting(
        8,
        "synchronous executions (and inline asynchronous ones) run at once on each host of the web tier; "
        "beyond it Execute waits sync_slot_wait, then answers ServerBusy. Keep it below [server] threads",
    )
    sync_slot_wait: float = setting(
        15.0, "seconds a synchronous Execute waits for a free slot (sync_slots) before it answers ServerBusy"
    )
    poll_interval: float = setting(0.05, "seconds between dispatcher cycles when it is idle")
    demo_processes: bool = setting(True, "serve the built-in demo processes")
    processes: tuple[str, ...] = setting((), "further processes: comma-separated module:attribute import paths")
    retention: float = setting(7 * 86400.0, "seconds a finished job's outputs are kept (expirationDate)")
    disk_high_water: float = setting(
        90.0,
        "fullest the filesystem of the job directories may be, in percent (90%): above it the "
        "oldest finished jobs are deleted first; 0: no such limit",
        parse=parse_percent,
    )
    jobs_budget: int = size_setting(
        0, "most bytes all job directories may hold together (as 500GB): above it the oldest finished jobs go; 0: none"
    )


@dataclass(frozen=True)
class SchedulerSettings:
    system: str = setting(
        "slurm",
        "how batch jobs are submitted: slurm (sbatch, squeue), gridengine (qsub, qstat) or drmaa (a DRMAA library)",
        choices=("slurm", "gridengine", "drmaa"),
    )
    workdir: Path = setting(  # noqa: RUF009
        Path(""), "job directories the compute nodes can read and write; empty: the server workdir"
    )
    python: str = setting("", "the Python the nodes run the launcher with; empty: this service's own interpreter")
    poll_interval: float = setting(2.0, "seconds between scheduler queries (one query for all jobs)")
    queue: str = setting("", "default queue (Grid Engine) or partition (Slurm); empty: the system's default")
    parallel_environment: str = setting(
        "smp",
        "Grid Engine parallel environment whose slots a job of several cores asks for (-pe NAME CORES)",
        parse=parse_name,
    )
    cores: int = setting(1, "default cores per job")
    memory: int = size_setting(1024**3, "default memory per job")
    walltime: float = setting(3600.0, "default wall-clock limit per job, seconds")
    native: str = setting("", "extra native options for every job, passed to the submitter as they are")
    account: str = setting(
        "",
        "account (Slurm --account, Grid Engine project -P) of the jobs of callers [accounts] gives none;"
        " empty: the system's default",
        parse=parse_account_name,
    )
    qos: str = setting("", "Slurm quality of service (--qos) of jobs charged to that account", parse=parse_account_name)
    max_cores: int = setting(16, "most cores a request may ask for")
    max_memory: int = size_setting(64 * 1024**3, "most memory a request may ask for")
    max_walltime: float = setting(86400.0, "longest wall-clock limit a request may ask for, seconds")
    local_processes: tuple[str, ...] = setting((), "processes that run locally even when mode = scheduler")
    scheduler_processes: tuple[str, ...] = setting((), "processes that go to the scheduler even when mode = local")
    drmaa_library: str = setting("", "path of libdrmaa; empty: DRMAA_LIBRARY_PATH from the environment")
    drmaa_preload: str = setting("", "libraries the dispatcher preloads for libdrmaa (Grid Engine's needs libjemalloc)")
    retry_max: float = setting(300.0, "longest pause between submission retries while the scheduler is down, seconds")
    container_runtime: str = setting(
        "",
        "podman, apptainer or charliecloud: container processes go to the batch system in mode = scheduler and "
        "run their image on the compute node with that runtime's command (which the nodes must have); "
        "empty: container processes go to the docker executor",
        parse=parse_container_runtime,
    )
    remote: str = setting(
        "",
        "ssh://user@login-host[:port]: run the scheduler's commands on that login host over one multiplexed "
        "SSH connection (key authentication; system = slurm or gridengine); empty: on this host",
        parse=parse_remote,
    )
    ssh_key: str = setting("", "with remote: the private key file SSH authenticates with; empty: ssh's own defaults")
    ssh_known_hosts: str = setting(
        "", "with remote: the known_hosts file holding the login host's key (checked strictly); empty: ssh's own"
    )
    staging: str = setting(
        "shared",
        "with remote: shared (job directories have the same path on both sides) or sftp (copied to "
        "remote_workdir before submission and back when the job ends)",
        choices=("shared", "sftp"),
    )
    remote_workdir: str = setting(
        "", "with staging = sftp: the directory on the login host (seen by the nodes) job directories are copied to"
    )


@dataclass(frozen=True)
class QuotaSettings:
    """Limits per user (the job's owner; every client is the one user ``anonymous`` without
    authentication). All are off (0) by default, so a single-user quick start behaves as before."""

    running_per_user: int = setting(
        0, "jobs of one user handed to executors (queued or running) at once; more stay accepted; 0: no limit"
    )
    queued_per_user: int = setting(
        0, "jobs of one user waiting (accepted or queued) before Execute answers ServerBusy; 0: no limit"
    )
    sync_per_user: int = setting(0, "executions of one user running in the web workers at once; 0: no limit")
    storage_per_user: int = size_setting(
        0, "bytes the finished jobs of one user may keep (as 10 GiB) before Execute answers ServerBusy; 0: no limit"
    )


@dataclass(frozen=True)
class CallbackSettings:
    """How the dispatcher delivers the notifications a job's subscribers asked for
    (``scheduler/notifier.py``); where they may go is ``[inputs]``'s rule, as for remote inputs."""

    timeout: float = setting(5.0, "seconds one notification may take: to connect, and for the answer")
    retries: int = setting(3, "further tries of a notification that failed on the network or with HTTP 5xx, 408, 429")
    backoff: float = setting(1.0, "seconds before the first retry, doubled before each next one")
    progress_interval: float = setting(
        5.0, "fewest seconds between two in-progress notifications of one job (a job starting always sends one)"
    )
    threads: int = setting(4, "notifications a dispatcher delivers at once; more wait their turn")


@dataclass(frozen=True)
class JobSettings:
    """What the job service, the dispatcher and the executors read, and nothing else."""

    database_url: str
    jobs_dir: Path  # where job directories live: the scheduler's shared workdir when one is set
    processing: ProcessingSettings = dataclasses.field(default_factory=ProcessingSettings)
    scheduler: SchedulerSettings = dataclasses.field(default_factory=SchedulerSettings)
    docker: DockerSettings = dataclasses.field(default_factory=DockerSettings)
    inputs: FetchLimits = dataclasses.field(default_factory=FetchLimits)
    quotas: QuotaSettings = dataclasses.field(default_factory=QuotaSettings)
    callbacks: CallbackSettings = dataclasses.field(default_factory=CallbackSettings)
    heartbeat_interval: float = 5.0  # seconds between two heartbeats of a dispatcher
    host_lost_after: float = 600.0  # a local job of a host silent this long, with no live dispatcher, ends
    access: ProcessAccess = dataclasses.field(default_factory=ProcessAccess)  # [processes]: roles per process
    accounts: AccountMap = dataclasses.field(default_factory=AccountMap)  # [accounts]: users' and roles' accounts

    def executor_for(self, process: Process) -> str:
        """local, the scheduler system, or docker, for asynchronous jobs of ``process``.

        A container process goes to docker in every mode unless named in local or scheduler processes,
        or ``[scheduler] container_runtime`` runs containers on the nodes in mode = scheduler.
        """
        scheduler = self.scheduler
        if process.identifier in scheduler.local_processes:
            return LOCAL
        if process.identifier in scheduler.scheduler_processes:
            return scheduler.system
        if is_container_process(process) and self.processing.mode == "scheduler" and scheduler.container_runtime:
            return scheduler.system
        if self.processing.mode == "docker" or is_container_process(process):
            return DOCKER
        if self.processing.mode == "scheduler":
            return scheduler.system
        return LOCAL

    def runs_container(self, process: Process, here: bool) -> bool:
        """True when a job of ``process`` runs on the container engine, so that ``[docker]`` bounds its
        resources: in the docker executor, or as a container process run in this web worker
        (``here``: synchronous) or in the local pool."""
        executor = LOCAL if here else self.executor_for(process)
        return executor == DOCKER or (executor == LOCAL and is_container_process(process))

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def replace(self, section: str, **values: Any) -> JobSettings:
        """A copy with some keys of one section changed (tests use it)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **values)})
