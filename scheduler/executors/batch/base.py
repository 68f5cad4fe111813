"""What every executor of a batch system shares, whether it drives the system's command-line tools
(Slurm) or a library (DRMAA, with the system's own commands for listing and accounting).

Shaped after psij-python's BatchSchedulerExecutor: a subclass fills in a few hooks (submit one job,
find one submitted before, ask for the state of many jobs in one command, cancel one) and this class
does the rest once: a submission is idempotent across timeouts and restarts, every command is an argv
list run with a timeout and counted, cancellations are not repeated every poll, and a job the system
no longer knows ends with a reason saying so once its accounting record has had time to arrive (its
result file, if any, still decides the outcome). It also says once what a job gets on every system:
the default resources, the interpreter on the nodes, its name, and the tail of its error output.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from scheduler.executors.base import Executor, JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.executors.batch.commands import SchedulerUnavailable, runner_for
from scheduler.resources import Resources, defaults
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30.0  # seconds a scheduler command may take before the system counts as unavailable
CANCEL_REPEAT = 30.0  # seconds before a cancel request for the same job is sent again
# Seconds a job may be missing from both the system's listing and its records before it ends as "no
# longer known": accounting records reach their database a moment after the job has left the listing
# (Slurm's slurmdbd; Grid Engine writes them every accounting_flush_time, 15 s by default), and a DRMAA
# session hears of an end a moment after the system.
VANISH_GRACE = 60.0
# Written into the job directory before the job is handed to the system, holding the native id once
# known: a retried submission (after a timeout, or a dispatcher killed between submitting and recording
# the id) looks for the job it may already have submitted instead of submitting it twice.
SUBMITTED_FILE = "batch.submitted"
ARRAY_PER_CYCLE = 256  # jobs one dispatcher cycle hands over where they go as job arrays
# Job arrays: in the jobs directory, one directory per array, holding a link per task, named by its
# index, to the task's job directory (a task runs there, and the system writes its logs through it);
# in a task's job directory, its array's directory name and its index, written before the submission.
ARRAYS = "arrays"
ARRAY_NOTE = "batch.array"
TAIL_LINES = 3
TAIL_CHARS = 400


class UnknownListing(ValueError):
    """A listing command's output is not the one its parser reads (another product of the same name)."""


@dataclass(frozen=True)
class SubmitWords:
    """How a system's submit command words a failure: the system is out of reach (``unreachable``: the
    job is offered again later; ``connect_refused``: it certainly was not submitted), or it refuses this
    job (``refused``: failing the job is the only answer); any other message counts as out of reach
    too, so a job is retried, never lost. ``refused_prefix``: the command's own words before a refusal."""

    system: str
    command: str
    unreachable: re.Pattern[str]
    connect_refused: re.Pattern[str]
    refused: re.Pattern[str]
    refused_prefix: str = ""

    def error(self, message: str) -> SubmitError:
        if self.unreachable.search(message):
            certain = bool(self.connect_refused.search(message))
            return SchedulerUnavailable(f"{self.system} is unavailable: {message}", certain)
        if self.refused.search(message):
            return SubmitError(f"{self.system} refused the job: {message.removeprefix(self.refused_prefix)}", False)
        return SchedulerUnavailable(f"{self.command} failed: {message}")


@dataclass(frozen=True)
class Listed:
    """One job as a system's listing command shows it (the DRMAA executor polls with these)."""

    state: NativeState  # ENDED where the listing still shows finished jobs (Slurm, TORQUE)
    reason: str = ""  # why it ended, where the listing says (Slurm)
    name: str = ""  # the job's name, where the listing shows it
    workdir: str = ""  # the job's working directory (its job directory), where the listing shows it


def tail(path: Path, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last non-empty lines of a small log file, joined with ' | ' (empty if unreadable)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= chars else "..." + joined[-chars:]


def signal_name(value: str | int) -> str:
    """SIGKILL for 9 (or "9"); "signal N" for a number no signal has; a name (as DRMAA gives it) unchanged."""
    if isinstance(value, int) or str(value).isdigit():
        with contextlib.suppress(ValueError):
            return signal.Signals(int(value)).name
        return f"signal {value}"
    return str(value)


class BatchExecutor(Executor):
    starts_now = False
    needs_payload = True
    # How the system is named in messages ("queued on Slurm as job 12").
    display_name: str
    # The submission marker's name in the job directory.
    submitted_file: ClassVar[str] = SUBMITTED_FILE
    # A job's name on the system: this prefix and the WPS job id, cut to job_id_chars where given.
    job_name_prefix: ClassVar[str] = "wps-"
    job_id_chars: ClassVar[int | None] = None

    def __init__(self, settings: SchedulerSettings, jobs_dir: Path) -> None:
        self.settings = settings
        self.jobs_dir = jobs_dir
        self.runner = runner_for(settings)  # where the commands run: here, or on a login host over SSH
        # Requests to the system since the start, by command name (or library call): the benchmark reads them.
        self.calls: collections.Counter[str] = collections.Counter()
        self._cancelled: dict[str, float] = {}  # native id -> when a cancel was last requested
        self._missing: dict[str, float] = {}  # native id -> since when neither listing nor records show it

    # -- hooks --------------------------------------------------------------------------------------

    @abstractmethod
    def submit_job(self, spec: JobSpec) -> str:
        """Hand the job to the system and return its native id. ValueError: the job cannot be put to
        this system (nothing was sent); SchedulerUnavailable: no answer (``certain`` if the job did not
        get there); SubmitError: the system refused it."""

    @abstractmethod
    def find_submitted(self, spec: JobSpec) -> str | None:
        """The native id of a job submitted earlier for this job directory, if the system has it."""

    def query_status(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        """One command for all the jobs; jobs the system does not list are left out. The hook of
        :meth:`poll_many`, which DRMAA overrides instead: it reaps what its listing no longer shows."""
        raise NotImplementedError

    def query_finished(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        """Jobs the status command no longer lists, from the system's accounting (one command), if any."""
        return {}

    def vanish_grace(self) -> float:
        """Seconds a job may be missing from both the status command and the accounting before it ends
        as "no longer known" (VANISH_GRACE)."""
        return VANISH_GRACE

    @abstractmethod
    def cancel_command(self, native_id: str) -> list[str]: ...

    def cancel_ignorable(self, stderr: str) -> bool:
        """A failed cancel that only means the job has ended already."""
        return False

    # -- what a job gets ----------------------------------------------------------------------------

    @property
    def python(self) -> list[str]:
        """The launcher's interpreter on the nodes, as argv words: ``[scheduler] python`` or our own."""
        return shlex.split(self.settings.python) or [sys.executable]

    def resources(self, spec: JobSpec) -> Resources:
        """What the job asks of the system; ``[scheduler]``'s defaults for a job that asks nothing."""
        return spec.resources or defaults(self.settings)

    def job_name(self, job_id: str) -> str:
        return self.job_name_prefix + job_id[: self.job_id_chars]

    # -- commands -----------------------------------------------------------------------------------

    def count(self, kind: str) -> None:
        """Count one request to the system: a command, by its name, or a library call."""
        self.calls[kind] += 1

    @property
    def queries(self) -> int:
        """Requests to the system since the start: the benchmark reads it."""
        return sum(self.calls.values())

    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run one scheduler command (an argv list, never a shell string), here or on the login host
        (``[scheduler] remote``), and count it."""
        self.count(os.path.basename(argv[0]))
        return self.runner.run(argv, timeout)

    def retrieve(self, job_dir: Path) -> None:
        """Bring an ended job's results back from the login host when staged there (``staging = sftp``)."""
        self.runner.stage_out(job_dir)

    def close(self) -> None:
        self.runner.close()

    # -- the Executor interface ---------------------------------------------------------------------

    @property
    def uses_arrays(self) -> bool:
        """Whether jobs of one :meth:`array_key` go as job arrays here. No arrays by default."""
        return False

    def per_cycle(self) -> int:
        """With arrays, a cycle's jobs cost one request whatever their number (one SSH round trip with
        ``remote``): the more a cycle hands over, the less each job pays for it."""
        return ARRAY_PER_CYCLE if self.uses_arrays else super().per_cycle()

    def array_key(self, spec: JobSpec) -> Hashable | None:
        """Jobs with the same key can go to the system as one job array (they ask for the same
        resources: :meth:`array_options`); None: this one goes alone (always, where :attr:`uses_arrays`
        is false; and where its options cannot be passed, so that the reason becomes the job's)."""
        if not self.uses_arrays:
            return None
        try:
            return self.array_options(spec)
        except ValueError:
            return None

    def array_options(self, spec: JobSpec) -> Hashable:
        """What the job's submission shares with the others of its array: all but its own name,
        directory and logs. ValueError if a value cannot be passed."""
        raise NotImplementedError

    def submit_array(self, specs: Sequence[JobSpec]) -> list[str]:
        """Hand several jobs of one :meth:`array_key` to the system as one job array and return their
        native ids in order; raises as :meth:`submit_job` does, for them all."""
        raise NotImplementedError

    def submit(self, spec: JobSpec) -> str:
        found = self.submitted_before(spec)
        if found:
            return found
        result = self.hand_over([spec], lambda: [self.submit_job(spec)])[spec.job_id]
        if isinstance(result, SubmitError):
            raise result
        return result

    def submit_many(self, specs: Sequence[JobSpec]) -> Iterator[str | SubmitError]:
        """Jobs of one :meth:`array_key` go as one array (one request, however many), the others one by
        one; every job's marker tells, as for a single job, whether it may have been submitted before."""
        groups: dict[Hashable, list[JobSpec]] = {}
        group_of: dict[str, list[JobSpec]] = {}
        for spec in specs:
            key = self.array_key(spec)
            group = [spec] if key is None else groups.setdefault(key, [])
            if key is not None:
                group.append(spec)
            group_of[spec.job_id] = group
        results: dict[str, str | SubmitError] = {}
        for spec in specs:
            if spec.job_id not in results:
                results.update(self._submit_group(group_of[spec.job_id]))
            yield results.pop(spec.job_id)

    def _submit_group(self, specs: list[JobSpec]) -> dict[str, str | SubmitError]:
        results: dict[str, str | SubmitError] = {}
        fresh = []
        for spec in specs:
            try:
                found = self.submitted_before(spec)
            except SubmitError as exc:
                results[spec.job_id] = exc
                continue
            if found:
                results[spec.job_id] = found
            else:
                fresh.append(spec)
        if len(fresh) == 1:
            results.update(self.hand_over(fresh, lambda: [self.submit_job(fresh[0])]))
        elif fresh:
            results.update(self.hand_over(fresh, lambda: self.submit_array(fresh)))
        return results

    def submitted_before(self, spec: JobSpec) -> str | None:
        """The native id of an earlier submission of this job that its marker records or the system
        shows; None when there was none, or none reached the system."""
        marker = spec.job_dir / self.submitted_file
        try:
            earlier: str | None = marker.read_text(encoding="ascii").strip()
        except (OSError, ValueError):
            earlier = None
        if earlier:  # submitted, but the id never reached the job table (a restart in between)
            log.info("job %s: already submitted as %s job %s", spec.job_id, self.name, earlier)
            return earlier
        if earlier == "":  # an earlier submission's outcome is unknown: it may have reached the system
            found = self.find_submitted(spec)
            if found:
                log.info("job %s: found as %s job %s from an earlier submission", spec.job_id, self.name, found)
                marker.write_text(found, encoding="ascii")
                return found
        return None

    def hand_over(self, specs: Sequence[JobSpec], send: Callable[[], list[str]]) -> dict[str, str | SubmitError]:
        """``send`` the jobs to the system, each marked first as possibly submitted and then with its
        native id; a failure is every job's, and leaves the marks only where the jobs may have got there."""
        markers = [spec.job_dir / self.submitted_file for spec in specs]
        for spec, marker in zip(specs, markers, strict=True):
            marker.write_text("", encoding="ascii")
            (spec.job_dir / ARRAY_NOTE).unlink(missing_ok=True)  # of an array that never reached the system
        error: SubmitError
        try:
            native_ids = send()
        except ValueError as exc:  # the jobs cannot be put to this system: nothing was sent
            error = SubmitError(str(exc), retry=False)
        except SchedulerUnavailable as exc:
            error = exc
        except SubmitError as exc:  # refused: nothing reached the system
            error = exc
        else:
            for marker, native_id in zip(markers, native_ids, strict=True):
                marker.write_text(native_id, encoding="ascii")
            return {spec.job_id: native_id for spec, native_id in zip(specs, native_ids, strict=True)}
        if not isinstance(error, SchedulerUnavailable) or error.certain:
            for marker in markers:
                marker.unlink(missing_ok=True)
        return {spec.job_id: error for spec in specs}

    def array_directory(self, specs: Sequence[JobSpec], first: int) -> Path:
        """A new array's directory, its tasks numbered from ``first`` (ARRAYS, ARRAY_NOTE)."""
        batch = self.jobs_dir / ARRAYS / uuid.uuid4().hex
        batch.mkdir(parents=True)
        for index, spec in enumerate(specs, first):
            (batch / str(index)).symlink_to(os.path.relpath(spec.job_dir, batch))
            (spec.job_dir / ARRAY_NOTE).write_text(f"{batch.name} {index}\n", encoding="ascii")
        return batch

    def array_task(self, spec: JobSpec) -> tuple[Path, int] | None:
        """The array directory and index of the job's task, if it went in an array; else None."""
        try:
            name, index = (spec.job_dir / ARRAY_NOTE).read_text(encoding="ascii").split()
            return self.jobs_dir / ARRAYS / name, int(index)
        except (OSError, ValueError):
            return None

    def remove_leftovers(self, still_active: Callable[[Collection[str]], set[str]]) -> None:
        """Array directories none of whose job directories is left: their tasks have ended and been
        removed (a task whose job directory is gone has nowhere to write anyway)."""
        try:
            batches = list((self.jobs_dir / ARRAYS).iterdir())
        except OSError:
            return
        for batch in batches:
            links = [entry for entry in batch.iterdir() if entry.is_symlink()]
            if links and not any(link.exists() for link in links):
                shutil.rmtree(batch, ignore_errors=True)

    def poll_many(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        if not native_ids:
            return {}
        statuses = self.query_status(native_ids)
        missing = [native_id for native_id in native_ids if native_id not in statuses]
        if missing:
            statuses.update(self.query_finished(missing))
        now, grace = time.monotonic(), self.vanish_grace()
        result = {}
        for native_id in native_ids:
            status = statuses.get(native_id)
            if status is None:
                if self.missing_for(native_id, now) < grace:
                    continue  # no news yet: asked again next poll
                status = NativeStatus(NativeState.ENDED, self.no_longer_known())
            self._missing.pop(native_id, None)
            result[native_id] = status
            if status.state is NativeState.ENDED:
                self._cancelled.pop(native_id, None)
        self.forget_missing(native_ids)
        return result

    def missing_for(self, native_id: str, now: float) -> float:
        """Seconds since a poll first found the job in neither the listing nor the records (0 at first)."""
        return now - self._missing.setdefault(native_id, now)

    def forget_missing(self, asked: Iterable[str]) -> None:
        """Forget since when jobs the dispatcher no longer asks about have been missing."""
        asked = set(asked)
        for native_id in [n for n in self._missing if n not in asked]:
            del self._missing[native_id]

    def no_longer_known(self) -> str:
        return f"is no longer known to {self.display_name}"

    def cancel(self, native_id: str) -> None:
        """A request: the end is seen by a later poll. Repeated polls of a dismissed job that has not
        ended yet do not send it again before CANCEL_REPEAT seconds; failures are logged, never raised."""
        now = time.monotonic()
        if now - self._cancelled.get(native_id, -CANCEL_REPEAT) < CANCEL_REPEAT:
            return
        self._cancelled[native_id] = now
        if not self.request_cancel(native_id):
            del self._cancelled[native_id]  # ask again next poll

    def request_cancel(self, native_id: str) -> bool:
        """Send the system's cancel command; False when the request did not get through."""
        try:
            done = self.run(self.cancel_command(native_id))
        except SubmitError as exc:
            log.warning("%s job %s: cannot cancel now: %s", self.name, native_id, exc)
            return False
        if done.returncode != 0 and not self.cancel_ignorable(done.stderr):
            log.warning("%s job %s: cancel failed: %s", self.name, native_id, done.stderr.strip())
            return False
        return True

    def attach(self, native_id: str) -> None:
        """Nothing to do: the system's job ids outlive our restarts, so polling by id finds the job,
        and everything else (script, logs named by native id, result) lies in its job directory."""

    def describe_queued(self, native_id: str) -> str:
        return f"queued on {self.display_name} as job {native_id}"
