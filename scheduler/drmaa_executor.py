"""Batch jobs through DRMAA 1.0: Grid Engine's own library, and the same code for Slurm (slurm-drmaa)
and TORQUE/PBS (pbs-drmaa).

One DRMAA session lives as long as the dispatcher. A job is ``python -m scheduler.run_job DIR`` with the job
directory as working directory and its stdout and stderr there.

DRMAA has no bulk status call (``jobStatus`` is one request to the system per job), so a poll asks the
system's own listing command once for all jobs whatever their number (``scheduler.drm_listing``:
``qstat -xml`` on Grid Engine, ``squeue`` under slurm-drmaa, ``qstat -x`` under TORQUE). Only a job that
has left the listing needs more, once: this session's own jobs are reaped with a non-blocking ``wait``,
which the session answers from the job ends the system has sent it (no request, no process; it also
frees what the session keeps of the job) and which tells how the job ended: exit status, signal,
deletion, usage. Jobs of an earlier session (after a restart) end with the result file their launcher
wrote, which decides their outcome anyway; only those without one (killed, deleted, over their limit)
are looked up in Grid Engine's accounting, ``qacct -j``, at most ACCOUNTING_PER_POLL of them per poll.
Where the listing command is missing or prints what this code cannot read (PBS Professional), polls
fall back to one ``jobStatus`` per job, with a warning in the log.

The library is loaded, and the session opened, at the first submit or poll; a library that cannot be
loaded fails submissions with the reason and the fix (Grid Engine's libdrmaa needs libjemalloc preloaded
when the process starts: ``[scheduler] drmaa_preload``).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import getpass
import logging
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scheduler.drm_listing import (
    GRID_ENGINE,
    SLURM,
    Listed,
    UnknownListing,
    cancel_command,
    drm_family,
    job_key,
    listing_command,
    parse_listing,
    qstat_names,
)
from scheduler.drmaa_endings import (
    deleted_reason,
    parse_qacct,
    reason_from_job_info,
    status_from_qacct,
)
from scheduler.executors.base import Executor, JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.launcher import read_result
from scheduler.resources import Resources
from scheduler.run_job import MODULE as RUN_JOB
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

# Written into the job directory after runJob: the native id, or nothing when runJob got no answer (the
# job may be there). A submission offered again (a restart before the id reached the job table, a retry
# after that missing answer) takes up the job submitted before instead of starting a second one.
SUBMITTED_FILE = "drmaa.submitted"
JOB_NAME_PREFIX = "wps-"  # job names: wps-<WPS job id>
COMMAND_TIMEOUT = 30.0  # seconds a listing, qacct or qdel may take
CANCEL_REPEAT = 30.0  # seconds before a cancel of the same job is sent again
# How long a job may be missing from the listing with no news of its end (no reap, no result file, no
# accounting record) before it counts as ended: Grid Engine writes accounting records every
# accounting_flush_time (15 s by default), and a session hears of an end a moment after the qmaster.
VANISHED_GRACE = 60.0
# Most accounting lookups (one qacct process each, which reads the whole accounting file) in one poll;
# jobs beyond it wait for the next poll, so that a poll stays a bounded number of queries.
ACCOUNTING_PER_POLL = 4
NOT_INSTALLED = 127  # exit code _command reports for a command that is not found, as a shell does
ENDED_KEPT = 600.0  # seconds an ended job's status is kept once the dispatcher stops asking for it
# Calls that are requests to the system (or processes run), as opposed to the session's local reaps.
LOCAL_CALLS = frozenset({"wait"})
# Environment variables a job gets from the dispatcher: what the launcher and the batch system need.
JOB_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ")
JOB_ENVIRONMENT_PREFIXES = ("SGE_",)
# Values that go into a native specification as one word: no spaces, quotes or option-like start.
_WORD = re.compile(r"[A-Za-z0-9_.@*,:/-]+")

WAITING_STATES = ("queued_active", "system_on_hold", "user_on_hold", "user_system_on_hold")
STARTED_STATES = ("running", "system_suspended", "user_suspended")
ENDED_STATES = ("done", "failed")


# -- what goes to the system ------------------------------------------------------------------------


def _word(what: str, value: str) -> str:
    if not _WORD.fullmatch(value) or value.startswith("-"):
        raise ValueError(f"{what} {value!r} cannot be passed to the batch system (one word of letters, digits, ._-)")
    return value


def native_specification(resources: Resources, family: str = GRID_ENGINE, parallel_environment: str = "smp") -> str:
    """The options a job is submitted with; the site's own ``native`` options come last, as they are.

    Grid Engine: ``h_rt`` (enforced by the qmaster: SIGKILL at the limit) and ``h_vmem`` per slot,
    which is what it enforces and what it accepts without complex configuration (``mem_free`` is
    refused at submission, as DRMAA verifies requests); cores are slots of the site's parallel
    environment (``[scheduler] parallel_environment``: ``-pe smp 4``), asked for only for more than one
    core, as a serial job needs none. Slurm and PBS follow slurm-drmaa's and pbs-drmaa's documented options.
    """
    cores = max(1, resources.cores)
    words: list[str] = []
    if family == GRID_ENGINE:
        words += ["-l", f"h_rt={resources.walltime_hms}", "-l", f"h_vmem={-(-resources.memory_mb // cores)}M"]
        if cores > 1:
            words += ["-pe", _word("parallel environment", parallel_environment), str(cores)]
        if resources.queue:
            words += ["-q", _word("queue", resources.queue)]
    elif family == SLURM:
        minutes = max(1, -(-int(resources.walltime + 0.999) // 60))
        words += [f"--time={minutes // 60}:{minutes % 60:02d}", f"--mem={resources.memory_mb}", "--nodes=1"]
        words += ["--ntasks=1", f"--mincpus={cores}"]
        if resources.queue:
            words.append(f"--partition={_word('partition', resources.queue)}")
    else:
        limits = f"walltime={resources.walltime_hms},mem={resources.memory_mb}mb,nodes=1:ppn={cores}"
        words += ["-l", limits]
        if resources.queue:
            words += ["-q", _word("queue", resources.queue)]
    if resources.native.strip():
        words.append(resources.native.strip())
    return " ".join(words)


def job_environment(environ: Mapping[str, str], code_root: str | None) -> dict[str, str]:
    """The few variables a job gets: the launcher's PATH and PYTHONPATH (with the code it must import
    when the service runs from a source tree), the locale, and the batch system's own."""
    env = {
        key: value
        for key, value in environ.items()
        if key in JOB_ENVIRONMENT or key.startswith(JOB_ENVIRONMENT_PREFIXES)
    }
    if code_root:
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != code_root]
        env["PYTHONPATH"] = os.pathsep.join([code_root, *paths])
    return env


def code_root() -> str | None:
    """The directory holding ``app`` and ``scheduler`` if the service runs from a source tree (the
    nodes must import the same code); None when installed in site-packages, which the node's
    interpreter finds by itself."""
    root = Path(__file__).resolve().parents[1]
    installed = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    return None if root in installed else str(root)


def load_error_message(library: str, exc: BaseException) -> str:
    text = str(exc)
    where = library or "(none named: set [scheduler] drmaa_library or DRMAA_LIBRARY_PATH)"
    if isinstance(exc, ImportError) and not isinstance(exc, OSError) and "drmaa" in text:
        return f"the drmaa Python package is not installed ({text}): pip install 'hpc-wps[scheduler]'"
    if "Could not find drmaa library" in text:
        return "no DRMAA library found: set [scheduler] drmaa_library (or DRMAA_LIBRARY_PATH) to libdrmaa's path"
    tls = re.search(r"(\S+?):? cannot allocate memory in static TLS block", text)
    if tls:
        needed = tls.group(1)
        return (
            f"cannot load the DRMAA library {where}: {text}. It needs {needed} loaded when the process "
            f"starts: set [scheduler] drmaa_preload = {_library_path(needed)} (the dispatcher then restarts "
            f"itself with LD_PRELOAD), or start the dispatcher with LD_PRELOAD={_library_path(needed)}"
        )
    return f"cannot load the DRMAA library {where}: {text}"


def _library_path(name: str) -> str:
    if "/" in name:
        return name
    for directory in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"):
        if os.path.exists(os.path.join(directory, name)):
            return os.path.join(directory, name)
    return name


def drmaa_message(exc: BaseException) -> str:
    """A DRMAA error without the library's "code 17: " prefix."""
    return re.sub(r"^code \d+:\s*", "", str(exc)).strip() or type(exc).__name__


def is_no_rusage(exc: BaseException) -> bool:
    """drmaa_wait's DRMAA_ERRNO_NO_RUSAGE (24), which the drmaa package raises as a bare Exception: the
    job ended without usage data, as one deleted before it started does."""
    return str(exc).startswith("code 24:")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


# -- the executor --------------------------------------------------------------------------------


class DrmaaExecutor(Executor):
    name = "drmaa"
    starts_now = False
    needs_payload = True

    def __init__(self, settings: SchedulerSettings, jobs_dir: Path) -> None:
        self.settings = settings
        self.jobs_dir = jobs_dir
        # The launcher's interpreter on the nodes, with any options: [scheduler] python, or our own.
        self.python = shlex.split(settings.python) or [sys.executable]
        self.environment = job_environment(os.environ, code_root())
        # What the last poll asked: every call by kind (``wait`` is a local reap, the rest are requests to
        # the system or processes run), and the number of those requests. The benchmark reads both.
        self.last_poll: collections.Counter[str] = collections.Counter()
        self.queries = 0
        self.calls: collections.Counter[str] = collections.Counter()  # every call since the start
        self.system = GRID_ENGINE  # from the library's drmsInfo once the session is open
        self.drms = ""
        self._drmaa: Any = None  # the drmaa module, once loaded
        self._load_error = ""
        self._session: Any = None
        self._listing_unusable = ""  # why the system's listing command cannot be used: polls ask per job
        self._failures = 0  # consecutive polls the system did not answer
        self._walltime: dict[str, float] = {}  # jobs this session submitted: their h_rt in seconds ...
        self._job_dirs: dict[str, Path] = {}  # ... and the job directories of all jobs, where known
        self._foreign: set[str] = set()  # jobs this session does not know (an earlier session's)
        self._missing: dict[str, float] = {}  # jobs gone from the listing with no news of their end: since when
        self._ended: dict[str, tuple[NativeStatus, float]] = {}  # ended jobs: status, when last asked for
        self._cancelled: dict[str, float] = {}  # native id -> when a cancel was last sent
        self._accounting_left = 0  # qacct lookups the current poll may still make

    # -- the session -------------------------------------------------------------------------------

    def _count(self, kind: str) -> None:
        self.calls[kind] += 1

    def _module(self) -> Any:
        if self._drmaa is not None:
            return self._drmaa
        if self._load_error:
            raise SubmitError(self._load_error, retry=False)
        library = self.settings.drmaa_library  # the configuration fills it from DRMAA_LIBRARY_PATH
        if library:
            os.environ["DRMAA_LIBRARY_PATH"] = library  # read by the drmaa package on import
        try:
            import drmaa
        except (ImportError, OSError, RuntimeError) as exc:
            self._load_error = load_error_message(library, exc)
            log.error("%s", self._load_error)
            raise SubmitError(self._load_error, retry=False) from None
        self._drmaa = drmaa
        return drmaa

    def session(self) -> Any:
        """The dispatcher's one DRMAA session, opened at first use."""
        if self._session is not None:
            return self._session
        drmaa = self._module()
        session = drmaa.Session()
        try:
            session.initialize()
        except drmaa.errors.AlreadyActiveSessionException:
            pass  # opened by someone else in this process: DRMAA 1.0 has one session per process
        except drmaa.errors.DrmaaException as exc:
            raise SubmitError(f"cannot open a DRMAA session: {drmaa_message(exc)}", retry=True) from None
        self.drms = str(session.drmsInfo)
        self.system = drm_family(self.drms)
        self._session = session
        atexit.register(self.close)
        log.info("DRMAA session %s on %s (%s)", session.contact, self.drms, session.drmaaImplementation)
        return session

    def close(self) -> None:
        """End the session (its jobs keep running; a restarted dispatcher takes them up)."""
        if self._session is None:
            return
        with contextlib.suppress(Exception):
            self._session.exit()
        self._session = None
        atexit.unregister(self.close)

    def _lost_contact(self) -> None:
        """After repeated communication failures: reopen the session at the next use. Its jobs are then
        followed like those of an earlier dispatcher."""
        self._failures += 1
        if self._failures >= 3:
            log.warning("DRMAA: %d polls without an answer; opening a new session", self._failures)
            self.close()
            self._failures = 0

    # -- submitting --------------------------------------------------------------------------------

    def _resources(self, spec: JobSpec) -> Resources:
        if spec.resources is not None:
            return spec.resources
        s = self.settings
        return Resources(s.cores, s.memory, s.walltime, s.queue, s.native)

    def submit(self, spec: JobSpec) -> str:
        session = self.session()
        drmaa = self._drmaa
        job_dir = str(spec.job_dir)
        marker = os.path.join(job_dir, SUBMITTED_FILE)
        if os.path.exists(marker):  # offered again: submitted before, or perhaps (no answer came)
            earlier = self._earlier_submission(spec, marker)
            if earlier:
                return earlier
        resources = self._resources(spec)
        try:
            native = native_specification(resources, self.system, self.settings.parallel_environment)
        except ValueError as exc:
            raise SubmitError(str(exc), retry=False) from None
        try:
            template = session.createJobTemplate()
        except drmaa.errors.DrmaaException as exc:
            raise self._submit_error(exc, marker, reached=False) from None
        running_job = False  # whether runJob was called: then the job may have reached the system
        try:
            template.remoteCommand = self.python[0]
            template.args = [*self.python[1:], "-m", RUN_JOB, job_dir]
            template.jobName = self.job_name(spec.job_id)
            template.workingDirectory = job_dir
            template.outputPath = f":{job_dir}/stdout"
            template.errorPath = f":{job_dir}/stderr"
            template.joinFiles = False
            template.jobEnvironment = self.environment
            template.nativeSpecification = native
            self._count("runJob")
            running_job = True
            native_id = str(session.runJob(template))
        except drmaa.errors.DrmaaException as exc:
            raise self._submit_error(exc, marker, reached=running_job) from None
        finally:
            with contextlib.suppress(drmaa.errors.DrmaaException):
                session.deleteJobTemplate(template)
        _write(marker, native_id)
        self._walltime[native_id] = resources.walltime
        self._job_dirs[native_id] = spec.job_dir
        return native_id

    @staticmethod
    def job_name(job_id: str) -> str:
        return JOB_NAME_PREFIX + job_id

    def _submit_error(self, exc: Exception, marker: str, reached: bool) -> SubmitError:
        errors = self._drmaa.errors
        refused = (
            errors.DeniedByDrmException,  # e.g. "no suitable queues"
            errors.InvalidAttributeValueException,
            errors.InvalidAttributeFormatException,
            errors.ConflictingAttributeValuesException,
            errors.InvalidArgumentException,
        )
        if isinstance(exc, refused):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(marker)
            return SubmitError(f"{self.system} refused the job: {drmaa_message(exc)}", retry=False)
        if isinstance(exc, errors.NoActiveSessionException):
            self.close()
        elif reached:
            # No answer from the system: the job may have reached it. An empty marker makes the next
            # try look for it by name before submitting again.
            with contextlib.suppress(OSError):
                _write(marker, "")
        return SubmitError(f"{self.system} did not take the job: {drmaa_message(exc)}", retry=True)

    def _earlier_submission(self, spec: JobSpec, marker: str) -> str | None:
        try:
            with open(marker, encoding="ascii") as handle:
                earlier = handle.read().strip()
        except (OSError, ValueError):
            return None
        if earlier:
            log.info("job %s: already submitted as %s job %s", spec.job_id, self.system, earlier)
            return earlier
        found = self._find_by_name(self.job_name(spec.job_id)) if self.system == GRID_ENGINE else None
        if found:
            log.info("job %s: found as %s job %s from an earlier submission", spec.job_id, self.system, found)
            _write(marker, found)
        return found

    def _find_by_name(self, name: str) -> str | None:
        done = self._command("qstat", ["qstat", "-xml", "-u", getpass.getuser()])
        if done.returncode == 0:
            with contextlib.suppress(UnknownListing):
                number = qstat_names(done.stdout).get(name)
                if number:
                    return number
        done = self._command("qacct", ["qacct", "-j", name])
        if done.returncode == 0:
            records = parse_qacct(done.stdout)
            if records:
                return records[-1].get("jobnumber", "").strip() or None
        return None

    # -- following ---------------------------------------------------------------------------------

    def poll_many(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        """One listing command for all jobs; the jobs it no longer shows waiting or running are reaped."""
        started = time.perf_counter()
        before = self.calls.copy()
        session = self.session()
        now = time.monotonic()
        self._accounting_left = ACCOUNTING_PER_POLL
        statuses: dict[str, NativeStatus] = {}
        asking = []
        for native_id in native_ids:
            if native_id in self._ended:  # reaped before; the dispatcher has not settled it yet
                status, _asked = self._ended[native_id]
                self._ended[native_id] = (status, now)
                statuses[native_id] = status
            else:
                asking.append(native_id)
        try:
            if asking:
                listed = self._listing()
                if listed is None:
                    statuses.update(self._poll_each(session, asking, now))
                else:
                    statuses.update(self._from_listing(session, asking, listed, now))
        finally:
            self.last_poll = self.calls - before
            self.queries = sum(n for kind, n in self.last_poll.items() if kind not in LOCAL_CALLS)
        self._forget(native_ids, now)
        log.debug(
            "drmaa poll: %d jobs, %d queries (%s), %d reaps in %.1f ms",
            len(native_ids),
            self.queries,
            ", ".join(f"{kind} {n}" for kind, n in sorted(self.last_poll.items()) if kind not in LOCAL_CALLS),
            self.last_poll["wait"],
            (time.perf_counter() - started) * 1000,
        )
        return statuses

    def _listing(self) -> dict[str, Listed] | None:
        """Every job the system lists (by job_key), from one command; None when that command cannot be
        used on this site (polls then ask per job). SubmitError when the system does not answer."""
        if self._listing_unusable:
            return None
        argv = listing_command(self.system, getpass.getuser())
        done = self._command(argv[0], argv)
        if done.returncode == NOT_INSTALLED:
            return self._without_listing(f"{argv[0]} is not installed on this host")
        if done.returncode != 0:
            message = done.stderr.strip()[:500] or f"exit code {done.returncode}"
            raise SubmitError(f"{self.system} does not answer: {' '.join(argv[:2])}: {message}")
        try:
            return parse_listing(self.system, done.stdout)
        except UnknownListing as exc:
            return self._without_listing(str(exc))

    def _without_listing(self, why: str) -> None:
        self._listing_unusable = why
        log.warning("%s: %s; every poll now asks DRMAA for each job's status (jobStatus)", self.system, why)

    def _from_listing(
        self, session: Any, native_ids: Sequence[str], listed: Mapping[str, Listed], now: float
    ) -> dict[str, NativeStatus]:
        statuses = {}
        for native_id in native_ids:
            job = listed.get(job_key(native_id))
            if job is not None:
                self._note_job_dir(native_id, job)
                if job.state is not NativeState.ENDED:
                    self._missing.pop(native_id, None)
                    statuses[native_id] = NativeStatus(job.state)
                    continue
            status = self._left(session, native_id, job, now)
            if status is not None:
                statuses[native_id] = status
        return statuses

    def _poll_each(self, session: Any, native_ids: Sequence[str], now: float) -> dict[str, NativeStatus]:
        """Without a usable listing: DRMAA's own status call, once per job."""
        errors = self._drmaa.errors
        statuses = {}
        for native_id in native_ids:
            try:
                self._count("jobStatus")
                state = session.jobStatus(native_id)
            except errors.InvalidJobException:  # the system no longer knows it (or only another session does)
                state = "done"
            except errors.DrmaaException as exc:
                self._lost_contact()
                raise SubmitError(f"{self.system} does not answer: {drmaa_message(exc)}") from None
            if state in WAITING_STATES or state in STARTED_STATES:
                self._missing.pop(native_id, None)
                statuses[native_id] = NativeStatus(
                    NativeState.QUEUED if state in WAITING_STATES else NativeState.RUNNING
                )
            elif state in ENDED_STATES:
                status = self._left(session, native_id, None, now, listed_gone=False)
                if status is not None:
                    statuses[native_id] = status
        self._failures = 0
        return statuses

    def _note_job_dir(self, native_id: str, job: Listed) -> None:
        """Where a job of an earlier session runs, from the listing: its working directory, or its name."""
        if native_id in self._job_dirs:
            return
        if job.workdir:
            self._job_dirs[native_id] = Path(job.workdir)
        elif job.name.startswith(JOB_NAME_PREFIX) and Path(job.name).name == job.name:
            self._job_dirs[native_id] = self.jobs_dir / job.name.removeprefix(JOB_NAME_PREFIX)

    def _left(
        self, session: Any, native_id: str, listed: Listed | None, now: float, listed_gone: bool = True
    ) -> NativeStatus | None:
        """How a job the system no longer shows waiting or running ended; None while there is no news.
        ``listed_gone``: a listing showed it gone. Without one (jobStatus only, which Grid Engine answers
        "unknown" for any job of an earlier session, running or not) only a record ends it, never time."""
        missing_for = now - self._missing.setdefault(native_id, now) if listed_gone else 0.0
        if native_id not in self._foreign:
            status = self._reap(session, native_id)
            if status is not None:
                return status
            if native_id not in self._foreign and missing_for < VANISHED_GRACE:
                return None  # its end has not reached the session yet
        return self._end_unheard(native_id, listed, missing_for)

    def _reap(self, session: Any, native_id: str) -> NativeStatus | None:
        """How the job ended, if the session has heard of its end: a non-blocking wait, answered from the
        job ends the system sent the session (it reaps the job: the session forgets it, we keep the status)."""
        errors = self._drmaa.errors
        try:
            self._count("wait")
            info = session.wait(native_id, self._drmaa.Session.TIMEOUT_NO_WAIT)
        except errors.ExitTimeoutException:  # its end has not reached the session yet
            return None
        except errors.InvalidJobException:  # not this session's job (a restart, or a reopened session)
            self._foreign.add(native_id)
            return None
        except Exception as exc:  # DRMAA errors, and the bare Exception the drmaa package raises for code 24
            if is_no_rusage(exc):
                return self._end(native_id, self._not_started_reason(native_id))
            log.warning("DRMAA: cannot reap job %s: %s", native_id, drmaa_message(exc))
            return None
        reason = reason_from_job_info(info, self._walltime.get(native_id), self.system)
        if info.wasAborted and reason == deleted_reason(self.system, started=False):
            reason = self._not_started_reason(native_id)
        elif info.hasExited and info.exitStatus != 0:
            reason = self._with_stderr(native_id, reason)
        return self._end(native_id, reason)

    def _end_unheard(self, native_id: str, listed: Listed | None, missing_for: float) -> NativeStatus | None:
        """The end of a job this session cannot reap (an earlier session's): its result file, which
        decides the outcome anyway; else what the listing still says of it (Slurm's squeue shows
        finished jobs for a while); else Grid Engine's accounting. None while none of them knows."""
        job_dir = self._job_dirs.get(native_id)
        if job_dir is not None and read_result(job_dir) is not None:
            return self._end(native_id, f"ended on {self.system}")
        if listed is not None:  # listed as ended
            return self._end(native_id, listed.reason or f"ended on {self.system} without writing its result")
        if self.system != GRID_ENGINE:
            return self._end(native_id, f"is no longer known to {self.system}")
        if self._accounting_left <= 0:
            return None  # looked up in a later poll
        record = self._accounting(native_id)
        if record is not None:
            return self._end(native_id, status_from_qacct(record).reason)
        if native_id in self._cancelled:  # deleted here before it ran: it leaves no record
            return self._end(native_id, deleted_reason(started=False))
        if missing_for >= VANISHED_GRACE:
            reason = f"left {GRID_ENGINE} without an accounting record (deleted before it started?)"
            return self._end(native_id, reason)
        return None

    def _end(self, native_id: str, reason: str) -> NativeStatus:
        """An ended job's status, kept: the session has forgotten the job once it was reaped, and the
        dispatcher may ask again (a settle that did not reach the job table)."""
        status = NativeStatus(NativeState.ENDED, reason)
        self._ended[native_id] = (status, time.monotonic())
        self._missing.pop(native_id, None)
        return status

    def _not_started_reason(self, native_id: str) -> str:
        """A job aborted before it ran: deleted while waiting, or unable to start (its accounting says,
        if this poll may still look it up)."""
        if native_id in self._cancelled or self.system != GRID_ENGINE or self._accounting_left <= 0:
            return deleted_reason(self.system, started=False)
        record = self._accounting(native_id)
        if record is None:  # never ran: no accounting record
            return deleted_reason(self.system, started=False)
        return status_from_qacct(record).reason

    def _with_stderr(self, native_id: str, reason: str) -> str:
        job_dir = self._job_dirs.get(native_id)
        if job_dir is None:
            return reason
        try:
            lines = [line.strip() for line in (job_dir / "stderr").read_text(errors="replace").splitlines()]
        except OSError:
            return reason
        last = [line for line in lines if line][-1:]
        return f"{reason}: {last[0][:300]}" if last else reason

    def _accounting(self, native_id: str) -> dict[str, str] | None:
        """The job's accounting record, or None. Job numbers repeat after a qmaster crash: the newest
        record of one of our jobs (named wps-...) is taken. Counts against the poll's lookups."""
        self._accounting_left -= 1
        done = self._command("qacct", ["qacct", "-j", native_id])
        if done.returncode != 0:
            return None
        records = [r for r in parse_qacct(done.stdout) if r.get("jobname", "").startswith(JOB_NAME_PREFIX)]
        return records[-1] if records else None

    def _command(self, kind: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run one of the system's commands and count it; a command that cannot run answers exit code
        NOT_INSTALLED (not found) or -1 (timed out, not executable), with the reason as its stderr."""
        self._count(kind)
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError:
            return subprocess.CompletedProcess(argv, NOT_INSTALLED, "", f"{argv[0]}: not found")
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("%s: %s", argv[0], exc)
            return subprocess.CompletedProcess(argv, -1, "", str(exc))

    def _forget(self, asked: Iterable[str], now: float) -> None:
        """Drop what is kept about jobs the dispatcher has stopped asking for (ended ones after a while)."""
        asked = set(asked)
        for native_id, (_status, last) in list(self._ended.items()):
            if native_id not in asked and now - last > ENDED_KEPT:
                del self._ended[native_id]
                for kept in (self._walltime, self._job_dirs, self._cancelled):
                    kept.pop(native_id, None)
                self._foreign.discard(native_id)
        for native_id in [n for n in self._missing if n not in asked]:
            del self._missing[native_id]

    # -- the rest of the interface -----------------------------------------------------------------

    def cancel(self, native_id: str) -> None:
        """Terminate through the session; jobs of an earlier session with the system's own command (qdel,
        scancel). Ended jobs are ignored."""
        now = time.monotonic()
        if native_id in self._ended or now - self._cancelled.get(native_id, -CANCEL_REPEAT) < CANCEL_REPEAT:
            return
        self._cancelled[native_id] = now
        try:
            session = self.session()
        except SubmitError as exc:
            log.warning("cannot cancel %s job %s: %s", self.system, native_id, exc)
            return
        errors = self._drmaa.errors
        if native_id not in self._foreign:
            try:
                self._count("control")
                session.control(native_id, self._drmaa.JobControlAction.TERMINATE)
                return
            except errors.InvalidJobException:
                pass  # ended, or submitted by an earlier session
            except errors.DrmaaException as exc:
                log.warning("cannot cancel %s job %s: %s", self.system, native_id, drmaa_message(exc))
                self._cancelled.pop(native_id, None)
                return
        argv = cancel_command(self.system, native_id)
        done = self._command(argv[0], argv)
        if done.returncode != 0 and not re.search(r"does not exist|invalid job id|unknown job", done.stderr, re.I):
            log.warning("%s %s: %s", argv[0], native_id, done.stderr.strip())

    def attach(self, native_id: str) -> None:
        """A job submitted before a restart: this session cannot reap it, so the listing follows it and
        its end comes from its result file or the system's records."""
        self._foreign.add(native_id)
        log.info("following %s job %s submitted before the restart", self.system, native_id)

    def describe_queued(self, native_id: str) -> str:
        return f"queued on {self.system} as job {native_id}"
