"""One job of a PyWPS process: a fresh copy of the process, its request and response, its handler run.

``PywpsHandler`` is what the process model calls; it holds only the process's import path and this
service's settings for PyWPS, so it travels to a node with the job and the node imports the process
itself. What PyWPS does around a handler happens here the same way: a copy per job (PyWPS deep-copies
too), ``self.workdir`` and ``self.uuid`` set, a ``ProcessError`` failing the job with its message.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

from pywps.app.exceptions import ProcessError as PywpsProcessError

from processes.context import JobContext, ProcessError
from processes.pywps_adapter.config import configured
from processes.pywps_adapter.load import PywpsSettings, Source, prototype
from processes.pywps_adapter.request import build_request
from processes.pywps_adapter.response import JobResponse, choose_formats, publish_stored_files, record_outputs

log = logging.getLogger(__name__)

# PyWPS's own words for a failed process (outside its DEBUG level, where it shows the exception).
FAILED = "Process failed, please check server error log"


@dataclass(frozen=True)
class PywpsHandler:
    source: Source
    settings: PywpsSettings

    def __call__(self, job: JobContext) -> None:
        job_dir = job.output_dir.parent
        process = copy.deepcopy(prototype(self.source))
        process._set_uuid(job_dir.name)
        process.set_workdir(str(job.workdir))
        with configured(self.settings, job_dir, job.workdir):
            choose_formats(process, job.requested_outputs)
            request = build_request(process, job, job.requested_outputs)
            response = JobResponse(request, process, job)
            try:
                process.handler(request, response)
            except PywpsProcessError as exc:  # its message is meant for the client, as under PyWPS
                raise ProcessError(f"Process error: {exc.message}") from exc
            except Exception as exc:  # a bug's message may hold anything: the client gets PyWPS's generic words
                log.exception("process %s failed", process.identifier)
                raise ProcessError(FAILED) from exc
            record_outputs(response, job)
            publish_stored_files(job)
