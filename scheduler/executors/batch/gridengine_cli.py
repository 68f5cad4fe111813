"""Grid Engine through its own command-line tools (qsub, qstat, qacct, qdel): no DRMAA library needed,
so it runs where libdrmaa cannot, on a login host over SSH (``[scheduler] remote``) as well as here.

A job is a script written into its job directory (``gridengine.sh``, beside this module) that runs
``python -m scheduler.run_job DIR`` on the node; ``qsub -terse`` submits it with every option on its
command line (the same options the DRMAA executor passes as its native specification:
``drmaa.native_specification``) and prints the job number. The jobs one dispatcher cycle hands over
that ask for the same resources go as one task array instead (``qsub -t 1-N``: one request whatever
their number, one SSH round trip with ``remote``), whose task T is "NUMBER.T" as under DRMAA; qstat,
qacct and qdel each take such a task on its own. Every poll is one ``qstat -xml -u USER``
for all jobs (``gridengine.py`` reads it). qstat lists no finished job: a job that has left it ended
with its result file where the service can read it (a shared job directory); otherwise its accounting
record (``qacct -j``, one process per job, at most ACCOUNTING_PER_POLL per poll) says how, in the
words the DRMAA executor uses (``gridengine.status_from_qacct``). A job with neither ends as having
left Grid Engine without a record once the accounting has had time to be written (VANISH_GRACE).
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import shlex
import string
from collections.abc import Hashable, Sequence
from pathlib import Path, PurePosixPath

from scheduler.executors.base import JobSpec, NativeState, NativeStatus
from scheduler.executors.batch.base import BatchExecutor, SubmitWords, UnknownListing, tail
from scheduler.executors.batch.commands import LocalRunner, SchedulerUnavailable
from scheduler.executors.batch.drmaa import ACCOUNTING_PER_POLL, code_root, job_environment, native_specification
from scheduler.executors.batch.drmaa_endings import deleted_reason
from scheduler.executors.batch.gridengine import (
    GRID_ENGINE,
    NO_RECORD,
    accounting_command,
    delete_command,
    named_job_dir,
    parse_qacct,
    parse_qstat_xml,
    qstat_names,
    qstat_xml_command,
    status_from_qacct,
)
from scheduler.launcher import read_result
from scheduler.run_job import MODULE as RUN_JOB
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

SCRIPT = "gridengine.sh"
STDERR_CHARS = 300  # of the last line of a failed job's error output, added to its reason
# qsub -terse prints the job number; for an array job "number.first-last:step".
_TERSE = re.compile(r"(\d+)(?:\.\d+-\d+:\d+)?")
# qsub's messages when the qmaster cannot be reached (try again later); checked before _REFUSED.
_UNREACHABLE = re.compile(
    r"unable to contact|commlib error|unable to send|can'?t contact|connection refused|timed out|"
    r"no such host|temporarily|try again|getting configuration|qmaster",
    re.IGNORECASE,
)
_CONNECT_REFUSED = re.compile(r"connection refused", re.IGNORECASE)
# ...and when it refuses this job (failing the job is the only answer).
_REFUSED = re.compile(
    r"job rejected|does not exist|is not a|invalid|unknown|not allowed|denied|no suitable queues|"
    r"exceeds|not a valid|illegal|unable to read script|no such file",
    re.IGNORECASE,
)
_QSUB = SubmitWords(GRID_ENGINE, "qsub", _UNREACHABLE, _CONNECT_REFUSED, _REFUSED, "Unable to run job: ")
_CANCEL_ENDED = re.compile(r"does not exist|not found", re.IGNORECASE)


def parse_terse(output: str) -> str:
    """The job number ``qsub -terse`` printed (its last non-empty line); ValueError when there is none."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    match = _TERSE.fullmatch(lines[-1]) if lines else None
    if not match:
        raise ValueError(f"qsub -terse printed {output.strip()[:200]!r} instead of a job number")
    return match.group(1)


def error_text(text: str) -> str:
    """A failed command's message: its lines joined, without qsub's closing "Exiting."."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and line.strip() != "Exiting."]
    return " ".join(lines)[:1000]


def output_path(job_dir: str, name: str) -> str:
    """A file of the job directory as qsub's -o/-e take it: the leading ":" says "no host" (qsub reads
    "host:path"), as the DRMAA executor writes it."""
    return f":{job_dir}/{name}"


class GridEngineExecutor(BatchExecutor):
    name = "gridengine"
    display_name = GRID_ENGINE

    def __init__(self, settings: SchedulerSettings, jobs_dir: Path) -> None:
        super().__init__(settings, jobs_dir)
        # Whose jobs qstat lists: the login user over SSH, ours here (qstat takes names, not uids).
        self.user = getpass.getuser() if isinstance(self.runner, LocalRunner) else self.runner.user
        # Here the job gets the dispatcher's PATH, PYTHONPATH and locale, as under DRMAA; a login host's
        # jobs get the login shell's ([scheduler] python names what they need).
        self.environment = job_environment(os.environ, code_root()) if isinstance(self.runner, LocalRunner) else {}
        self._template = string.Template(Path(__file__).with_name(SCRIPT).read_text(encoding="utf-8"))
        self._job_dirs: dict[str, Path] = {}  # native id -> job directory, where known
        self._accounting_left = 0  # qacct lookups the current poll may still make

    # -- submitting ---------------------------------------------------------------------------------

    def render_script(self, spec: JobSpec) -> str:
        return self._script(shlex.join([*self.python, "-m", RUN_JOB, self.runner.path(spec.job_dir)]))

    def _script(self, command: str) -> str:
        """The job script running ``command`` (shell-quoted) with the job's environment."""
        exports = [f"export {key}={shlex.quote(value)}" for key, value in sorted(self.environment.items())]
        return self._template.substitute(environment="\n".join(exports), command=command)

    def native_options(self, spec: JobSpec) -> list[str]:
        """The DRMAA executor's native specification as qsub's words (resources, queue, project, the
        site's native options last); ValueError if a value cannot be passed."""
        native = native_specification(self.resources(spec), GRID_ENGINE, self.settings.parallel_environment)
        try:
            return shlex.split(native)
        except ValueError as exc:
            raise ValueError(f"native Grid Engine options {native!r}: {exc}") from None

    def qsub_command(self, spec: JobSpec) -> list[str]:
        """qsub's argv: the job's name, directory and output files, then its native options. ValueError
        if a value cannot be passed."""
        job_dir = self.runner.path(spec.job_dir)
        return self._qsub_argv(self.job_name(spec.job_id), job_dir, job_dir, self.native_options(spec), [])

    def _qsub_argv(self, name: str, workdir: str, logs: str, options: list[str], array: list[str]) -> list[str]:
        return [
            "qsub",
            "-terse",
            *array,
            "-N",
            name,
            "-wd",
            workdir,
            "-o",
            output_path(logs, "stdout"),
            "-e",
            output_path(logs, "stderr"),
            "-S",
            "/bin/sh",
            "-r",
            "n",  # not rerunnable: a job must never run twice; it ends, and its reason says why
            *options,
            str(PurePosixPath(workdir, SCRIPT)),
        ]

    def submit_job(self, spec: JobSpec) -> str:
        argv = self.qsub_command(spec)
        (spec.job_dir / SCRIPT).write_text(self.render_script(spec), encoding="utf-8")
        self.runner.stage_in(spec.job_dir)
        native_id = self._qsub(argv)
        self._job_dirs[native_id] = spec.job_dir
        return native_id

    @property
    def uses_arrays(self) -> bool:
        """Where the nodes see the array directory at the path this host does (not with ``staging = sftp``)."""
        return self.runner.shared

    def array_options(self, spec: JobSpec) -> Hashable:
        """qsub's options but the job's own name, directory and logs: its native options."""
        return tuple(self.native_options(spec))

    def submit_array(self, specs: Sequence[JobSpec]) -> list[str]:
        """One ``qsub -t 1-N`` for all the jobs, run in the array's directory (``array_directory``), which
        holds the script and a link per task to the task's job directory: task T runs the launcher on
        link T ($SGE_TASK_ID), and Grid Engine writes its output files through it ($TASK_ID in -o and -e)
        into the job directory. Task T's native id is "NUMBER.T", as DRMAA names it; a restarted
        dispatcher finds a task by its array's name."""
        batch = self.array_directory(specs, 1)
        where = self.runner.path(batch)
        (batch / SCRIPT).write_text(
            self._script(shlex.join([*self.python, "-m", RUN_JOB]) + ' "$SGE_TASK_ID"'), encoding="utf-8"
        )
        options = ["-t", f"1-{len(specs)}"]
        argv = self._qsub_argv(
            self.job_name(batch.name), where, f"{where}/$TASK_ID", self.native_options(specs[0]), options
        )
        number = self._qsub(argv)
        native_ids = [f"{number}.{task}" for task in range(1, len(specs) + 1)]
        for native_id, spec in zip(native_ids, specs, strict=True):
            self._job_dirs[native_id] = spec.job_dir
        return native_ids

    def _qsub(self, argv: list[str]) -> str:
        """Run qsub: the job (or task array) number, or the errors of submit_job."""
        done = self.run(argv)
        if done.returncode == 0:
            try:
                return parse_terse(done.stdout)
            except ValueError as exc:
                raise SchedulerUnavailable(str(exc)) from None
        message = error_text(done.stderr) or error_text(done.stdout)
        raise _QSUB.error(message or f"qsub exited with code {done.returncode}")

    def find_submitted(self, spec: JobSpec) -> str | None:
        """qstat by the job's name; then the accounting, which knows a job that ran and ended while the
        dispatcher was away. A task of an array is found as its array, by the array's name (ARRAY_NOTE
        in the job directory names it), and its index."""
        task = self.array_task(spec)
        number = self._find_number(self.job_name(spec.job_id if task is None else task[0].name))
        return number if task is None or number is None else f"{number}.{task[1]}"

    def _find_number(self, name: str) -> str | None:
        try:
            number = qstat_names(self._qstat()).get(name)
        except UnknownListing as exc:
            raise SchedulerUnavailable(f"Grid Engine is unavailable: {exc}") from None
        if number:
            return number
        done = self.run(accounting_command(name))
        records = parse_qacct(done.stdout) if done.returncode == 0 else []
        return (records[-1].get("jobnumber", "").strip() or None) if records else None

    # -- following ----------------------------------------------------------------------------------

    def _qstat(self) -> str:
        done = self.run(qstat_xml_command(self.user))
        if done.returncode != 0:
            message = error_text(done.stderr) or f"exit code {done.returncode}"
            raise SchedulerUnavailable(f"Grid Engine does not answer: qstat: {message}")
        return done.stdout

    def query_status(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        """One qstat for every job; it lists waiting and running ones only."""
        self._accounting_left = ACCOUNTING_PER_POLL
        try:
            listed = parse_qstat_xml(self._qstat())
        except UnknownListing as exc:
            raise SchedulerUnavailable(f"Grid Engine does not answer: {exc}") from None
        statuses = {}
        for native_id in native_ids:
            job = listed.get(native_id)
            if job is not None:
                if native_id not in self._job_dirs:
                    job_dir = named_job_dir(self.jobs_dir, self.job_name_prefix, native_id, job.name)
                    if job_dir is not None:
                        self._job_dirs[native_id] = job_dir
                statuses[native_id] = NativeStatus(job.state)
        return statuses

    def query_finished(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        """Jobs qstat no longer lists: their result file, where shared, decides; else their accounting."""
        statuses = {}
        for native_id in native_ids:
            status = self._ended(native_id)
            if status is not None:
                statuses[native_id] = status
                self._job_dirs.pop(native_id, None)
        return statuses

    def _ended(self, native_id: str) -> NativeStatus | None:
        job_dir = self._job_dirs.get(native_id)
        shared = job_dir is not None and self.runner.path(job_dir) == str(job_dir)
        if shared and job_dir is not None and read_result(job_dir) is not None:
            return NativeStatus(NativeState.ENDED, f"ended on {GRID_ENGINE}")
        if self._accounting_left <= 0:
            self._missing.pop(native_id, None)  # not looked up yet: its grace starts when it is
            return None
        self._accounting_left -= 1
        record = self._accounting(native_id)
        if record is not None:
            status = status_from_qacct(record)
            return NativeStatus(NativeState.ENDED, self._with_stderr(job_dir, status.reason))
        if native_id in self._cancelled:  # deleted here before it ran: it leaves no record
            return NativeStatus(NativeState.ENDED, deleted_reason(GRID_ENGINE, started=False))
        return None  # the record may not be written yet (accounting_flush_time): asked again

    def _accounting(self, native_id: str) -> dict[str, str] | None:
        """The job's newest accounting record named like ours (numbers repeat after a qmaster crash)."""
        try:
            done = self.run(accounting_command(native_id))
        except SchedulerUnavailable as exc:
            log.warning("%s", exc)
            return None
        records = parse_qacct(done.stdout) if done.returncode == 0 else []
        ours = [r for r in records if r.get("jobname", "").startswith(self.job_name_prefix)]
        return ours[-1] if ours else None

    def _with_stderr(self, job_dir: Path | None, reason: str) -> str:
        """A non-zero exit's reason with the last line of the job's error output, as under DRMAA."""
        if not reason.startswith("exited with code ") or reason.startswith("exited with code 0 ") or job_dir is None:
            return reason
        last = tail(job_dir / "stderr", lines=1, chars=STDERR_CHARS)
        return f"{reason}: {last}" if last else reason

    def no_longer_known(self) -> str:
        return NO_RECORD

    def cancel_command(self, native_id: str) -> list[str]:
        return delete_command(native_id)

    def cancel_ignorable(self, stderr: str) -> bool:
        return bool(_CANCEL_ENDED.search(stderr))
