"""WPS 1.0.0 ExecuteResponse: one encoder per job state, all rendered fresh from the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lxml import etree

from app.outputs import selected_outputs
from app.wps.namespaces import OWS1, WPS1, WPS10, WPS10_SCHEMA, XLINK_HREF, XML_LANG
from app.wps.render.common import iso, serialize
from app.wps.render.data import corners, embed
from app.wps.urls import output_url, status_url
from processes.model import Process
from scheduler.job import Job
from scheduler.models import JobMode, JobStatus

PROCESS_VERSION = f"{{{WPS10}}}processVersion"


def _status(job: Job) -> etree._Element:
    status = job.status
    created = iso(job.updated_at or job.created_at)
    if status is JobStatus.SUCCEEDED:
        body = WPS1.ProcessSucceeded(job.message or "succeeded")
    elif status in (JobStatus.FAILED, JobStatus.DISMISSED):
        report = OWS1.ExceptionReport(
            OWS1.Exception(OWS1.ExceptionText(job.message or "failed"), exceptionCode="NoApplicableCode"),
            version="1.0.0",
        )
        body = WPS1.ProcessFailed(report)
    elif status is JobStatus.RUNNING and job.request.get("status"):
        # The schema caps percentCompleted at 99: 100 is ProcessSucceeded, which the job is not yet.
        percent = min(99, job.progress or 0)
        body = WPS1.ProcessStarted(job.message or "running", percentCompleted=percent)
    else:
        body = WPS1.ProcessAccepted(job.message or "accepted")
    return WPS1.Status(body, creationTime=created)


def _literal(record: dict[str, Any]) -> etree._Element:
    return WPS1.LiteralData(record["value"], dataType=record.get("data_type"), uom=record.get("uom"))


def _output_data(record: dict[str, Any], outputs_dir: Path) -> etree._Element:
    if record["kind"] == "literal":
        return WPS1.Data(_literal(record))
    if record["kind"] == "bbox":
        return WPS1.Data(
            WPS1.BoundingBoxData(
                corners(OWS1, record["lower"], record["upper"]),
                crs=record.get("crs"),
                dimensions=len(record["lower"]),
            )
        )
    content, encoding = embed(record, outputs_dir / record["file"])
    return WPS1.Data(
        WPS1.ComplexData(content, mimeType=record.get("mime_type"), encoding=encoding, schema=record.get("schema"))
    )


def _process_outputs(process: Process, job: Job, base: str, outputs_dir: Path) -> etree._Element:
    elements = []
    for record, by_reference in selected_outputs(job):
        spec = process.output(record["id"])
        if by_reference:
            data = WPS1.Reference(
                href=output_url(base, job.id, record["file"]),
                mimeType=record.get("mime_type"),
                encoding=record.get("encoding"),
                schema=record.get("schema"),
            )
        else:
            data = _output_data(record, outputs_dir)
        elements.append(
            WPS1.Output(OWS1.Identifier(record["id"]), OWS1.Title(spec.title if spec else record["id"]), data)
        )
    return WPS1.ProcessOutputs(elements)


def _lineage(process: Process, job: Job) -> list[etree._Element]:
    inputs = []
    for spec in job.request.get("inputs", []):
        declared = process.input(spec["id"])
        title = OWS1.Title(declared.title if declared else spec["id"])
        if spec.get("href"):
            data = WPS1.Reference(
                {XLINK_HREF: spec["href"]},
                method=spec.get("method"),
                mimeType=spec.get("mime_type"),
                encoding=spec.get("encoding"),
                schema=spec.get("schema"),
            )
        elif spec["kind"] == "literal":
            data = WPS1.Data(WPS1.LiteralData(spec.get("value", ""), uom=spec.get("uom")))
        elif spec["kind"] == "bbox":
            data = WPS1.Data(
                WPS1.BoundingBoxData(
                    corners(OWS1, spec["lower"], spec["upper"]),
                    crs=spec.get("crs"),
                )
            )
        else:
            data = WPS1.Data(
                WPS1.ComplexData(
                    spec.get("value", ""),
                    mimeType=spec.get("mime_type"),
                    encoding=spec.get("encoding"),
                    schema=spec.get("schema"),
                )
            )
        inputs.append(WPS1.Input(OWS1.Identifier(spec["id"]), title, data))
    definitions = []
    for output in job.request.get("outputs", []):
        declared_out = process.output(output["id"])
        definitions.append(
            WPS1.Output(
                OWS1.Identifier(output["id"]),
                OWS1.Title(declared_out.title if declared_out else output["id"]),
                asReference=str(output.get("transmission") == "reference").lower(),
                mimeType=output.get("mime_type"),
                encoding=output.get("encoding"),
                schema=output.get("schema"),
                uom=output.get("uom"),
            )
        )
    return [WPS1.DataInputs(inputs), WPS1.OutputDefinitions(definitions) if definitions else None]


def execute_response(process: Process, job: Job, base: str, outputs_dir: Path, language: str) -> bytes:
    """The ExecuteResponse for ``job`` as it stands: accepted, started, succeeded or failed."""
    request = job.request
    stored = job.mode == JobMode.ASYNC
    root = WPS1.ExecuteResponse(
        WPS1.Process(
            OWS1.Identifier(process.identifier),
            OWS1.Title(process.title),
            OWS1.Abstract(process.abstract) if process.abstract else None,
            {PROCESS_VERSION: process.version},
        ),
        _status(job),
        _lineage(process, job) if request.get("lineage") else None,
        _process_outputs(process, job, base, outputs_dir) if job.status is JobStatus.SUCCEEDED else None,
        {XML_LANG: language},
        service="WPS",
        version="1.0.0",
        serviceInstance=f"{base}?service=WPS&request=GetCapabilities",
        statusLocation=status_url(base, job.id) if stored else None,
    )
    return serialize(root, f"{WPS10} {WPS10_SCHEMA}/wpsExecute_response.xsd")
