"""The job service on its own, against a real SQLite job table: no HTTP, no XML. What it stores, what
it returns, and which domain error it raises, so that every protocol binding can rely on the same."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from migrations import upgrade
from processes.fetch import FetchLimits
from processes.registry import Registry, build_registry
from scheduler import queries
from scheduler.access import ANONYMOUS_CALLER, Caller, ProcessAccess
from scheduler.db import make_engine
from scheduler.errors import (
    InvalidInput,
    InvalidResource,
    JobFailed,
    NoSuchJob,
    NoSuchOutput,
    NoSuchProcess,
    QueueFull,
    ResultNotReady,
    SyncSlotsBusy,
)
from scheduler.executor_names import WEB
from scheduler.job import Job, JobState
from scheduler.launcher import CLIENT_GONE
from scheduler.models import JOBS, JobStatus, utcnow
from scheduler.service import JobFilter, JobService
from scheduler.settings import JobSettings, ProcessingSettings
from scheduler.sync_slots import sync_slot


@pytest.fixture
def job_settings(tmp_path: Path) -> JobSettings:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    upgrade(url)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    return JobSettings(
        database_url=url,
        jobs_dir=tmp_path / "jobs",
        processing=ProcessingSettings(sync_time_limit=20.0, queue_length=3),
        inputs=FetchLimits(allowed_dirs=(allowed,)),
    )


@pytest.fixture
def jobs(job_settings: JobSettings):  # type: ignore[no-untyped-def]
    engine = make_engine(job_settings.database_url)
    yield JobService(job_settings, engine, build_registry(True, []))
    engine.dispose()


def literal(identifier: str, value: str) -> dict[str, Any]:
    return {"id": identifier, "kind": "literal", "value": value}


def request(*inputs: dict[str, Any], resources: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """A request as a binding hands it over: inputs checked, resources as the client wrote them."""
    return {
        "resources": resources or {},
        "inputs": list(inputs),
        "outputs": [],
        "response": "document",
        "lineage": False,
        "status": False,
        "store": False,
    } | extra


def stored_status(jobs: JobService, job_id: str) -> str:
    row = queries.get_job(jobs.engine, job_id)
    assert row is not None
    return row["status"]


def count_jobs(jobs: JobService) -> int:
    with jobs.engine.connect() as conn:
        return len(conn.execute(JOBS.select()).all())


# -- processes -------------------------------------------------------------------------------------------


def test_process_lookup(jobs):
    assert jobs.process("say_hello").identifier == "say_hello"
    with pytest.raises(NoSuchProcess) as raised:
        jobs.process("nope")
    assert raised.value.identifier == "nope"


def test_a_job_whose_process_is_gone_counts_as_no_such_job(jobs, job_settings):
    job = jobs.submit(jobs.process("sleep"), "2.0.0", request(literal("delay", "0")))
    without = JobService(job_settings, jobs.engine, Registry(()))
    with pytest.raises(NoSuchJob) as raised:
        without.process_of(without.get(job.id))
    assert raised.value.job_id == job.id
    assert jobs.process_of(job).identifier == "sleep"


# -- submitting ------------------------------------------------------------------------------------------


def test_submit_stores_an_accepted_job_for_the_dispatcher(jobs):
    job = jobs.submit(jobs.process("sleep"), "1.0.0", request(literal("delay", "1"), resources={"cores": "2"}))
    assert isinstance(job, Job)
    assert (job.status, job.mode, job.version, job.executor) == (JobStatus.ACCEPTED, "async", "1.0.0", None)
    assert job.request["resources"] == {"cores": 2}  # resolved once, before anything runs it
    assert jobs.get(job.id) == job
    assert stored_status(jobs, job.id) == "accepted"


def test_submit_refuses_beyond_the_queue_length(jobs):
    sleep = jobs.process("sleep")
    for _ in range(3):
        jobs.submit(sleep, "2.0.0", request(literal("delay", "0")))
    with pytest.raises(QueueFull):
        jobs.submit(sleep, "2.0.0", request(literal("delay", "0")))
    assert count_jobs(jobs) == 3
    jobs.settings = jobs.settings.replace("processing", queue_length=4)  # read on every call
    jobs.submit(sleep, "2.0.0", request(literal("delay", "0")))


def test_an_inline_async_job_runs_before_submit_returns(jobs):
    job = jobs.submit(jobs.process("echo"), "2.0.0", request(literal("literalInput", "here")))
    assert (job.status, job.mode, job.executor) == (JobStatus.SUCCEEDED, "async", WEB)
    assert [(o["id"], o["value"]) for o in job.outputs] == [("literalOutput", "here")]


@pytest.mark.parametrize(
    ("resources", "name"),
    [
        ({"cores": "999"}, "resources.cores"),
        ({"memory": "lots"}, "resources.memory"),
        ({"queue": "a b"}, "resources.queue"),
    ],
)
def test_resources_beyond_the_limits_are_refused_before_a_job_exists(jobs, resources, name):
    for start in (jobs.submit, jobs.run):
        with pytest.raises(InvalidResource) as raised:
            start(jobs.process("sleep"), "2.0.0", request(literal("delay", "0"), resources=resources))
        assert (raised.value.input_id, raised.value.reason) == (name, "invalid")
        assert isinstance(raised.value, InvalidInput)
    assert count_jobs(jobs) == 0
    assert jobs.resolve_resources({"cores": "4", "walltime": "60"}) == {"cores": 4, "walltime": 60.0}


@pytest.fixture
def container_jobs(job_settings: JobSettings):  # type: ignore[no-untyped-def]
    """A job service offering one container process and one Python process, [docker] max_* set."""
    from processes.container import container_process
    from processes.container.settings import DockerSettings

    box = container_process("boxed", "Boxed", "localhost/hpc-wps/busybox:latest", ["true"])
    settings = dataclasses.replace(
        job_settings, docker=DockerSettings(max_cores=2.0, max_memory=256 * 1024**2, max_walltime=600.0)
    )
    engine = make_engine(settings.database_url)
    yield JobService(settings, engine, Registry([box, *build_registry(True, [])]))
    engine.dispose()


def test_a_container_job_asks_within_the_docker_maxima(container_jobs):
    box = container_jobs.process("boxed")
    asked = {"cores": "1.5", "memory": "100MB", "walltime": "60"}
    job = container_jobs.submit(box, "2.0.0", request(resources=asked))
    assert job.request["resources"] == {"cores": 1.5, "memory": 100 * 1024**2, "walltime": 60.0}
    refused = [({"cores": "4"}, "cores"), ({"memory": "1GB"}, "memory"), ({"walltime": "601"}, "walltime")]
    refused += [({"cores": "0"}, "cores"), ({"queue": "long"}, "queue")]
    for resources, name in refused:
        for start in (container_jobs.submit, container_jobs.run):
            with pytest.raises(InvalidResource) as raised:
                start(box, "2.0.0", request(resources=resources))
            assert raised.value.input_id == f"resources.{name}"
    assert count_jobs(container_jobs) == 1
    # A Python process in the local pool keeps the [scheduler] limits: whole cores, up to 16.
    with pytest.raises(InvalidResource):
        container_jobs.submit(container_jobs.process("sleep"), "2.0.0", request(resources={"cores": "1.5"}))
    sleep = container_jobs.submit(container_jobs.process("sleep"), "2.0.0", request(resources={"cores": "8"}))
    assert sleep.request["resources"] == {"cores": 8}


# -- running synchronously -------------------------------------------------------------------------------


def test_run_returns_the_succeeded_job(jobs):
    job = jobs.run(jobs.process("say_hello"), "2.0.0", request(literal("name", "unit")))
    assert (job.status, job.mode, job.executor, job.progress) == (JobStatus.SUCCEEDED, "sync", WEB, 100)
    assert job.outputs[0]["value"] == "Hello unit"
    assert job.expires_at is not None and job.finished_at is not None
    assert stored_status(jobs, job.id) == "succeeded"


def test_run_returns_a_failed_job_rather_than_raising(jobs):
    job = jobs.run(jobs.process("fail"), "1.0.0", request(literal("message", "on purpose")))
    assert job.status is JobStatus.FAILED
    assert "on purpose" in (job.message or "")


def test_run_stops_at_the_time_limit(jobs):
    jobs.settings = jobs.settings.replace("processing", sync_time_limit=0.3)
    job = jobs.run(jobs.process("sleep"), "2.0.0", request(literal("delay", "5")))
    assert (job.status, job.message) == (JobStatus.FAILED, "time limit of 0.3 s exceeded")


def in_a_request_thread(call):  # type: ignore[no-untyped-def]
    """What ``call`` returns when run as gunicorn's gthread workers run a request: not in the main thread."""
    returned = []
    thread = threading.Thread(target=lambda: returned.append(call()))
    thread.start()
    thread.join(timeout=30)
    return returned[0]


def test_run_stops_at_the_time_limit_in_a_request_thread(jobs):
    """Where SIGALRM cannot reach: the time limit holds all the same."""
    jobs.settings = jobs.settings.replace("processing", sync_time_limit=0.3)
    started = time.monotonic()
    job = in_a_request_thread(lambda: jobs.run(jobs.process("sleep"), "2.0.0", request(literal("delay", "10"))))
    assert (job.status, job.message) == (JobStatus.FAILED, "time limit of 0.3 s exceeded")
    assert time.monotonic() - started < 5  # ended after its first 2 s step, not its 10 s


def test_run_ends_once_its_client_is_gone(jobs):
    gone = threading.Event()
    threading.Timer(0.3, gone.set).start()
    job = in_a_request_thread(
        lambda: jobs.run(jobs.process("sleep"), "1.0.0", request(literal("delay", "10")), client_gone=gone.is_set)
    )
    assert (job.status, job.message) == (JobStatus.FAILED, CLIENT_GONE)
    assert stored_status(jobs, job.id) == "failed"


@pytest.mark.parametrize(
    ("href", "reason"),
    [("file:///etc/passwd", "not_accessible"), ("gopher://example.org/text", "not_accessible")],
)
def test_an_input_that_fails_the_run_raises_invalid_input_naming_it(jobs, href, reason):
    text = {"id": "text", "kind": "complex", "href": href, "mime_type": "text/plain"}
    with pytest.raises(InvalidInput) as raised:
        jobs.run(jobs.process("wordcounter"), "2.0.0", request(text))
    assert (raised.value.input_id, raised.value.reason) == ("text", reason)
    assert str(raised.value).startswith("input text: ")
    (row,) = jobs.list_jobs(JobFilter())
    assert row.status is JobStatus.FAILED  # recorded all the same


def test_an_input_too_large_is_told_apart(jobs, job_settings):
    allowed = job_settings.inputs.allowed_dirs[0]
    (allowed / "big.txt").write_text("word " * 100, encoding="utf-8")
    jobs.settings = job_settings.replace("inputs", max_size=10)
    text = {"id": "text", "kind": "complex", "href": f"file://{allowed}/big.txt", "mime_type": "text/plain"}
    with pytest.raises(InvalidInput) as raised:
        jobs.run(jobs.process("wordcounter"), "1.0.0", request(text))
    assert (raised.value.input_id, raised.value.reason) == ("text", "too_large")


# -- reading, results, dismissal -------------------------------------------------------------------------


def test_get_an_unknown_job(jobs):
    with pytest.raises(NoSuchJob) as raised:
        jobs.get("00000000-0000-4000-8000-000000000000")
    assert raised.value.job_id == "00000000-0000-4000-8000-000000000000"


def test_result_by_state(jobs):
    waiting = jobs.submit(jobs.process("sleep"), "2.0.0", request(literal("delay", "0")))
    with pytest.raises(ResultNotReady) as not_ready:
        jobs.result(waiting.id)
    assert not_ready.value.job_id == waiting.id
    failed = jobs.run(jobs.process("fail"), "2.0.0", request(literal("message", "broken")))
    with pytest.raises(JobFailed) as raised:
        jobs.result(failed.id)
    assert raised.value.job_id == failed.id and "broken" in (raised.value.reason or "")
    succeeded = jobs.run(jobs.process("say_hello"), "2.0.0", request(literal("name", "x")))
    assert jobs.result(succeeded.id) == succeeded


def test_dismiss_removes_the_files_and_hides_the_result(jobs, job_settings):
    job = jobs.run(jobs.process("say_hello"), "2.0.0", request(literal("name", "x")))
    (job_settings.job_dir(job.id) / "outputs").mkdir(parents=True, exist_ok=True)
    dismissed = jobs.dismiss(job.id)
    assert dismissed.status is JobStatus.DISMISSED
    assert stored_status(jobs, job.id) == "dismissed"
    assert not job_settings.job_dir(job.id).exists()
    with pytest.raises(NoSuchJob, match="was dismissed"):
        jobs.result(job.id)
    assert jobs.dismiss(job.id).status is JobStatus.DISMISSED  # again: the same answer
    with pytest.raises(NoSuchJob):
        jobs.dismiss("00000000-0000-4000-8000-000000000000")


def test_output_files_are_only_those_recorded(jobs):
    process = jobs.process("wordcounter")
    words = {"id": "text", "kind": "complex", "value": "a b a", "mime_type": "text/plain"}
    job = jobs.run(process, "2.0.0", request(words))
    (record,) = job.outputs
    found = jobs.output_file(job.id, record["file"])
    assert found.path == jobs.outputs_dir(job.id) / record["file"] and found.path.is_file()
    assert found.mime_type == record["mime_type"]
    for name in ("other.json", "../result.json"):
        with pytest.raises(NoSuchOutput) as raised:
            jobs.output_file(job.id, name)
        assert raised.value.filename == name
    found.path.unlink()
    with pytest.raises(NoSuchOutput):
        jobs.output_file(job.id, record["file"])
    waiting = jobs.submit(jobs.process("sleep"), "2.0.0", request(literal("delay", "0")))
    with pytest.raises(NoSuchJob, match="has no outputs"):
        jobs.output_file(waiting.id, record["file"])


# -- listing ---------------------------------------------------------------------------------------------


def test_list_jobs_filters(jobs):
    old = jobs.run(jobs.process("say_hello"), "1.0.0", request(literal("name", "old")))
    failed = jobs.run(jobs.process("fail"), "1.0.0", request(literal("message", "no")))
    waiting = jobs.submit(jobs.process("sleep"), "2.0.0", request(literal("delay", "0")))
    with jobs.engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == old.id).values(created_at=utcnow() - dt.timedelta(days=3)))

    def ids(**which: Any) -> list[str]:
        return [job.id for job in jobs.list_jobs(JobFilter(**which))]

    assert ids() == [waiting.id, failed.id, old.id]  # newest first
    assert ids(statuses=("failed", "accepted")) == [waiting.id, failed.id]
    assert ids(processes=("say_hello", "fail")) == [failed.id, old.id]
    assert ids(older_than=dt.timedelta(days=1)) == [old.id]
    assert ids(limit=2) == [waiting.id, failed.id]
    assert ids(removable_only=True) == [failed.id, old.id]  # never a job still waiting
    assert dataclasses.asdict(jobs.list_jobs(JobFilter(limit=1))[0])["status"] == "accepted"


def test_list_jobs_by_creation_duration_and_pages(jobs):
    """The filters and keyset pages of OGC API - Processes /jobs, on the job service."""
    start = utcnow() - dt.timedelta(hours=1)
    made = []
    for hours in range(5):  # created an hour apart; the first two ran for 10 s and 100 s (the queue holds 3)
        job = jobs.submit(jobs.process("sleep"), "2.0.0", request(literal("delay", "0")))
        made.append(job)
        values: dict[str, Any] = {"created_at": start + dt.timedelta(hours=hours)}
        if hours < 2:
            values |= {"started_at": start, "finished_at": start + dt.timedelta(seconds=10 ** (hours + 1))}
            values |= {"status": "succeeded"}
        with jobs.engine.begin() as conn:
            conn.execute(update(JOBS).where(JOBS.c.id == job.id).values(**values))
    newest_first = [job.id for job in reversed(made)]

    def ids(**which: Any) -> list[str]:
        return [job.id for job in jobs.list_jobs(JobFilter(**which))]

    at = [start + dt.timedelta(hours=h) for h in range(5)]
    assert ids(created_from=at[3]) == newest_first[:2]
    assert ids(created_to=at[1]) == newest_first[3:]
    assert ids(created_from=at[1], created_to=at[2]) == newest_first[2:4]
    assert ids(min_duration=dt.timedelta(seconds=50)) == [made[1].id]
    assert ids(max_duration=dt.timedelta(seconds=50)) == [made[0].id]  # never a job that has not started
    cursor = (at[2], made[2].id)
    assert ids(after=cursor, limit=1) == [made[1].id]
    assert ids(after=cursor) == [made[1].id, made[0].id]
    assert ids(before=cursor, limit=1) == [made[3].id]  # the nearest newer ones, newest first
    assert ids(before=cursor) == [made[4].id, made[3].id]
    # A listing's states are the same jobs with the same status, read without request and outputs.
    for which in (
        {},
        {"created_from": at[1], "limit": 2},
        {"min_duration": dt.timedelta(seconds=5)},
        {"before": cursor},
    ):
        full, states = jobs.list_jobs(JobFilter(**which)), jobs.list_states(JobFilter(**which))
        assert [(j.id, j.status, j.message, j.created_at, j.finished_at) for j in full] == [
            (s.id, s.status, s.message, s.created_at, s.finished_at) for s in states
        ]
        assert all(isinstance(s, JobState) and not hasattr(s, "request") for s in states)


def test_every_job_operation_is_the_callers_own(jobs):
    """Another user's job is an unknown job for every operation; an administrator reaches every job."""
    alice, bob, admin = Caller("alice"), Caller("bob"), Caller("root", is_admin=True)
    words = {"id": "text", "kind": "complex", "value": "a b a", "mime_type": "text/plain"}
    job = jobs.run(jobs.process("wordcounter", alice), "2.0.0", request(words), alice)
    waiting = jobs.submit(jobs.process("sleep", alice), "2.0.0", request(literal("delay", "0")), alice)
    assert (job.owner, waiting.owner) == ("alice", "alice")
    filename = job.outputs[0]["file"]
    for caller in (bob, ANONYMOUS_CALLER):
        for call in (
            lambda c: jobs.get(job.id, c),
            lambda c: jobs.result(job.id, c),
            lambda c: jobs.output_file(job.id, filename, c),
            lambda c: jobs.dismiss(waiting.id, c),
        ):
            with pytest.raises(NoSuchJob) as refused:
                call(caller)
            assert str(refused.value) in (f"no job {job.id}", f"no job {waiting.id}")
    assert jobs.get(waiting.id, alice).status is JobStatus.ACCEPTED  # Bob's Dismiss did nothing
    assert jobs.output_file(job.id, filename, admin).path.is_file()
    assert {j.id for j in jobs.list_jobs(JobFilter(), alice)} == {job.id, waiting.id}
    assert jobs.list_jobs(JobFilter(), bob) == []
    assert jobs.list_jobs(JobFilter(owners=("alice",)), bob) == []  # a filter never widens what a caller sees
    assert len(jobs.list_jobs(JobFilter(owners=("alice",)), admin)) == 2
    assert jobs.dismiss(waiting.id, admin).status is JobStatus.DISMISSED


def test_process_roles_hide_a_process(jobs, job_settings):
    jobs.settings = dataclasses.replace(job_settings, access=ProcessAccess({"say_hello": frozenset({"greeters"})}))
    greeter, other = Caller("g", frozenset({"greeters"})), Caller("o", frozenset({"users"}))
    assert "say_hello" in {p.identifier for p in jobs.processes(greeter)}
    assert "say_hello" not in {p.identifier for p in jobs.processes(other)}
    with pytest.raises(NoSuchProcess):
        jobs.process("say_hello", other)
    process = jobs.process("say_hello", greeter)
    for start in (jobs.run, jobs.submit):  # refused even with the Process in hand
        with pytest.raises(NoSuchProcess):
            start(process, "2.0.0", request(literal("name", "x")), other)
    assert jobs.run(process, "2.0.0", request(literal("name", "x")), greeter).owner == "g"


def test_beyond_sync_slots_run_is_refused_and_leaves_no_job(jobs):
    """The one slot held (by a job of another worker of this host): refused after the wait, no row."""
    jobs.settings = jobs.settings.replace("processing", sync_slots=1, sync_slot_wait=0.2)
    with sync_slot(jobs.settings.jobs_dir, 1, 0):
        with pytest.raises(SyncSlotsBusy, match=r"all 1 synchronous execution slots \(\[processing\] sync_slots\)"):
            jobs.run(jobs.process("say_hello"), "1.0.0", request(literal("name", "x")))
        with pytest.raises(SyncSlotsBusy):  # an inline asynchronous job runs in the web tier too
            jobs.submit(jobs.process("echo"), "2.0.0", request(literal("literalInput", "x")))
        assert jobs.list_jobs(JobFilter()) == []
    assert jobs.run(jobs.process("say_hello"), "1.0.0", request(literal("name", "x"))).status is JobStatus.SUCCEEDED


def test_a_synchronous_job_waits_for_a_slot_that_frees(jobs):
    """A burst queues for a moment instead of being refused: the slot frees while the request waits."""
    jobs.settings = jobs.settings.replace("processing", sync_slots=1, sync_slot_wait=30.0)
    held = sync_slot(jobs.settings.jobs_dir, 1, 0)
    held.__enter__()
    threading.Timer(0.5, held.__exit__, (None, None, None)).start()
    assert jobs.run(jobs.process("say_hello"), "1.0.0", request(literal("name", "x"))).status is JobStatus.SUCCEEDED


def test_a_slot_is_free_again_once_its_holder_is_killed(jobs):
    """A lock, not a row: a worker killed with its job releases the slot, with no sweep to wait for."""
    ready, release = os.pipe()
    pid = os.fork()
    if pid == 0:
        with sync_slot(jobs.settings.jobs_dir, 1, 0):
            os.write(release, b"x")
            time.sleep(60)
        os._exit(0)
    os.read(ready, 1)
    with pytest.raises(SyncSlotsBusy), sync_slot(jobs.settings.jobs_dir, 1, 0):
        pass
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with sync_slot(jobs.settings.jobs_dir, 1, 0):
        pass


def test_requests_waiting_for_a_slot_get_it_in_turn(jobs):
    """First come, first served within a worker: a request arriving later does not take the slot that
    frees from one that has been waiting."""
    jobs_dir = jobs.settings.jobs_dir
    order: list[str] = []
    held = sync_slot(jobs_dir, 1, 0)
    held.__enter__()

    def wait_for_slot(name: str) -> None:
        with sync_slot(jobs_dir, 1, 30):
            order.append(name)
            time.sleep(0.1)

    first = threading.Thread(target=wait_for_slot, args=("first",))
    first.start()
    time.sleep(0.3)  # the first is waiting
    later = [threading.Thread(target=wait_for_slot, args=(f"later {i}",)) for i in range(3)]
    for thread in later:
        thread.start()
    time.sleep(0.3)
    held.__exit__(None, None, None)
    for thread in [first, *later]:
        thread.join(timeout=30)
    assert order[0] == "first" and sorted(order) == ["first", "later 0", "later 1", "later 2"]
