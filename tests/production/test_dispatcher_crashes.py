"""A dispatcher that crashes while handing a job over, under ``hpc-wps serve``, which restarts it.

The crash is real: ``unpicklable`` (tests/processes) goes to Slurm (``[scheduler] scheduler_processes``),
and writing its batch payload raises ``TypeError`` in the dispatcher, which nothing there expects, as a
missing package or a bug would. The job must not keep every next dispatcher down: the second time, it
fails with that error. Jobs caught in the same hand-over are not harmed, and ``/health`` reports the
crash loop while the dispatchers keep dying.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveServer, wait_for
from tests.production.harness import submit, wait_until_ended

CONFIG = """
[processing]
processes = tests.processes.unpicklable:PROCESS
[scheduler]
scheduler_processes = unpicklable
"""
ERROR = "TypeError: cannot pickle 'generator' object"
FAILED_TWICE = (
    f"could not be submitted: handing it over to slurm stopped the dispatcher 2 times, the last time with {ERROR}"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "service", CONFIG)
    yield live.start()
    live.stop()


def health(server: LiveServer) -> requests.Response:
    return requests.get(server.url.removesuffix("/wps") + "/health", timeout=30)


def dispatcher_exits(server: LiveServer) -> int:
    return server.log.read_text(encoding="utf-8", errors="replace").count("dispatcher exited with code 1")


@pytest.mark.slow
def test_a_job_that_crashes_the_dispatcher_twice_fails_with_the_error(server: LiveServer):
    bad = submit(server, "unpicklable")
    good = [submit(server, "say_hello", "name=World") for _ in range(3)]
    outcomes = wait_until_ended(server, [bad, *good], 90)
    assert outcomes[bad] == ("Failed", FAILED_TWICE)
    assert all(outcomes[job] == ("Succeeded", "Hello World") for job in good)
    wait_for(lambda: dispatcher_exits(server) == 2)
    # Claimed with it each time, the other jobs waited again and ran once a dispatcher got past it.


@pytest.mark.slow
def test_health_fails_while_dispatchers_keep_crashing(server: LiveServer):
    wait_for(lambda: health(server).status_code == 200)  # a dispatcher beats
    bad = [submit(server, "unpicklable") for _ in range(2)]
    outcomes = wait_until_ended(server, bad, 120)
    assert all(outcome == ("Failed", FAILED_TWICE) for outcome in outcomes.values())
    wait_for(lambda: dispatcher_exits(server) == 4)  # the job fails before the dispatcher has exited
    # The fifth dispatcher beats: the service looks up, but the crashes are counted.
    code, body = wait_for(
        lambda: (a := health(server)).json()["checks"]["dispatchers"]["alive"] == 1 and (a.status_code, a.json())
    )
    assert code == 503, body
    (reason,) = body["reasons"]
    assert " is in a crash loop: 4 ended without being stopped in the last 300 s, the last on TypeError;" in reason
    assert "cannot pickle" not in reason  # the error's text stays in the log: a public endpoint
    dispatchers = body["checks"]["dispatchers"]
    assert dispatchers["status"] == "fail" and dispatchers["alive"] == 1
    assert sorted(d["failure"] or "" for d in dispatchers["known"]) == ["", *["TypeError"] * 4]
