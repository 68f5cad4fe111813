"""What the cheap paths of a request (``GET /processes`` and its kind) keep doing right: the time in
the text log, the caller without users, Flask's coroutine check kept per function."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import pytest

from app.auth import Authenticator
from app.auth.settings import AuthSettings
from app.factory import ServiceFlask
from scheduler.access import ANONYMOUS_CALLER, Caller
from scheduler.logs import TextFormatter


def record_at(created: float) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
    record.created, record.msecs = created, (created - int(created)) * 1000
    return record


def test_the_text_log_tells_the_time_as_logging_itself_does_across_second_boundaries():
    ours, logging_own = TextFormatter(), logging.Formatter()
    start = int(time.time()) - 5
    for created in (start + 0.001, start + 0.999, start + 1.0, start + 1.5, start + 0.25, start + 3600.75):
        record = record_at(created)
        assert ours.formatTime(record) == logging_own.formatTime(record)


@pytest.mark.parametrize("message", ["boom", "boom\n"])
@pytest.mark.parametrize("traceback", [False, True])
@pytest.mark.parametrize("stack", [None, "Stack (most recent call last):\n  here"])
def test_the_text_log_writes_the_lines_logging_writes_with_the_same_layout(message, traceback, stack):
    """``TextFormatter`` writes its lines with an f-string: the same text as logging's own formatter
    with the layout it had (traceback and stack on the lines below, as logging adds them)."""
    logging_own = logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s%(job_tag)s: %(message)s")
    try:
        raise ValueError("inside")
    except ValueError:
        exc_info = sys.exc_info() if traceback else None
    for job_id in (None, "6f1c0c1e-7d3a-4f7e-9b8a-2a1d3c4b5e6f"):
        ours, theirs = (logging.LogRecord("x.y", logging.ERROR, __file__, 1, message, None, exc_info) for _ in "ab")
        theirs.created, theirs.msecs = ours.created, ours.msecs
        ours.stack_info = theirs.stack_info = stack
        ours.job_id = job_id  # type: ignore[attr-defined]
        theirs.job_tag = f" [job {job_id}]" if job_id else ""  # type: ignore[attr-defined]
        assert TextFormatter().format(ours) == logging_own.format(theirs)


class Untouchable:
    """A request whose every attribute is an error: nothing may read it."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"read request.{name}")


class Asked:
    def __init__(self, headers: dict[str, str], remote_addr: str | None) -> None:
        self.headers, self.remote_addr, self.method = headers, remote_addr, "GET"


def test_without_users_the_caller_is_anonymous_and_the_request_is_not_read():
    auth = Authenticator(AuthSettings(mode="none"))
    assert auth.caller_of("Execute", Untouchable()) == ANONYMOUS_CALLER  # type: ignore[arg-type]


def test_with_users_the_caller_comes_from_the_request_as_before():
    auth = Authenticator(AuthSettings(mode="header", header="X-Remote-User", trusted_proxies=("127.0.0.1",)))
    assert auth.caller_of("Execute", Asked({"X-Remote-User": "dave"}, "127.0.0.1")) == Caller("dave")
    with pytest.raises(Exception, match="proxies only"):
        auth.caller_of("Execute", Asked({"X-Remote-User": "dave"}, "192.0.2.1"))


def test_flask_answers_the_coroutine_question_once_per_function_and_as_flask_does():
    app = ServiceFlask(__name__)

    def view() -> str:
        return "ok"

    async def coroutine_view() -> str:
        await asyncio.sleep(0)
        return "ok"

    assert app.ensure_sync(view) is view
    assert app.ensure_sync(view) is view
    try:
        import asgiref  # noqa: F401
    except ImportError:  # Flask's own answer without its async extra, every time
        for _ in range(2):
            with pytest.raises(RuntimeError, match="async"):
                app.ensure_sync(coroutine_view)
    else:
        assert app.ensure_sync(coroutine_view) is app.ensure_sync(coroutine_view)
