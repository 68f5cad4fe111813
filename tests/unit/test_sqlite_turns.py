"""SQLite writers take turns on the flock beside the database: held from the first write to the end of
the transaction, never longer, and handed on whichever way the transaction ends."""

from __future__ import annotations

import fcntl
import os
import select
import threading
from pathlib import Path

import pytest
from sqlalchemy import event, text

from scheduler import sqlite_turns
from scheduler.db import make_engine


def turn_is_free(path: Path) -> bool:
    """Whether another open file (as another process has) could take the turn now."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@pytest.fixture
def engine_and_turn(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield engine, tmp_path / "jobs.sqlite.writers"
    engine.dispose()


def test_the_turn_is_held_from_the_first_write_to_the_commit(engine_and_turn):
    engine, turn = engine_and_turn
    with engine.begin() as conn:
        conn.execute(text("SELECT count(*) FROM t"))
        assert turn_is_free(turn)  # reading takes no turn
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert not turn_is_free(turn)
        conn.execute(text("UPDATE t SET x = 2"))
    assert turn_is_free(turn)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT x FROM t")).scalar_one() == 2


def test_a_rollback_and_an_exception_hand_the_turn_on(engine_and_turn):
    engine, turn = engine_and_turn
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        conn.rollback()
        assert turn_is_free(turn)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        raise RuntimeError("the caller failed mid-transaction")
    assert turn_is_free(turn)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0


def test_threads_writing_at_once_all_get_their_turn(engine_and_turn):
    engine, turn = engine_and_turn
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(50):
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": n * 100 + i})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT x) FROM t")).scalar_one() == 400
    assert turn_is_free(turn)


def test_a_forked_child_takes_turns_of_its_own_not_its_parents(engine_and_turn):
    """The parent has written (its turn's file is open) when it forks: a child sharing that open
    file would share its flock, and a turn the child holds would not keep the parent out."""
    engine, turn = engine_and_turn
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    parents = sqlite_turns.INSTALLED[engine]
    engine.dispose()  # no connection open at the fork, as the dispatcher forks its workers
    holding, done = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # the child holds a turn until the parent has looked
        code = 1
        try:
            with engine.begin() as mine:
                mine.execute(text("INSERT INTO t VALUES (2)"))
                os.write(holding[1], b"h")
                select.select([done[0]], [], [], 30)  # the parent has looked (or failed)
            code = 0
        finally:
            os._exit(code)
    assert os.read(holding[0], 1) == b"h"
    try:
        with pytest.raises(BlockingIOError):  # the parent's own file cannot take it either
            fcntl.flock(parents.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.write(done[1], b"d")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert turn_is_free(turn)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (3)"))
        assert sorted(conn.execute(text("SELECT x FROM t")).scalars()) == [1, 2, 3]


def test_a_database_in_memory_has_no_pool_and_no_turns():
    """What a container's launcher gets (``sqlite:///:memory:``): an engine that works, with nothing
    beside it on disk."""
    engine = make_engine("sqlite:///:memory:", threads=16)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert conn.execute(text("SELECT x FROM t")).scalar_one() == 1
    assert engine not in sqlite_turns.INSTALLED


def test_the_wal_is_checkpointed_every_so_many_commits_mostly_with_the_turn_handed_on(engine_and_turn, monkeypatch):
    """SQLite's own checkpoint would run inside the commit, with the turn held and every writer
    waiting: it is off. Each process checkpoints after every ``CHECKPOINT_EVERY`` commits of its own:
    the bulk once the turn has gone on, then with the turn what came meanwhile."""
    engine, turn = engine_and_turn
    monkeypatch.setattr(sqlite_turns, "CHECKPOINT_EVERY", 3)
    engine.dispose()  # new connections, traced from the start
    checkpoints: list[bool] = []  # for each checkpoint: was the turn free as it ran?

    @event.listens_for(engine, "connect")
    def traced(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        def statement(sql: str) -> None:
            if "wal_checkpoint" in sql:
                checkpoints.append(turn_is_free(turn))

        dbapi_connection.set_trace_callback(statement)

    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0
    sqlite_turns.INSTALLED[engine].commits = 0
    for x in range(7):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (x) VALUES (:x)"), {"x": x})
    assert checkpoints == [True, False, True, False]  # after the third and the sixth commit
    assert turn_is_free(turn)
    with engine.connect() as conn:  # and nothing was lost on the way
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 7


def test_the_wal_starts_over_while_writers_keep_writing(tmp_path: Path, monkeypatch):
    """A WAL is rewound to its start only once it has been copied to its last frame. Copied only while
    others write, it never is, and grows for ever (30 MB a second under synchronous executions)."""
    monkeypatch.setattr(sqlite_turns, "CHECKPOINT_EVERY", 10)
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.sqlite'}", threads=3)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x BLOB)"))

    def write() -> None:
        for _ in range(400):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t (x) VALUES (randomblob(3000))"))

    writers = [threading.Thread(target=write) for _ in range(3)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    try:
        # 1,200 rows of 3,000 bytes took 15 MB of WAL when it never started over; 10 commits take 80 kB.
        assert (tmp_path / "jobs.sqlite-wal").stat().st_size < 1_000_000
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1200
    finally:
        engine.dispose()
