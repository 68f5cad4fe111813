"""Dispatcher heartbeats: each dispatcher keeps one row of the dispatchers table fresh.

The dispatcher's own loop calls ``beat()`` every cycle; it writes at most once per interval, so a
busy loop costs the table one small UPDATE every few seconds, and a loop that hangs stops beating,
which is what /health must see. A dispatcher that stops cleanly removes its row; one that stops on an
exception marks its row ended, with the exception's type; one that is killed leaves a row that goes
stale. The next dispatcher to start deletes ended rows after CRASH_WINDOW and stale ones after a day.

Rows that ended or went stale are how /health tells a crash loop (``crash_loops``): a supervisor that
restarts a dispatcher which keeps dying gives a fresh, beating dispatcher most of the time, and
without them the service would look healthy while no job gets anywhere.
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
# CRASH_LOOP dispatchers of one host ending without being stopped within CRASH_WINDOW: a crash loop.
# Rows of dispatchers that ended on an exception are kept that long (a loop would pile them up).
CRASH_WINDOW = dt.timedelta(minutes=5)
CRASH_LOOP = 3


@dataclass(frozen=True)
class DispatcherState:
    id: str
    host: str
    pid: int
    executors: str
    started_at: dt.datetime
    beat_at: dt.datetime
    ended_at: dt.datetime | None  # when it stopped on an exception
    failure: str | None  # the exception's type
    age: float  # seconds since its last beat
    alive: bool  # not ended, and beat recently

    @property
    def gone_at(self) -> dt.datetime | None:
        """When it ended without being stopped: on an exception, or (killed, or hung) at its last beat."""
        return self.ended_at or (None if self.alive else self.beat_at)


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
                    conn.execute(
                        delete(DISPATCHERS).where(
                            (DISPATCHERS.c.beat_at < beat_at - FORGET_AFTER)
                            | (DISPATCHERS.c.ended_at < beat_at - CRASH_WINDOW)
                        )
                    )
                conn.execute(insert(DISPATCHERS).values({**self.row, "beat_at": beat_at}))
                self._written = True
        except SQLAlchemyError as exc:
            log.warning("dispatcher heartbeat not written: %s", exc)

    def stop(self, failure: BaseException | None = None) -> None:
        """Remove this dispatcher's row: it stopped on purpose. Stopped by ``failure`` instead, keep the
        row, marked ended with the exception's type, for /health to count."""
        try:
            with self.engine.begin() as conn:
                if failure is None:
                    conn.execute(delete(DISPATCHERS).where(DISPATCHERS.c.id == self.id))
                    return
                now = utcnow()
                ended = {"ended_at": now, "failure": type(failure).__name__[:255]}
                stmt = update(DISPATCHERS).where(DISPATCHERS.c.id == self.id).values(ended)
                if conn.execute(stmt).rowcount == 0:  # it died before its first beat
                    conn.execute(insert(DISPATCHERS).values({**self.row, "beat_at": now, **ended}))
        except SQLAlchemyError as exc:
            log.warning("dispatcher heartbeat not removed: %s", exc)


def dispatchers(conn: Connection, timeout: float) -> list[DispatcherState]:
    """Every dispatcher with a row, newest beat first; alive: not ended, and it beat within ``timeout`` seconds."""
    now = utcnow()
    states = []
    for row in conn.execute(select(DISPATCHERS).order_by(DISPATCHERS.c.beat_at.desc())).mappings():
        age = max(0.0, (now - row["beat_at"]).total_seconds())
        states.append(DispatcherState(**row, age=age, alive=row["ended_at"] is None and age <= timeout))
    return states


def crash_loops(states: Iterable[DispatcherState]) -> dict[str, list[DispatcherState]]:
    """Hosts where at least CRASH_LOOP dispatchers ended without being stopped within the last
    CRASH_WINDOW, with those dispatchers, the latest first."""
    since = utcnow() - CRASH_WINDOW
    gone: dict[str, list[DispatcherState]] = {}
    for state in states:
        if (at := state.gone_at) is not None and at >= since:
            gone.setdefault(state.host, []).append(state)
    return {
        host: sorted(ended, key=lambda d: d.gone_at or since, reverse=True)
        for host, ended in gone.items()
        if len(ended) >= CRASH_LOOP
    }
