"""What the job monitor's pages show beyond the JSON documents: the execution form's fields, read from
a process description, and a job's timeline and outputs, read from the job itself.

A job's executor and native id (the Slurm job id, the container...) are not part of statusInfo, whose
schema the JSON is validated against; the page shows them from the ``Job`` the view already holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MultiDict

from app.ogcapi.jobs import STATES_OF, STATUS_CODES, timestamp
from app.ogcapi.processes import EXECUTE_REL, JOB_LIST_REL
from app.ogcapi.urls import JSON, Urls
from scheduler.job import Job
from scheduler.models import JobStatus

NUMBER_TYPES = {"integer": "1", "number": "any"}  # JSON type -> the step of a number field


@dataclass(frozen=True)
class Field:
    """One input of the execution form; ``kind`` says how ``monitor.js`` turns it into JSON
    (string, integer, number, boolean, complex, bbox)."""

    id: str
    title: str
    description: str
    kind: str
    required: bool
    multiple: bool  # several values, one per line
    choices: tuple[str, ...] = ()  # allowed values, media types (complex) or CRSs (bbox)
    minimum: Any = None
    maximum: Any = None
    step: str = ""
    default: str = ""


def _first(schema: dict[str, Any]) -> dict[str, Any]:
    """The first alternative of an ``anyOf``: the type a field is entered as."""
    return _first(schema["anyOf"][0]) if "anyOf" in schema else schema


def _media_types(schema: dict[str, Any]) -> tuple[str, ...]:
    """The media types a complex input takes (none for a literal or a bounding box)."""
    found = [schema["contentMediaType"]] if "contentMediaType" in schema else []
    for choice in schema.get("anyOf", []):
        found.extend(_media_types(choice))
    return tuple(dict.fromkeys(found))


def field(identifier: str, described: dict[str, Any]) -> Field:
    schema = described["schema"]
    base = _first(schema)
    common = {
        "id": identifier,
        "title": described.get("title") or identifier,
        "description": described.get("description", ""),
        "required": described.get("minOccurs", 1) > 0,
        "multiple": described.get("maxOccurs", 1) != 1,
        "default": "" if schema.get("default") is None else str(schema["default"]),
    }
    if media_types := _media_types(schema):
        return Field(**common, kind="complex", choices=media_types)
    if base.get("type") == "object":
        crss = base["properties"]["crs"].get("enum", ())
        return Field(**common, kind="bbox", choices=tuple(dict.fromkeys(crss)))  # two names, one URI: once
    kind = base.get("type", "string")
    if "enum" in schema:
        return Field(**common, kind=kind, choices=tuple(str(v) for v in schema["enum"]))
    if kind in NUMBER_TYPES:
        return Field(
            **common,
            kind=kind,
            minimum=base.get("minimum"),
            maximum=base.get("maximum"),
            step=NUMBER_TYPES[kind],
        )
    return Field(**common, kind=kind if kind == "boolean" else "string")


def process_page(description: dict[str, Any]) -> dict[str, Any]:
    """The execution form of a process description (``processes.description``), and where it goes."""
    rels = {link["rel"]: link["href"] for link in description["links"]}
    return {
        "fields": [field(identifier, described) for identifier, described in description["inputs"].items()],
        "execution": rels[EXECUTE_REL],
        "jobs": rels[JOB_LIST_REL] + "&f=html",
    }


def list_page(args: MultiDict[str, str]) -> dict[str, Any]:
    """The job list's filter form, filled in with the filters of this page."""
    chosen = {name: args.get(name, "") for name in ("processID", "datetime", "minDuration", "maxDuration", "limit")}
    statuses = [code for given in args.getlist("status") for code in given.split(",")]
    return {"statuses": list(STATES_OF), "chosen": chosen | {"status": statuses}}


@dataclass(frozen=True)
class Step:
    what: str  # accepted, queued, started, successful, failed, dismissed
    at: str | None
    detail: str = ""


def _where(job: Job) -> str:
    if not job.executor:
        return ""
    return f"on {job.executor}" + (f", native id {job.native_id}" if job.native_id else "")


def timeline(job: Job) -> list[Step]:
    """Accepted; queued on an executor (a batch job waiting for its node); started on the executor,
    with the native id; and the end."""
    steps = [Step("accepted", timestamp(job.created_at))]
    if job.started_at is None and job.executor and job.status is JobStatus.QUEUED:
        steps.append(Step("queued", None, _where(job)))
    if job.started_at is not None:
        steps.append(Step("started", timestamp(job.started_at), _where(job)))
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DISMISSED):
        end = job.finished_at or job.updated_at
        steps.append(Step(STATUS_CODES[job.status], timestamp(end)))
    return steps


def outputs(job: Job, urls: Urls) -> list[dict[str, str]]:
    """Each output of a succeeded job as a link: to its file, or (a literal, a bounding box, kept in
    the job table) to the results document, with its value shown beside it."""
    if job.status is not JobStatus.SUCCEEDED:
        return []
    results = urls.results(job.id) + "?f=json"
    shown = []
    for record in job.outputs or []:
        if record.get("file"):
            href = urls.output(job.id, record["file"])
            shown.append(
                {"id": record["id"], "href": href, "type": record.get("mime_type") or "", "name": record["file"]}
            )
            continue
        if record["kind"] == "literal":
            value = " ".join(filter(None, (record["value"], record.get("uom"))))
        else:
            value = f"{record['lower']} {record['upper']} {record.get('crs') or ''}".strip()
        shown.append({"id": record["id"], "href": results, "type": JSON, "name": "results", "value": value})
    return shown


def job_page(job: Job, urls: Urls) -> dict[str, Any]:
    return {
        "timeline": timeline(job),
        "outputs": outputs(job, urls),
        "executor": job.executor or "",
        "native_id": job.native_id or "",
    }
