"""A job's subscribers: where a client asked to be told of the job's progress and end (the callback
class of OGC API - Processes: ``successUri``, ``failedUri``, ``inProgressUri``), as the job system
keeps them, and what it sends them.

The job system speaks no protocol: a binding hands :class:`Subscribers` to ``JobService.submit`` or
``run``, and the dispatcher (``scheduler/notifier.py``) POSTs to them a document a
:data:`NotificationBody` renders from the :class:`~scheduler.job.Job`. The binding that defines the
document passes its renderer to the dispatcher where the dispatcher is built (``hpc-wps dispatcher``,
``app/cli.py``); without one, :func:`neutral_body` sends the job's own fields as JSON.

The URIs are checked like references when a notification is sent (``[inputs]`` destinations,
redirects, credentials); here only that they are http(s) URLs with a host. A URI's credentials (a
password, an access token in its query) are stored as inputs' are: shown as ``***``, sealed with the
key of the jobs directory (``processes.fetch.seal_inputs``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from processes.fetch import seal_inputs, unseal_inputs
from scheduler.errors import InvalidSubscriber
from scheduler.job import Job


@dataclass(frozen=True)
class Subscribers:
    """The URIs a client gave; None: not told of that event."""

    success_uri: str | None = None
    failed_uri: str | None = None
    in_progress_uri: str | None = None


class Event(enum.StrEnum):
    """What a notification tells, by the field of :class:`Subscribers` that receives it."""

    SUCCESS = "success_uri"  # the job succeeded
    FAILED = "failed_uri"  # the job failed
    IN_PROGRESS = "in_progress_uri"  # the job started running, or its progress changed


@dataclass(frozen=True)
class Notification:
    """A rendered notification: the bytes POSTed and their media type."""

    content: bytes
    media_type: str = "application/json"


# Renders what a subscriber receives for a job and an event (the binding's documents: for OGC API -
# Processes the results for success, the statusInfo otherwise). Called in the dispatcher's delivery
# threads, never in its loop, so it may read output files.
NotificationBody = Callable[[Job, Event], Notification]


def _iso(value: Any) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def neutral_body(job: Job, event: Event) -> Notification:
    """The job's state as plain JSON, in no protocol's vocabulary: what is sent when no binding gave
    a renderer. Its outputs as the job recorded them (literal values inline, complex ones as file names)."""
    document: dict[str, Any] = {
        "event": event.value,
        "jobID": job.id,
        "processID": job.process_id,
        "status": job.status.value,
        "message": job.message,
        "progress": job.progress,
        "created": _iso(job.created_at),
        "started": _iso(job.started_at),
        "finished": _iso(job.finished_at),
        "updated": _iso(job.updated_at),
    }
    if event is Event.SUCCESS:
        document["outputs"] = job.outputs or []
    return Notification(json.dumps(document).encode("utf-8"))


def _check(event: Event, uri: str) -> None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 (a port out of range raises here)
    except ValueError:
        raise InvalidSubscriber(event.value, f"{event.value} is not a usable URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidSubscriber(event.value, f"{event.value} must be an http(s) URL with a host")


def stored(subscribers: Subscribers | None, jobs_dir: Path) -> list[dict[str, Any]] | None:
    """What the job table keeps: one entry per URI given (``id``: its :class:`Event`), credentials
    redacted and sealed; None when there is none. Raises :class:`InvalidSubscriber` for a URI that is
    not an http(s) URL."""
    if subscribers is None:
        return None
    given = [
        {"id": event.value, "href": uri} for event in Event if (uri := getattr(subscribers, event.value)) is not None
    ]
    for entry in given:
        _check(Event(entry["id"]), entry["href"])
    return seal_inputs(given, jobs_dir) or None


def destination(entries: list[dict[str, Any]] | None, event: Event) -> dict[str, Any] | None:
    """The stored entry of ``event``, credentials still sealed (its ``href`` is fit for a log)."""
    return next((entry for entry in entries or [] if entry.get("id") == event.value), None)


def unsealed(entry: dict[str, Any], jobs_dir: Path) -> str:
    """The URI of a stored entry with its credentials, for the request only. Raises
    ``processes.fetch.InputError`` when the jobs directory's key cannot open it."""
    return unseal_inputs([entry], jobs_dir)[0]["href"]
