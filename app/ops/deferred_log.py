"""Log lines that a request only notes, and a thread of the worker's own writes a few times a second.

Making, formatting and writing a record in the request's thread cost a quarter of a cheap request
(``/processes``: 50 of 190 µs, measured in a web worker), most of it because the request has just
run through Flask and every line of logging's code runs cold. Noted in a queue, the request pays a
microsecond; the writer makes the records in a batch. nginx buffers its access log for the same
reason (``access_log ... buffer= flush=``).

The writer hands a batch to a stream or file handler (what ``[logging]`` configures) as one write
and one flush: handled one by one, each record took the handler's lock twice and a ``write`` system
call of its own. When every handler is one of the service's own (``_direct``: its text or JSON
formatter, no filter but the job tag's) no record is made at all: the formatter writes each line
from its time, message and fields (``LineFormatter.line``), a third of what making a record and
running logging's ``format`` cost (22,000 instructions a line against 68,000). Otherwise records
are copied from the batch's first (``_records``); a handler that is not a plain stream or file
handler gets them one by one, as from the logger itself.

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

from scheduler.logs import JobIdFilter, LineFormatter

INTERVAL = 0.2  # seconds between batches
# Handlers whose ``emit`` is "format, write to ``stream``, flush": a batch can be one write. Their
# subclasses (rotating files, say) may do more per record, so only these exact classes.
BATCHED = (logging.StreamHandler, logging.FileHandler)
Pending = tuple[float, str, tuple[Any, ...], dict[str, object]]  # (time, message, its args, fields)


class DeferredLines:
    """Records of one logger, made and handled by a writer thread started in each process that notes one."""

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL) -> None:
        self.logger = logger
        self.interval = interval
        self._pending: deque[Pending] = deque()
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
        pending = self._taken()
        if not pending:
            return
        handlers = self._handlers()
        if handlers and self._direct(handlers):
            for handler in handlers:
                formatter: LineFormatter = handler.formatter  # type: ignore[assignment]  # ``_direct`` checked
                name, line = self.logger.name, formatter.line
                _write(
                    handler,
                    [line(name, "INFO", created, message % args, fields) for created, message, args, fields in pending],
                )
            return
        records = self._records(pending)
        if not handlers:  # logging's own fallback (``lastResort``) decides
            for record in records:
                self.logger.handle(record)
            return
        for handler in handlers:
            wanted = [r for r in records if r.levelno >= handler.level]
            if _batched(handler):
                _write(handler, [_formatted(handler, r) for r in wanted if handler.filter(r)])
            else:
                for record in wanted:
                    handler.handle(record)

    def _taken(self) -> list[Pending]:
        """The pending lines, taken off the queue."""
        pending, taken = self._pending, []
        while pending:
            try:
                taken.append(pending.popleft())
            except IndexError:  # the other thread took the last one
                break
        return taken

    def _direct(self, handlers: list[logging.Handler]) -> bool:
        """Whether every line can be written without a record: the logger enabled for INFO and
        filtering nothing, and each handler a batched one, taking INFO, whose formatter writes lines
        (``LineFormatter``) and whose only filters tag a job (done from the line's ``job_id``)."""
        logger = self.logger
        return (
            not logger.disabled
            and not logger.filters
            and all(
                _batched(h)
                and h.level <= logging.INFO
                and isinstance(h.formatter, LineFormatter)
                and all(type(f) is JobIdFilter for f in h.filters)
                for h in handlers
            )
        )

    def _records(self, pending: list[Pending]) -> list[logging.LogRecord]:
        """The pending lines as records; those the logger's own filters pass.

        The logger makes the batch's first record; the others are copies of it with their own message,
        time and fields. What else a record holds (the writer's thread, the process, this file as the
        caller) is the same for every line of a batch, and making each anew was half a line's cost."""
        logger, records = self.logger, []
        first: dict[str, Any] | None = None
        for created, message, args, fields in pending:
            if first is None:
                made = logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, args, None)
                kind, first = type(made), vars(made)
            record = kind.__new__(kind)
            vars(record).update(
                first,
                msg=message,
                args=args,
                created=created,
                msecs=(created - int(created)) * 1000,
                relativeCreated=(created - first["created"]) * 1000 + first["relativeCreated"],
            )
            vars(record).update(fields)
            if not logger.disabled and logger.filter(record):
                records.append(record)
        return records

    def _handlers(self) -> list[logging.Handler]:
        """The handlers ``logger.handle`` would call: the logger's, then its parents' while it propagates."""
        handlers: list[logging.Handler] = []
        logger: logging.Logger | None = self.logger
        while logger is not None:
            handlers.extend(logger.handlers)
            logger = logger.parent if logger.propagate else None
        return handlers

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


def _batched(handler: logging.Handler) -> bool:
    return type(handler) in BATCHED and getattr(handler, "stream", None) is not None


def _formatted(handler: logging.Handler, record: logging.LogRecord) -> str:
    try:
        return handler.format(record)
    except Exception:
        handler.handleError(record)  # as ``emit`` does for a record it cannot format
        return ""


def _write(handler: logging.StreamHandler, lines: list[str]) -> None:
    """``lines`` (an empty one: a record that could not be formatted) in one write and one flush."""
    text = "".join(line + handler.terminator for line in lines if line)
    if not text:
        return
    with handler.lock:
        try:
            handler.stream.write(text)
            handler.flush()
        except Exception:
            handler.handleError(None)  # type: ignore[arg-type]  # it reads the record only to print it
