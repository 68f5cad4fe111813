"""Engines for the job table, tuned per backend, and safe to use again in a forked child."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

from scheduler import sqlite_turns

SQLITE_BUSY_TIMEOUT_MS = 30_000
# What the job table's reads and writes run on: an Engine (a transaction of their own) or an open
# Connection (the caller's transaction, so that a dispatcher cycle takes one write lock, not many).
Bind = Engine | Connection


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; the busy timeout makes writers wait for each other
    # instead of failing with "database is locked" (they take turns first, ``sqlite_turns``); NORMAL
    # sync is durable in WAL mode across crashes of the process (not of the machine), which is the
    # trade every job queue on SQLite makes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, threads: int = 1) -> Engine:
    """An engine for ``url`` whose pool keeps a connection for each of ``threads`` threads that use it
    at once (a web worker's request threads): beyond its pool an engine opens a connection for one
    use and closes it, which costs a PostgreSQL connection set-up, or SQLite's pragmas, per request."""
    pool = {"pool_size": max(5, threads + 1), "max_overflow": 10}
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        in_file = bool(path) and path != ":memory:"  # in memory, one connection is the database: no pool
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **(pool if in_file else {}),
        )
        if in_file:
            path = os.path.abspath(path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            sqlite_turns.install(engine, path + ".writers", SQLITE_BUSY_TIMEOUT_MS / 1000)
        event.listen(engine, "connect", _sqlite_pragmas)
        os.register_at_fork(before=_closing_before_fork(engine))
        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


def _closing_before_fork(engine: Engine) -> Callable[[], None]:
    """A hook that closes the engine's idle SQLite connections in a process about to fork.

    SQLite's locks are POSIX locks, which a child does not inherit, while its in-memory record of
    them is copied: a child that opens a connection beside an inherited one shares that record,
    believes it holds the locks already and takes none. In WAL mode every open connection holds a
    shared lock on the database file and on the wal-index, and their absence is how SQLite concludes
    that nobody else uses the database. Once the parent and its peers are gone (a restart while a
    pool worker still finishes its job, or ``kill -9`` of the service), the next process to open the
    database resets the wal-index, or checkpoints and deletes the WAL, under the worker still writing
    to it, and the database is corrupt ("database disk image is malformed"). With no SQLite
    connection open at the fork, the child's connections are its own, and take their locks.
    A fork inside a transaction (a connection checked out) cannot be helped this way: do not.
    """
    ref = weakref.ref(engine)

    def close_idle_connections() -> None:
        alive = ref()
        if alive is not None:
            alive.dispose()

    return close_idle_connections


@contextmanager
def transaction(bind: Bind, write: bool = True) -> Iterator[Connection]:
    """The caller's connection, or one of the engine's: in a transaction to commit when ``write``."""
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.begin() if write else bind.connect() as conn:
            yield conn


def after_fork(engine: Engine) -> None:
    """Drop the parent's pooled connections in a forked child without closing them under the parent."""
    engine.dispose(close=False)
