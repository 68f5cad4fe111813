"""GET /health against a real job table and a real dispatcher: ready, no dispatcher, a dispatcher that
stopped beating, a database that refuses, is not a database, or never answers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app import create_app
from app.settings import Settings, load_settings
from scheduler import queries
from tests.conftest import LiveServer, free_port, settings_environ, wait_for
from tests.xsd import ROOT

ASYNC_SLEEP = "/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&storeExecuteResponse=true"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Heartbeats five times a second, stale after 1.5 s: a dead dispatcher shows within the test."""
    return settings.replace("monitoring", heartbeat_interval=0.2, heartbeat_timeout=1.5)


def health(app):  # type: ignore[no-untyped-def]
    response = app.test_client().get("/health")
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    return response.status_code, response.get_json()


def test_ready_with_a_live_dispatcher(app, dispatcher, wps):
    _status, body = wait_for(lambda: (h := health(app))[0] == 200 and h)
    assert body["status"] == "pass" and body["reasons"] == []
    assert body["checks"]["database"]["status"] == "pass"
    (known,) = body["checks"]["dispatchers"]["known"]
    assert (known["host"], known["pid"], known["alive"]) == (socket.gethostname(), dispatcher.pid, True)
    assert "local" in known["executors"]
    assert body["checks"]["dispatchers"]["alive"] == 1
    # The queue as the table holds it: two jobs accepted while the dispatcher is paused.
    dispatcher.send_signal(signal.SIGSTOP)
    try:
        for _ in range(2):
            assert wps.get(f"{ASYNC_SLEEP}&DataInputs=delay=0").status_code == 200
        _status, body = health(app)
        assert body["queue"]["waiting"] == 2 and body["queue"]["oldest_waiting_seconds"] >= 0
    finally:
        dispatcher.send_signal(signal.SIGCONT)
    wait_for(lambda: health(app)[1]["queue"]["waiting"] == 0)


def test_not_ready_without_a_dispatcher(app):
    status, body = health(app)
    assert status == 503 and body["status"] == "fail"
    assert body["reasons"] == ["no dispatcher is running: accepted asynchronous jobs would not start"]
    assert body["checks"]["database"]["status"] == "pass"
    assert body["checks"]["dispatchers"] == {"status": "fail", "alive": 0, "known": []}


def test_not_ready_when_the_dispatcher_stops_beating(app, dispatcher):
    wait_for(lambda: health(app)[0] == 200)
    os.kill(dispatcher.pid, signal.SIGKILL)  # no chance to remove its row: the beat goes stale
    dispatcher.wait()
    _status, body = wait_for(lambda: (h := health(app))[0] == 503 and h)
    (reason,) = body["reasons"]
    assert reason.startswith(
        f"no dispatcher is alive: the last heartbeat, from {socket.gethostname()} (pid {dispatcher.pid})"
    )
    assert reason.endswith("(limit 1.5 s)")
    (known,) = body["checks"]["dispatchers"]["known"]
    assert known["alive"] is False and known["last_beat_seconds"] >= 1.5


def test_a_dispatcher_that_stops_cleanly_removes_its_row(app, dispatcher):
    wait_for(lambda: health(app)[0] == 200)
    dispatcher.terminate()
    assert dispatcher.wait(timeout=30) == 0
    status, body = health(app)
    assert status == 503 and body["checks"]["dispatchers"]["known"] == []


def test_dispatchers_killed_again_and_again_are_a_crash_loop(app, settings, tmp_path):
    """What a supervisor restarting a dispatcher that keeps dying looks like: each new one beats, yet
    /health fails once three of one host ended without being stopped within the window."""
    started: list[subprocess.Popen[bytes]] = []

    def beating(process: subprocess.Popen[bytes]) -> bool:
        return any(d["pid"] == process.pid and d["alive"] for d in health(app)[1]["checks"]["dispatchers"]["known"])

    try:
        for attempt in range(4):
            with (tmp_path / f"dispatcher{attempt}.log").open("wb") as log:
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "app.cli", "dispatcher"],
                        cwd=ROOT,
                        env=settings_environ(settings),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            wait_for(lambda: beating(started[-1]))
            if attempt < 3:
                started[-1].kill()  # as the kernel's OOM killer would: its row is left to go stale
                started[-1].wait()
        status, body = wait_for(lambda: (h := health(app))[1]["reasons"] and h)  # once the three beats are stale
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    assert status == 503 and body["checks"]["dispatchers"]["status"] == "fail"
    assert body["reasons"] == [
        f"the dispatcher on {socket.gethostname()} is in a crash loop: 3 ended without being stopped in the last"
        " 300 s, the last killed or hung, with no error recorded; the service log has the details"
    ]
    assert body["checks"]["dispatchers"]["alive"] == 1


def test_live_needs_no_database(tmp_path: Path):
    app = create_app(unreachable_settings(tmp_path, f"sqlite:///{not_a_database(tmp_path)}"))
    response = app.test_client().get("/health/live")
    assert (response.status_code, response.get_json()) == (200, {"status": "pass"})


def not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.sqlite"
    path.write_bytes(b"this is not an SQLite database" * 100)
    return path


def unreachable_settings(tmp_path: Path, url: str) -> Settings:
    settings = load_settings(environ={}).replace("server", workdir=tmp_path / "work", url="http://testserver/wps")
    return settings.replace("database", url=url)


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word: a database that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("kind", ["sqlite: not a database", "postgresql: connection refused", "postgresql: hangs"])
def test_not_ready_when_the_database_fails(tmp_path: Path, kind: str):
    """503 with a reason that names no host nor user, and /metrics still answers, with table_up 0."""
    with silent_server() as silent_port:
        url = {
            "sqlite: not a database": f"sqlite:///{not_a_database(tmp_path)}",
            "postgresql: connection refused": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/jobs",
            "postgresql: hangs": f"postgresql+psycopg://postgres@127.0.0.1:{silent_port}/jobs",
        }[kind]
        app = create_app(unreachable_settings(tmp_path, url))
        answers: list = []
        # The probe gives up after [monitoring] probe_timeout (2 s); 60 s only guard the test itself.
        asking = threading.Thread(target=lambda: answers.extend([health(app), app.test_client().get("/metrics")]))
        asking.start()
        asking.join(timeout=60)
        assert not asking.is_alive(), "/health did not answer"
    (status, body), metrics = answers
    assert status == 503 and body["status"] == "fail"
    (reason,) = body["reasons"]
    assert reason.startswith("the job table does not answer (") and reason.endswith("the service log has the details")
    assert "127.0.0.1" not in reason and "postgres@" not in reason
    assert metrics.status_code == 200
    assert "hpc_wps_job_table_up 0.0" in metrics.get_data(as_text=True).splitlines()


def test_health_reads_the_same_table_jobs_go_to(app, wps, settings):
    """The queue depth of /health is the table's count of accepted jobs (no dispatcher runs here)."""
    for _ in range(3):
        wps.get(f"{ASYNC_SLEEP}&DataInputs=delay=0")
    assert health(app)[1]["queue"]["waiting"] == queries.count_waiting(app.extensions["hpc_wps"].engine) == 3


def test_image_healthcheck_follows_health(tmp_path: Path):
    """service-image/healthcheck.py (the image's HEALTHCHECK) against ``hpc-wps serve``: 0 while ready;
    1 with the reason once the dispatcher stops beating; 1 when nothing listens."""
    server = LiveServer(tmp_path, "[monitoring]\nheartbeat_interval = 0.2\nheartbeat_timeout = 1\n").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPC_WPS_")}
    env.update(HPC_WPS_SERVER_PORT=str(server.port), PYTHONPATH=str(ROOT))

    def healthcheck() -> subprocess.CompletedProcess[str]:
        script = ROOT / "service-image" / "healthcheck.py"
        return subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=60)

    try:
        wait_for(lambda: healthcheck().returncode == 0, interval=0.2)
        health_url = f"http://127.0.0.1:{server.port}/health"
        (known,) = requests.get(health_url, timeout=30).json()["checks"]["dispatchers"]["known"]
        dispatcher = known["pid"]  # as its heartbeat tells
        os.kill(dispatcher, signal.SIGSTOP)
        try:
            failed = wait_for(lambda: (done := healthcheck()).returncode == 1 and done, interval=0.2)
        finally:
            os.kill(dispatcher, signal.SIGCONT)
        assert failed.stderr.startswith(
            f"unhealthy: no dispatcher is alive: the last heartbeat, from {socket.gethostname()}"
        )
    finally:
        server.stop()
    refused = healthcheck()
    assert refused.returncode == 1 and "Connection refused" in refused.stderr
