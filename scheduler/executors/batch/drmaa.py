"""Batch jobs through DRMAA 1.0: Grid Engine's own library, and the same code for Slurm (slurm-drmaa)
and TORQUE/PBS (pbs-drmaa).

The DRMAA executor is a batch executor (``base.py``) that submits, reaps and terminates through the
library instead of commands; everything else it shares with the batch base: the submission marker,
the command runner, the cancel throttle, the vanish grace, the launcher's argv on the nodes, the
default resources, job names and the tail of a job's error output. One DRMAA session lives as long as
the dispatcher. A job is ``python -m scheduler.run_job DIR`` with the job directory as working
directory and its stdout and stderr there.

DRMAA has no bulk status call (``jobStatus`` is one request to the system per job), so a poll asks the
system's own listing command once for all jobs whatever their number: ``qstat -xml`` on Grid Engine
(``gridengine.py``), ``squeue`` under slurm-drmaa (``slurm.py``), ``qstat -x`` under TORQUE
(``pbs.py``). Only a job the listing no longer shows waiting or running needs more, once: this
session's own jobs are reaped with a non-blocking ``wait``, which Grid Engine's session answers from the
job ends the qmaster has sent it (no request, no process; slurm-drmaa asks slurmctld about that one
job), which frees what the session keeps of the job and tells how it ended: exit status, signal,
deletion, usage. Where the listing still shows the job ended with Slurm's reason, that reason is kept
(``drmaa_endings.py`` says why). Jobs of an earlier session (after a restart) end with the
result file their launcher wrote, which decides their outcome anyway; only those without one (killed,
deleted, over their limit) are looked up in Grid Engine's accounting, ``qacct -j``, at most
ACCOUNTING_PER_POLL of them per poll. Where the listing command is missing or prints what this code
cannot read (PBS Professional), polls fall back to one ``jobStatus`` per job, with a warning in the log.

The library is loaded, and the session opened, at the first submit or poll, or as jobs of an earlier
dispatcher are taken up (the session says which system runs them); a library that cannot be
loaded fails submissions with the reason and the fix (Grid Engine's libdrmaa needs libjemalloc preloaded
when the process starts: ``[scheduler] drmaa_preload``).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import functools
import getpass
import logging
import os
import re
import sysconfig
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import scheduler
from scheduler.executors.base import JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.executors.batch.base import BatchExecutor, Listed, UnknownListing, tail
from scheduler.executors.batch.commands import CommandNotFound, SchedulerUnavailable
from scheduler.executors.batch.drmaa_endings import deleted_reason, ending_reason, is_no_rusage
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
from scheduler.executors.batch.pbs import PBS, job_key, parse_qstat_x, qstat_x_command
from scheduler.executors.batch.slurm import SLURM, squeue_listing, squeue_listing_command
from scheduler.launcher import read_result
from scheduler.resources import Resources
from scheduler.run_job import MODULE as RUN_JOB
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

QUEUED, RUNNING, ENDED = NativeState.QUEUED, NativeState.RUNNING, NativeState.ENDED

# Most accounting lookups (one qacct process each, which reads the whole accounting file) in one poll;
# jobs beyond it wait for the next poll, so that a poll stays a bounded number of queries.
ACCOUNTING_PER_POLL = 4
ENDED_KEPT = 600.0  # seconds an ended job's status is kept once the dispatcher stops asking for it
# Calls that are requests to the system (or processes run), as opposed to the session's local reaps.
LOCAL_CALLS = frozenset({"wait"})
STDERR_CHARS = 300  # of the last line of a failed job's stderr, added to its reason
# Environment variables a job gets from the dispatcher: what the launcher and the batch system need.
JOB_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ", "PYWPS_CFG")  # PyWPS processes read their own sections
JOB_ENVIRONMENT_PREFIXES = ("SGE_",)
# Values that go into a native specification as one word: no spaces, quotes or option-like start.
_WORD = re.compile(r"[A-Za-z0-9_.@*,:/-]+")
# What a failed qdel or scancel says of a job that has ended already.
_CANCEL_ENDED = re.compile(r"does not exist|invalid job id|unknown job", re.IGNORECASE)

# What DRMAA's jobStatus answers (drmaa.JobState) means here; "undetermined" says nothing.
_STATE_MAP: dict[str, NativeState] = {
    "queued_active": QUEUED,
    "system_on_hold": QUEUED,
    "user_on_hold": QUEUED,
    "user_system_on_hold": QUEUED,
    "running": RUNNING,
    "system_suspended": RUNNING,
    "user_suspended": RUNNING,
    "done": ENDED,
    "failed": ENDED,
}


# -- the systems behind the library -----------------------------------------------------------------


def drm_family(drms_info: str) -> str:
    """Which batch system a DRMAA library drives, from its ``drmsInfo`` ("SGE 8.1.9", "SLURM 22.05")."""
    lowered = drms_info.lower()
    if "slurm" in lowered:
        return SLURM
    if "pbs" in lowered or "torque" in lowered:
        return PBS
    return GRID_ENGINE  # SGE, OGE, UGE, Son of Grid Engine, Altair Grid Engine


def listing_command(family: str, user: str) -> list[str]:
    """The command that lists every job of ``user`` on that system, with its state."""
    if family == SLURM:
        return squeue_listing_command(user)
    if family == PBS:
        return qstat_x_command()
    return qstat_xml_command(user)


def parse_listing(family: str, text: str) -> dict[str, Listed]:
    """The listing command's output as {job_key(id): Listed}; UnknownListing if it cannot be read."""
    if family == SLURM:
        return squeue_listing(text)
    if family == PBS:
        return parse_qstat_x(text)
    return parse_qstat_xml(text)


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
    core, as a serial job needs none. The account charged is Grid Engine's project (``-P``; it has no
    QoS), Slurm's ``--account`` and ``--qos``, PBS's ``-A``. Slurm and PBS follow slurm-drmaa's and
    pbs-drmaa's documented options.
    """
    cores = max(1, resources.cores)
    words: list[str] = []
    if family == GRID_ENGINE:
        words += ["-l", f"h_rt={resources.walltime_hms}", "-l", f"h_vmem={-(-resources.memory_mb // cores)}M"]
        if cores > 1:
            words += ["-pe", _word("parallel environment", parallel_environment), str(cores)]
        if resources.queue:
            words += ["-q", _word("queue", resources.queue)]
        if resources.account:
            words += ["-P", _word("project", resources.account)]
    elif family == SLURM:
        minutes = max(1, -(-int(resources.walltime + 0.999) // 60))
        words += [f"--time={minutes // 60}:{minutes % 60:02d}", f"--mem={resources.memory_mb}", "--nodes=1"]
        words += ["--ntasks=1", f"--mincpus={cores}"]
        if resources.queue:
            words.append(f"--partition={_word('partition', resources.queue)}")
        if resources.account:
            words.append(f"--account={_word('account', resources.account)}")
        if resources.qos:
            words.append(f"--qos={_word('qos', resources.qos)}")
    else:
        limits = f"walltime={resources.walltime_hms},mem={resources.memory_mb}mb,nodes=1:ppn={cores}"
        words += ["-l", limits]
        if resources.queue:
            words += ["-q", _word("queue", resources.queue)]
        if resources.account:
            words += ["-A", _word("account", resources.account)]
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
    root = Path(scheduler.__file__).resolve().parents[1]
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


# -- the executor --------------------------------------------------------------------------------

Sender = Callable[[Any, Any], list[str]]  # (session, job template) -> the native ids of what it submitted


def _run_job(session: Any, template: Any) -> list[str]:
    return [str(session.runJob(template))]


def _run_bulk_jobs(session: Any, template: Any, count: int) -> list[str]:
    """Tasks 1 to ``count`` of one task array."""
    return [str(native_id) for native_id in session.runBulkJobs(template, 1, count, 1)]


class DrmaaExecutor(BatchExecutor):
    name = "drmaa"
    # The marker's name from before the batch executors shared it: a hand-over in flight across an
    # upgrade is still found.
    submitted_file = "drmaa.submitted"

    def __init__(self, settings: SchedulerSettings, jobs_dir: Path) -> None:
        super().__init__(settings, jobs_dir)
        self.environment = job_environment(os.environ, code_root())
        # What the last poll asked: every call by kind (``wait`` is a local reap, the rest are requests to
        # the system or processes run). The benchmark reads it, and ``queries``.
        self.last_poll: collections.Counter[str] = collections.Counter()
        self.system = ""  # Grid Engine, Slurm or PBS: the library's drmsInfo says once the session is open
        self.drms = ""
        self._drmaa: Any = None  # the drmaa module, once loaded
        self._load_error = ""
        self._session: Any = None
        self._listing_unusable = ""  # why the system's listing command cannot be used: polls ask per job
        self._failures = 0  # consecutive polls the system did not answer
        self._walltime: dict[str, float] = {}  # jobs this session submitted: their h_rt in seconds ...
        self._job_dirs: dict[str, Path] = {}  # ... and the job directories of all jobs, where known
        self._foreign: set[str] = set()  # jobs this session does not know (an earlier session's)
        self._ended: dict[str, tuple[NativeStatus, float]] = {}  # ended jobs: status, when last asked for
        self._accounting_left = 0  # qacct lookups the current poll may still make
        self._session_refused = False  # the session could not be opened while taking up earlier jobs

    @property
    def display_name(self) -> str:
        """The system behind the library; "DRMAA" until its session has said which."""
        return self.system or "DRMAA"

    @property
    def queries(self) -> int:
        """Requests to the system in the last poll, local reaps left out."""
        return sum(n for kind, n in self.last_poll.items() if kind not in LOCAL_CALLS)

    # -- the session -------------------------------------------------------------------------------

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

    def submit(self, spec: JobSpec) -> str:
        self.session()  # the library and the system first: without them no job is looked for or sent
        return super().submit(spec)

    def submit_many(self, specs: Sequence[JobSpec]) -> Iterator[str | SubmitError]:
        try:
            self.session()
        except SubmitError as exc:  # no library or system: every job is told why
            for _spec in specs:
                yield exc
            return
        yield from super().submit_many(specs)

    def submit_job(self, spec: JobSpec) -> str:
        job_dir = str(spec.job_dir)
        name = self.job_name(spec.job_id)
        native_id = self._submit(self.resources(spec), name, job_dir, job_dir, "runJob", _run_job)[0]
        self._job_dirs[native_id] = spec.job_dir
        return native_id

    @property
    def uses_arrays(self) -> bool:
        """On Grid Engine (runBulkJobs); slurm-drmaa and PBS take jobs one by one."""
        return self.system == GRID_ENGINE

    def array_options(self, spec: JobSpec) -> Hashable:
        """The native specification."""
        return native_specification(self.resources(spec), self.system, self.settings.parallel_environment)

    def submit_array(self, specs: Sequence[JobSpec]) -> list[str]:
        """One ``runBulkJobs`` (a Grid Engine task array, ``qsub -t 1-N``): task T runs in the array
        directory's link T to its job directory (DRMAA's parametric index in the working directory
        and log paths), where the launcher takes its working directory as the job's."""
        batch = self.array_directory(specs, 1)
        task_dir = f"{batch}/{self._drmaa.JobTemplate.PARAMETRIC_INDEX}"
        name = self.job_name(batch.name)
        tasks = functools.partial(_run_bulk_jobs, count=len(specs))
        native_ids = self._submit(self.resources(specs[0]), name, task_dir, ".", "runBulkJobs", tasks)
        for native_id, spec in zip(native_ids, specs, strict=True):
            self._job_dirs[native_id] = spec.job_dir
        return native_ids

    def _submit(
        self, resources: Resources, name: str, job_dir: str, launcher_dir: str, call: str, send: Sender
    ) -> list[str]:
        """``send`` a template that runs the launcher on ``launcher_dir`` in ``job_dir`` with these
        resources (through the session's ``call``); the native ids it gives."""
        session, drmaa = self.session(), self._drmaa
        native = native_specification(resources, self.system, self.settings.parallel_environment)
        try:
            template = session.createJobTemplate()
        except drmaa.errors.DrmaaException as exc:
            raise self._submit_error(exc, reached=False) from None
        running_job = False  # whether the job was sent: then it may have reached the system
        try:
            template.remoteCommand = self.python[0]
            template.args = [*self.python[1:], "-m", RUN_JOB, launcher_dir]
            template.jobName = name
            template.workingDirectory = job_dir
            template.outputPath = f":{job_dir}/stdout"
            template.errorPath = f":{job_dir}/stderr"
            template.joinFiles = False
            template.jobEnvironment = self.environment
            template.nativeSpecification = native
            self.count(call)
            running_job = True
            native_ids = send(session, template)
        except drmaa.errors.DrmaaException as exc:
            raise self._submit_error(exc, reached=running_job) from None
        finally:
            with contextlib.suppress(drmaa.errors.DrmaaException):
                session.deleteJobTemplate(template)
        for native_id in native_ids:
            self._walltime[native_id] = resources.walltime
        return native_ids

    def _submit_error(self, exc: Exception, reached: bool) -> SubmitError:
        errors = self._drmaa.errors
        refused = (
            errors.DeniedByDrmException,  # e.g. "no suitable queues"
            errors.InvalidAttributeValueException,
            errors.InvalidAttributeFormatException,
            errors.ConflictingAttributeValuesException,
            errors.InvalidArgumentException,
        )
        if isinstance(exc, refused):
            return SubmitError(f"{self.system} refused the job: {drmaa_message(exc)}", retry=False)
        if isinstance(exc, errors.NoActiveSessionException):
            self.close()
            reached = False
        # Without an answer the job may have reached the system: the next try looks for it by name.
        return SchedulerUnavailable(f"{self.system} did not take the job: {drmaa_message(exc)}", not reached)

    def find_submitted(self, spec: JobSpec) -> str | None:
        """Grid Engine's listing, then its accounting, by the job's name. Elsewhere nothing is asked."""
        if self.system != GRID_ENGINE:
            return None
        task = self.array_task(spec)
        name = self.job_name(spec.job_id if task is None else task[0].name)
        number = self._find_number(name)
        return number if task is None or number is None else f"{number}.{task[1]}"

    def _find_number(self, name: str) -> str | None:
        """The number of the job (or task array) of this name, from the listing or the accounting."""
        listing = self._output(qstat_xml_command(getpass.getuser()))
        if listing is not None:
            with contextlib.suppress(UnknownListing):
                number = qstat_names(listing).get(name)
                if number:
                    return number
        accounting = self._output(accounting_command(name))
        if accounting is not None:
            records = parse_qacct(accounting)
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
        try:
            done = self.run(argv)
        except CommandNotFound as exc:
            return self._without_listing(str(exc))
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
            job = listed.get(native_id if self.system == GRID_ENGINE else job_key(native_id))
            if job is not None:
                self._note_job_dir(native_id, job)
                if job.state is not ENDED:
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
                self.count("jobStatus")
                answer = session.jobStatus(native_id)
            except errors.InvalidJobException:  # the system no longer knows it (or only another session does)
                answer = "done"
            except errors.DrmaaException as exc:
                self._lost_contact()
                raise SubmitError(f"{self.system} does not answer: {drmaa_message(exc)}") from None
            state = _STATE_MAP.get(answer)
            if state is ENDED:
                status = self._left(session, native_id, None, now, listed_gone=False)
                if status is not None:
                    statuses[native_id] = status
            elif state is not None:
                self._missing.pop(native_id, None)
                statuses[native_id] = NativeStatus(state)
        self._failures = 0
        return statuses

    def _note_job_dir(self, native_id: str, job: Listed) -> None:
        """Where a job of an earlier session runs, from the listing: its working directory, or its name."""
        if native_id in self._job_dirs:
            return
        if job.workdir:
            self._job_dirs[native_id] = Path(job.workdir)
        else:
            job_dir = named_job_dir(self.jobs_dir, self.job_name_prefix, native_id, job.name)
            if job_dir is not None:
                self._job_dirs[native_id] = job_dir

    def _left(
        self, session: Any, native_id: str, listed: Listed | None, now: float, listed_gone: bool = True
    ) -> NativeStatus | None:
        """How a job the system no longer shows waiting or running ended; None while there is no news.
        ``listed_gone``: a listing showed it gone. Without one (jobStatus only, which Grid Engine answers
        "unknown" for any job of an earlier session, running or not) only a record ends it, never time."""
        missing_for = self.missing_for(native_id, now) if listed_gone else 0.0
        if native_id not in self._foreign:
            status = self._reap(session, native_id, listed)
            if status is not None:
                return status
            if native_id not in self._foreign and missing_for < self.vanish_grace():
                return None  # its end has not reached the session yet
        return self._end_unheard(native_id, listed, missing_for)

    def _reap(self, session: Any, native_id: str, listed: Listed | None) -> NativeStatus | None:
        """How the job ended, if the session has heard of its end: a non-blocking wait, answered from the
        job ends the system sent the session (it reaps the job: the session forgets it, we keep the status).
        Grid Engine's session answers from memory; slurm-drmaa's asks slurmctld for that one job, once in
        its life. Where the listing still shows the job ended with a reason (Slurm's squeue), that reason
        is the job's: slurm-drmaa reports a cancel and a timeout alike (``drmaa_endings``)."""
        errors = self._drmaa.errors
        try:
            self.count("wait")
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
        reason = ending_reason(info, self._walltime.get(native_id), self.system, listed)
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
            return self._end(native_id, self.no_longer_known())
        if self._accounting_left <= 0:
            return None  # looked up in a later poll
        record = self._accounting(native_id)
        if record is not None:
            return self._end(native_id, status_from_qacct(record).reason)
        if native_id in self._cancelled:  # deleted here before it ran: it leaves no record
            return self._end(native_id, deleted_reason(started=False))
        if missing_for >= self.vanish_grace():
            return self._end(native_id, NO_RECORD)
        return None

    def _end(self, native_id: str, reason: str) -> NativeStatus:
        """An ended job's status, kept: the session has forgotten the job once it was reaped, and the
        dispatcher may ask again (a settle that did not reach the job table)."""
        status = NativeStatus(ENDED, reason)
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
        last = tail(job_dir / "stderr", lines=1, chars=STDERR_CHARS) if job_dir is not None else ""
        return f"{reason}: {last}" if last else reason

    def _accounting(self, native_id: str) -> dict[str, str] | None:
        """The job's accounting record, or None. Job numbers repeat after a qmaster crash: the newest
        record of one of our jobs (named wps-...) is taken. Counts against the poll's lookups."""
        self._accounting_left -= 1
        output = self._output(accounting_command(native_id))
        if output is None:
            return None
        records = [r for r in parse_qacct(output) if r.get("jobname", "").startswith(self.job_name_prefix)]
        return records[-1] if records else None

    def _output(self, argv: list[str]) -> str | None:
        """A lookup's output; None when the command fails or cannot run (no answer is not an error)."""
        try:
            done = self.run(argv)
        except SchedulerUnavailable as exc:
            log.warning("%s", exc)
            return None
        return done.stdout if done.returncode == 0 else None

    def _forget(self, asked: Iterable[str], now: float) -> None:
        """Drop what is kept about jobs the dispatcher has stopped asking for (ended ones after a while)."""
        asked = set(asked)
        for native_id, (_status, last) in list(self._ended.items()):
            if native_id not in asked and now - last > ENDED_KEPT:
                del self._ended[native_id]
                for kept in (self._walltime, self._job_dirs, self._cancelled):
                    kept.pop(native_id, None)
                self._foreign.discard(native_id)
        self.forget_missing(asked)

    # -- the rest of the interface -----------------------------------------------------------------

    def cancel(self, native_id: str) -> None:
        """Ended jobs are ignored: reaped, nothing of them is left to stop."""
        if native_id not in self._ended:
            super().cancel(native_id)

    def request_cancel(self, native_id: str) -> bool:
        """Terminate through the session; jobs of an earlier session with the system's own command."""
        try:
            session = self.session()
        except SubmitError as exc:
            log.warning("cannot cancel %s job %s: %s", self.display_name, native_id, exc)
            return False
        errors = self._drmaa.errors
        if native_id not in self._foreign:
            try:
                self.count("control")
                session.control(native_id, self._drmaa.JobControlAction.TERMINATE)
                return True
            except errors.InvalidJobException:
                pass  # ended, or submitted by an earlier session
            except errors.DrmaaException as exc:
                log.warning("cannot cancel %s job %s: %s", self.system, native_id, drmaa_message(exc))
                return False
        return super().request_cancel(native_id)

    def cancel_command(self, native_id: str) -> list[str]:
        return ["scancel", native_id] if self.system == SLURM else delete_command(native_id)

    def cancel_ignorable(self, stderr: str) -> bool:
        return bool(_CANCEL_ENDED.search(stderr))

    def attach(self, native_id: str) -> None:
        """A job submitted before a restart: this session cannot reap it, so the listing follows it and
        its end comes from its result file or the system's records. The session is opened now, as the
        first poll would, so that the log names the system the library drives; if it cannot be, once
        for all the jobs taken up, the log says so and the polls try again."""
        self._foreign.add(native_id)
        if self._session is None and not self._session_refused:
            try:
                self.session()
            except SubmitError as exc:
                self._session_refused = True
                log.warning("DRMAA: %s; the jobs submitted before the restart are followed once it opens", exc)
        log.info("following %s job %s submitted before the restart", self.display_name, native_id)
