"""Access lines noted by a request and written by a thread of their own (``app/ops/deferred_log.py``):
each written once, with its request's time and fields, by the writer, at exit, and never by a fork."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import pytest

from app.ops.deferred_log import DeferredLines
from scheduler.logs import JobIdFilter, JsonFormatter, TextFormatter
from tests.conftest import wait_for

ARGS = ("GET", "/processes", "api:GetCapabilities", "-", 200, 0.001)
MESSAGE = "%s %s %s %s %d %.3f s"
JOB = "6f1c0c1e-7d3a-4f7e-9b8a-2a1d3c4b5e6f"


def kept(name: str) -> tuple[logging.Logger, list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, records


def test_a_noted_line_is_written_by_the_writer_with_its_time_and_fields():
    logger, records = kept("tests.deferred.writer")
    lines = DeferredLines(logger, interval=0.05)
    created = time.time() - 30.0
    lines.note(created, MESSAGE, ARGS, {"status": 200, "path": "/processes"})
    assert wait_for(lambda: records, timeout=10)
    (record,) = records
    assert record.getMessage() == "GET /processes api:GetCapabilities - 200 0.001 s"
    assert (record.levelno, record.name) == (logging.INFO, "tests.deferred.writer")
    assert record.created == created and int(record.msecs) == int((created % 1) * 1000)
    assert (record.status, record.path) == (200, "/processes")  # type: ignore[attr-defined]
    lines.note(time.time(), MESSAGE, ARGS, {})
    lines.flush()
    assert len(records) == 2  # each once, in order, whoever writes it


def test_lines_pending_at_a_normal_exit_are_written():
    code = (
        "import logging, sys\n"
        "from app.ops.deferred_log import DeferredLines\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.INFO, format='%(name)s %(message)s')\n"
        "lines = DeferredLines(logging.getLogger('exit'), interval=3600)\n"
        "for n in range(3):\n"
        "    lines.note(0.0, 'line %d', (n,), {})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["exit line 0", "exit line 1", "exit line 2"]


def test_a_forked_child_writes_its_own_lines_not_its_parents():
    logger, records = kept("tests.deferred.fork")
    lines = DeferredLines(logger, interval=3600)
    lines.note(time.time(), "parent's", (), {})
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what would it write?
        try:
            lines.note(time.time(), "child's", (), {})
            lines.flush()
            os.write(write, "|".join(r.getMessage() for r in records).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    written = os.read(read, 4096).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert written == "child's"
    lines.flush()
    assert [r.getMessage() for r in records] == ["parent's"]


class CountingStream:
    """A stream that keeps each ``write`` apart, to see how many a batch took."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        self.flushes += 1


def test_a_stream_handler_gets_a_batch_in_one_write_through_its_formatter_filters_and_level():
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s status=%(status)s"))
    handler.addFilter(lambda record: record.getMessage() != "GET /skipped")
    refusing = logging.StreamHandler(CountingStream())
    refusing.setLevel(logging.WARNING)  # access lines are INFO: this one writes none
    logger = logging.getLogger("tests.deferred.batch")
    logger.handlers[:] = [handler, refusing]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    lines = DeferredLines(logger, interval=3600)
    for path in ("/a", "/skipped", "/b"):
        lines.note(time.time(), "GET %s", (path,), {"status": 200})
    lines.flush()
    assert stream.writes == [
        "INFO tests.deferred.batch GET /a status=200\nINFO tests.deferred.batch GET /b status=200\n"
    ]
    assert stream.flushes == 1
    assert refusing.stream.writes == []  # type: ignore[attr-defined]
    lines.flush()  # nothing pending: nothing written
    assert len(stream.writes) == 1 and stream.flushes == 1


def test_lines_reach_the_parents_handlers_as_the_logger_itself_would_send_them():
    _, records = kept("tests.deferred.parent")
    child = logging.getLogger("tests.deferred.parent.child")
    child.handlers[:] = []
    child.propagate = True
    lines = DeferredLines(child, interval=3600)
    lines.note(time.time(), "line", (), {})
    lines.flush()
    assert [(r.name, r.getMessage()) for r in records] == [("tests.deferred.parent.child", "line")]
    child.propagate = False  # a logger that does not propagate, with no handler: logging's last resort
    lines.note(time.time(), "lost", (), {})
    lines.flush()
    assert len(records) == 1


@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter])
@pytest.mark.parametrize("fields", [{}, {"status": 404, "path": "/jobs/x", "job_id": JOB}], ids=["plain", "job"])
def test_lines_written_without_records_are_the_lines_logging_writes(formatter, fields):
    """The service's own formatters write an access line straight from its fields (``LineFormatter``):
    the same text, byte for byte, as logging's record of the same line through the same handler."""
    created = 1_700_000_000.987654  # a time whose milliseconds a careless rounding would change
    direct, through_records = CountingStream(), CountingStream()
    for stream, extra_filter in ((direct, None), (through_records, lambda record: True)):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter())
        handler.addFilter(JobIdFilter())
        if extra_filter is not None:  # a filter not of the service's: lines then go through records
            handler.addFilter(extra_filter)
        logger = logging.getLogger("tests.deferred.direct")  # each in turn
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
        lines = DeferredLines(logger, interval=3600)
        assert lines._direct([handler]) is (extra_filter is None)
        lines.note(created, MESSAGE, ARGS, dict(fields))
        lines.flush()
    mine, logging_own = direct.writes[0], through_records.writes[0]
    assert mine == logging_own
    if formatter is TextFormatter:
        assert mine.startswith(time.strftime("%Y-%m-%d %H:%M:%S,987 ", time.localtime(created)))
        assert (f" [job {JOB}]: " in mine) is bool(fields)
    else:
        entry = json.loads(mine)
        assert entry["message"] == "GET /processes api:GetCapabilities - 200 0.001 s"
        assert entry.get("job_id") == fields.get("job_id") and entry.get("status") == fields.get("status")
