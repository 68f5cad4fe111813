"""Configuration: INI files, overridden by environment variables, validated once at start.

Each section is a frozen dataclass whose fields are the keys, with their types and defaults, so the
embedded defaults, the validation and the reference documentation come from one place. This module
imports no web framework: the dispatcher and the launcher on compute nodes read the same settings.

Environment overrides are named ``HPC_WPS_<SECTION>_<KEY>`` (``HPC_WPS_DATABASE_URL``); the file is
named by ``--config`` or ``HPC_WPS_CONFIG``.
"""

from __future__ import annotations

import configparser
import dataclasses
import functools
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from processes.fetch import FetchLimits
from scheduler.executor_names import DOCKER, LOCAL

ENV_CONFIG = "HPC_WPS_CONFIG"
ENV_PREFIX = "HPC_WPS_"


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the file, section and key."""


def parse_size(text: str) -> int:
    """Bytes from ``10MB``, ``512KiB``, ``1G`` or a bare number (units are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not a size such as 10MB")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def parse_percent(text: str) -> float:
    """A share of something in percent, from ``90%`` or ``90``; 0 means the limit is off."""
    number = float(text.strip().removesuffix("%"))
    if not 0 <= number <= 100:
        raise ValueError(f"{text!r} is not a percentage between 0 and 100")
    return number


def parse_name(text: str) -> str:
    """A name passed to a batch system as one word: letters, digits, ``_ . -`` and ``*`` wildcards."""
    value = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.*][A-Za-z0-9_.*-]*", value):
        raise ValueError(f"{value!r} is not one word of letters, digits, '_', '.', '-' and '*'")
    return value


def _size(default: int, doc: str) -> Any:
    return field(default=default, metadata={"parse": parse_size, "doc": doc})


def _doc(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class ServerSettings:
    url: str = _doc(
        "", "public URL of the WPS endpoint, which status and output links start with; empty: http://HOST:PORT/wps"
    )
    host: str = _doc("127.0.0.1", "address gunicorn binds")
    port: int = _doc(5000, "port gunicorn binds")
    workers: int = _doc(2, "gunicorn worker processes")
    workdir: Path = _doc(Path("var"), "directory for the job database (SQLite), job directories and outputs")  # noqa: RUF009
    max_request_size: int = _size(10 * 1024**2, "largest accepted request body")
    language: str = _doc("en-US", "the language of every document")


@dataclass(frozen=True)
class MetadataSettings:
    title: str = _doc("hpc-wps", "service title in GetCapabilities")
    abstract: str = _doc(
        "OGC Web Processing Service running processes locally, on HPC schedulers and in containers.", "service abstract"
    )
    keywords: tuple[str, ...] = _doc(("WPS", "processing"), "comma-separated keywords")
    fees: str = _doc("NONE", "ows:Fees")
    access_constraints: str = _doc("NONE", "ows:AccessConstraints")
    provider_name: str = _doc("hpc-wps", "ows:ProviderName")
    provider_site: str = _doc("", "ows:ProviderSite")
    contact_name: str = _doc("", "ows:IndividualName of the service contact")
    contact_email: str = _doc("", "e-mail of the service contact")


@dataclass(frozen=True)
class ProcessingSettings:
    mode: str = field(
        default="local", metadata={"choices": ("local", "scheduler", "docker"), "doc": "where asynchronous jobs run"}
    )
    slots: int = _doc(2, "jobs the local pool runs at once")
    worker_max_jobs: int = _doc(100, "jobs a local pool worker runs before a fresh one replaces it")
    worker_nice: int = _doc(10, "niceness (0-19) of local pool workers, so that jobs yield the CPU to requests")
    queue_length: int = _doc(1000, "accepted jobs waiting for a slot before Execute answers ServerBusy")
    sync_time_limit: float = _doc(600.0, "seconds a synchronous Execute may run")
    poll_interval: float = _doc(0.05, "seconds between dispatcher cycles when it is idle")
    demo_processes: bool = _doc(True, "serve the built-in demo processes")
    processes: tuple[str, ...] = _doc((), "further processes: comma-separated module:attribute import paths")
    retention: float = _doc(7 * 86400.0, "seconds a finished job's outputs are kept (expirationDate)")
    disk_high_water: float = field(
        default=90.0,
        metadata={
            "parse": parse_percent,
            "doc": "fullest the filesystem of the job directories may be, in percent (90%): above it the "
            "oldest finished jobs are deleted first; 0: no such limit",
        },
    )
    jobs_budget: int = _size(
        0, "most bytes all job directories may hold together (as 500GB): above it the oldest finished jobs go; 0: none"
    )


@dataclass(frozen=True)
class SchedulerSettings:
    system: str = field(
        default="slurm", metadata={"choices": ("slurm", "drmaa"), "doc": "how batch jobs are submitted"}
    )
    workdir: Path = _doc(Path(""), "job directories the compute nodes can read and write; empty: the server workdir")  # noqa: RUF009
    python: str = _doc("", "the Python the nodes run the launcher with; empty: this service's own interpreter")
    poll_interval: float = _doc(2.0, "seconds between scheduler queries (one query for all jobs)")
    queue: str = _doc("", "default queue (Grid Engine) or partition (Slurm); empty: the system's default")
    parallel_environment: str = field(
        default="smp",
        metadata={
            "parse": parse_name,
            "doc": "Grid Engine parallel environment whose slots a job of several cores asks for (-pe NAME CORES)",
        },
    )
    cores: int = _doc(1, "default cores per job")
    memory: int = _size(1024**3, "default memory per job")
    walltime: float = _doc(3600.0, "default wall-clock limit per job, seconds")
    native: str = _doc("", "extra native options for every job, passed to the submitter as they are")
    max_cores: int = _doc(16, "most cores a request may ask for")
    max_memory: int = _size(64 * 1024**3, "most memory a request may ask for")
    max_walltime: float = _doc(86400.0, "longest wall-clock limit a request may ask for, seconds")
    local_processes: tuple[str, ...] = _doc((), "processes that run locally even when mode = scheduler")
    scheduler_processes: tuple[str, ...] = _doc((), "processes that go to the scheduler even when mode = local")
    drmaa_library: str = _doc("", "path of libdrmaa; empty: DRMAA_LIBRARY_PATH from the environment")
    drmaa_preload: str = _doc("", "libraries the dispatcher preloads for libdrmaa (Grid Engine's needs libjemalloc)")
    retry_max: float = _doc(300.0, "longest pause between submission retries while the scheduler is down, seconds")


@dataclass(frozen=True)
class DockerSettings:
    url: str = _doc("", "Docker Engine API URL (unix:///PATH or tcp://HOST:PORT); empty: DOCKER_HOST, else the default")
    timeout: float = _doc(30.0, "seconds one Engine API call may take")
    processes: Path = _doc(Path(""), "TOML file declaring container processes and per-process relaxations; empty: none")  # noqa: RUF009
    images: tuple[str, ...] = _doc(
        (), "images containers may run: name:tag, name@sha256:DIGEST (pinned) or a prefix ending in *; empty: none"
    )
    python_image: str = _doc("", "image with hpc-wps installed that runs Python processes when mode = docker")
    max_containers: int = _doc(8, "containers run at once")
    memory: int = _size(512 * 1024**2, "default memory limit per container (no swap beyond it)")
    cores: float = _doc(1.0, "default CPU limit per container, in cores (fractions allowed)")
    pids: int = _doc(256, "default limit on processes per container")
    walltime: float = _doc(3600.0, "default wall-clock limit per container, seconds")
    tmpfs_size: int = _size(64 * 1024**2, "size of the writable /tmp of a container")
    user: str = _doc("65534:65534", "uid:gid containers run as, unless a process is allowed root")
    poll_interval: float = _doc(0.05, "least seconds between two container listings (one API call for all jobs)")
    log_limit: int = _size(1024**3, "most bytes kept of a container's stdout and of its stderr")


@dataclass(frozen=True)
class InputSettings:
    allowed_dirs: tuple[Path, ...] = _doc((), "directories file:// inputs may be read from (none: file:// refused)")
    allow_http: bool = _doc(True, "accept http(s) references")
    connect_timeout: float = _doc(10.0, "seconds to connect to a remote input")
    read_timeout: float = _doc(60.0, "seconds to wait for each read of a remote input")
    total_timeout: float = _doc(600.0, "seconds a whole fetch of a remote input may take")
    max_size: int = _size(1024**3, "largest input fetched by reference")


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = _doc("", "SQLAlchemy URL of the job table; empty: SQLite in the workdir")


@dataclass(frozen=True)
class LoggingSettings:
    level: str = field(default="INFO", metadata={"choices": ("DEBUG", "INFO", "WARNING", "ERROR"), "doc": "log level"})
    file: str = _doc("", "log file; empty: standard error")
    format: str = field(
        default="text",
        metadata={
            "choices": ("text", "json"),
            "doc": "text lines, or one JSON object per line (time, level, logger, message, pid, job_id, ...)",
        },
    )


@dataclass(frozen=True)
class MonitoringSettings:
    metrics: bool = _doc(True, "serve Prometheus metrics at /metrics")
    metrics_clients: tuple[str, ...] = _doc(
        (), "addresses or networks (CIDR) that may read /metrics, comma-separated; empty: every client"
    )
    probe_timeout: float = _doc(2.0, "seconds /health and /metrics wait for the job database")
    heartbeat_interval: float = _doc(5.0, "seconds between two heartbeats a dispatcher writes to the job database")
    heartbeat_timeout: float = _doc(30.0, "a dispatcher silent for longer counts as down in /health")
    dispatcher_metrics_port: int = _doc(
        0, "port on which `hpc-wps dispatcher` run on its own serves its job counts for Prometheus; 0: off"
    )
    dispatcher_metrics_host: str = _doc("127.0.0.1", "address that port listens on")
    host_lost_after: float = _doc(
        600.0,
        "seconds without a live dispatcher on a host, and without news of a local job of it, before that job"
        " counts as lost with its host",
    )


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    metadata: MetadataSettings = field(default_factory=MetadataSettings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    inputs: InputSettings = field(default_factory=InputSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    docker: DockerSettings = field(default_factory=DockerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    source: str = "embedded defaults"

    @functools.cached_property  # resolved once: every request and every job asks for it
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.server.workdir / 'jobs.sqlite').resolve()}"

    @functools.cached_property
    def jobs_dir(self) -> Path:
        """Where job directories live: the scheduler's shared workdir when one is set."""
        shared = self.scheduler.workdir
        return shared.resolve() if str(shared) not in ("", ".") else self.server.workdir.resolve() / "jobs"

    def executor_name(self, process_id: str) -> str:
        """local, the scheduler system, or docker, for asynchronous jobs of ``process_id``.

        A container process goes to docker in every mode unless named in local or scheduler processes.
        """
        from processes.container import is_container_process

        scheduler = self.scheduler
        if process_id in scheduler.local_processes:
            return LOCAL
        if process_id in scheduler.scheduler_processes:
            return scheduler.system
        if self.processing.mode == "docker" or is_container_process(process_id):
            return DOCKER
        if self.processing.mode == "scheduler":
            return scheduler.system
        return LOCAL

    @property
    def fetch_limits(self) -> FetchLimits:
        return FetchLimits(**dataclasses.asdict(self.inputs))

    def replace(self, section: str, **values: Any) -> Settings:
        """A copy with some keys of one section changed (tests and the CLI use it)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **values)})


SECTIONS: dict[str, type] = {f.name: f.type for f in dataclasses.fields(Settings) if f.name != "source"}
_SECTION_TYPES = get_type_hints(Settings)


def _convert(kind: Any, meta: Any, text: str) -> Any:
    if "parse" in meta:
        return meta["parse"](text)
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{text!r} is not a boolean (true or false)")
    if kind in (int, float):
        return kind(text)
    if kind is Path:
        return Path(text.strip()).expanduser()
    if kind == tuple[str, ...]:
        return tuple(item.strip() for item in text.split(",") if item.strip())
    if kind == tuple[Path, ...]:
        return tuple(Path(item.strip()).expanduser() for item in text.split(",") if item.strip())
    value = text.strip()
    if "choices" in meta and value not in meta["choices"]:
        raise ValueError(f"{value!r} is not one of {', '.join(meta['choices'])}")
    return value


def _section(name: str, raw: dict[str, tuple[str, str]]) -> Any:
    cls = _SECTION_TYPES[name]
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, (text, origin) in raw.items():
        if key not in known:
            raise SettingsError(f"{origin}: unknown key [{name}] {key}; known keys: {', '.join(known)}")
        try:
            value = _convert(hints[key], known[key].metadata, text)
        except ValueError as exc:
            raise SettingsError(f"{origin}: [{name}] {key}: {exc}") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise SettingsError(f"{origin}: [{name}] {key}: must not be negative")
        values[key] = value
    return cls(**values)


def load_settings(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the INI file (``path``, else ``$HPC_WPS_CONFIG``, else none) and the environment overrides."""
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get(ENV_CONFIG) or None
    raw: dict[str, dict[str, tuple[str, str]]] = {name: {} for name in SECTIONS}
    if path is not None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except OSError as exc:
            raise SettingsError(f"{path}: cannot read the configuration: {exc.strerror}") from None
        except configparser.Error as exc:
            raise SettingsError(f"{path}: not a valid INI file: {exc}") from None
        for section in parser.sections():
            if section not in SECTIONS:
                raise SettingsError(f"{path}: unknown section [{section}]; known: {', '.join(SECTIONS)}")
            for key, text in parser.items(section):
                raw[section][key] = (text, str(path))
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section in SECTIONS and key:
            raw[section][key] = (text, f"environment variable {name}")
    sections = {name: _section(name, raw[name]) for name in SECTIONS}
    server = sections["server"]
    if not server.url:
        sections["server"] = dataclasses.replace(server, url=f"http://{server.host}:{server.port}/wps")
    settings = Settings(**sections, source=str(path) if path else "embedded defaults")
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    if not re.match(r"https?://[^/]", settings.server.url):
        raise SettingsError(f"{settings.source}: [server] url: must be an http(s) URL, not {settings.server.url!r}")
    for key in ("slots", "worker_max_jobs"):
        if getattr(settings.processing, key) < 1:
            raise SettingsError(f"{settings.source}: [processing] {key}: must be at least 1")
    if not 0 <= settings.processing.worker_nice <= 19:
        raise SettingsError(f"{settings.source}: [processing] worker_nice: must be from 0 to 19")
    for entry in settings.processing.processes:
        if ":" not in entry:
            raise SettingsError(f"{settings.source}: [processing] processes: {entry!r} is not module:attribute")
    for entry in settings.monitoring.metrics_clients:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(
                f"{settings.source}: [monitoring] metrics_clients: {entry!r} is not an address or network"
            ) from None
    if settings.monitoring.heartbeat_timeout <= settings.monitoring.heartbeat_interval:
        raise SettingsError(f"{settings.source}: [monitoring] heartbeat_timeout: must exceed heartbeat_interval")
    if settings.monitoring.host_lost_after <= settings.monitoring.heartbeat_timeout:
        raise SettingsError(f"{settings.source}: [monitoring] host_lost_after: must exceed heartbeat_timeout")


def reference() -> str:
    """The configuration reference as INI text with every key, its default and what it does."""
    lines = []
    for name, cls in _SECTION_TYPES.items():
        if name == "source":
            continue
        lines.append(f"[{name}]")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else ""
            if isinstance(default, tuple):
                default = ", ".join(str(d) for d in default)
            elif isinstance(default, Path) and str(default) == ".":
                default = ""
            lines.append(f"# {f.metadata.get('doc', '')}")
            lines.append(f"{f.name} = {default}")
        lines.append("")
    return "\n".join(lines)
