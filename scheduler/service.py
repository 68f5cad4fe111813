"""The job service: every job operation a protocol binding offers, in no protocol.

A binding (``app/wps/`` today, OGC API - Processes next) parses a request, calls one method here and
renders what comes back: a :class:`~scheduler.job.Job`, or one of the errors of ``scheduler/errors.py``,
which it maps to its own codes. So the rules of the job system (the queue limit, the synchronous time
limit, resources within limits, what a dismissed job still shows, where output files are) are written
once, and a second protocol cannot answer them differently by accident.

Asynchronous jobs only get a row here; the dispatcher runs them. Synchronous jobs, and asynchronous
ones of ``inline_async`` processes, run in this process, in the thread serving the request, through
the same code every executor uses: at most ``[processing] sync_slots`` at once on a host
(``scheduler/sync_slots.py``), each ended at the synchronous time limit or once its client has gone
(``scheduler/interrupts.py``). Why there rather than in a child process: a fork per job doubled the
time of a short synchronous Execute and, under load, held the slots long enough to refuse a quarter
of them (docs/performance.md).
"""

from __future__ import annotations

import datetime as dt
import functools
import mimetypes
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine, RowMapping

from processes.fetch import seal_inputs
from processes.model import Process
from processes.registry import Registry
from scheduler import lifecycle, queries, quotas
from scheduler.access import ANONYMOUS_CALLER, Caller
from scheduler.accounts import Account
from scheduler.errors import (
    InvalidInput,
    InvalidResource,
    JobFailed,
    NoSuchJob,
    NoSuchOutput,
    NoSuchProcess,
    OutputNotProduced,
    QueueFull,
    QuotaExceeded,
    ResultNotReady,
)
from scheduler.executor_names import WEB
from scheduler.interrupts import ClientCheck
from scheduler.job import STATE_COLUMNS, Job, JobState, OutputFile
from scheduler.launcher import Outcome, ProgressReporter, record_outcome, run_to_outcome
from scheduler.models import JobMode, JobStatus, utcnow
from scheduler.pids import holder
from scheduler.removal import directory_size, dismiss_job
from scheduler.resources import REQUEST_PREFIX, ResourceError, parse_requested
from scheduler.settings import JobSettings
from scheduler.subscribers import Subscribers
from scheduler.subscribers import stored as subscribers_stored
from scheduler.sync_slots import sync_slot

OUTPUTS = "outputs"  # the subdirectory of a job's directory that holds its output files


@functools.lru_cache(maxsize=100_000)
def _finished_size(job_dir: Path) -> int:
    """A finished job's directory no longer changes until it goes (dismissed, expired or evicted, when
    it also leaves the listing of finished jobs), so each is measured once per process."""
    return directory_size(job_dir)


def _readable(size: int) -> str:
    """``10.00 GiB``, ``512.00 KiB``: readable in a refusal, whatever size an administrator chose."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.2f} {unit}"
        amount /= 1024
    return f"{amount:.2f} TiB"


def _seconds(duration: dt.timedelta | None) -> float | None:
    return None if duration is None else duration.total_seconds()


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a listing shows, newest first: the filters of ``hpc-wps jobs list`` and ``purge``, and
    of OGC API - Processes ``/jobs`` with its pages."""

    statuses: tuple[str, ...] = ()  # any of these states; none: every state
    processes: tuple[str, ...] = ()  # of any of these processes; none: every process
    older_than: dt.timedelta | None = None  # created longer ago than this
    limit: int = 0  # at most this many; 0: all
    removable_only: bool = False  # only jobs whose files and row may go (final, released by their executor)
    owners: tuple[str, ...] = ()  # submitted by any of these users; none: every user the caller may see
    created_from: dt.datetime | None = None  # created at or after this (naive UTC)
    created_to: dt.datetime | None = None  # created at or before this (naive UTC)
    min_duration: dt.timedelta | None = None  # has run at least this long (finished, or running until now)
    max_duration: dt.timedelta | None = None  # has run at most this long; a job not started has no duration
    after: queries.Cursor | None = None  # a page: the jobs older than the one at this (created_at, id)
    before: queries.Cursor | None = None  # a page: the jobs newer than the one at this (created_at, id)


class JobService:
    """One per web worker (and per operator command). ``settings`` is read on every call, never
    copied, so what a caller changes in it (tests shorten the time limit) holds from the next call.

    Every operation takes the :class:`~scheduler.access.Caller` it is done for (anonymous when a
    caller gives none): a process the caller's roles do not open, and a job of another user, are
    answered exactly as one that does not exist, so their existence is not revealed either.
    """

    def __init__(self, settings: JobSettings, engine: Engine, registry: Registry) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry

    # -- processes ---------------------------------------------------------------------------------

    def processes(self, caller: Caller = ANONYMOUS_CALLER) -> list[Process]:
        """The processes offered to this caller, in the order they were declared (all of them when
        no process is restricted to roles, the default, without asking for each)."""
        access = self.settings.access
        if not access.roles:
            return list(self.registry)
        return [p for p in self.registry if access.allows(caller, p.identifier)]

    def process(self, identifier: str, caller: Caller = ANONYMOUS_CALLER) -> Process:
        process = self.registry.get(identifier)
        if process is None or not self.settings.access.allows(caller, process.identifier):
            raise NoSuchProcess(identifier)
        return process

    def process_of(self, job: Job) -> Process:
        """A job whose process is no longer offered cannot be described, so it counts as gone."""
        process = self.registry.get(job.process_id)
        if process is None:
            raise NoSuchJob(job.id, f"the process of job {job.id} is no longer offered")
        return process

    # -- submitting and running -------------------------------------------------------------------

    def resolve_resources(
        self, requested: Mapping[str, str], caller: Caller = ANONYMOUS_CALLER, container: bool = False
    ) -> dict[str, Any]:
        """Resource requests (``resources.<name>`` inputs, by name) typed and within the limits, with the
        account the job is charged to: the one requested if ``caller`` may charge it, else its default
        (``[accounts]``, ``[scheduler] account``), and that account's QoS; none if neither names one.
        ``container``: the job runs on the container engine, within ``[docker]``'s limits."""
        values = dict(requested)
        wanted = values.pop("account", None)
        limits = self.settings.docker if container else self.settings.scheduler
        try:
            resolved = parse_requested(values, limits, container)
        except ResourceError as exc:
            raise InvalidResource(f"{REQUEST_PREFIX}{exc.name}", str(exc)) from None
        scheduler = self.settings.scheduler
        try:
            account = self.settings.accounts.choose(caller, wanted, Account(scheduler.account, scheduler.qos))
        except ValueError as exc:
            raise InvalidResource(f"{REQUEST_PREFIX}account", str(exc)) from None
        return resolved if account is None else resolved | {"account": account.name, "qos": account.qos}

    def _stored(self, request: dict[str, Any], caller: Caller, process: Process, here: bool) -> dict[str, Any]:
        """The request as the table keeps it: its resources resolved, so no executor checks them again
        (and the account charged stays the one ``caller`` could charge when it asked, shown by
        ``hpc-wps jobs show``), the credentials of its references sealed
        (``processes.fetch.seal_inputs``): they are checked, like everything else about a reference,
        when the job runs."""
        container = self.settings.runs_container(process, here)
        resources = self.resolve_resources(request.get("resources") or {}, caller, container)
        return request | {
            "inputs": seal_inputs(request.get("inputs") or [], self.settings.jobs_dir),
            "resources": resources,
        }

    def _prepare(
        self, process: Process, request: dict[str, Any], caller: Caller, subscribers: Subscribers | None, here: bool
    ) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
        """What every new job is checked and turned into before it has a row: the caller may run the
        process, the request as the table keeps it (``_stored``; ``here``: run in this process), and its
        subscribers as sealed for the dispatcher."""
        self._allowed(process, caller)
        return self._stored(request, caller, process, here), subscribers_stored(subscribers, self.settings.jobs_dir)

    def _allowed(self, process: Process, caller: Caller) -> None:
        """Checked again on submission: a binding may hold a Process it did not get from :meth:`process`."""
        if not self.settings.access.allows(caller, process.identifier):
            raise NoSuchProcess(process.identifier)

    def submit(
        self,
        process: Process,
        version: str,
        request: dict[str, Any],
        caller: Caller = ANONYMOUS_CALLER,
        subscribers: Subscribers | None = None,
    ) -> Job:
        """An asynchronous job of ``caller``: accepted for the dispatcher, or (``inline_async``) run here
        first, which occupies a web worker as a synchronous job does and so counts as one.

        ``version``: of the protocol request, recorded with the job. ``request``: inputs and outputs
        checked against the process, resources as requested. ``subscribers``: notified by the
        dispatcher as the job starts, progresses and ends (``scheduler/notifier.py``). Raises
        :class:`QueueFull`, :class:`InvalidSubscriber`, and :class:`QuotaExceeded` beyond
        ``queued_per_user``, ``sync_per_user`` or ``storage_per_user``.
        """
        stored, notify = self._prepare(process, request, caller, subscribers, process.inline_async)
        if queries.count_waiting(self.engine) >= self.settings.processing.queue_length:
            raise QueueFull()
        self.check_storage(caller.name)
        if not process.inline_async:
            within = quotas.quota(self.settings.quotas, quotas.QUEUED)
            row = lifecycle.create_job(
                self.engine,
                process.identifier,
                version,
                JobMode.ASYNC,
                stored,
                owner=caller.name,
                within=within,
                subscribers=notify,
            )
            return Job.from_row(row)
        with self._sync_slot():
            job_id = self._create_running(process, version, JobMode.ASYNC, stored, caller.name, notify)
            return self._run_here(process, job_id, stored, caller)[0]

    def run(
        self,
        process: Process,
        version: str,
        request: dict[str, Any],
        caller: Caller = ANONYMOUS_CALLER,
        client_gone: ClientCheck | None = None,
        *,
        subscribers: Subscribers | None = None,
    ) -> Job:
        """A synchronous job of ``caller``, run here to its end under ``[processing] sync_time_limit``,
        or until ``client_gone()`` says nobody waits for it any more; returns the finished job, succeeded
        or failed. ``subscribers`` are notified by the dispatcher, as for an asynchronous job, so the
        reply never waits for them. A failure caused by an input raises :class:`InvalidInput` naming it instead, one
        without an output asked for :class:`OutputNotProduced` (the job is recorded as failed all the
        same). Raises :class:`SyncSlotsBusy` when no slot frees in time (no job is created then), and
        :class:`QuotaExceeded` beyond ``sync_per_user`` or ``storage_per_user``."""
        stored, notify = self._prepare(process, request, caller, subscribers, True)
        self.check_storage(caller.name)
        with self._sync_slot():
            job_id = self._create_running(process, version, JobMode.SYNC, stored, caller.name, notify)
            job, outcome = self._run_here(process, job_id, stored, caller, client_gone)
        if outcome.input_id is not None:
            raise InvalidInput(outcome.input_id, outcome.input_reason or "invalid", outcome.message)
        if outcome.missing_outputs:
            raise OutputNotProduced(outcome.missing_outputs[0], outcome.message)
        return job

    def _sync_slot(self) -> AbstractContextManager[None]:
        processing = self.settings.processing
        return sync_slot(self.settings.jobs_dir, processing.sync_slots, processing.sync_slot_wait)

    def _create_running(
        self,
        process: Process,
        version: str,
        mode: JobMode,
        stored: dict[str, Any],
        owner: str,
        subscribers: list[dict[str, Any]] | None,
    ) -> str:
        """A job that this web worker runs from the start, within ``sync_per_user``; returns its id."""
        within = quotas.quota(self.settings.quotas, quotas.SYNC)
        created = lifecycle.create_job(
            self.engine,
            process.identifier,
            version,
            mode,
            stored,
            JobStatus.RUNNING,
            WEB,
            holder(),
            owner,
            within,
            subscribers,
        )
        return created["id"]

    def check_storage(self, owner: str) -> None:
        """Refuse a new job while the files of ``owner``'s finished jobs exceed ``storage_per_user``.

        Measured at submission, as the bytes under the directories of the user's finished jobs still
        kept: one indexed query for their ids, and a walk of each directory the first time this
        process sees it (a finished job's files no longer change). Checked before the job exists,
        since a running job's size is not known; so one job may take a user past the limit, and the
        next submission is refused until dismissals or expiry bring it back under.
        """
        limit = self.settings.quotas.storage_per_user
        if not limit:
            return
        jobs_dir = self.settings.jobs_dir
        used = sum(_finished_size(jobs_dir / job_id) for job_id in queries.finished_job_ids(self.engine, owner))
        if used > limit:
            raise QuotaExceeded(
                "storage_per_user",
                f"your finished jobs keep {_readable(used)} of files, more than the {_readable(limit)} one user "
                "may keep; dismiss finished jobs you no longer need, or wait for them to expire",
            )

    def _run_here(
        self,
        process: Process,
        job_id: str,
        stored: dict[str, Any],
        caller: Caller,
        client_gone: ClientCheck | None = None,
    ) -> tuple[Job, Outcome]:
        """Run a job in this thread under the synchronous time limit, its fetches within the short
        budget of a web worker; returns its final state and how it ended (which input failed it, if one did)."""
        settings = self.settings
        outcome = run_to_outcome(
            process,
            stored,
            settings.job_dir(job_id),
            settings.inputs.in_web_worker(),
            ProgressReporter(self.engine, job_id),
            settings.processing.sync_time_limit,
            settings.docker,
            client_gone,
        )
        record_outcome(self.engine, job_id, outcome, settings.processing.retention)
        return self.get(job_id, caller), outcome

    # -- reading and ending ------------------------------------------------------------------------

    def get(self, job_id: str, caller: Caller = ANONYMOUS_CALLER) -> Job:
        """A job of the caller's; another user's raises :class:`NoSuchJob` exactly as an unknown id does."""
        row = queries.get_job(self.engine, job_id)
        if row is None or not caller.owns(row["owner"]):
            raise NoSuchJob(job_id)
        return Job.from_row(row)

    def list_jobs(self, which: JobFilter, caller: Caller = ANONYMOUS_CALLER) -> list[Job]:
        """The jobs ``which`` selects among those the caller may see: its own, or every job for an administrator."""
        return [Job.from_row(row) for row in self._find(which, caller)]

    def list_states(self, which: JobFilter, caller: Caller = ANONYMOUS_CALLER) -> list[JobState]:
        """As :meth:`list_jobs`, each job's status only: what a list of jobs shows, and cheaper to read."""
        return [JobState.from_row(row) for row in self._find(which, caller, STATE_COLUMNS)]

    def _find(self, which: JobFilter, caller: Caller, columns: tuple[str, ...] | None = None) -> list[RowMapping]:
        owners = which.owners
        if not caller.is_admin:
            owners = tuple(o for o in owners or (caller.name,) if o == caller.name)
            if not owners:
                return []
        return queries.find_jobs(
            self.engine,
            statuses=sorted(set(which.statuses)) or None,
            processes=which.processes or None,
            created_before=None if which.older_than is None else utcnow() - which.older_than,
            limit=which.limit,
            removable_only=which.removable_only,
            owners=owners or None,
            created_within=(which.created_from, which.created_to),
            durations=(_seconds(which.min_duration), _seconds(which.max_duration)),
            after=which.after,
            before=which.before,
            columns=columns,
        )

    def dismiss(self, job_id: str, caller: Caller = ANONYMOUS_CALLER) -> Job:
        """Dismiss a job of the caller's, waiting, running or finished; its files go (now, or once its
        executor lets go)."""
        job = self.get(job_id, caller)
        row = dismiss_job(self.engine, self.settings.jobs_dir, job_id)
        return Job.from_row(row) if row is not None else job

    def result(self, job_id: str, caller: Caller = ANONYMOUS_CALLER) -> Job:
        """A job whose outputs can be served: succeeded. A dismissed job has none left, as if it never was."""
        job = self.get(job_id, caller)
        if job.status is JobStatus.DISMISSED:
            raise NoSuchJob(job_id, f"job {job_id} was dismissed")
        if not job.status.is_final:
            raise ResultNotReady(job_id)
        if job.status is JobStatus.FAILED:
            raise JobFailed(job_id, job.message)
        return job

    # -- output files ------------------------------------------------------------------------------

    def outputs_dir(self, job_id: str) -> Path:
        """Where a job's output files are: bindings embed them in documents or send them as they are."""
        return self.settings.job_dir(job_id) / OUTPUTS

    def output_file(self, job_id: str, filename: str, caller: Caller = ANONYMOUS_CALLER) -> OutputFile:
        """A file the caller's succeeded job recorded as an output, and only such a file: a name is
        looked up among the records, never joined to a path first."""
        job = self.get(job_id, caller)
        if job.status is not JobStatus.SUCCEEDED:
            raise NoSuchJob(job_id, f"job {job_id} has no outputs")
        for record in job.outputs or []:
            if record.get("file") == filename:
                path = self.outputs_dir(job_id) / filename
                if path.is_file():
                    return OutputFile(path, record.get("mime_type"))
            if filename in record.get("published", ()):
                path = self.outputs_dir(job_id) / filename
                if path.is_file() and not path.is_symlink():
                    return OutputFile(path, mimetypes.guess_type(filename)[0])
        raise NoSuchOutput(job_id, filename)
