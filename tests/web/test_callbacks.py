"""Subscribers of a job (the callback class of OGC API - Processes), through the real dispatcher process:
what a real HTTP receiver on 127.0.0.1 gets, when, and what happens when it fails, hangs or is not an
allowed destination. The receiver is allowed as the test settings allow every local server
(``[inputs] allowed_hosts = 127.0.0.1/32``), as an administrator would allow an internal one."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from app.settings import Settings
from scheduler.job import Job
from scheduler.models import JobStatus
from scheduler.service import JobService
from scheduler.subscribers import Subscribers
from tests.conftest import free_port, run_dispatcher, wait_for
from tests.ogcapi_json import validate, validate_results


@dataclass
class Received:
    path: str
    content_type: str
    body: dict[str, Any]
    at: float


@dataclass
class Receiver:
    """What the receiver got, and how it answers: ``/ok/...`` 200, ``/flaky/...`` 500 the first time
    for each path and 200 after, ``/hang/...`` nothing until the test ends, ``/redirect/...`` 307 to
    127.0.0.2, which the test settings do not allow."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)

    def at(self, prefix: str) -> list[Received]:
        return [r for r in self.received if r.path.startswith(prefix)]


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            count = state.attempts[self.path] = state.attempts.get(self.path, 0) + 1
            if self.path.startswith("/hang/"):
                state.release.wait(60)
                return
            if self.path.startswith("/redirect/"):  # elsewhere on the loopback network, outside 127.0.0.1/32
                self.send_response(307)
                self.send_header("Location", f"http://127.0.0.2:{self.server.server_port}/ok/redirected")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            state.received.append(Received(self.path, self.headers["Content-Type"], json.loads(body), time.monotonic()))
            status = 500 if self.path.startswith("/flaky/") and count == 1 else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Retries and in-progress notifications quick enough for a test."""
    return settings.replace("callbacks", timeout=1.0, backoff=0.1, progress_interval=0.2, retries=2)


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def service(app) -> JobService:  # type: ignore[no-untyped-def]
    return app.extensions["hpc_wps"]


def literal(identifier: str, value: str) -> dict[str, Any]:
    return {"id": identifier, "kind": "literal", "value": value}


def request(*inputs: dict[str, Any]) -> dict[str, Any]:
    """A request as a binding hands it over (see tests/unit/test_job_service.py)."""
    return {"resources": {}, "inputs": list(inputs), "outputs": [], "response": "document"}


def submit(app, process: str, *inputs: dict[str, Any], subscribers: Subscribers | None = None) -> Job:  # type: ignore[no-untyped-def]
    jobs = service(app)
    return jobs.submit(jobs.process(process), "2.0.0", request(*inputs), subscribers=subscribers)


def wait_final(app, job_id: str, timeout: float = 30.0) -> Job:  # type: ignore[no-untyped-def]
    return wait_for(lambda: (job := service(app).get(job_id)).status.is_final and job, timeout)


def test_an_async_job_notifies_its_start_progress_and_success(app, dispatcher, hooks: Receiver):
    subscribers = Subscribers(success_uri=f"{hooks.url}/ok/done", in_progress_uri=f"{hooks.url}/ok/progress")
    job = submit(app, "sleep", literal("delay", "1.5"), subscribers=subscribers)
    assert wait_final(app, job.id).status is JobStatus.SUCCEEDED
    done = wait_for(lambda: hooks.at("/ok/done"))
    assert len(done) == 1
    assert done[0].content_type == "application/json"
    assert done[0].body == {"sleep_output": "slept for 1.5 seconds"}  # the job's results document
    progress = hooks.at("/ok/progress")
    assert len(progress) >= 2, progress  # it started, and its progress moved (five steps, 0.2 s apart at most)
    assert {(p.body["jobID"], p.body["status"]) for p in progress} == {(job.id, "running")}  # its statusInfo
    percents = [p.body["progress"] for p in progress]
    assert percents == sorted(percents) and len(set(percents)) >= 2
    assert max(p.at for p in progress) < done[0].at  # in the order of the job's states
    time.sleep(0.5)
    assert len(hooks.at("/ok/done")) == 1  # once


def test_a_failed_job_notifies_only_its_failure(app, dispatcher, hooks: Receiver):
    subscribers = Subscribers(success_uri=f"{hooks.url}/ok/done", failed_uri=f"{hooks.url}/ok/failed")
    job = submit(app, "fail", literal("message", "broken on purpose"), subscribers=subscribers)
    assert wait_final(app, job.id).status is JobStatus.FAILED
    failed = wait_for(lambda: hooks.at("/ok/failed"))
    assert (failed[0].body["jobID"], failed[0].body["status"]) == (job.id, "failed")
    assert failed[0].body["message"] == "broken on purpose"
    time.sleep(0.5)
    assert hooks.at("/ok/done") == []


def test_a_synchronous_job_notifies_too(app, dispatcher, hooks: Receiver):
    jobs = service(app)
    subscribers = Subscribers(success_uri=f"{hooks.url}/ok/sync")
    job = jobs.run(jobs.process("say_hello"), "2.0.0", request(literal("name", "Ada")), subscribers=subscribers)
    assert job.status is JobStatus.SUCCEEDED
    done = wait_for(lambda: hooks.at("/ok/sync"))
    assert done[0].body == {"response": "Hello Ada"}


def test_a_receiver_that_fails_once_is_tried_again(app, dispatcher, hooks: Receiver):
    submit(app, "say_hello", literal("name", "Ada"), subscribers=Subscribers(success_uri=f"{hooks.url}/flaky/x"))
    wait_for(lambda: hooks.at("/flaky/x")[1:])  # the 500, then the delivery
    assert hooks.attempts["/flaky/x"] == 2
    assert [r.body for r in hooks.at("/flaky/x")] == [{"response": "Hello Ada"}] * 2


def test_a_token_in_the_uri_reaches_the_receiver_and_nowhere_else(app, dispatcher, hooks: Receiver, settings, tmp_path):
    uri = f"{hooks.url}/ok/token?access_token=s3cr3t-value"
    submit(app, "say_hello", literal("name", "Ada"), subscribers=Subscribers(success_uri=uri))
    assert wait_for(lambda: hooks.at("/ok/token"))[0].path.endswith("access_token=s3cr3t-value")
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        stored = json.dumps([dict(r) for r in conn.execute(text("SELECT subscribers FROM jobs")).mappings()])
    engine.dispose()
    assert "access_token=***" in stored and "s3cr3t" not in stored
    log = wait_for(lambda: "delivered" in (t := (tmp_path / "dispatcher.log").read_text()) and t)
    assert "access_token=***" in log and "s3cr3t" not in log


def dispatcher_log(tmp_path: Path, name: str, needle: str) -> str:
    return wait_for(lambda: needle in (t := (tmp_path / name).read_text()) and t)


def test_a_private_destination_is_refused_and_logged_and_the_job_ends(app, settings, hooks: Receiver, tmp_path):
    closed = settings.replace("inputs", allowed_hosts=())  # 127.0.0.1 is loopback: refused by default
    with run_dispatcher(closed, tmp_path / "closed.log"):
        job = submit(app, "say_hello", literal("name", "Ada"), subscribers=Subscribers(success_uri=f"{hooks.url}/ok/x"))
        assert wait_final(app, job.id).status is JobStatus.SUCCEEDED
        log = dispatcher_log(tmp_path, "closed.log", "not delivered")
    assert "not an allowed destination" in log
    assert "1 tries" in log  # a refusal is not tried again
    assert hooks.attempts == {}


def test_a_redirect_to_a_destination_not_allowed_is_not_followed(app, dispatcher, hooks: Receiver, tmp_path):
    submit(app, "say_hello", literal("name", "Ada"), subscribers=Subscribers(success_uri=f"{hooks.url}/redirect/x"))
    log = dispatcher_log(tmp_path, "dispatcher.log", "not delivered")
    assert "not an allowed destination" in log
    assert hooks.attempts == {"/redirect/x": 1}


def test_an_unreachable_receiver_is_tried_again_then_given_up(app, dispatcher, tmp_path):
    nobody = f"http://127.0.0.1:{free_port()}/gone"
    job = submit(app, "say_hello", literal("name", "Ada"), subscribers=Subscribers(success_uri=nobody))
    assert wait_final(app, job.id).status is JobStatus.SUCCEEDED
    log = dispatcher_log(tmp_path, "dispatcher.log", "not delivered")
    assert "not delivered (3 tries)" in log


def test_a_hanging_receiver_delays_no_job(app, dispatcher, hooks: Receiver):
    """Jobs whose subscribers never answer end as soon as jobs without subscribers (measured side by side)."""

    def duration(subscribers: Subscribers | None) -> float:
        started = time.monotonic()
        job = submit(app, "sleep", literal("delay", "0.5"), subscribers=subscribers)
        wait_final(app, job.id)
        return time.monotonic() - started

    duration(None)  # the pool warm
    hanging = Subscribers(f"{hooks.url}/hang/s", f"{hooks.url}/hang/f", f"{hooks.url}/hang/p")
    plain = [duration(None) for _ in range(3)]
    held = [duration(hanging) for _ in range(3)]
    assert hooks.attempts  # the receiver was indeed holding notifications while the jobs ran
    assert min(held) < 1.5 * min(plain), (plain, held)


def test_a_synchronous_reply_does_not_wait_for_a_hanging_receiver(app, dispatcher, hooks: Receiver):
    jobs = service(app)
    process = jobs.process("sleep")
    hanging = Subscribers(f"{hooks.url}/hang/s", None, f"{hooks.url}/hang/p")

    def duration(subscribers: Subscribers | None) -> float:
        started = time.monotonic()
        jobs.run(process, "2.0.0", request(literal("delay", "0.5")), subscribers=subscribers)
        return time.monotonic() - started

    plain = [duration(None) for _ in range(2)]
    held = [duration(hanging) for _ in range(2)]
    wait_for(lambda: hooks.attempts)
    assert min(held) < 1.5 * min(plain), (plain, held)


def test_a_subscriber_given_through_the_api_gets_its_status_info_and_results(app, dispatcher, hooks: Receiver):
    """End to end: the ``subscriber`` of an OGC API execute request, the documents the standard names."""
    body = {
        "inputs": {"delay": 1.0},
        "subscriber": {
            "successUri": f"{hooks.url}/api/done",
            "inProgressUri": f"{hooks.url}/api/progress",
            "failedUri": f"{hooks.url}/api/failed",
        },
    }
    answer = app.test_client().post("/processes/sleep/execution", json=body, headers={"Prefer": "respond-async"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    job_id = answer.get_json()["jobID"]
    done = wait_for(lambda: hooks.at("/api/done"))
    assert validate_results(done[0].body) == {"sleep_output": "slept for 1.0 seconds"}
    progress = [validate(p.body, "statusInfo") for p in hooks.at("/api/progress")]
    assert progress and {(p["jobID"], p["status"]) for p in progress} == {(job_id, "running")}
    assert hooks.at("/api/failed") == []
    conformance = app.test_client().get("/conformance").get_json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/callback" in conformance
