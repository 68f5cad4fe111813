"""Ending a job that a web worker runs: at its time limit, or once its client has hung up.

Such a job runs in the thread serving its request (gunicorn's gthread workers), beside the threads
serving other requests, so neither SIGALRM (delivered to the main thread only) nor killing a process
can end it alone. Python cannot kill a thread; it can raise an exception in one
(``PyThreadState_SetAsyncExc``), which the thread meets at its next bytecode. So one watcher thread per
running job looks every WATCH_INTERVAL at the clock and at the client, and raises
:class:`TimeLimitExceeded` or :class:`ClientGone` in the job's thread, once.

Why once: the exception may reach the job's thread while it is already leaving the block; raised
again, a later one could land in code that serves the next request. Both are BaseExceptions, so a
handler's ``except Exception`` does not swallow them; a handler that catches BaseException runs on.

The limit, said plainly: a thread blocked inside one C call (a long ``time.sleep``, a numeric kernel, a
blocking read) meets the exception when that call returns. Fetches of remote inputs have their own
deadline (``[inputs] sync_fetch_timeout``); the built-in processes sleep in steps.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from types import TracebackType

WATCH_INTERVAL = 0.25  # seconds between two looks at the clock and the client

ClientCheck = Callable[[], bool]  # True once the client of the request has gone


class TimeLimitExceeded(BaseException):
    """The job ran out of its time."""


class ClientGone(BaseException):
    """The client that waits for the job's answer has hung up: nobody will read it."""


def _raise_in(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Have ``thread_id`` raise ``exc_type`` at its next bytecode; None withdraws one not raised yet."""
    # ctypes passes None as NULL, which is what withdraws; py_object(None) would raise Py_None itself.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), None if exc_type is None else ctypes.py_object(exc_type)
    )


class Interruptible:
    """``with Interruptible(seconds, client_gone):`` ends the block with :class:`TimeLimitExceeded`
    after ``seconds`` (None: no limit), or with :class:`ClientGone` once ``client_gone()`` says so."""

    def __init__(self, seconds: float | None, client_gone: ClientCheck | None = None) -> None:
        self.seconds = seconds
        self.client_gone = client_gone
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._thread_id = 0
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> Interruptible:
        if self.seconds is None and self.client_gone is None:
            return self
        self._thread_id = threading.get_ident()
        self._watcher = threading.Thread(target=self._watch, name="job-watcher", daemon=True)
        self._watcher.start()
        return self

    def _watch(self) -> None:
        ends = None if self.seconds is None else time.monotonic() + self.seconds
        while not self._ended.wait(WATCH_INTERVAL if ends is None else min(WATCH_INTERVAL, ends - time.monotonic())):
            if ends is not None and time.monotonic() >= ends:
                reason: type[BaseException] = TimeLimitExceeded
            elif self.client_gone is not None and self.client_gone():
                reason = ClientGone
            else:
                continue
            with self._lock:
                if not self._ended.is_set():
                    _raise_in(self._thread_id, reason)
            return

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._watcher is None:
            return
        with self._lock:
            self._ended.set()
            _raise_in(self._thread_id, None)  # raised by the watcher but not yet met: withdrawn
        self._watcher.join()
