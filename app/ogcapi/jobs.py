"""Jobs as the API shows them: the statusInfo of one job, and the job list (``/jobs``) with its filters
and pages (OGC 18-062r2 7.12, job-list conformance class).

Pages are keyset pages: a ``next`` link carries the (created, id) of the last job shown (``after``), a
``prev`` link that of the first (``before``); the job table reads a page along its index from there,
so every page costs the same however many jobs there are (``scheduler/queries.py: find_jobs``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MultiDict

from app.ogcapi.errors import bad_request
from app.ogcapi.urls import RESULTS_REL, Urls, link
from scheduler.job import Job, JobState
from scheduler.models import JobStatus
from scheduler.service import JobFilter

# The job table's states as the standard names them (queued jobs wait on an executor: accepted).
STATUS_CODES = {
    JobStatus.ACCEPTED: "accepted",
    JobStatus.QUEUED: "accepted",
    JobStatus.RUNNING: "running",
    JobStatus.SUCCEEDED: "successful",
    JobStatus.FAILED: "failed",
    JobStatus.DISMISSED: "dismissed",
}
STATES_OF = {code: tuple(s.value for s, c in STATUS_CODES.items() if c == code) for code in STATUS_CODES.values()}
TYPES = ("process",)
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
CURSOR = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?)_([0-9a-f-]{36})$")
# The query parameters a page link keeps, in the order they are written.
KEPT = ("status", "processID", "type", "datetime", "minDuration", "maxDuration", "limit", "f")


def timestamp(moment: dt.datetime) -> str:
    """The table's naive UTC as RFC 3339."""
    return moment.isoformat(timespec="milliseconds") + "Z"


def status_info(job: Job | JobState, urls: Urls) -> dict[str, Any]:
    info: dict[str, Any] = {
        "processID": job.process_id,
        "type": "process",
        "jobID": job.id,
        "status": STATUS_CODES[job.status],
        "message": job.message or "",
        "created": timestamp(job.created_at),
        "updated": timestamp(job.updated_at),
    }
    if job.started_at:
        info["started"] = timestamp(job.started_at)
    if job.finished_at:
        info["finished"] = timestamp(job.finished_at)
    if job.status is JobStatus.SUCCEEDED:
        info["progress"] = 100
    elif job.progress is not None:
        info["progress"] = max(0, min(100, job.progress))
    here = urls.job(job.id)
    info["links"] = [
        link(here, "self", "this job's status"),
        link(here, "monitor", "where the job's status is followed"),
    ]
    if job.status is JobStatus.SUCCEEDED:
        info["links"].append(link(urls.results(job.id), RESULTS_REL, "the job's results"))
    return info


@dataclass(frozen=True)
class ListQuery:
    which: JobFilter  # what the job service is asked for: one job more than a page, to tell if more follow
    limit: int
    params: dict[str, str]  # the filters as given, for the links to other pages


def _number(args: Mapping[str, str], name: str, low: int, high: int | None = None) -> int | None:
    text = args.get(name)
    if text is None:
        return None
    if not re.fullmatch(r"[0-9]{1,12}", text) or int(text) < low or (high is not None and int(text) > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise bad_request(f"{name} is a whole number {bounds}", name)
    return int(text)


def _instant(text: str) -> dt.datetime | None:
    """An RFC 3339 date-time (or ``..``, open) as naive UTC."""
    if text in ("..", ""):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"datetime: {text!r} is not an RFC 3339 date-time", "datetime") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _interval(text: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``start/end`` (either open as ``..``) or one instant."""
    if "/" not in text:
        moment = _instant(text)
        if moment is None:
            raise bad_request("datetime: an instant or an interval start/end", "datetime")
        return moment, moment
    start, _, end = text.partition("/")
    return _instant(start), _instant(end)


def _cursor(args: Mapping[str, str], name: str) -> tuple[dt.datetime, str] | None:
    text = args.get(name)
    if text is None:
        return None
    match = CURSOR.match(text)
    if match is None:
        raise bad_request(f"{name} is a page mark from a next or prev link", name)
    return dt.datetime.fromisoformat(match.group(1)), match.group(2)


def _values(args: MultiDict[str, str], name: str) -> list[str]:
    """A list parameter, repeated or comma-separated. An empty item is kept: ``status=`` names no
    state (a 400), and ``processID=`` no process (no job), as the OpenAPI document says."""
    return [v.strip() for given in args.getlist(name) for v in given.split(",")]


def list_query(args: MultiDict[str, str]) -> ListQuery:
    statuses = _values(args, "status")
    for code in statuses:
        if code not in STATES_OF:
            raise bad_request(f"status: {code!r} is none of {', '.join(STATES_OF)}", "status")
    types = _values(args, "type")
    for kind in types:
        if kind not in TYPES:
            raise bad_request(f"type: {kind!r} is not a job type here; jobs here are of type process", "type")
    start, end = _interval(args["datetime"]) if "datetime" in args else (None, None)
    shortest = _number(args, "minDuration", 0)
    longest = _number(args, "maxDuration", 0)
    limit = _number(args, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
    after, before = _cursor(args, "after"), _cursor(args, "before")
    if after and before:
        raise bad_request("a page is after one job or before one, not both", "before")
    process_ids = _values(args, "processID")
    if not all(p.isprintable() for p in process_ids):
        raise bad_request("processID: a process identifier has no control characters", "processID")
    which = JobFilter(
        statuses=tuple(s for code in statuses for s in STATES_OF[code]),
        processes=tuple(process_ids),
        created_from=start,
        created_to=end,
        min_duration=None if shortest is None else dt.timedelta(seconds=shortest),
        max_duration=None if longest is None else dt.timedelta(seconds=longest),
        limit=limit + 1,
        after=after,
        before=before,
    )
    params = {k: ",".join(args.getlist(k)) for k in KEPT if k in args}
    return ListQuery(which, limit, params)


def mark(position: tuple[dt.datetime, str]) -> str:
    """A page mark: the (created, id) of a job, as ``after`` and ``before`` take it."""
    return f"{position[0].isoformat(timespec='microseconds')}_{position[1]}"


def job_list(found: list[JobState], query: ListQuery, urls: Urls) -> dict[str, Any]:
    """``found``: up to one job more than a page, newest first; the extra one says another page follows
    in the direction of travel (older after ``after`` or from the top, newer before ``before``)."""
    backwards = query.which.before is not None
    more = len(found) > query.limit
    page = (found[1:] if backwards else found[:-1]) if more else found
    which = query.which
    here = {"after": mark(which.after)} if which.after else {"before": mark(which.before)} if which.before else {}
    links = [link(urls.of("/jobs", query.params | here), "self", "this page of jobs")]
    if page and (more or backwards):
        links.append(
            link(
                urls.of("/jobs", query.params | {"after": mark((page[-1].created_at, page[-1].id))}),
                "next",
                "older jobs",
            )
        )
    if page and (query.which.after is not None or (backwards and more)):
        links.append(
            link(
                urls.of("/jobs", query.params | {"before": mark((page[0].created_at, page[0].id))}),
                "prev",
                "newer jobs",
            )
        )
    return {"jobs": [status_info(job, urls) for job in page], "links": links}
