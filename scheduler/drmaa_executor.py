"""Batch jobs through DRMAA 1.0: Grid Engine's own library, and the same code for Slurm (slurm-drmaa)
and TORQUE/PBS (pbs-drmaa).

One DRMAA session lives as long as the dispatcher. A job is ``hpc-wps run-job DIR`` (``python -m
app.cli run-job DIR``) with the job directory as working directory and its stdout and stderr there.
DRMAA has no bulk status call: each poll makes one library call per job, none of which spawns a
process. A job not yet seen running is asked with ``jobStatus`` (a request to the qmaster); a running
one with a non-blocking ``wait``, which the session answers from the job ends it has been told of, so
that the qmaster is not asked about it again (and a poll does not block, as ``jobStatus`` does for up to
a second on a job that has just left the qmaster). ``wait`` also says how a job ended.
A session only knows its own jobs: those of an earlier dispatcher (after a restart) are followed on
Grid Engine with one ``qstat -xml`` per poll for all of them, and ``qacct -j`` once each when they end.

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
import signal
import subprocess
import sys
import sysconfig
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from app.settings import SchedulerSettings
from scheduler.base import Executor, JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.resources import Resources

log = logging.getLogger(__name__)

GRID_ENGINE = "Grid Engine"
SLURM = "Slurm"
PBS = "PBS"
# Written into the job directory after runJob: the native id, or nothing when runJob got no answer (the
# job may be there). A submission offered again (a restart before the id reached the job table, a retry
# after that missing answer) takes up the job submitted before instead of starting a second one.
SUBMITTED_FILE = "drmaa.submitted"
JOB_NAME_PREFIX = "wps-"  # Grid Engine job names: wps-<WPS job id>
COMMAND_TIMEOUT = 30.0  # seconds qstat, qacct or qdel may take
CANCEL_REPEAT = 30.0  # seconds before a cancel of the same job is sent again
# How long a job of an earlier session may be missing from both qstat and qacct before it counts as
# ended: Grid Engine writes accounting records every accounting_flush_time (15 s by default).
VANISHED_GRACE = 60.0
ENDED_KEPT = 600.0  # seconds an ended job's status is kept once the dispatcher stops asking for it
# Environment variables a job gets from the dispatcher: what the launcher and the batch system need.
JOB_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ")
JOB_ENVIRONMENT_PREFIXES = ("SGE_",)
# Values that go into a native specification as one word: no spaces, quotes or option-like start.
_WORD = re.compile(r"[A-Za-z0-9_.@*,:/-]+")

WAITING_STATES = ("queued_active", "system_on_hold", "user_on_hold", "user_system_on_hold")
STARTED_STATES = ("running", "system_suspended", "user_suspended")
ENDED_STATES = ("done", "failed")


# -- what goes to the system ------------------------------------------------------------------------


def drm_family(drms_info: str) -> str:
    """Which batch system a DRMAA library drives, from its ``drmsInfo`` ("SGE 8.1.9", "SLURM 22.05")."""
    lowered = drms_info.lower()
    if "slurm" in lowered:
        return SLURM
    if "pbs" in lowered or "torque" in lowered:
        return PBS
    return GRID_ENGINE  # SGE, OGE, UGE, Son of Grid Engine, Altair Grid Engine


def _word(what: str, value: str) -> str:
    if not _WORD.fullmatch(value) or value.startswith("-"):
        raise ValueError(f"{what} {value!r} cannot be passed to the batch system (one word of letters, digits, ._-)")
    return value


def native_specification(resources: Resources, family: str = GRID_ENGINE) -> str:
    """The options a job is submitted with; the site's own ``native`` options come last, as they are.

    Grid Engine: ``h_rt`` (enforced by the qmaster: SIGKILL at the limit) and ``h_vmem`` per slot,
    which is what it enforces and what it accepts without complex configuration (``mem_free`` is
    refused at submission, as DRMAA verifies requests); cores are slots of the parallel environment
    ``smp``. Slurm and PBS follow slurm-drmaa's and pbs-drmaa's documented options.
    """
    cores = max(1, resources.cores)
    words: list[str] = []
    if family == GRID_ENGINE:
        words += ["-l", f"h_rt={resources.walltime_hms}", "-l", f"h_vmem={-(-resources.memory_mb // cores)}M"]
        if cores > 1:
            words += ["-pe", "smp", str(cores)]
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


# -- how a job ended ------------------------------------------------------------------------------


def _signal_name(value: str | int) -> str:
    if isinstance(value, int) or str(value).isdigit():
        with contextlib.suppress(ValueError):
            return signal.Signals(int(value)).name
        return f"signal {value}"
    return str(value)


def h_rt_reason(system: str = GRID_ENGINE) -> str:
    limit = " (h_rt)" if system == GRID_ENGINE else ""
    return f"exceeded its wall-clock limit{limit} on {system}"


def deleted_reason(system: str = GRID_ENGINE, started: bool = True) -> str:
    command = " (qdel)" if system == GRID_ENGINE else ""
    return f"was deleted on {system}{command}" + ("" if started else " before it started")


def reason_from_job_info(info: Any, walltime: float | None, system: str = GRID_ENGINE) -> str:
    """Why a job ended, from DRMAA's JobInfo (exit, signal or abort) and its resource usage.

    Grid Engine kills a job over its h_rt with SIGKILL and reports no more than the signal: a SIGKILL
    after at least the requested wall-clock time is taken for the limit.
    """
    usage = info.resourceUsage or {}
    if info.hasExited:
        return f"exited with code {info.exitStatus} on {system}"
    if info.hasSignal:
        name = _signal_name(info.terminatedSignal)
        if name == "SIGKILL" and walltime and _wallclock(usage) >= max(1.0, walltime - 1.0):
            return h_rt_reason(system)
        return f"was killed by {name} on {system}"
    if info.wasAborted:
        return deleted_reason(system, started="start_time" in usage or "exit_status" in usage)
    return f"ended on {system} without an exit status"


def _wallclock(usage: Mapping[str, str]) -> float:
    def number(key: str) -> float:
        try:
            return float(usage.get(key, 0.0))
        except ValueError:
            return 0.0

    return max(number("ru_wallclock"), number("end_time") - number("start_time"))


def parse_qstat_xml(text: str) -> dict[str, str]:
    """``qstat -xml``: job number -> Grid Engine state letters (``qw``, ``hqw``, ``r``, ``t``, ``Eqw``...)."""
    states = {}
    root = ET.fromstring(text)
    for job in root.iter("job_list"):
        number = (job.findtext("JB_job_number") or "").strip()
        if number:
            states[number] = (job.findtext("state") or "").strip()
    return states


def qstat_names(text: str) -> dict[str, str]:
    """``qstat -xml``: job name -> job number (the last listed of each name)."""
    return {
        (job.findtext("JB_name") or "").strip(): (job.findtext("JB_job_number") or "").strip()
        for job in ET.fromstring(text).iter("job_list")
    }


def status_from_qstat(state: str) -> NativeStatus:
    """Waiting (``q`` in the letters: qw, hqw, Eqw, hRwq) or started (r, t, s, S, T, R, d on a running job)."""
    return NativeStatus(NativeState.QUEUED if "q" in state else NativeState.RUNNING)


def parse_qacct(text: str) -> list[dict[str, str]]:
    """``qacct -j``: one dict per accounting record (a job number may repeat after a qmaster crash)."""
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith("====="):
            current = {}
            records.append(current)
            continue
        if current is None or not line.strip():
            continue
        key, _, value = line.partition(" ")
        current[key] = value.strip()
    return [r for r in records if r]


def status_from_qacct(record: Mapping[str, str]) -> NativeStatus:
    """An ended job's reason from its accounting record (``failed`` and ``exit_status``)."""
    failed_text = record.get("failed", "0")
    code_text, _, why = failed_text.partition(":")
    try:
        failed = int(code_text.strip() or 0)
    except ValueError:
        failed = -1
    why = why.strip()
    try:
        exit_status = int(record.get("exit_status", "0").split()[0])
    except (ValueError, IndexError):
        exit_status = 0
    if failed == 37 and "h_rt" in why:  # the qmaster enforced the limit, with SIGKILL
        return NativeStatus(NativeState.ENDED, h_rt_reason())
    if failed == 0:
        return NativeStatus(NativeState.ENDED, f"exited with code {exit_status} on {GRID_ENGINE}")
    if failed == 100 and exit_status > 128:  # ended by a signal: qdel, a limit enforced on the node, kill
        name = _signal_name(exit_status - 128)
        return NativeStatus(NativeState.ENDED, f"was killed by {name} on {GRID_ENGINE} (deleted, or over a limit)")
    if record.get("start_time", "-/-") in ("-/-", ""):
        return NativeStatus(NativeState.ENDED, f"could not be started by {GRID_ENGINE}: {why} (failed {failed})")
    return NativeStatus(
        NativeState.ENDED, f"failed on {GRID_ENGINE}: {why} (failed {failed}, exit status {exit_status})"
    )


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
        self.queries = 0  # scheduler calls (library calls and commands) of the last poll: the benchmark reads it
        self.calls: collections.Counter[str] = collections.Counter()  # every scheduler call since the start
        self.system = GRID_ENGINE  # from the library's drmsInfo once the session is open
        self.drms = ""
        self._drmaa: Any = None  # the drmaa module, once loaded
        self._load_error = ""
        self._session: Any = None
        self._failures = 0  # consecutive polls the system did not answer
        self._walltime: dict[str, float] = {}  # jobs this session submitted: their h_rt in seconds ...
        self._job_dirs: dict[str, Path] = {}  # ... and their directories
        self._started: set[str] = set()  # this session's jobs seen running: their end comes from wait()
        self._foreign: set[str] = set()  # jobs of an earlier session, followed with qstat/qacct
        self._vanished: dict[str, float] = {}  # foreign jobs in neither qstat nor qacct: since when
        self._ended: dict[str, tuple[NativeStatus, float]] = {}  # reaped jobs: status, when last asked for
        self._cancelled: dict[str, float] = {}  # native id -> when a cancel was last sent

    # -- the session -------------------------------------------------------------------------------

    def _count(self, kind: str) -> None:
        self.calls[kind] += 1

    def _module(self) -> Any:
        if self._drmaa is not None:
            return self._drmaa
        if self._load_error:
            raise SubmitError(self._load_error, retry=False)
        library = self.settings.drmaa_library or os.environ.get("DRMAA_LIBRARY_PATH", "")
        if self.settings.drmaa_library:
            os.environ["DRMAA_LIBRARY_PATH"] = self.settings.drmaa_library  # read by the drmaa package on import
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
            native = native_specification(resources, self.system)
        except ValueError as exc:
            raise SubmitError(str(exc), retry=False) from None
        try:
            template = session.createJobTemplate()
        except drmaa.errors.DrmaaException as exc:
            raise self._submit_error(exc, marker, reached=False) from None
        running_job = False  # whether runJob was called: then the job may have reached the system
        try:
            template.remoteCommand = self.python[0]
            template.args = [*self.python[1:], "-m", "app.cli", "run-job", job_dir]
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
        if done is not None and done.returncode == 0:
            with contextlib.suppress(ET.ParseError):
                number = qstat_names(done.stdout).get(name)
                if number:
                    return number
        done = self._command("qacct", ["qacct", "-j", name])
        if done is not None and done.returncode == 0:
            records = parse_qacct(done.stdout)
            if records:
                return records[-1].get("jobnumber", "").strip() or None
        return None

    # -- following ---------------------------------------------------------------------------------

    def poll_many(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        started = time.perf_counter()
        calls = self.calls.total()
        session = self.session()
        errors = self._drmaa.errors
        statuses: dict[str, NativeStatus] = {}
        foreign: list[str] = []
        now = time.monotonic()
        for native_id in native_ids:
            if native_id in self._ended:
                status, _asked = self._ended[native_id]
                self._ended[native_id] = (status, now)
                statuses[native_id] = status
                continue
            if native_id in self._foreign:
                foreign.append(native_id)
                continue
            if native_id in self._started:  # its end is news from the session's events: no qmaster query
                status = self._reap(session, native_id)
                if status is not None:
                    statuses[native_id] = status
                continue
            try:
                self._count("jobStatus")
                state = session.jobStatus(native_id)
            except errors.InvalidJobException:
                self._foreign.add(native_id)
                foreign.append(native_id)
                continue
            except errors.DrmaaException as exc:
                self._lost_contact()
                self.queries = self.calls.total() - calls
                raise SubmitError(f"{self.system} does not answer: {drmaa_message(exc)}") from None
            status = self._status(session, native_id, state)
            if status is not None:
                statuses[native_id] = status
        self._failures = 0
        if foreign:
            statuses.update(self._poll_foreign(foreign))
        self._forget(native_ids, now)
        self.queries = self.calls.total() - calls
        log.debug(
            "drmaa poll: %d jobs, %d calls (%d foreign) in %.1f ms",
            len(native_ids),
            self.queries,
            len(foreign),
            (time.perf_counter() - started) * 1000,
        )
        return statuses

    def _status(self, session: Any, native_id: str, state: str) -> NativeStatus | None:
        if state in WAITING_STATES:
            return NativeStatus(NativeState.QUEUED)
        if state in STARTED_STATES:
            self._started.add(native_id)
            return NativeStatus(NativeState.RUNNING)
        if state not in ENDED_STATES:
            return None  # undetermined: ask again next time
        return self._reap(session, native_id)

    def _reap(self, session: Any, native_id: str) -> NativeStatus | None:
        """How the job ended, if it has: a non-blocking wait, answered from the finished jobs the
        session has heard of (it reaps the job: the session forgets it, we keep the status)."""
        errors = self._drmaa.errors
        try:
            self._count("wait")
            info = session.wait(native_id, self._drmaa.Session.TIMEOUT_NO_WAIT)
        except errors.ExitTimeoutException:  # not ended, or its end not heard of yet
            return NativeStatus(NativeState.RUNNING) if native_id in self._started else None
        except errors.InvalidJobException:  # the session does not know it (reopened): accounting does
            self._started.discard(native_id)
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

    def _end(self, native_id: str, reason: str) -> NativeStatus:
        """An ended job's status, kept: the session has forgotten the job once it was reaped, and the
        dispatcher may ask again (a settle that did not reach the job table)."""
        status = NativeStatus(NativeState.ENDED, reason)
        self._ended[native_id] = (status, time.monotonic())
        return status

    def _not_started_reason(self, native_id: str) -> str:
        """A job aborted before it ran: deleted while waiting, or unable to start (its accounting says)."""
        if native_id in self._cancelled or self.system != GRID_ENGINE:
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

    def _poll_foreign(self, native_ids: list[str]) -> dict[str, NativeStatus]:
        """Jobs this session does not know: one qstat for all, qacct for those no longer listed."""
        if self.system != GRID_ENGINE:
            return {n: self._end(n, f"is no longer known to {self.system}") for n in native_ids}
        done = self._command("qstat", ["qstat", "-xml", "-u", getpass.getuser()])
        if done is None or done.returncode != 0:
            log.warning("qstat failed: %s", done.stderr.strip() if done else "not run")
            return {}
        try:
            listed = parse_qstat_xml(done.stdout)
        except ET.ParseError as exc:
            log.warning("qstat -xml answered no XML: %s", exc)
            return {}
        statuses = {}
        now = time.monotonic()
        for native_id in native_ids:
            if native_id in listed:
                self._vanished.pop(native_id, None)
                statuses[native_id] = status_from_qstat(listed[native_id])
                continue
            record = self._accounting(native_id)
            if record is not None:
                self._vanished.pop(native_id, None)
                statuses[native_id] = self._end(native_id, status_from_qacct(record).reason)
            elif native_id in self._cancelled:  # deleted here before it ran: it leaves no record
                statuses[native_id] = self._end(native_id, deleted_reason(started=False))
            elif now - self._vanished.setdefault(native_id, now) >= VANISHED_GRACE:
                self._vanished.pop(native_id, None)
                reason = f"left {GRID_ENGINE} without an accounting record (deleted before it started?)"
                statuses[native_id] = self._end(native_id, reason)
        return statuses

    def _accounting(self, native_id: str) -> dict[str, str] | None:
        """The job's accounting record, or None. Job numbers repeat after a qmaster crash: the newest
        record of one of our jobs (named wps-...) is taken."""
        done = self._command("qacct", ["qacct", "-j", native_id])
        if done is None or done.returncode != 0:
            return None
        records = [r for r in parse_qacct(done.stdout) if r.get("jobname", "").startswith(JOB_NAME_PREFIX)]
        return records[-1] if records else None

    def _command(self, kind: str, argv: list[str]) -> subprocess.CompletedProcess[str] | None:
        self._count(kind)
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("%s: %s", argv[0], exc)
            return None

    def _forget(self, asked: Iterable[str], now: float) -> None:
        """Drop what is kept about ended jobs the dispatcher has stopped asking for."""
        asked = set(asked)
        for native_id, (_status, last) in list(self._ended.items()):
            if native_id not in asked and now - last > ENDED_KEPT:
                del self._ended[native_id]
                for kept in (self._walltime, self._job_dirs, self._cancelled):
                    kept.pop(native_id, None)
                self._foreign.discard(native_id)
                self._started.discard(native_id)

    # -- the rest of the interface -----------------------------------------------------------------

    def cancel(self, native_id: str) -> None:
        """Terminate through the session; jobs of an earlier session with qdel. Ended jobs are ignored."""
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
        if self.system == GRID_ENGINE:
            done = self._command("qdel", ["qdel", native_id])
            if done is not None and done.returncode != 0 and "does not exist" not in done.stderr:
                log.warning("qdel %s: %s", native_id, done.stderr.strip())

    def attach(self, native_id: str) -> None:
        """A job submitted before a restart: polling finds it (through qstat if the session does not)."""
        log.info("following %s job %s submitted before the restart", self.system, native_id)

    def describe_queued(self, native_id: str) -> str:
        return f"queued on {self.system} as job {native_id}"
