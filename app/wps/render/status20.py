"""WPS 2.0 StatusInfo and Result documents, and raw output selection, from the job."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from lxml import etree

from app.outputs import selected_outputs
from app.wps.namespaces import OWS2, WPS2, WPS20, WPS20_SCHEMA, XLINK_HREF
from app.wps.render.common import iso, serialize
from app.wps.render.data import corners, embed
from app.wps.urls import output_url
from scheduler.job import Job
from scheduler.models import JobStatus

STATUS_NAMES = {
    JobStatus.ACCEPTED: "Accepted",
    JobStatus.QUEUED: "Accepted",
    JobStatus.RUNNING: "Running",
    JobStatus.SUCCEEDED: "Succeeded",
    JobStatus.FAILED: "Failed",
    JobStatus.DISMISSED: "Dismissed",
}


def next_poll(job: Job, now: dt.datetime) -> dt.datetime:
    """A poll interval that grows with the job's age: 1 s for new jobs, at most 60 s."""
    age = (now - job.created_at).total_seconds()
    return now + dt.timedelta(seconds=min(60.0, max(1.0, age / 10)))


def estimated_completion(job: Job, now: dt.datetime) -> dt.datetime | None:
    """Extrapolated from progress since the job started; only once there is progress to go on."""
    progress, started = job.progress, job.started_at
    if not started or not progress or progress >= 100:
        return None
    elapsed = (now - started).total_seconds()
    return now + dt.timedelta(seconds=elapsed * (100 - progress) / progress)


def status_info(job: Job, now: dt.datetime) -> bytes:
    status = job.status
    active = not status.is_final
    root = WPS2.StatusInfo(
        WPS2.JobID(job.id),
        WPS2.Status(STATUS_NAMES[status]),
        WPS2.ExpirationDate(iso(job.expires_at)) if job.expires_at else None,
        WPS2.EstimatedCompletion(iso(estimated_completion(job, now)))
        if active and estimated_completion(job, now)
        else None,
        WPS2.NextPoll(iso(next_poll(job, now))) if active else None,
        WPS2.PercentCompleted(job.progress) if status is JobStatus.RUNNING and job.progress is not None else None,
    )
    return serialize(root, f"{WPS20} {WPS20_SCHEMA}")


def _data(record: dict[str, Any], outputs_dir: Path) -> etree._Element:
    if record["kind"] == "literal":
        return WPS2.Data(
            WPS2.LiteralValue(record["value"], dataType=record.get("data_type"), uom=record.get("uom")),
            mimeType="text/plain",
        )
    if record["kind"] == "bbox":
        return WPS2.Data(
            OWS2.BoundingBox(
                corners(OWS2, record["lower"], record["upper"]),
                crs=record.get("crs"),
                dimensions=len(record["lower"]),
            ),
            mimeType="text/plain",
        )
    content, encoding = embed(record, outputs_dir / record["file"])
    return WPS2.Data(content, mimeType=record.get("mime_type"), encoding=encoding, schema=record.get("schema"))


def result(job: Job, base: str, outputs_dir: Path) -> bytes:
    outputs = []
    for record, by_reference in selected_outputs(job):
        if by_reference:
            data = WPS2.Reference(
                {XLINK_HREF: output_url(base, job.id, record["file"])},
                mimeType=record.get("mime_type"),
                encoding=record.get("encoding"),
                schema=record.get("schema"),
            )
        else:
            data = _data(record, outputs_dir)
        outputs.append(WPS2.Output(data, id=record["id"]))
    root = WPS2.Result(
        WPS2.JobID(job.id),
        WPS2.ExpirationDate(iso(job.expires_at)) if job.expires_at else None,
        outputs,
    )
    return serialize(root, f"{WPS20} {WPS20_SCHEMA}")
