"""The production shape under load: ``hpc-wps serve`` (gunicorn with the configuration's workers, and
the dispatcher) on SQLite in WAL mode and on PostgreSQL, driven by ``bench/load_mixed.py``: 50 clients
for 60 s mixing GetCapabilities, DescribeProcess, synchronous and asynchronous Execute, GetStatus and
output downloads. Nothing may answer 5xx or not at all, every accepted job must end, and the server's
log may not say "database is locked"."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer, fresh_pg_database
from tests.production.harness import run_mixed_load, unfinished_jobs

pytestmark = pytest.mark.slow

CLIENTS = 50
SECONDS = 60.0
DRAIN = 120.0  # seconds the accepted jobs get to end once the load stops


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    """The service as deployed, with its default web workers, on a job table of its own."""
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(fresh_pg_database()) if request.param == "postgresql" else ""
        server = LiveServer(tmp_path / "service", database_url=database)
        stack.callback(server.stop)
        server.start()
        yield server, database or f"sqlite:///{server.workdir / 'var' / 'jobs.sqlite'}"


def test_fifty_clients_for_a_minute_get_answers_and_lose_no_job(served: tuple[LiveServer, str], tmp_path: Path):
    server, database = served
    report = run_mixed_load(server.url, tmp_path, CLIENTS, SECONDS, DRAIN, server.log)
    server.stop()
    table = report["table"]
    assert report["duration_s"] >= SECONDS, table
    assert all(kind["requests"] > 0 for kind in report["kinds"].values()), table
    assert report["http_5xx"] == 0, table
    assert report["errors"] == 0, table
    assert report["unexpected"] == 0, table
    assert report["jobs"]["accepted"] > 0, table
    assert report["jobs"]["not_ended"] == [], table
    assert report["jobs"]["failed"] == 0, table
    assert unfinished_jobs(database) == []
    log = server.log.read_text(encoding="utf-8", errors="replace")
    assert "database is locked" not in log
    assert "Traceback" not in log, log[-5000:]
