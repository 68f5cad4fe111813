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
TEXT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s%(job_tag)s: %(message)s"
# What every LogRecord has; any other attribute was passed with ``extra=`` and goes into the JSON object.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "job_id",
    "job_tag",
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


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second: tuple[int, str] = (-1, "")  # a second, and its date and time as text

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """As logging's, but the text of each second is made once: a busy web worker writes thousands of
        access lines a second, and ``strftime`` was a fifth of writing each."""
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return self.default_msec_format % (self._second[1], record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        job_id = getattr(record, "job_id", None)
        record.job_tag = f" [job {job_id}]" if job_id else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, pid, job_id when there
    is one, the fields passed with ``extra=``, and the traceback of an exception as one string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        job_id = getattr(record, "job_id", None)
        if job_id:
            entry["job_id"] = job_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


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
