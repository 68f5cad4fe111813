"""The WPS 2.0 operations on one job: GetStatus, GetResult and Dismiss.

WPS 1.0.0 has none of them: its clients poll the stored status document (``downloads.py``).
"""

from __future__ import annotations

from app.wps.errors import OWSException
from app.wps.operations.context import Context, Reply
from app.wps.render.status20 import result, status_info
from app.wps.requests import JobRequest
from scheduler.access import Caller
from scheduler.models import utcnow


def job_operation(ctx: Context, request: JobRequest, caller: Caller) -> Reply:
    if request.version != "2.0.0":
        raise OWSException("OperationNotSupported", f"{request.operation} is a WPS 2.0 operation", request.operation)
    if request.operation == "GetStatus":
        return Reply(status_info(ctx.jobs.get(request.job_id, caller), utcnow()))
    if request.operation == "Dismiss":
        return Reply(status_info(ctx.jobs.dismiss(request.job_id, caller), utcnow()))
    job = ctx.jobs.result(request.job_id, caller)
    return Reply(result(job, ctx.base, ctx.jobs.outputs_dir(job.id)))
