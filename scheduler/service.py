"""The job service: every job operation a protocol binding offers, in no protocol.

A binding (``app/wps/`` today, OGC API - Processes next) parses a request, calls one method here and
renders what comes back: a :class:`~scheduler.job.Job`, or one of the errors of ``scheduler/errors.py``,
which it maps to its own codes. So the rules of the job system (the queue limit, the synchronous time
limit, resources within limits, what a dismissed job still shows, where output files are) are written
once, and a second protocol cannot answer them differently by accident.

Asynchronous jobs only get a row here; the dispatcher runs them. Synchronous jobs, and asynchronous
ones of ``inline_async`` processes, run in a child of this process (the web worker) under the
synchronous time limit, through the same code every executor uses, at most ``[processing]
sync_slots`` of them at once on each host.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from processes.model import Process
from processes.registry import Registry
from scheduler import lifecycle, queries
from scheduler.child_run import ClientGone, run_in_child
from scheduler.errors import (
    InvalidInput,
    InvalidResource,
    JobFailed,
    NoSuchJob,
    NoSuchOutput,
    NoSuchProcess,
    QueueFull,
    ResultNotReady,
)
from scheduler.executor_names import WEB
from scheduler.job import Job, OutputFile
from scheduler.launcher import Outcome, ProgressReporter, record_outcome, run_to_outcome
from scheduler.models import JobMode, JobStatus, utcnow
from scheduler.pids import holder
from scheduler.removal import dismiss_job
from scheduler.resources import REQUEST_PREFIX, ResourceError, parse_requested
from scheduler.settings import JobSettings
from scheduler.sync_slots import sync_slot

OUTPUTS = "outputs"  # the subdirectory of a job's directory that holds its output files


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a listing shows, newest first: the filters of ``hpc-wps jobs list`` and ``purge``."""

    statuses: tuple[str, ...] = ()  # any of these states; none: every state
    processes: tuple[str, ...] = ()  # of any of these processes; none: every process
    older_than: dt.timedelta | None = None  # created longer ago than this
    limit: int = 0  # at most this many; 0: all
    removable_only: bool = False  # only jobs whose files and row may go (final, released by their executor)


class JobService:
    """One per web worker (and per operator command). ``settings`` is read on every call, never
    copied, so what a caller changes in it (tests shorten the time limit) holds from the next call."""

    def __init__(self, settings: JobSettings, engine: Engine, registry: Registry) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry

    # -- processes ---------------------------------------------------------------------------------

    def process(self, identifier: str) -> Process:
        process = self.registry.get(identifier)
        if process is None:
            raise NoSuchProcess(identifier)
        return process

    def process_of(self, job: Job) -> Process:
        """A job whose process is no longer offered cannot be described, so it counts as gone."""
        process = self.registry.get(job.process_id)
        if process is None:
            raise NoSuchJob(job.id, f"the process of job {job.id} is no longer offered")
        return process

    # -- submitting and running -------------------------------------------------------------------

    def resolve_resources(self, requested: Mapping[str, str]) -> dict[str, Any]:
        """Resource requests (``resources.<name>`` inputs, by name) typed and within the limits."""
        try:
            return parse_requested(dict(requested), self.settings.scheduler)
        except ResourceError as exc:
            raise InvalidResource(f"{REQUEST_PREFIX}{exc.name}", str(exc)) from None

    def _stored(self, request: dict[str, Any]) -> dict[str, Any]:
        """The request as the table keeps it: its resources resolved, so no executor checks them again."""
        return request | {"resources": self.resolve_resources(request.get("resources") or {})}

    def submit(self, process: Process, version: str, request: dict[str, Any]) -> Job:
        """An asynchronous job: accepted for the dispatcher, or (``inline_async``) run here first.

        ``version``: of the protocol request, recorded with the job. ``request``: inputs and outputs
        checked against the process, resources as requested. Raises :class:`QueueFull`.
        """
        stored = self._stored(request)
        if queries.count_waiting(self.engine) >= self.settings.processing.queue_length:
            raise QueueFull()
        if not process.inline_async:
            return Job.from_row(lifecycle.create_job(self.engine, process.identifier, version, "async", stored))
        with self._sync_slot():
            return self._run_here(process, self._web_job(process, version, JobMode.ASYNC, stored), stored)[0]

    def run(
        self, process: Process, version: str, request: dict[str, Any], client_gone: ClientGone | None = None
    ) -> Job:
        """A synchronous job, run to its end under ``[processing] sync_time_limit``; returns the
        finished job, succeeded or failed. A failure caused by an input raises :class:`InvalidInput`
        naming it instead (the job is recorded as failed all the same). Raises :class:`SyncSlotsBusy`.

        ``client_gone``: tells whether the client that waits for the answer is still there; once it is
        not, the job is ended (failed, "interrupted") rather than run on for nobody."""
        stored = self._stored(request)
        with self._sync_slot():
            job_id = self._web_job(process, version, JobMode.SYNC, stored)
            job, outcome = self._run_here(process, job_id, stored, client_gone)
        if outcome.input_id is not None:
            raise InvalidInput(outcome.input_id, outcome.input_reason or "invalid", outcome.message)
        return job

    def _sync_slot(self) -> AbstractContextManager[None]:
        """One of this host's ``[processing] sync_slots`` (``scheduler/sync_slots.py``), waited for up
        to ``sync_slot_wait``; raises :class:`SyncSlotsBusy`."""
        processing = self.settings.processing
        return sync_slot(self.settings.jobs_dir, processing.sync_slots, processing.sync_slot_wait)

    def _web_job(self, process: Process, version: str, mode: JobMode, stored: dict[str, Any]) -> str:
        """A new job, running from the start in this web worker (the row names it: ``pids.holder``)."""
        created = lifecycle.create_job(
            self.engine, process.identifier, version, mode, stored, JobStatus.RUNNING, WEB, holder()
        )
        return created["id"]

    def _run_here(
        self, process: Process, job_id: str, stored: dict[str, Any], client_gone: ClientGone | None = None
    ) -> tuple[Job, Outcome]:
        """Run a job in a child of this process (``scheduler/child_run.py``: a thread of a web worker
        cannot be given a time limit) under the synchronous time limit; returns its final state and
        how it ended (which input failed it, if one did)."""
        settings = self.settings
        seconds = settings.processing.sync_time_limit
        job_dir = settings.job_dir(job_id)
        outcome = run_in_child(
            # No progress is written: nobody can poll a job whose answer is still being waited for.
            lambda: run_to_outcome(
                process, stored, job_dir, settings.inputs, ProgressReporter(None, job_id), seconds, settings.docker
            ),
            job_dir,
            seconds,
            client_gone,
        )
        record_outcome(self.engine, job_id, outcome, settings.processing.retention)
        return self.get(job_id), outcome

    # -- reading and ending ------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        row = queries.get_job(self.engine, job_id)
        if row is None:
            raise NoSuchJob(job_id)
        return Job.from_row(row)

    def list_jobs(self, which: JobFilter) -> list[Job]:
        rows = queries.find_jobs(
            self.engine,
            statuses=sorted(set(which.statuses)) or None,
            processes=which.processes or None,
            created_before=None if which.older_than is None else utcnow() - which.older_than,
            limit=which.limit,
            removable_only=which.removable_only,
        )
        return [Job.from_row(row) for row in rows]

    def dismiss(self, job_id: str) -> Job:
        """Dismiss a job, waiting, running or finished; its files go (now, or once its executor lets go)."""
        job = self.get(job_id)
        row = dismiss_job(self.engine, self.settings.jobs_dir, job_id)
        return Job.from_row(row) if row is not None else job

    def result(self, job_id: str) -> Job:
        """A job whose outputs can be served: succeeded. A dismissed job has none left, as if it never was."""
        job = self.get(job_id)
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

    def output_file(self, job_id: str, filename: str) -> OutputFile:
        """A file the succeeded job recorded as an output, and only such a file: a name is looked up
        among the records, never joined to a path first."""
        job = self.get(job_id)
        if job.status is not JobStatus.SUCCEEDED:
            raise NoSuchJob(job_id, f"job {job_id} has no outputs")
        for record in job.outputs or []:
            if record.get("file") == filename:
                path = self.outputs_dir(job_id) / filename
                if path.is_file():
                    return OutputFile(path, record.get("mime_type"))
        raise NoSuchOutput(job_id, filename)
