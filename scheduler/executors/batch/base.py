"""What every executor that drives a batch system through its command-line tools shares.

Shaped after psij-python's BatchSchedulerExecutor: a subclass fills in a few hooks (render the
submit script, submit it, ask for the state of many jobs in one command, cancel one) and this class
does the rest once: every command is an argv list run with a timeout and counted, the submit script
is written into the job directory from a template beside this module, a submission is idempotent
across timeouts and restarts, cancellations are not repeated every poll, and a job the system no
longer knows ends with a reason saying so (its result file, if any, still decides the outcome).
"""

from __future__ import annotations

import collections
import logging
import os
import shlex
import string
import subprocess
import sys
import time
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from scheduler.executors.base import Executor, JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent  # submit script templates lie beside their executor modules
COMMAND_TIMEOUT = 30.0  # seconds a scheduler command may take before the system counts as unavailable
CANCEL_REPEAT = 30.0  # seconds before a cancel request for the same job is sent again
# Written into the job directory before the submit command runs, holding the native id once known:
# a retried submission (after a timeout, or a dispatcher killed between submitting and recording the
# id) looks for the job it may already have submitted instead of submitting it twice.
SUBMITTED_FILE = "batch.submitted"
TAIL_LINES = 3
TAIL_CHARS = 400


class SchedulerUnavailable(SubmitError):
    """The scheduler's tools cannot be run or do not answer: the job is offered again later.

    ``certain``: the command certainly did not reach the scheduler (not installed, refused at
    connect); otherwise it may have, and a retried submission first looks for the job.
    """

    def __init__(self, message: str, certain: bool = False) -> None:
        super().__init__(message, retry=True)
        self.certain = certain


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


class BatchExecutor(Executor):
    starts_now = False
    needs_payload = True
    # How the system is named in messages ("queued on Slurm as job 12").
    display_name: ClassVar[str]
    # The submit script's template beside this module (string.Template syntax).
    template: ClassVar[str]

    def __init__(self, settings: SchedulerSettings, jobs_dir: Path) -> None:
        self.settings = settings
        self.jobs_dir = jobs_dir
        self.queries = 0  # scheduler commands run (submit, status, accounting, cancel): the benchmark reads it
        self.commands: collections.Counter[str] = collections.Counter()
        self._template = string.Template((TEMPLATES / self.template).read_text(encoding="utf-8"))
        self._cancelled: dict[str, float] = {}  # native id -> when a cancel was last requested
        self._missing: dict[str, float] = {}  # native id -> since when neither status nor accounting lists it

    # -- hooks --------------------------------------------------------------------------------------

    @abstractmethod
    def script_values(self, spec: JobSpec) -> dict[str, str]:
        """The template's values, each already quoted for where it appears; ValueError if impossible."""

    @abstractmethod
    def submit_script(self, script: Path) -> str:
        """Submit the written script; the native id, or SubmitError."""

    @abstractmethod
    def find_submitted(self, spec: JobSpec) -> str | None:
        """The native id of a job submitted earlier for this job directory, if the system has it."""

    @abstractmethod
    def query_status(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        """One command for all the jobs; jobs the system does not list are left out."""

    def query_finished(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        """Jobs the status command no longer lists, from the system's accounting (one command), if any."""
        return {}

    def vanish_grace(self) -> float:
        """Seconds a job may be missing from both the status command and the accounting before it ends
        as "no longer known": accounting records may reach the database a moment after the job has
        left the status command. No grace without accounting."""
        return 0.0

    @abstractmethod
    def cancel_command(self, native_id: str) -> list[str]: ...

    def cancel_ignorable(self, stderr: str) -> bool:
        """A failed cancel that only means the job has ended already."""
        return False

    # -- commands -----------------------------------------------------------------------------------

    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run one scheduler command (an argv list, never a shell string) and count it."""
        self.queries += 1
        self.commands[os.path.basename(argv[0])] += 1
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError:
            raise SchedulerUnavailable(f"{argv[0]} is not installed on this host (not found on PATH)", True) from None
        except subprocess.TimeoutExpired:
            raise SchedulerUnavailable(f"{argv[0]} did not answer within {timeout:g} s") from None
        except OSError as exc:
            raise SchedulerUnavailable(f"cannot run {argv[0]}: {exc.strerror or exc}", True) from None

    @property
    def python(self) -> list[str]:
        """The launcher's interpreter on the nodes, as argv words: ``[scheduler] python`` or our own."""
        return shlex.split(self.settings.python) or [sys.executable]

    # -- the Executor interface ---------------------------------------------------------------------

    def render_script(self, spec: JobSpec) -> str:
        return self._template.substitute(self.script_values(spec))

    def script_path(self, spec: JobSpec) -> Path:
        return spec.job_dir / f"{self.name}.sh"

    def submit(self, spec: JobSpec) -> str:
        marker = spec.job_dir / SUBMITTED_FILE
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
        try:
            text = self.render_script(spec)
        except ValueError as exc:
            raise SubmitError(str(exc), retry=False) from None
        script = self.script_path(spec)
        script.write_text(text, encoding="utf-8")
        marker.write_text("", encoding="ascii")
        try:
            native_id = self.submit_script(script)
        except SchedulerUnavailable as exc:
            if exc.certain:
                marker.unlink(missing_ok=True)
            raise
        except SubmitError:
            marker.unlink(missing_ok=True)  # refused: nothing reached the system
            raise
        marker.write_text(native_id, encoding="ascii")
        return native_id

    def poll_many(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        if not native_ids:
            return {}
        statuses = self.query_status(native_ids)
        missing = [native_id for native_id in native_ids if native_id not in statuses]
        if missing:
            statuses.update(self.query_finished(missing))
        gone = NativeStatus(NativeState.ENDED, f"is no longer known to {self.display_name}")
        now, grace = time.monotonic(), self.vanish_grace()
        result = {}
        for native_id in native_ids:
            status = statuses.get(native_id)
            if status is None:
                if now - self._missing.setdefault(native_id, now) < grace:
                    continue  # no news yet: asked again next poll
                status = gone
            self._missing.pop(native_id, None)
            result[native_id] = status
            if status.state is NativeState.ENDED:
                self._cancelled.pop(native_id, None)
        asked = set(native_ids)
        for native_id in [n for n in self._missing if n not in asked]:
            del self._missing[native_id]
        return result

    def cancel(self, native_id: str) -> None:
        """A request: the end is seen by a later poll. Repeated polls of a dismissed job that has not
        ended yet do not send it again before CANCEL_REPEAT seconds; failures are logged, never raised."""
        now = time.monotonic()
        if now - self._cancelled.get(native_id, -CANCEL_REPEAT) < CANCEL_REPEAT:
            return
        self._cancelled[native_id] = now
        try:
            done = self.run(self.cancel_command(native_id))
        except SubmitError as exc:
            log.warning("%s job %s: cannot cancel now: %s", self.name, native_id, exc)
            del self._cancelled[native_id]  # ask again next poll
            return
        if done.returncode != 0 and not self.cancel_ignorable(done.stderr):
            log.warning("%s job %s: cancel failed: %s", self.name, native_id, done.stderr.strip())
            del self._cancelled[native_id]

    def attach(self, native_id: str) -> None:
        """Nothing to do: the system's job ids outlive our restarts, so polling by id finds the job,
        and everything else (script, logs named by native id, result) lies in its job directory."""

    def describe_queued(self, native_id: str) -> str:
        return f"queued on {self.display_name} as job {native_id}"
