"""What every WPS operation reads, and the reply it gives the views."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.wps.render.execute10 import execute_response
from processes.model import Process
from scheduler.job import Job
from scheduler.service import JobService

XML = "text/xml"
BINARY = "application/octet-stream"  # the type of an output file that declares none


@dataclass
class Reply:
    body: bytes = b""
    content_type: str = XML
    status: int = 200
    file: Path | None = None  # streamed from disk instead of body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """Built once per app; operations take it as their first argument rather than reaching for Flask,
    so they can be called, and tested, without a request."""

    jobs: JobService
    base: str  # the public URL of the endpoint, which status and output links start with
    language: str

    def execute_response(self, process: Process, job: Job) -> Reply:
        """The WPS 1.0.0 ExecuteResponse of a job as it stands now."""
        return Reply(execute_response(process, job, self.base, self.jobs.outputs_dir(job.id), self.language))
