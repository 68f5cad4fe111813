"""Slurm through its own command-line tools (sbatch, squeue, sacct, scancel): no DRMAA library needed.

A job is a script written into its job directory (``slurm.sh``, beside this module) that runs
``python -m scheduler.run_job DIR`` on the node; ``sbatch --parsable`` submits it and prints the id.
The jobs one dispatcher cycle hands over that ask for the same resources go as one job array instead
(``sbatch --array``: one request whatever their number, and one submission for sites that cap them);
each task's native id is ``ARRAY_TASK``, which squeue, sacct and scancel take as a job's id.
Every poll is one ``squeue`` for all jobs (``--states=all``, so jobs that ended within Slurm's
MinJobAge are still listed with their final state, exit code and time limit); jobs squeue no longer
lists are looked up with one ``sacct`` when accounting storage is enabled (checked once, then
remembered), and otherwise end as "no longer known to Slurm" (the result file the launcher left,
if any, still decides the outcome).

Slurm's own vocabulary lives in one table, ``_STATE_MAP``; reasons are worded to follow "the job's
process ", which is how the dispatcher reports a job that ended without a result. On slurm-drmaa
sites the DRMAA executor polls with the same squeue lines (``squeue_listing``).
"""

from __future__ import annotations

import logging
import re
import shlex
import signal
import string
import time
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from scheduler.executors.base import JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.executors.batch.base import BatchExecutor, Listed, SchedulerUnavailable, SubmitWords, tail
from scheduler.run_job import MODULE as RUN_JOB
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

SLURM = "Slurm"
QUEUED, RUNNING, ENDED = NativeState.QUEUED, NativeState.RUNNING, NativeState.ENDED

# Every state squeue or sacct can print, with what it means here and, for an end, the reason.
# Placeholders are filled from the same squeue line: {failed} (exit code or signal, Slurm's reason,
# the tail of the job's error output), {limit} (its time limit), {memory} (the memory it asked for).
_STATE_MAP: dict[str, tuple[NativeState, str]] = {
    "PENDING": (QUEUED, ""),
    "CONFIGURING": (QUEUED, ""),  # nodes allocated, still booting: the launcher has not started
    "REQUEUED": (QUEUED, ""),
    "REQUEUE_HOLD": (QUEUED, ""),
    "REQUEUE_FED": (QUEUED, ""),
    "RESV_DEL_HOLD": (QUEUED, ""),
    "SPECIAL_EXIT": (QUEUED, ""),  # requeued and held after a special exit value, until released
    "SUSPENDED": (QUEUED, ""),  # its processes are stopped until it is resumed
    "RUNNING": (RUNNING, ""),
    "COMPLETING": (RUNNING, ""),  # the launcher has exited, its result is written; Slurm cleans up
    "RESIZING": (RUNNING, ""),
    "SIGNALING": (RUNNING, ""),
    "STAGE_OUT": (RUNNING, ""),
    "STOPPED": (RUNNING, ""),
    "COMPLETED": (ENDED, ""),  # the result file tells the outcome
    "FAILED": (ENDED, "{failed}"),
    "CANCELLED": (ENDED, "was cancelled on Slurm (scancel)"),
    "TIMEOUT": (ENDED, "exceeded its time limit{limit} on Slurm"),
    "OUT_OF_MEMORY": (ENDED, "was killed on Slurm for using more than the memory it asked for{memory}"),
    "NODE_FAIL": (ENDED, "was ended on Slurm by the failure of its node"),
    "PREEMPTED": (ENDED, "was preempted on Slurm by a job of higher priority"),
    "BOOT_FAIL": (ENDED, "could not start on Slurm: its node failed to boot"),
    "DEADLINE": (ENDED, "missed its deadline on Slurm"),
    "REVOKED": (ENDED, "was revoked on Slurm: another cluster of its federation runs it"),
}
# Slurm reasons that say nothing beyond the state and the exit code.
_PLAIN_REASONS = frozenset({"", "None", "NonZeroExitCode"})

# One line per job, and per task of a job array (squeue -r; JobArrayID is "ARRAY_TASK" for a task,
# the plain id otherwise): every field ends with "|" and is never padded nor cut; WorkDir (which may hold
# any character but a line break) comes last.
SQUEUE_FIELDS = ("JobArrayID", "State", "Reason", "exit_code", "TimeLimit", "MinMemory", "WorkDir")
SQUEUE_FORMAT = ",".join(f"{field}:|" for field in SQUEUE_FIELDS)
# sacct's JobID names a task as squeue does ("ARRAY_TASK"); JobIDRaw would be its own number.
SACCT_FIELDS = ("JobID", "State", "Reason", "ExitCode", "Timelimit", "ReqMem", "WorkDir")
# More ids than this are not listed on squeue's command line: all our user's jobs are asked for.
MAX_LISTED_IDS = 2000

# sbatch messages: the controller cannot be reached (try again later), or it refuses this request
# (failing the job is the only answer). Anything else counts as unavailable: retried, never lost.
_UNREACHABLE = re.compile(
    r"unable to contact|connect failure|connection refused|socket timed out|timed out|temporarily|"
    r"zero bytes were transmitted|communication connection failure|slurm_persist_conn|try again|"
    r"submit limit|MaxSubmitJob",
    re.IGNORECASE,
)
_CONNECT_REFUSED = re.compile(r"connect failure|connection refused", re.IGNORECASE)
_REFUSED = re.compile(
    r"invalid|unrecognized option|unknown option|requires an argument|not available|can ?not be satisfied|"
    r"exceed|not permitted|access denied|not allowed|no such|is not supported|illegal|bad ",
    re.IGNORECASE,
)
_SBATCH = SubmitWords(SLURM, "sbatch", _UNREACHABLE, _CONNECT_REFUSED, _REFUSED)
# The script's values that are each job's own; jobs whose other values are equal form one array.
_PER_JOB = frozenset({"job_name", "chdir", "output", "error", "command"})
_CANCEL_ENDED = re.compile(r"already completing or completed|invalid job id", re.IGNORECASE)
_INVALID_ID = re.compile(r"invalid job id", re.IGNORECASE)
_ACCOUNTING_OFF = re.compile(r"accounting storage is disabled|slurmdbd|not running a supported", re.IGNORECASE)


def sbatch_quote(value: str) -> str:
    """A value for an ``#SBATCH`` line, as Slurm's own parser reads it (not a shell): double quotes,
    with backslash escapes for backslashes and double quotes. Single quotes are literal to it and an
    unquoted ``#`` starts a comment, so shlex.quote would be wrong here."""
    if any(c in value for c in "\n\r\0"):
        raise ValueError(f"{value!r}: a value of an #SBATCH line cannot contain a line break")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def hms(limit: str) -> str:
    """Slurm's time limit ("1:00", "2:00:00", "1-00:00:00", "30") as H:MM:SS; other text unchanged."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", limit.strip())
    if not match:
        return limit.strip()
    days, first, second, third = (int(g) if g else None for g in match.groups())
    if days is not None:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = days * 24 + (first or 0), second or 0, third or 0
    elif third is not None:
        hours, minutes, seconds = first or 0, second or 0, third
    elif second is not None:  # minutes:seconds
        hours, minutes, seconds = 0, first or 0, second
    else:  # minutes
        hours, minutes, seconds = 0, first or 0, 0
    total = hours * 3600 + minutes * 60 + seconds
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def exit_status(text: str) -> tuple[int, int]:
    """(exit code, signal) from squeue's raw wait status ("768") or sacct's "code:signal" ("3:0")."""
    text = text.strip()
    try:
        if ":" in text:
            code, _, sig = text.partition(":")
            return int(code or 0), int(sig or 0)
        raw = int(text or 0)
    except ValueError:
        return 0, 0
    return (raw >> 8) & 0xFF, raw & 0x7F


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def error_log(workdir: Path, native_id: str) -> Path:
    """A job's error output: in its directory; for a task of an array (``ARRAY_TASK``, whose working
    directory is the array's), through the array directory's link named by the task's index."""
    _array, _, task = native_id.partition("_")
    return (workdir / task if task else workdir) / f"slurm-{native_id}.err"


def task_id(listed_id: str, task: int) -> str:
    """The id of one task of the array that a listing shows as ``listed_id`` ("12_3", or "12_[0-9]"
    while its tasks wait together)."""
    return f"{listed_id.partition('_')[0]}_{task}"


def describe_failure(exit_code: str, reason: str, error_tail: str) -> str:
    code, sig = exit_status(exit_code)
    if sig:
        text = f"was killed by signal {_signal_name(sig)} on Slurm"
    elif code:
        text = f"failed on Slurm with exit code {code}"
    else:
        text = "failed on Slurm"
    if reason.strip() not in _PLAIN_REASONS:
        text += f" ({reason.strip()})"
    if error_tail:
        text += f"; its error output ends: {error_tail}"
    return text


def native_status(
    native_id: str, state: str, reason: str, exit_code: str, limit: str, memory: str, workdir: str
) -> NativeStatus:
    """One job's fields, as squeue or sacct print them, as a NativeStatus."""
    state = state.split()[0] if state.strip() else "UNKNOWN"  # sacct: "CANCELLED by 1000"
    state = state.rstrip("+")
    if state not in _STATE_MAP:
        log.warning("Slurm job %s is in state %s, which hpc-wps does not know; taken as queued", native_id, state)
        return NativeStatus(QUEUED)
    native_state, template = _STATE_MAP[state]
    if native_state is not ENDED or not template:
        return NativeStatus(native_state)
    details = {"failed": "", "limit": "", "memory": ""}
    if "{failed}" in template:
        error_tail = tail(error_log(Path(workdir), native_id)) if workdir else ""
        details["failed"] = describe_failure(exit_code, reason, error_tail)
    limit = hms(limit)
    if limit and limit[0].isdigit():
        details["limit"] = f" of {limit}"
    if memory.strip() and memory.strip() not in ("0", "0n", "0c"):
        details["memory"] = f" ({memory.strip()})"
    return NativeStatus(ENDED, template.format(**details))


def squeue_rows(output: str) -> Iterator[tuple[str, ...]]:
    """squeue's lines in SQUEUE_FORMAT, each as its fields (in SQUEUE_FIELDS' order, stripped)."""
    for line in output.splitlines():
        fields = line.removesuffix("|").split("|", len(SQUEUE_FIELDS) - 1)
        if len(fields) == len(SQUEUE_FIELDS) and fields[0].strip():
            yield tuple(f.strip() for f in fields)


def parse_squeue(output: str) -> dict[str, NativeStatus]:
    """squeue's lines in SQUEUE_FORMAT as {native id: status}."""
    return {row[0]: native_status(*row) for row in squeue_rows(output)}


def parse_sacct(output: str) -> dict[str, NativeStatus]:
    """``sacct --parsable2`` lines in SACCT_FIELDS as {native id: status}."""
    statuses = {}
    for line in output.splitlines():
        fields = line.split("|", len(SACCT_FIELDS) - 1)
        if len(fields) != len(SACCT_FIELDS) or not fields[0].strip():
            continue
        native_id, state, reason, exit_code, limit, memory, workdir = (f.strip() for f in fields)
        statuses[native_id] = native_status(native_id, state, reason, exit_code, limit, memory, workdir)
    return statuses


def squeue_listing_command(user: str) -> list[str]:
    """For slurm-drmaa sites: every job of ``user`` in SQUEUE_FORMAT, finished ones within MinJobAge too."""
    return ["squeue", "-h", "-r", "-t", "all", "-u", user, "-O", SQUEUE_FORMAT]


def squeue_listing(output: str) -> dict[str, Listed]:
    """squeue's lines in SQUEUE_FORMAT as the DRMAA executor's listing: states, reasons, job directories."""
    listed = {}
    for row in squeue_rows(output):
        status = native_status(*row)
        listed[row[0]] = Listed(status.state, status.reason, "", row[-1])  # WorkDir is the last field
    return listed


def _in_directory(listing: str, job_dir: str) -> str | None:
    """The id on the last "id|workdir" line whose directory is ``job_dir`` (squeue's lines end in "|")."""
    found = None
    for line in listing.splitlines():
        native_id, _, workdir = line.removesuffix("|").partition("|")
        if workdir.strip() == job_dir and native_id.strip():
            found = native_id.strip()
    return found


def error_text(text: str) -> str:
    """The message of a failed command: its error lines joined, without the "Try --help" noise."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Try ")]
    return " ".join(lines)[:1000]


class SlurmExecutor(BatchExecutor):
    name = "slurm"
    display_name = SLURM
    job_name_prefix = "hpc-wps-"
    job_id_chars = 8

    def __init__(self, settings: SchedulerSettings, jobs_dir: Path) -> None:
        super().__init__(settings, jobs_dir)
        self.accounting: bool | None = None  # whether sacct answers; None until first needed
        self._template = string.Template(Path(__file__).with_name("slurm.sh").read_text(encoding="utf-8"))

    # -- submitting ---------------------------------------------------------------------------------

    def script_values(self, spec: JobSpec) -> dict[str, str]:
        """The template's values, each quoted for where it appears; ValueError if impossible."""
        resources = self.resources(spec)
        job_dir = self.runner.path(spec.job_dir)  # where the nodes see it
        if "\\" in job_dir:  # Slurm drops backslashes from --output/--error file names, with no escape
            raise ValueError(f"the job directory {job_dir} contains a backslash, which Slurm cannot take")
        logs = job_dir.replace("%", "%%")  # --output/--error expand %j and the like; %% is a percent
        if any(c in resources.native for c in "\n\r\0"):
            raise ValueError("native Slurm options cannot contain line breaks")
        try:
            native = shlex.split(resources.native)
        except ValueError as exc:
            raise ValueError(f"native Slurm options {resources.native!r}: {exc}") from None
        options = []
        if resources.account:
            options.append(f"#SBATCH --account={sbatch_quote(resources.account)}")
        if resources.qos:
            options.append(f"#SBATCH --qos={sbatch_quote(resources.qos)}")
        if resources.queue:
            options.append(f"#SBATCH --partition={sbatch_quote(resources.queue)}")
        if native:
            options.append("#SBATCH " + " ".join(sbatch_quote(word) for word in native))
        return {
            "job_name": sbatch_quote(self.job_name(spec.job_id)),
            "chdir": sbatch_quote(job_dir),
            "output": sbatch_quote(f"{logs}/slurm-%j.out"),
            "error": sbatch_quote(f"{logs}/slurm-%j.err"),
            "cores": sbatch_quote(str(resources.cores)),
            "memory": sbatch_quote(f"{resources.memory_mb}M"),
            "walltime": sbatch_quote(resources.walltime_hms),
            "options": "\n".join(options),
            "command": shlex.join([*self.python, "-m", RUN_JOB, job_dir]),
        }

    def render_script(self, spec: JobSpec) -> str:
        return self._template.substitute(self.script_values(spec))

    @property
    def uses_arrays(self) -> bool:
        """Where the nodes see the array directory at the path this host does (not with ``staging = sftp``)."""
        return self.runner.shared

    def array_options(self, spec: JobSpec) -> Hashable:
        """The script's values but the job's own name, directory and logs."""
        return tuple(sorted((k, v) for k, v in self.script_values(spec).items() if k not in _PER_JOB))

    def submit_array(self, specs: Sequence[JobSpec]) -> list[str]:
        """One ``sbatch --array=0-N`` for all the jobs. The array's directory (``array_directory``) holds
        its script and a link per task to the task's job directory: the task runs the launcher on that
        link, and Slurm writes its logs through it into the job directory as ``slurm-ARRAY_TASK.out``
        and ``.err``. A restarted dispatcher finds a task by its array's name and directory."""
        batch = self.array_directory(specs, 0)
        where = self.runner.path(batch)
        logs = where.replace("%", "%%")
        values = self.script_values(specs[0]) | {
            "job_name": sbatch_quote(self.job_name(batch.name)),
            "chdir": sbatch_quote(where),
            "output": sbatch_quote(f"{logs}/%a/slurm-%A_%a.out"),
            "error": sbatch_quote(f"{logs}/%a/slurm-%A_%a.err"),
            "command": shlex.join([*self.python, "-m", RUN_JOB]) + ' "$SLURM_ARRAY_TASK_ID"',
        }
        script = batch / "slurm.sh"
        script.write_text(self._template.substitute(values), encoding="utf-8")
        array = self._sbatch([f"--array=0-{len(specs) - 1}", str(PurePosixPath(where, script.name))])
        return [f"{array}_{index}" for index in range(len(specs))]

    def submit_job(self, spec: JobSpec) -> str:
        script = spec.job_dir / "slurm.sh"
        script.write_text(self.render_script(spec), encoding="utf-8")
        self.runner.stage_in(spec.job_dir)
        return self._sbatch([str(PurePosixPath(self.runner.path(spec.job_dir), script.name))])

    def _sbatch(self, arguments: list[str]) -> str:
        """``sbatch --parsable`` with these arguments: the job's (or array's) id, or the errors of submit_job."""
        done = self.run(["sbatch", "--parsable", *arguments])
        if done.returncode == 0:
            native_id = done.stdout.strip().split(";")[0]  # "id;cluster" on a multi-cluster site
            if native_id.isdigit():
                return native_id
            raise SchedulerUnavailable(f"sbatch answered {done.stdout.strip()!r} instead of a job id")
        raise _SBATCH.error(error_text(done.stderr) or f"sbatch exited with code {done.returncode}")

    def find_submitted(self, spec: JobSpec) -> str | None:
        """squeue by the job's name and directory; then accounting, which still knows a job that ran
        and left squeue (MinJobAge) while the dispatcher was away. A task of an array is found as its
        array, by the array's name and directory (ARRAY_NOTE in the job directory names them)."""
        task = self.array_task(spec)
        if task is None:
            return self._find(self.job_name(spec.job_id), spec.job_dir, spec.job_dir / self.submitted_file)
        batch, index = task
        found = self._find(self.job_name(batch.name), batch, batch / "slurm.sh")
        return task_id(found, index) if found else None

    def _find(self, name: str, job_dir: Path, written: Path) -> str | None:
        """The id listed for a job (or array) of this name in this directory; ``written`` was written
        just before the earlier sbatch."""
        done = self.run(["squeue", "-h", "-r", "-t", "all", "-n", name, "-O", "JobArrayID:|,WorkDir:|"])
        if done.returncode != 0:
            raise SchedulerUnavailable(f"Slurm is unavailable: {error_text(done.stderr)}")
        where = self.runner.path(job_dir)
        found = _in_directory(done.stdout, where)
        if found or self.accounting is False:
            return found
        try:  # that job started after ``written`` was
            since = written.stat().st_mtime - 60
        except OSError:
            since = time.time() - 7 * 86400
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since))
        done = self.run(["sacct", "-n", "-P", "-X", "--name", name, "-S", start, "-o", "JobID,WorkDir"])
        if done.returncode != 0:
            log.info("sacct cannot look for %s: %s", name, error_text(done.stderr))
            return None
        return _in_directory(done.stdout, where)

    # -- following ----------------------------------------------------------------------------------

    def _squeue(self, selection: list[str]) -> str | None:
        """squeue's output, or None when it answers that none of the listed ids is known."""
        done = self.run(["squeue", "-h", "-r", "-t", "all", "-O", SQUEUE_FORMAT, *selection])
        if done.returncode == 0:
            return done.stdout
        if _INVALID_ID.search(done.stderr):
            return None
        raise SchedulerUnavailable(f"squeue failed: {error_text(done.stderr) or f'exit code {done.returncode}'}")

    def query_status(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        """One squeue for every job; a second only in the rare cycle where none of the ids is known."""
        everyone = ["-u", self.runner.user]
        if len(native_ids) > MAX_LISTED_IDS:
            output = self._squeue(everyone)
        else:
            output = self._squeue(["-j", ",".join(native_ids)])
            # Slurm 22.05 answers "Invalid job id" only when no listed id is known; a version that
            # refuses the whole list for one unknown id is asked once more, for all our jobs.
            if output is None and len(native_ids) > 1:
                output = self._squeue(everyone)
        wanted = set(native_ids)
        return {k: v for k, v in parse_squeue(output or "").items() if k in wanted}

    def query_finished(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        """Jobs squeue no longer lists (older than MinJobAge, or lost), from accounting if enabled."""
        if self.accounting is False:
            return {}
        argv = ["sacct", "-n", "-P", "-X", "-j", ",".join(native_ids), "-o", ",".join(SACCT_FIELDS)]
        try:
            done = self.run(argv)
        except SubmitError as exc:
            log.warning("sacct cannot be used: %s", exc)
            return {}
        if done.returncode != 0:
            message = error_text(done.stderr)
            if _ACCOUNTING_OFF.search(message):
                log.info("Slurm accounting is not available (%s): finished jobs are known from squeue only", message)
                self.accounting = False
            else:
                log.warning("sacct failed: %s", message)
            return {}
        self.accounting = True
        wanted = set(native_ids)
        return {k: v for k, v in parse_sacct(done.stdout).items() if k in wanted}

    def vanish_grace(self) -> float:
        """No grace without accounting: a job squeue no longer lists will not turn up anywhere."""
        return super().vanish_grace() if self.accounting else 0.0

    def cancel_command(self, native_id: str) -> list[str]:
        return ["scancel", native_id]

    def cancel_ignorable(self, stderr: str) -> bool:
        return bool(_CANCEL_ENDED.search(stderr))
