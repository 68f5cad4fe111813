"""Configuration: INI files, overridden by environment variables, validated once at start.

Each section is a frozen dataclass whose fields are the keys, with their types and defaults, so the
embedded defaults, the validation and the reference documentation come from one place. A room declares
the sections it reads beside its own code (``scheduler/settings.py``, ``scheduler/logs.py``,
``processes/fetch.py``, ``processes/container/settings.py``); this module declares the web service's
own, reads the file once, validates everything and hands each room its part (:attr:`Settings.jobs`).

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
from urllib.parse import urlsplit

from app.auth.settings import AuthSettings, check_auth
from processes.container.settings import DockerSettings
from processes.fetch import FetchLimits
from processes.setting_fields import SettingsError, setting, size_setting
from scheduler.access import ROLES_SUFFIX, ProcessAccess, parse_process_roles
from scheduler.accounts import ROLE_PREFIX, AccountMap
from scheduler.executors.batch.ssh import sftp_word
from scheduler.logs import LoggingSettings
from scheduler.settings import CallbackSettings, JobSettings, ProcessingSettings, QuotaSettings, SchedulerSettings

ENV_CONFIG = "HPC_WPS_CONFIG"
ENV_PREFIX = "HPC_WPS_"


@dataclass(frozen=True)
class ServerSettings:
    url: str = setting(
        "", "public URL of the WPS endpoint, which status and output links start with; empty: http://HOST:PORT/wps"
    )
    host: str = setting("127.0.0.1", "address gunicorn binds")
    port: int = setting(5000, "port gunicorn binds")
    workers: int = setting(2, "gunicorn worker processes")
    threads: int = setting(
        16,
        "request threads per gunicorn worker (gthread): a slow client or a waiting synchronous Execute holds "
        "one thread, not a whole worker. Keep it above [processing] sync_slots",
    )
    workdir: Path = setting(Path("var"), "directory for the job database (SQLite), job directories and outputs")  # noqa: RUF009
    max_request_size: int = size_setting(10 * 1024**2, "largest accepted request body")
    language: str = setting("en-US", "the language of every document")


@dataclass(frozen=True)
class MetadataSettings:
    title: str = setting("hpc-wps", "service title in GetCapabilities")
    abstract: str = setting(
        "OGC Web Processing Service running processes locally, on HPC schedulers and in containers.", "service abstract"
    )
    keywords: tuple[str, ...] = setting(("WPS", "processing"), "comma-separated keywords")
    fees: str = setting("NONE", "ows:Fees")
    access_constraints: str = setting("NONE", "ows:AccessConstraints")
    provider_name: str = setting("hpc-wps", "ows:ProviderName")
    provider_site: str = setting("", "ows:ProviderSite")
    contact_name: str = setting("", "ows:IndividualName of the service contact")
    contact_email: str = setting("", "e-mail of the service contact")


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = setting("", "SQLAlchemy URL of the job table; empty: SQLite in the workdir")


@dataclass(frozen=True)
class MonitoringSettings:
    metrics: bool = setting(True, "serve Prometheus metrics at /metrics")
    metrics_clients: tuple[str, ...] = setting(
        (), "addresses or networks (CIDR) that may read /metrics, comma-separated; empty: every client"
    )
    probe_timeout: float = setting(2.0, "seconds /health and /metrics wait for the job database")
    heartbeat_interval: float = setting(5.0, "seconds between two heartbeats a dispatcher writes to the job database")
    heartbeat_timeout: float = setting(30.0, "a dispatcher silent for longer counts as down in /health")
    dispatcher_metrics_port: int = setting(
        0, "port on which `hpc-wps dispatcher` run on its own serves its job counts for Prometheus; 0: off"
    )
    dispatcher_metrics_host: str = setting("127.0.0.1", "address that port listens on")
    host_lost_after: float = setting(
        600.0,
        "seconds without a live dispatcher on a host, and without news of a local job of it, before that job"
        " counts as lost with its host",
    )


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    metadata: MetadataSettings = field(default_factory=MetadataSettings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    inputs: FetchLimits = field(default_factory=FetchLimits)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    docker: DockerSettings = field(default_factory=DockerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    processes: ProcessAccess = field(default_factory=ProcessAccess)  # keys named by process: read on their own
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)
    accounts: AccountMap = field(default_factory=AccountMap)  # keys named by user or role: read on their own
    source: str = "embedded defaults"

    @functools.cached_property  # resolved once: every request and every job asks for it
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.server.workdir / 'jobs.sqlite').resolve()}"

    @functools.cached_property
    def jobs_dir(self) -> Path:
        """Where job directories live: the scheduler's shared workdir when one is set."""
        shared = self.scheduler.workdir
        return shared.resolve() if str(shared) not in ("", ".") else self.server.workdir.resolve() / "jobs"

    @functools.cached_property
    def fetch_limits(self) -> FetchLimits:
        """``[inputs]`` with the service's own endpoints, which no reference may reach: the host and
        port of its public URL, and the address it binds."""
        public = urlsplit(self.server.url)
        own = [f"{self.server.host}:{self.server.port}"]
        if public.hostname:
            own.append(f"{public.hostname}:{public.port or (443 if public.scheme == 'https' else 80)}")
        return dataclasses.replace(self.inputs, own_endpoints=tuple(own))

    @functools.cached_property
    def jobs(self) -> JobSettings:
        """The job system's part: what the job service, the dispatcher and the executors read."""
        return JobSettings(
            database_url=self.database_url,
            jobs_dir=self.jobs_dir,
            processing=self.processing,
            scheduler=self.scheduler,
            docker=self.docker,
            inputs=self.fetch_limits,
            quotas=self.quotas,
            callbacks=self.callbacks,
            heartbeat_interval=self.monitoring.heartbeat_interval,
            host_lost_after=self.monitoring.host_lost_after,
            access=self.processes,
            accounts=self.accounts,
        )

    def replace(self, section: str, **values: Any) -> Settings:
        """A copy with some keys of one section changed (tests and the CLI use it)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **values)})


SECTIONS: dict[str, type] = {f.name: f.type for f in dataclasses.fields(Settings) if f.name != "source"}
NAMED_KEYS = ("processes", "accounts")  # sections whose keys are names, kept as written
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


def _process_access(raw: dict[str, tuple[str, str]]) -> ProcessAccess:
    """``[processes]``, whose keys are process identifiers (as written: identifiers are case-sensitive)."""
    roles = {}
    for key, (text, origin) in raw.items():
        try:
            roles.update(parse_process_roles({key: text}))
        except ValueError as exc:
            raise SettingsError(f"{origin}: [processes] {exc}") from None
    return ProcessAccess(roles)


def _accounts(raw: dict[str, tuple[str, str]]) -> AccountMap:
    """``[accounts]``, whose keys are user and role names (as written: names are case-sensitive)."""
    users, roles = {}, {}
    for key, (text, origin) in raw.items():
        try:
            entry = AccountMap.parse({key: text})
        except ValueError as exc:
            raise SettingsError(f"{origin}: [accounts] {exc}") from None
        users.update(entry.users)
        roles.update(entry.roles)
    return AccountMap(users, roles)


def _section(name: str, raw: dict[str, tuple[str, str]]) -> Any:
    if name == "processes":
        return _process_access(raw)
    if name == "accounts":
        return _accounts(raw)
    cls = _SECTION_TYPES[name]
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("derived")}
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
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys lower-cased below, but [processes]
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
                raw[section][key if section in NAMED_KEYS else key.lower()] = (text, str(path))
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section in SECTIONS and key:
            raw[section][key] = (text, f"environment variable {name}")
    sections = {name: _section(name, raw[name]) for name in SECTIONS}
    # The variables the container engine and DRMAA define for themselves, read here once, not by the
    # code that connects: what the service uses is in its settings.
    if not sections["docker"].url and environ.get("DOCKER_HOST"):
        sections["docker"] = dataclasses.replace(sections["docker"], url=environ["DOCKER_HOST"])
    if not sections["scheduler"].drmaa_library and environ.get("DRMAA_LIBRARY_PATH"):
        sections["scheduler"] = dataclasses.replace(sections["scheduler"], drmaa_library=environ["DRMAA_LIBRARY_PATH"])
    server = sections["server"]
    if not server.url:
        sections["server"] = dataclasses.replace(server, url=f"http://{server.host}:{server.port}/wps")
    settings = Settings(**sections, source=str(path) if path else "embedded defaults")
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    if not re.match(r"https?://[^/]", settings.server.url):
        raise SettingsError(f"{settings.source}: [server] url: must be an http(s) URL, not {settings.server.url!r}")
    for key in ("slots", "worker_max_jobs", "sync_slots"):
        if getattr(settings.processing, key) < 1:
            raise SettingsError(f"{settings.source}: [processing] {key}: must be at least 1")
    if settings.processing.sync_slot_wait < 0:
        raise SettingsError(f"{settings.source}: [processing] sync_slot_wait: must not be negative")
    for key in ("workers", "threads"):
        if getattr(settings.server, key) < 1:
            raise SettingsError(f"{settings.source}: [server] {key}: must be at least 1")
    if settings.callbacks.threads < 1:
        raise SettingsError(f"{settings.source}: [callbacks] threads: must be at least 1")
    if settings.callbacks.timeout <= 0:
        raise SettingsError(f"{settings.source}: [callbacks] timeout: must be more than 0")
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
    check_remote(settings)
    check_auth(settings.auth, settings.source)
    if settings.processes.roles and settings.auth.mode != "oidc":
        first = next(iter(settings.processes.roles))
        raise SettingsError(
            f"{settings.source}: [processes] {first}{ROLES_SUFFIX}: roles come from tokens; set [auth] mode = oidc"
        )
    _check_accounts(settings)


def _check_accounts(settings: Settings) -> None:
    """``[accounts]`` names users or roles the ``[auth]`` mode can tell, or it would never apply; a
    default QoS belongs to the default account."""
    accounts, mode = settings.accounts, settings.auth.mode
    if settings.scheduler.qos and not settings.scheduler.account:
        raise SettingsError(f"{settings.source}: [scheduler] qos: is the QoS of [scheduler] account; set that too")
    if accounts.roles and mode != "oidc":
        first = next(iter(accounts.roles))
        raise SettingsError(
            f"{settings.source}: [accounts] {ROLE_PREFIX}{first}: roles come from tokens; set [auth] mode = oidc"
        )
    if accounts.users and mode == "none":
        first = next(iter(accounts.users))
        raise SettingsError(
            f"{settings.source}: [accounts] {first}: with [auth] mode = none every caller is anonymous and is"
            " charged to [scheduler] account; set mode = oidc or header"
        )


def check_remote(settings: Settings) -> None:
    """``[scheduler] remote`` drives a command-line executor (DRMAA is a library on this host), and
    SFTP staging needs a directory on the login host whose path sftp's batch language can carry."""
    scheduler, where = settings.scheduler, f"{settings.source}: [scheduler]"
    if scheduler.remote and scheduler.system == "drmaa":
        raise SettingsError(f"{where} remote: runs the command-line executors only; set system = slurm or gridengine")
    for key in ("ssh_key", "ssh_known_hosts"):  # ssh splits option values at blanks and expands % tokens
        if re.search(r"[\s\"'%\\]", getattr(scheduler, key)):
            raise SettingsError(f"{where} {key}: a path without blanks, quotes, backslashes or %")
    if scheduler.staging == "sftp":
        if not scheduler.remote or not scheduler.remote_workdir:
            raise SettingsError(
                f"{where} staging = sftp: needs remote and remote_workdir (a directory on the login host)"
            )
        for key, path in (("remote_workdir", scheduler.remote_workdir), ("workdir", str(settings.jobs_dir))):
            try:
                sftp_word(path)
            except ValueError as exc:
                raise SettingsError(f"{where} {key}: {exc}") from None


def check_process_names(settings: Settings, identifiers: set[str]) -> None:
    """Every process ``[processes]`` names is offered: a misspelt name would leave the real one open to all."""
    for identifier in settings.processes.roles:
        if identifier not in identifiers:
            raise SettingsError(
                f"{settings.source}: [processes] {identifier}{ROLES_SUFFIX}: no process {identifier!r} is offered"
            )


def reference() -> str:
    """The configuration reference as INI text with every key, its default and what it does."""
    lines = []
    for name, cls in _SECTION_TYPES.items():
        if name == "source":
            continue
        lines.append(f"[{name}]")
        if cls is ProcessAccess:
            lines.append("# <process identifier>.roles = the roles that may see and run it, comma-separated; a process")
            lines.append("# not named here is open to every user (roles come from [auth] roles_claim, mode = oidc)")
            lines.append(f"# say_hello{ROLES_SUFFIX} = wps-users")
            lines.append("")
            continue
        if cls is AccountMap:
            lines.append("# <user> or role.<role> = the accounts (Slurm --account, Grid Engine project) its jobs")
            lines.append("# may be charged to, comma-separated, the first its default; an account may carry its")
            lines.append("# Slurm QoS; a request names another with resources.account; others get [scheduler] account")
            lines.append("# alice = proj-a, proj-b qos=high")
            lines.append(f"# {ROLE_PREFIX}cmip = cmip6")
            lines.append("")
            continue
        for f in dataclasses.fields(cls):
            if f.metadata.get("derived"):
                continue
            default = f.default if f.default is not dataclasses.MISSING else ""
            if isinstance(default, tuple):
                default = ", ".join(str(d) for d in default)
            elif isinstance(default, Path) and str(default) == ".":
                default = ""
            lines.append(f"# {f.metadata.get('doc', '')}")
            lines.append(f"{f.name} = {default}")
        lines.append("")
    return "\n".join(lines)
