"""Logging for every hpc-wps process: text or JSON lines, each record tagged with the job it serves.

The job id travels in a context variable set around the code that handles one job (``job_context``);
a filter on the handler copies it into every record, whichever logger wrote it (ours, a process
author's, a library's), so no call site formats the id into its message. The process id is in every
record too: web workers, the dispatcher and its local workers write to the same stream.

It lives with the job system, which tags its records (the dispatcher, the local pool, the launcher on
compute nodes); the web app configures it the same way for its own processes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from processes.setting_fields import setting


@dataclass(frozen=True)
class LoggingSettings:
    """The ``[logging]`` section."""

    level: str = setting("INFO", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    file: str = setting("", "log file; empty: standard error")
    format: str = setting(
        "text",
        "text lines, or one JSON object per line (time, level, logger, message, pid, job_id, ...)",
        choices=("text", "json"),
    )


_JOB_ID: ContextVar[str | None] = ContextVar("hpc_wps_job_id", default=None)
# What every LogRecord has; any other attribute was passed with ``extra=`` and goes into the JSON object.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "job_id",
}


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Tag every record logged inside the block, in this thread or task, with ``job_id``."""
    token = _JOB_ID.set(job_id)
    try:
        yield
    finally:
        _JOB_ID.reset(token)


class JobIdFilter(logging.Filter):
    """Sets ``record.job_id`` from the job context, unless the call passed one with ``extra=``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _JOB_ID.get()
        return True


class LineFormatter(logging.Formatter):
    """A formatter that also writes a line without a ``LogRecord``: for the access log, whose writer
    (``app/ops/deferred_log.py``) has a message, its time and its fields, and for which making a record
    and running logging's ``format`` cost three quarters of writing a line. ``format`` writes the same
    line from a record; records with a traceback or stack go through ``format`` only."""

    def line(self, name: str, level: str, created: float, message: str, fields: dict[str, object]) -> str:
        """The line of a record of logger ``name`` at ``level`` (``INFO``...), made at ``created`` with
        the message ``message`` (already %-formatted) and extra attributes ``fields`` (``job_id`` among
        them when it has one)."""
        raise NotImplementedError


class TextFormatter(LineFormatter):
    """``2026-12-01 10:00:00,123 4242 INFO hpc_wps.access [job <id>]: <message>``, the job tag only
    for a record of a job; a traceback on the lines below, as logging writes it. One layout (``line``)
    for records and for the access log's lines: as an f-string it costs a third of logging's
    ``%(name)s`` style, which the access log's writer paid on every line."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")  # a second, and its date and time as text

    def _asctime(self, created: float) -> str:
        """As logging's ``formatTime``, but the text of each second is made once: a busy web worker
        writes thousands of access lines a second, and ``strftime`` was a fifth of writing each."""
        second = int(created)
        if self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return self.default_msec_format % (self._second[1], int((created - second) * 1000))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._asctime(record.created)

    def format(self, record: logging.LogRecord) -> str:
        fields = {"job_id": getattr(record, "job_id", None)}
        text = self.line(record.name, record.levelname, record.created, record.getMessage(), fields)
        if record.exc_info and not record.exc_text:  # as logging.Formatter.format adds them
            record.exc_text = self.formatException(record.exc_info)
        for more in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if more:
                text = text + more if text.endswith("\n") else f"{text}\n{more}"
        return text

    def line(self, name: str, level: str, created: float, message: str, fields: dict[str, object]) -> str:
        job_id = fields.get("job_id")
        tag = f" [job {job_id}]" if job_id else ""
        return f"{self._asctime(created)} {os.getpid()} {level} {name}{tag}: {message}"


class JsonFormatter(LineFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, pid, job_id when there
    is one, the fields passed with ``extra=``, and the traceback of an exception as one string."""

    def format(self, record: logging.LogRecord) -> str:
        extra = {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES}
        entry = _entry(record.created, record.levelname, record.name, record.getMessage(), record.process)
        job_id = getattr(record, "job_id", None)
        if job_id:
            entry["job_id"] = job_id
        entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)

    def line(self, name: str, level: str, created: float, message: str, fields: dict[str, object]) -> str:
        entry = _entry(created, level, name, message, os.getpid())
        job_id = fields.get("job_id")
        if job_id:
            entry["job_id"] = job_id
        entry.update((key, value) for key, value in fields.items() if key not in _STANDARD_ATTRIBUTES)
        return json.dumps(entry, default=str)


def _entry(created: float, level: str, name: str, message: str, pid: int | None) -> dict[str, object]:
    return {
        "time": dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": name,
        "message": message,
        "pid": pid,
    }


def configure_logging(settings: LoggingSettings) -> None:
    """Send every record of this process to one handler (the file, else standard error)."""
    handler: logging.Handler = logging.FileHandler(settings.file) if settings.file else logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    handler.addFilter(JobIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    # urllib3 logs every request line at DEBUG, query string included, so credentials clients put in
    # input URLs (access_token=..., signed URLs) would reach the log; its INFO and above name none.
    logging.getLogger("urllib3.connectionpool").setLevel(max(logging.INFO, root.level))
