"""What a job asks of the system that runs it: defaults, then the process's own, then the request's,
the last checked against the administrator's limits.

A batch job's requests are bounded by ``[scheduler] max_*``; a container's on this host's engine by
``[docker] max_*``, in fractions of a core if the client likes, and it has no queue to ask for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from processes.numbers import parse_double, parse_integer
from processes.setting_fields import parse_size
from scheduler.settings import SchedulerSettings

# Literal inputs a client may add to an Execute to ask for other resources, e.g. resources.cores=4.
REQUEST_PREFIX = "resources."
REQUESTABLE = ("cores", "memory", "walltime", "queue", "account")
# What a process may declare: never an account, which is the caller's to choose within what it may charge.
DECLARABLE = ("cores", "memory", "walltime", "queue", "native")


class ResourceError(ValueError):
    """A resource request outside what the administrator allows; the message says which limit."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Resources:
    cores: int
    memory: int  # bytes
    walltime: float  # seconds
    queue: str = ""
    native: str = ""  # passed to the submitter as it is
    account: str = ""  # charged: Slurm --account, Grid Engine project; chosen by the job service
    qos: str = ""  # Slurm --qos of that account

    @property
    def memory_mb(self) -> int:
        return max(1, -(-self.memory // 1024**2))

    @property
    def walltime_hms(self) -> str:
        total = max(1, int(self.walltime + 0.999))
        return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


class Maxima(Protocol):
    """The administrator's limits on requests: ``[scheduler]`` for batch jobs, ``[docker]`` for containers."""

    @property
    def max_cores(self) -> float: ...
    @property
    def max_memory(self) -> int: ...
    @property
    def max_walltime(self) -> float: ...


def _typed(name: str, value: Any, fractional: bool = False) -> Any:
    """A request's text, or a process declaration's number, as the type of ``name``: ASCII numbers only
    (``processes.numbers``), so ``1_0`` or full-width digits never become a core count. ``fractional``:
    cores may be a fraction (a container's CPU quota)."""
    try:
        if name == "cores" and fractional:
            return float(value) if isinstance(value, (int, float)) else parse_double(str(value))
        if name == "cores":
            return value if isinstance(value, int) else parse_integer(str(value))
        if name == "memory":
            return value if isinstance(value, int) else parse_size(str(value))
        if name == "walltime":
            return float(value) if isinstance(value, (int, float)) else parse_double(str(value))
        return str(value)
    except (TypeError, ValueError):
        raise ResourceError(name, f"{value!r} is not a valid value for {name}") from None


def parse_requested(values: dict[str, str], limits: Maxima, container: bool = False) -> dict[str, Any]:
    """A request's resource inputs but its account (the job service's to settle), typed and checked
    against the limits (raises ResourceError). ``container``: the job runs on the container engine,
    whose limits take fractions of a core and which has no queues."""
    for name in values:
        if name not in REQUESTABLE or name == "account":
            raise ResourceError(name, f"{name} cannot be requested here")
        if container and name == "queue":
            raise ResourceError(name, "a container runs on the service's container engine, which has no queues")
    parsed = {name: _typed(name, value, container) for name, value in values.items()}
    checks = (("cores", limits.max_cores), ("memory", limits.max_memory), ("walltime", limits.max_walltime))
    for name, maximum in checks:
        if name in parsed and not 0 < parsed[name] <= maximum:
            raise ResourceError(name, f"{name} must be above 0 and at most {maximum}")
    if "queue" in parsed and any(c.isspace() or c in "'\";&|`$" for c in parsed["queue"]):
        raise ResourceError("queue", "a queue name cannot contain spaces or shell characters")
    return parsed


def defaults(settings: SchedulerSettings) -> Resources:
    """What a job gets when neither its process nor its request asks for anything."""
    return Resources(
        settings.cores,
        settings.memory,
        settings.walltime,
        settings.queue,
        settings.native,
        settings.account,
        settings.qos,
    )


def resolve(settings: SchedulerSettings, process: dict[str, Any], requested: dict[str, Any] | None) -> Resources:
    """``requested``: as the job service stored it, typed, with the account it settled."""
    base = defaults(settings)
    merged = {k: _typed(k, v) for k, v in process.items() if k in DECLARABLE}
    merged.update(requested or {})
    return replace(base, **merged)
