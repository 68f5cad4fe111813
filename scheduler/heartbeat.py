"""Dispatcher heartbeats: each dispatcher keeps one row of the dispatchers table fresh.

The dispatcher's own loop calls ``beat()`` every cycle; it writes at most once per interval, so a
busy loop costs the table one small UPDATE every few seconds, and a loop that hangs stops beating,
which is what /health must see. A dispatcher that stops cleanly removes its row; one that dies
leaves a row that goes stale, and is deleted by the next dispatcher to start once it is a day old.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from scheduler.models import DISPATCHERS, utcnow

log = logging.getLogger(__name__)

FORGET_AFTER = dt.timedelta(days=1)  # rows of dead dispatchers kept this long for operators to see


@dataclass(frozen=True)
class DispatcherState:
    id: str
    host: str
    pid: int
    executors: str
    started_at: dt.datetime
    beat_at: dt.datetime
    age: float  # seconds since its last beat
    alive: bool


class Heartbeat:
    def __init__(self, engine: Engine, executors: Iterable[str], interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self.id = uuid.uuid4().hex
        self.row = {
            "id": self.id,
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "executors": ",".join(sorted(executors))[:255],
            "started_at": utcnow(),
        }
        self._next = 0.0
        self._written = False

    def beat(self) -> None:
        """Write the heartbeat if an interval has passed since the last one.

        A table out of reach is logged, never raised: the loop must go on dispatching, and /health
        sees the stale beat anyway.
        """
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        try:
            with self.engine.begin() as conn:
                beat_at = utcnow()
                if self._written:
                    stmt = update(DISPATCHERS).where(DISPATCHERS.c.id == self.id).values(beat_at=beat_at)
                    if conn.execute(stmt).rowcount == 1:
                        return
                else:  # the first beat clears rows long dead
                    conn.execute(delete(DISPATCHERS).where(DISPATCHERS.c.beat_at < beat_at - FORGET_AFTER))
                conn.execute(insert(DISPATCHERS).values({**self.row, "beat_at": beat_at}))
                self._written = True
        except SQLAlchemyError as exc:
            log.warning("dispatcher heartbeat not written: %s", exc)

    def stop(self) -> None:
        """Remove this dispatcher's row: it stopped on purpose."""
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(DISPATCHERS).where(DISPATCHERS.c.id == self.id))
        except SQLAlchemyError as exc:
            log.warning("dispatcher heartbeat not removed: %s", exc)


def dispatchers(conn: Connection, timeout: float) -> list[DispatcherState]:
    """Every dispatcher with a row, newest beat first; alive: it beat within ``timeout`` seconds."""
    now = utcnow()
    states = []
    for row in conn.execute(select(DISPATCHERS).order_by(DISPATCHERS.c.beat_at.desc())).mappings():
        age = max(0.0, (now - row["beat_at"]).total_seconds())
        states.append(DispatcherState(**row, age=age, alive=age <= timeout))
    return states
