"""The WPS operations: parsed request in, reply out. No Flask here, and no executor either.

Asynchronous Execute only inserts a row; the dispatcher does the rest. Synchronous Execute runs the
job in this worker under a time limit, through the same code every executor uses.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from app.settings import Settings
from app.wps.errors import OWSException
from app.wps.render.capabilities import capabilities_10, capabilities_20
from app.wps.render.data import selected_outputs
from app.wps.render.describe import describe_10, describe_20, process_description_10, process_offering_20
from app.wps.render.execute10 import execute_response
from app.wps.render.status20 import result, status_info
from app.wps.requests import SUPPORTED_VERSIONS, DescribeProcess, Execute, GetCapabilities, JobRequest
from app.wps.validate import execution_mode, job_request
from processes.model import Process
from processes.registry import Registry
from scheduler import lifecycle, queries
from scheduler.executor_names import WEB
from scheduler.launcher import Outcome, ProgressReporter, record_outcome, run_to_outcome
from scheduler.models import JobMode, JobStatus, utcnow
from scheduler.pids import holder
from scheduler.removal import dismiss_job
from scheduler.resources import REQUEST_PREFIX, ResourceError, parse_requested

XML = "text/xml"
INPUT_ERROR_CODES = {
    # reason -> (WPS 1.0.0 code, WPS 2.0 code)
    "invalid": ("InvalidParameterValue", "WrongInputData"),
    "not_accessible": ("InvalidParameterValue", "DataNotAccessible"),
    "too_large": ("FileSizeExceeded", "SizeExceeded"),
}


@dataclass
class Reply:
    body: bytes = b""
    content_type: str = XML
    status: int = 200
    file: Path | None = None  # streamed from disk instead of body
    headers: dict[str, str] = field(default_factory=dict)


def negotiate(accept_versions: tuple[str, ...]) -> str:
    if not accept_versions:
        return "1.0.0"
    for version in accept_versions:
        if version in SUPPORTED_VERSIONS:
            return version
    raise OWSException(
        "VersionNegotiationFailed",
        f"none of {', '.join(accept_versions)} is supported; this service speaks {', '.join(SUPPORTED_VERSIONS)}",
        "AcceptVersions",
    )


def check_version(version: str) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise OWSException("InvalidParameterValue", f"version {version} is not supported", "version")


class WPSService:
    def __init__(self, settings: Settings, engine: Engine, registry: Registry) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.base = settings.server.url
        self.language = settings.server.language
        # Everything that depends only on the configuration is rendered once, here.
        self.capabilities = {"1.0.0": capabilities_10(settings, registry), "2.0.0": capabilities_20(settings, registry)}
        self._descriptions_10 = {p.identifier: process_description_10(p) for p in registry}
        self._offerings_20 = {p.identifier: process_offering_20(p) for p in registry}
        self._describe_all = {
            "1.0.0": describe_10([copy.deepcopy(e) for e in self._descriptions_10.values()], self.language),
            "2.0.0": describe_20([copy.deepcopy(e) for e in self._offerings_20.values()]),
        }

    def job_dir(self, job_id: str) -> Path:
        return self.settings.jobs_dir / job_id

    # -- GetCapabilities and DescribeProcess ---------------------------------------------------------

    def get_capabilities(self, request: GetCapabilities) -> Reply:
        return Reply(self.capabilities[negotiate(request.accept_versions)])

    def _process(self, identifier: str, version: str) -> Process:
        process = self.registry.get(identifier)
        if process is None:
            if version.startswith("2"):
                raise OWSException("NoSuchProcess", f"no process {identifier}", identifier)
            raise OWSException("InvalidParameterValue", f"no process {identifier}", "Identifier")
        return process

    def describe(self, request: DescribeProcess) -> Reply:
        check_version(request.version)
        if any(i.lower() == "all" for i in request.identifiers):
            return Reply(self._describe_all[request.version])
        processes = [self._process(i, request.version) for i in request.identifiers]
        if request.version == "1.0.0":
            body = describe_10([copy.deepcopy(self._descriptions_10[p.identifier]) for p in processes], self.language)
        else:
            body = describe_20([copy.deepcopy(self._offerings_20[p.identifier]) for p in processes])
        return Reply(body)

    # -- Execute ---------------------------------------------------------------------------------

    def execute(self, request: Execute) -> Reply:
        check_version(request.version)
        process = self._process(request.identifier, request.version)
        mode = execution_mode(process, request)
        stored = job_request(process, request)
        try:
            stored["resources"] = parse_requested(stored["resources"], self.settings.scheduler)
        except ResourceError as exc:
            raise OWSException("InvalidParameterValue", str(exc), f"{REQUEST_PREFIX}{exc.name}") from None
        if mode == JobMode.ASYNC:
            return self._execute_async(process, request, stored)
        return self._execute_sync(process, request, stored)

    def _run_here(self, process: Process, job: dict[str, Any], stored: dict[str, Any]) -> tuple[Outcome, Any]:
        """Run a job in this web worker under the synchronous time limit; returns its outcome and final row."""
        job_id = job["id"]
        outcome = run_to_outcome(
            process,
            stored,
            self.job_dir(job_id),
            self.settings.inputs,
            ProgressReporter(self.engine, job_id),
            self.settings.processing.sync_time_limit,
            self.settings.docker,
        )
        record_outcome(self.engine, job_id, outcome, self.settings.processing.retention)
        final = queries.get_job(self.engine, job_id)
        assert final is not None
        return outcome, final

    def _execute_async(self, process: Process, request: Execute, stored: dict[str, Any]) -> Reply:
        if queries.count_waiting(self.engine) >= self.settings.processing.queue_length:
            raise OWSException("ServerBusy", "the job queue is full; try again later", "Execute")
        if process.inline_async:
            job = lifecycle.create_job(
                self.engine,
                process.identifier,
                request.version,
                JobMode.ASYNC,
                stored,
                JobStatus.RUNNING,
                WEB,
                holder(),
            )
            _outcome, job = self._run_here(process, job, stored)
        else:
            job = lifecycle.create_job(self.engine, process.identifier, request.version, JobMode.ASYNC, stored)
        job_id = job["id"]
        if request.version == "1.0.0":
            return Reply(execute_response(process, job, self.base, self.job_dir(job_id), self.language))
        location = f"{self.base}?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}"
        return Reply(status_info(job, utcnow()), headers={"Location": location})

    def _execute_sync(self, process: Process, request: Execute, stored: dict[str, Any]) -> Reply:
        created = lifecycle.create_job(
            self.engine, process.identifier, request.version, JobMode.SYNC, stored, JobStatus.RUNNING, WEB, holder()
        )
        outcome, job = self._run_here(process, created, stored)
        job_id = job["id"]
        version1 = request.version == "1.0.0"
        if outcome.input_id is not None:
            codes = INPUT_ERROR_CODES.get(outcome.input_reason or "invalid", INPUT_ERROR_CODES["invalid"])
            raise OWSException(codes[0] if version1 else codes[1], outcome.message, outcome.input_id)
        if job["status"] != JobStatus.SUCCEEDED.value:
            if version1 and request.response == "document":
                return Reply(execute_response(process, job, self.base, self.job_dir(job_id), self.language))
            raise OWSException("NoApplicableCode", job["message"] or "the process failed", process.identifier)
        if request.response == "raw":
            return self._raw(job)
        if version1:
            return Reply(execute_response(process, job, self.base, self.job_dir(job_id), self.language))
        return Reply(result(job, self.base, self.job_dir(job_id)))

    def _raw(self, job: Any) -> Reply:
        selected = selected_outputs(job)
        if not selected:
            raise OWSException("NoApplicableCode", "the process produced no such output", "RawDataOutput")
        record = selected[0][0]
        if record.get("file"):
            return Reply(
                file=self.job_dir(job["id"]) / "outputs" / record["file"],
                content_type=record.get("mime_type") or "application/octet-stream",
            )
        if record["kind"] == "literal":
            return Reply(record["value"].encode("utf-8"), "text/plain; charset=utf-8")
        corners = ",".join(map(str, record["lower"] + record["upper"]))
        return Reply(f"{corners},{record.get('crs')}".encode(), "text/plain; charset=utf-8")

    # -- GetStatus, GetResult, Dismiss (WPS 2.0) and the 1.0.0 status document --------------------------

    def _job(self, job_id: str) -> Any:
        job = queries.get_job(self.engine, job_id)
        if job is None:
            raise OWSException("NoSuchJob", f"no job {job_id}", job_id)
        return job

    def job_operation(self, request: JobRequest) -> Reply:
        if request.version != "2.0.0":
            raise OWSException(
                "OperationNotSupported", f"{request.operation} is a WPS 2.0 operation", request.operation
            )
        job = self._job(request.job_id)
        now = utcnow()
        if request.operation == "GetStatus":
            return Reply(status_info(job, now))
        if request.operation == "Dismiss":
            return self._dismiss(job, now)
        status = JobStatus(job["status"])
        if status is JobStatus.DISMISSED:
            raise OWSException("NoSuchJob", f"job {job['id']} was dismissed", job["id"])
        if not status.is_final:
            raise OWSException("ResultNotReady", f"job {job['id']} has not finished", job["id"])
        if status is JobStatus.FAILED:
            raise OWSException("NoApplicableCode", f"job {job['id']} failed: {job['message']}", job["id"])
        return Reply(result(job, self.base, self.job_dir(job["id"])))

    def _dismiss(self, job: Any, now: dt.datetime) -> Reply:
        job = dismiss_job(self.engine, self.settings.jobs_dir, job["id"]) or job
        return Reply(status_info(job, now))

    def status_document(self, job_id: str) -> Reply:
        """The WPS 1.0.0 statusLocation: always complete, rendered from the table on each request."""
        job = self._job(job_id)
        process = self.registry.get(job["process_id"])
        if process is None:
            raise OWSException("NoSuchJob", f"the process of job {job_id} is no longer offered", job_id)
        return Reply(execute_response(process, job, self.base, self.job_dir(job_id), self.language))

    def output_file(self, job_id: str, filename: str) -> Reply:
        job = self._job(job_id)
        if job["status"] != JobStatus.SUCCEEDED.value:
            raise OWSException("NoSuchJob", f"job {job_id} has no outputs", job_id, status=404)
        for record in job["outputs"] or []:
            if record.get("file") == filename:
                path = self.job_dir(job_id) / "outputs" / filename
                if path.is_file():
                    return Reply(file=path, content_type=record.get("mime_type") or "application/octet-stream")
        raise OWSException("InvalidParameterValue", f"job {job_id} has no output {filename}", filename, status=404)
