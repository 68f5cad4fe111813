"""Log lines that a request only notes, and a thread of the worker's own writes a few times a second.

Making, formatting and writing a record in the request's thread cost a quarter of a cheap request
(``/processes``: 50 of 190 µs, measured in a web worker), most of it because the request has just
run through Flask and every line of logging's code runs cold. Noted in a queue, the request pays a
microsecond; the writer makes the records in a batch. nginx buffers its access log for the same
reason (``access_log ... buffer= flush=``).

Each record keeps the time its request ended. A worker that exits normally writes what is pending
(``atexit``, before logging shuts its handlers); a worker killed with SIGKILL loses at most the
last ``INTERVAL`` seconds of lines.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from typing import Any

INTERVAL = 0.2  # seconds between batches


class DeferredLines:
    """Records of one logger, made and handled by a writer thread started in each process that notes one."""

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL) -> None:
        self.logger = logger
        self.interval = interval
        self._pending: deque[tuple[float, str, tuple[Any, ...], dict[str, object]]] = deque()
        self._started_in: int | None = None  # the process whose writer runs
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forked)

    def note(self, created: float, message: str, args: tuple[Any, ...], fields: dict[str, object]) -> None:
        """An INFO record of ``message % args`` with ``fields`` as its extra attributes, made later;
        ``created`` is its ``time.time()``."""
        self._pending.append((created, message, args, fields))
        if self._started_in != os.getpid():
            self._start()

    def flush(self) -> None:
        """Make and handle every pending record, oldest first."""
        logger, pending = self.logger, self._pending
        while pending:
            try:
                created, message, args, fields = pending.popleft()
            except IndexError:  # the other thread took the last one
                return
            record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, args, None, extra=fields)
            record.created = created
            record.msecs = (created - int(created)) * 1000
            logger.handle(record)

    def _start(self) -> None:
        with self._lock:
            if self._started_in == os.getpid():
                return
            self._started_in = os.getpid()
            threading.Thread(target=self._run, name=f"{self.logger.name} writer", daemon=True).start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()

    def _forked(self) -> None:
        """A child has no writer thread, and the parent's pending lines are the parent's to write."""
        self._pending.clear()
        self._started_in = None
        self._lock = threading.Lock()
