"""Execute in both versions: which mode the client asked for, the job service runs or queues the job,
and the answer the request's response form asks for (a document, or one output as it is)."""

from __future__ import annotations

from app.outputs import selected_outputs
from app.served import output_headers
from app.wps.errors import OWSException
from app.wps.operations.context import BINARY, Context, Reply
from app.wps.render.status20 import result, status_info
from app.wps.requests import Execute
from app.wps.validate import execution_mode, job_request, raw_output
from app.wps.versions import check_version
from processes.model import Process
from scheduler.access import Caller
from scheduler.interrupts import ClientCheck
from scheduler.job import Job
from scheduler.models import JobStatus, utcnow

TEXT = "text/plain; charset=utf-8"  # a literal or bounding box asked for raw


def execute(ctx: Context, request: Execute, caller: Caller, client_gone: ClientCheck | None = None) -> Reply:
    """``client_gone``: whether the client has hung up (``app/client.py``); a synchronous job then ends."""
    check_version(request.version)
    process = ctx.jobs.process(request.identifier, caller)
    mode = execution_mode(process, request)
    stored = job_request(process, request)
    raw_output(process, request)
    if mode == "async":
        return _accepted(ctx, process, request, ctx.jobs.submit(process, request.version, stored, caller))
    return _finished(ctx, process, request, ctx.jobs.run(process, request.version, stored, caller, client_gone))


def _accepted(ctx: Context, process: Process, request: Execute, job: Job) -> Reply:
    if request.version == "1.0.0":
        return ctx.execute_response(process, job)
    location = f"{ctx.base}?service=WPS&version=2.0.0&request=GetStatus&jobId={job.id}"
    return Reply(status_info(job, utcnow()), headers={"Location": location})


def _finished(ctx: Context, process: Process, request: Execute, job: Job) -> Reply:
    version1 = request.version == "1.0.0"
    if job.status is not JobStatus.SUCCEEDED:
        if version1 and request.response == "document":  # 1.0.0 reports a failure in the document
            return ctx.execute_response(process, job)
        raise OWSException("NoApplicableCode", job.message or "the process failed", process.identifier)
    if request.response == "raw":
        return _raw(ctx, job)
    if version1:
        return ctx.execute_response(process, job)
    return Reply(result(job, ctx.base, ctx.jobs.outputs_dir(job.id)))


def _raw(ctx: Context, job: Job) -> Reply:
    """One output as it is, with the headers that keep a browser from running it (``app/served.py``)."""
    record = selected_outputs(job)[0][0]  # the job service fails a run without the output asked for
    if record.get("file"):
        content_type = record.get("mime_type") or BINARY
        path = ctx.jobs.outputs_dir(job.id) / record["file"]
        return Reply(file=path, content_type=content_type, headers=output_headers(content_type, record["file"]))
    if record["kind"] == "literal":
        text = record["value"]
    else:
        text = ",".join(map(str, record["lower"] + record["upper"])) + f",{record.get('crs')}"
    return Reply(text.encode("utf-8"), TEXT, headers=output_headers(TEXT))
