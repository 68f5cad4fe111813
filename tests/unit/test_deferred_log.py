"""Access lines noted by a request and written by a thread of their own (``app/ops/deferred_log.py``):
each written once, with its request's time and fields, by the writer, at exit, and never by a fork."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from app.ops.deferred_log import DeferredLines
from tests.conftest import wait_for

ARGS = ("GET", "/processes", "api:GetCapabilities", "-", 200, 0.001)
MESSAGE = "%s %s %s %s %d %.3f s"


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
