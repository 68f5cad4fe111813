"""What WPS 1.0.0 documents link to: a stored job's status document (its statusLocation) and its
output files (References). Plain GETs of a path, outside the KVP and XML encodings."""

from __future__ import annotations

from app.served import output_headers
from app.wps.operations.context import BINARY, Context, Reply
from scheduler.access import Caller


def status_document(ctx: Context, job_id: str, caller: Caller) -> Reply:
    """Always complete, rendered from the job table on each request."""
    job = ctx.jobs.get(job_id, caller)
    return ctx.execute_response(ctx.jobs.process_of(job), job)


def output_file(ctx: Context, job_id: str, filename: str, caller: Caller) -> Reply:
    """Served with the headers that keep a browser from running it (``app/served.py``)."""
    found = ctx.jobs.output_file(job_id, filename, caller)
    content_type = found.mime_type or BINARY
    return Reply(
        file=found.path, content_type=content_type, headers=output_headers(content_type, filename.rsplit("/", 1)[-1])
    )
