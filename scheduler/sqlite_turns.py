"""Writers to one SQLite job table take turns on a lock the kernel hands over, not in SQLite's busy loop.

SQLite lets one writer at a time into a database; a writer that finds it taken sleeps and tries again,
1, 2, 5, 10 ... up to 100 ms a time, until its busy timeout. Under a burst of submissions from the
request threads of the web workers beside the dispatcher and its workers, an unlucky writer loses
many rounds in a row while others come and go between its naps: a write of a fraction of a
millisecond then answers its client after 0.5 to 0.8 s (measured here: 500 submissions from 16
clients, the slowest 1 % all waiting in that loop).

Here a connection takes the table's turn just before its first write statement (where SQLite's
Python driver begins its transaction, and where SQLite would lock) and gives it back once its
transaction has committed or rolled back, or, failing that, when it goes back to the pool. The threads of a
process queue on a lock, and the processes on an ``flock`` of a file beside the database, which the
kernel hands to the next writer at once, and frees when a holder dies. So writers still overlap
nothing they did not overlap before, and wait only as long as the write before them takes.

The WAL is copied back into the database (a checkpoint) after the turn has gone on, not inside it.
SQLite's own automatic checkpoint runs within the commit that crosses 1,000 pages, and so here with
the turn held: such a commit took 8 to 28 ms against well under one (measured: 500 submissions from
4 clients), and every writer queued behind it. Each process instead checkpoints after every
``CHECKPOINT_EVERY`` of its commits: the bulk without the turn (PASSIVE: it waits for no one and no
one waits for it), then with the turn the few frames committed meanwhile, so that the WAL is copied
to its end and starts over (``WriteTurns.committed``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# Commits of one process between its checkpoints. A job's transactions write about ten pages each
# (a row and its indexes), so this is near SQLite's own 1,000 pages, counted per process.
CHECKPOINT_EVERY = 100


class WriteTurns:
    """One database file's turn, for the threads of this process and the processes of this host."""

    def __init__(self, path: str, patience: float) -> None:
        self.path, self.patience = path, patience
        self.fd: int | None = None
        self.holder: Any = None  # the DB-API connection of this process that holds the turn
        self._fresh()
        os.register_at_fork(after_in_child=self._fresh)

    def _fresh(self) -> None:
        """A forked child queues on its own: a lock no thread of the parent held, and its own open file
        (one shared with the parent would share the parent's flock)."""
        if self.fd is not None:
            os.close(self.fd)
        self.fd, self.lock, self.holder = None, threading.Lock(), None
        self.commits = 0  # of this process since its last checkpoint

    def take(self, connection: Any) -> None:
        """Wait for the turn for ``connection``. After ``patience`` seconds of waiting on another thread
        of this process (one that writes on two connections at once would wait for itself) the writer
        goes on without a turn, and SQLite's own busy timeout decides."""
        if self.holder is connection or not self.lock.acquire(timeout=self.patience):
            return
        try:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self.lock.release()
            raise
        self.holder = connection

    def give_back(self, connection: Any) -> None:
        """The turn goes on if ``connection`` holds it (its transaction is over); the pool's proxy of
        a connection stands for the connection."""
        if self.holder is getattr(connection, "dbapi_connection", connection) and self.fd is not None:
            self.holder = None
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.lock.release()

    def committed(self, connection: Any) -> None:
        """``connection`` has committed and given the turn back: every ``CHECKPOINT_EVERY`` commits
        of this process it copies the WAL back into the database. The bulk is copied holding nothing
        another writer waits for (a PASSIVE checkpoint copies what no reader still needs, and
        returns); then, with the turn, what was committed meanwhile, a few frames. Only a WAL copied
        to its last frame starts over from its beginning at the next write: copied without the
        turn alone, a busy service's WAL never was, and grew by 30 MB a second (synchronous
        executions; reads slowed as it grew)."""
        self.commits += 1
        if self.commits < CHECKPOINT_EVERY:
            return
        self.commits = 0
        raw = getattr(connection, "dbapi_connection", connection)  # the turn's holder is SQLite's connection
        try:
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
            self.take(raw)
            try:
                raw.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
            finally:
                self.give_back(raw)
        except sqlite3.Error as exc:  # the next one copies what this one could not
            log.debug("WAL checkpoint skipped: %s", exc)


# Each engine's turns, for whoever must see them (the tests).
INSTALLED: weakref.WeakKeyDictionary[Engine, WriteTurns] = weakref.WeakKeyDictionary()


def install(engine: Engine, path: str, patience: float) -> WriteTurns:
    """Make every connection of ``engine`` take ``path``'s turn for its writes.

    The turn goes back once SQLite has committed or rolled back, not as SQLAlchemy is about to: a
    writer let in before the commit is through would find SQLite locked, and nap a millisecond. So
    this engine's dialect commits and rolls back through :func:`_then_give_back`."""
    turns = WriteTurns(path, patience)
    dialect = engine.dialect

    def before_execute(conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip()[:7].upper().startswith(WRITES):
            turns.take(cursor.connection)

    def checked_in(dbapi_connection: Any, _record: Any) -> None:
        turns.give_back(dbapi_connection)  # a connection back in the pool holds nothing

    def connected(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0").close()  # ``committed`` checkpoints

    event.listen(engine, "connect", connected)
    event.listen(engine, "before_cursor_execute", before_execute)
    event.listen(engine, "checkin", checked_in)
    dialect.do_commit = _then_give_back(dialect.do_commit, turns, turns.committed)  # type: ignore[method-assign]
    dialect.do_rollback = _then_give_back(dialect.do_rollback, turns)  # type: ignore[method-assign]
    INSTALLED[engine] = turns
    return turns


def _then_give_back(
    end: Callable[[Any], None], turns: WriteTurns, then: Callable[[Any], None] | None = None
) -> Callable[[Any], None]:
    """``end`` (commit or roll back), the turn given back, then ``then`` if ``end`` went through."""

    def ended(dbapi_connection: Any) -> None:
        try:
            end(dbapi_connection)
        finally:
            turns.give_back(dbapi_connection)
        if then is not None:
            then(dbapi_connection)

    return ended
