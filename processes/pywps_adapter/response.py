"""The ``response`` a PyWPS handler writes: a genuine ``ExecuteResponse`` whose status reports go to
the job (WPS 1.0.0 status documents, 2.0 GetStatus), and what the handler put in ``response.outputs``
made into the job's outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pywps import BoundingBoxOutput, ComplexOutput
from pywps.response.execute import ExecuteResponse

from processes.context import JobContext
from processes.pywps_adapter.values import plain
from processes.values import BoundingBox, ComplexValue, LiteralValue


class JobResponse(ExecuteResponse):
    """PyWPS's response, reporting progress to the job instead of writing status files."""

    def __init__(self, request: Any, process: Any, job: JobContext) -> None:
        super().__init__(request, uuid=process.uuid, process=process)
        self._job = job

    def _update_status(self, status: Any, message: str, status_percentage: Any, clean: bool = True) -> None:
        self.status, self.message, self.status_percentage = status, message, status_percentage
        self._job.update_status(str(message), None if status_percentage is None else int(status_percentage))


def choose_formats(process: Any, requested: list[dict[str, Any]]) -> None:
    """The format the client chose for each complex output (mimeType, encoding and schema) becomes
    its ``data_format``, as PyWPS's ``setup_outputs_from_wps_request`` does for mimeType alone."""
    by_id = {o.identifier: o for o in process.outputs}
    for wanted in requested:
        output = by_id.get(wanted["id"])
        if not isinstance(output, ComplexOutput):
            continue
        output.as_reference = wanted.get("transmission") == "reference"
        for fmt in output.supported_formats:
            if all(
                not wanted.get(key) or (getattr(fmt, attribute) or wanted[key]) == wanted[key]
                for key, attribute in (("mime_type", "mime_type"), ("encoding", "encoding"), ("schema", "schema"))
            ):
                output.data_format = fmt
                break


def _uom(output: Any) -> str | None:
    uom = output.uom
    return getattr(uom, "uom", uom) or None


def publish_stored_files(job: JobContext) -> None:
    """Files PyWPS's storage (or the process, through ``outputpath``) wrote into the output directory,
    such as the members of a Metalink, are served under the URLs PyWPS gave them (``outputurl``)."""
    for path in sorted(job.output_dir.rglob("*")):
        if path.is_file() and not path.is_symlink():
            job.publish(path)


def record_outputs(response: JobResponse, job: JobContext) -> None:
    """Every output the handler set becomes the job's output of that identifier."""
    for identifier, output in response.outputs.items():
        if isinstance(output, ComplexOutput):
            if output.prop is None:
                continue
            fmt = output.data_format
            value: Any = ComplexValue(Path(output.file), fmt.mime_type, fmt.encoding or None, fmt.schema or None)
        elif isinstance(output, BoundingBoxOutput):
            if not output.data:
                continue
            dimensions = len(output.data) // 2
            value = BoundingBox(tuple(output.data[:dimensions]), tuple(output.data[dimensions:]), output.crs)
        else:
            if output.data is None:
                continue
            value = LiteralValue(plain(output.data), _uom(output))
        job.set_output(identifier, value)
