"""The executor interface every place that runs jobs implements.

Shaped after PSI/J's JobExecutor: submit, poll many jobs at once, cancel, attach after a restart.
Executors know nothing of HTTP or of the job table; the dispatcher owns both and is the only caller,
so an executor may keep per-process state without gunicorn workers ever seeing it.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from processes.container.progress import Progress
from scheduler.resources import Resources

PER_CYCLE = 64  # jobs one dispatcher cycle hands an executor that takes them one by one


class NativeState(enum.StrEnum):
    QUEUED = "queued"  # the system holds the job but has not started it
    RUNNING = "running"
    ENDED = "ended"  # the system no longer runs it; whether it succeeded is in its result file


@dataclass(frozen=True)
class NativeStatus:
    state: NativeState
    # Why it ended, in words a client can read ("killed by signal SIGKILL", "TIMEOUT: over its time limit").
    reason: str = ""
    # New progress of a running job that reports none to the table itself (a container's progress file).
    progress: Progress | None = None


@dataclass(frozen=True)
class JobSpec:
    """What an executor needs to start a job: the job directory holds everything else."""

    job_id: str
    process_id: str
    job_dir: Path
    request: dict[str, Any]
    resources: Resources | None = None  # for batch systems; None for the local pool


class SubmitError(Exception):
    """The executor could not take the job. ``retry``: the job stays queued and is offered again."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class Executor(ABC):
    name: ClassVar[str]
    # True when a submitted job runs at once (the local pool): it is then marked running on submission.
    starts_now: ClassVar[bool] = False
    # True when jobs run ``python -m scheduler.run_job DIR`` elsewhere and need the payload written into DIR.
    needs_payload: ClassVar[bool] = False

    def capacity(self) -> int | None:
        """How many more jobs it takes now; None when the system keeps its own queue."""
        return None

    def per_cycle(self) -> int:
        """How many jobs one dispatcher cycle hands it at most, when :meth:`capacity` sets no bound: a
        system that takes them one request each keeps the cycle short, so that polls come round."""
        return PER_CYCLE

    @abstractmethod
    def submit(self, spec: JobSpec) -> str:
        """Start the job and return its native id; raise :class:`SubmitError` when it cannot."""

    def submit_many(self, specs: Sequence[JobSpec]) -> Iterator[str | SubmitError]:
        """Start several jobs, yielding each one's native id or :class:`SubmitError`, in order. Batch
        systems hand them over in one request (a job array); by default one :meth:`submit` each. A
        generator: what it yielded before an unexpected exception is recorded by the dispatcher."""
        for spec in specs:
            try:
                yield self.submit(spec)
            except SubmitError as exc:
                yield exc

    @abstractmethod
    def poll_many(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        """The state of every given job, found with a constant number of queries to the system."""

    @abstractmethod
    def cancel(self, native_id: str) -> None:
        """Ask the system to stop the job; the end is seen by a later poll. Ending jobs are ignored."""

    def attach(self, native_id: str) -> None:  # noqa: B027 (deliberately a no-op by default)
        """Take up a job submitted before a restart. Most systems need nothing: polling by id works."""

    def remove_leftovers(self, still_active: Callable[[Collection[str]], set[str]]) -> None:  # noqa: B027
        """Remove what runs outside this executor left on its system after their process was killed (a
        web worker's synchronous container): ``still_active`` tells which of some job ids are not final.
        Called by the dispatcher's sweep; most systems hold nothing of the kind (a no-op by default)."""

    def start(self) -> None:  # noqa: B027 (deliberately a no-op by default)
        """Get ready before the first job (the local pool forks its workers)."""

    def find_native_id(self, job_dir: Path) -> str | None:
        """The native id of a job handed over by a dispatcher that stopped before recording it, if the
        system left a trace of it; None when it cannot tell."""
        return None

    def wakeup_fds(self) -> Sequence[int]:
        """Descriptors that become readable when a job ends, so the dispatcher wakes at once instead of
        waiting out its poll interval."""
        return ()

    def retrieve(self, job_dir: Path) -> None:  # noqa: B027 (deliberately a no-op by default)
        """Bring an ended job's results into its job directory before they are read, where the job ran
        in a copy of it elsewhere. SubmitError: not now; the end is settled at a later poll."""

    def close(self) -> None:  # noqa: B027 (deliberately a no-op by default)
        """Let go of the system when the dispatcher stops; running jobs go on and are re-attached later."""

    def describe_queued(self, native_id: str) -> str:
        return f"queued on {self.name} as job {native_id}"
