"""A job as the job service hands it out: a frozen value read once from its table row.

Callers (the protocol bindings, the operator commands) read attributes, never columns, so a change of
the table's shape stays inside the job system. Not to be confused with ``scheduler.models.Job``, the
table declaration it is read from.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes.text import clean_message
from scheduler.models import JobStatus


@dataclass(frozen=True)
class Job:
    """Every column of a job, in the table's order (the operator's JSON listing keeps it)."""

    id: str
    process_id: str
    status: JobStatus
    progress: int | None
    message: str | None
    version: str  # of the protocol request that created it, so its documents can be rendered later
    mode: str  # sync | async
    request: dict[str, Any]  # inputs as sent, requested outputs, resources: enough to run it anywhere
    outputs: list[dict[str, Any]] | None  # output records, once it has succeeded
    executor: str | None
    native_id: str | None
    claimed_by: str | None
    native_active: bool
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    updated_at: dt.datetime
    expires_at: dt.datetime | None
    owner: str  # the user who submitted it; ANONYMOUS without authentication

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        return cls(**_values(row, _FIELDS))

    def as_dict(self) -> dict[str, Any]:
        """Column name to value, shallow: the request and outputs are the job's own objects."""
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(field.name for field in dataclasses.fields(Job))  # looked up once, not per row


def _values(row: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The columns ``names`` of a row as a Job's or JobState's fields. The message is cleaned on the way
    out as well as in (``lifecycle``): rows written before messages were cleaned, or by hand, reach
    every document and terminal without control characters."""
    message = row["message"]
    values = {name: row[name] for name in names}
    return values | {"status": JobStatus(row["status"]), "message": clean_message(message) if message else message}


@dataclass(frozen=True)
class JobState:
    """A job as a list of jobs shows it: its status, without the request and outputs it carries.

    A listing shows neither, and its rows read without those two JSON documents (and the columns only
    the dispatcher uses) cost a third as much: 50 rows of a table of 100,000, 0.4 against 1.3 ms."""

    id: str
    process_id: str
    status: JobStatus
    progress: int | None
    message: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobState:
        return cls(**_values(row, STATE_COLUMNS))


STATE_COLUMNS = tuple(field.name for field in dataclasses.fields(JobState))  # what a JobState is read from


@dataclass(frozen=True)
class OutputFile:
    """An output file a job recorded, found where the job left it."""

    path: Path
    mime_type: str | None
