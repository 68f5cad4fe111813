"""Notifications to a job's subscribers, without a dispatcher: the policy (what is owed when), which
answers are tried again, how the URIs are kept, and the claim that lets only one dispatcher send each.
The deliveries themselves, to a real receiver, are in tests/web/test_callbacks.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from migrations import upgrade
from processes.fetch import FetchLimits
from processes.registry import build_registry
from scheduler import lifecycle, queries
from scheduler.db import make_engine
from scheduler.errors import InvalidSubscriber
from scheduler.job import Job
from scheduler.models import JobStatus
from scheduler.notifier import Due, decide, worth_retrying
from scheduler.service import JobService
from scheduler.settings import JobSettings
from scheduler.subscribers import Event, Subscribers, destination, neutral_body, stored, unsealed

ALL = [{"id": e.value, "href": f"http://example.org/{e.value}"} for e in Event]
ENDS_ONLY = [e for e in ALL if e["id"] != Event.IN_PROGRESS.value]


@pytest.mark.parametrize(
    ("status", "entries", "expected"),
    [
        (JobStatus.SUCCEEDED, ALL, Due(Event.SUCCESS, settled=True)),
        (JobStatus.FAILED, ALL, Due(Event.FAILED, settled=True)),
        (JobStatus.FAILED, [ALL[0]], Due(None, settled=True)),  # a failure nobody asked to hear of
        (JobStatus.DISMISSED, ALL, Due(None, settled=True)),
        (JobStatus.ACCEPTED, ALL, None),
        (JobStatus.QUEUED, ALL, None),
        (JobStatus.RUNNING, ENDS_ONLY, None),
        (JobStatus.RUNNING, ALL, Due(Event.IN_PROGRESS, settled=False)),  # it started
    ],
)
def test_what_a_job_owes_by_its_state(status: JobStatus, entries, expected):  # type: ignore[no-untyped-def]
    assert decide(status, entries, None, changed=True, since_sent=None, interval=5.0) == expected


def test_progress_is_notified_when_it_changed_and_not_more_often_than_the_interval():
    running = JobStatus.RUNNING.value
    assert decide(JobStatus.RUNNING, ALL, running, changed=False, since_sent=60.0, interval=5.0) is None
    assert decide(JobStatus.RUNNING, ALL, running, changed=True, since_sent=1.0, interval=5.0) is None
    owed = decide(JobStatus.RUNNING, ALL, running, changed=True, since_sent=5.0, interval=5.0)
    assert owed == Due(Event.IN_PROGRESS, settled=False)
    # Another dispatcher sent the last one: this one has no time of its own, the change is owed.
    assert decide(JobStatus.RUNNING, ALL, running, changed=True, since_sent=None, interval=5.0) == owed
    # An end is owed at once, however recent the last progress.
    ended = decide(JobStatus.SUCCEEDED, ALL, running, changed=True, since_sent=0.0, interval=5.0)
    assert ended == Due(Event.SUCCESS, settled=True)


def test_which_answers_are_tried_again():
    assert [s for s in (200, 204, 400, 401, 404, 408, 410, 429, 500, 502, 503) if worth_retrying(s)] == [
        408,
        429,
        500,
        502,
        503,
    ]


def test_uris_are_kept_with_their_credentials_sealed(tmp_path: Path):
    secret = Subscribers(
        success_uri="https://user:pa55word@example.org/done?access_token=t0ken&x=1",
        in_progress_uri="http://example.org/progress",
    )
    entries = stored(secret, tmp_path)
    assert entries is not None
    assert "pa55word" not in json.dumps(entries) and "t0ken" not in json.dumps(entries)
    success = destination(entries, Event.SUCCESS)
    assert success is not None
    assert success["href"] == "https://user:***@example.org/done?access_token=***&x=1"
    assert unsealed(success, tmp_path) == secret.success_uri
    progress = destination(entries, Event.IN_PROGRESS)
    assert progress == {"id": "in_progress_uri", "href": "http://example.org/progress"}
    assert destination(entries, Event.FAILED) is None
    assert stored(None, tmp_path) is None
    assert stored(Subscribers(), tmp_path) is None


@pytest.mark.parametrize("uri", ["ftp://example.org/x", "file:///etc/passwd", "http:///nohost", "http://h:99999/", "x"])
def test_a_subscriber_uri_must_be_http_with_a_host(tmp_path: Path, uri: str):
    with pytest.raises(InvalidSubscriber) as caught:
        stored(Subscribers(failed_uri=uri), tmp_path)
    assert caught.value.subscriber == "failed_uri"


@pytest.fixture
def jobs(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    yield JobService(JobSettings(url, tmp_path / "jobs", inputs=FetchLimits()), engine, build_registry(True, []))
    engine.dispose()


def hello(jobs: JobService, subscribers: Subscribers | None) -> Job:
    request = {"resources": {}, "inputs": [{"id": "name", "kind": "literal", "value": "Ada"}], "outputs": []}
    return jobs.submit(jobs.process("say_hello"), "2.0.0", request, subscribers=subscribers)


def test_only_jobs_with_subscribers_are_read_by_the_notifier(jobs: JobService):
    hello(jobs, None)
    hello(jobs, Subscribers())
    wanted = hello(jobs, Subscribers(success_uri="http://example.org/done"))
    assert [row["id"] for row in queries.notifications_due(jobs.engine)] == [wanted.id]


def test_a_refused_uri_creates_no_job(jobs: JobService):
    with pytest.raises(InvalidSubscriber):
        hello(jobs, Subscribers(success_uri="gopher://example.org/"))
    with jobs.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0


def test_each_state_is_claimed_once_and_a_settled_job_leaves_the_reads(jobs: JobService):
    job = hello(jobs, Subscribers(success_uri="http://example.org/done", in_progress_uri="http://example.org/p"))
    lifecycle.mark_running(jobs.engine, job.id)
    (row,) = queries.notifications_due(jobs.engine)
    assert lifecycle.claim_notification(jobs.engine, row, still_due=True)
    assert not lifecycle.claim_notification(jobs.engine, row, still_due=True)  # a second dispatcher, same read
    (claimed,) = queries.notifications_due(jobs.engine)
    assert (claimed["notified"], claimed["notified_at"]) == ("running", row["updated_at"])
    assert claimed["updated_at"] == row["updated_at"]  # a claim is not a change of the job
    lifecycle.mark_succeeded(jobs.engine, job.id, [], None)
    (ended,) = queries.notifications_due(jobs.engine)
    read_before_the_end = dict(ended) | {"status": "running"}
    assert not lifecycle.claim_notification(jobs.engine, read_before_the_end, still_due=True)  # it moved since
    assert lifecycle.claim_notification(jobs.engine, ended, still_due=False)
    assert queries.notifications_due(jobs.engine) == []


def test_the_neutral_body_is_the_jobs_state_in_json(jobs: JobService):
    job = hello(jobs, None)
    lifecycle.mark_succeeded(jobs.engine, job.id, [{"id": "response", "value": "Hello Ada"}], None)
    done = jobs.get(job.id)
    sent = neutral_body(done, Event.SUCCESS)
    assert sent.media_type == "application/json"
    document = json.loads(sent.content)
    assert document["jobID"] == job.id and document["status"] == "succeeded" and document["event"] == "success_uri"
    assert document["outputs"] == [{"id": "response", "value": "Hello Ada"}]
    assert document["finished"].endswith("Z")
    assert "outputs" not in json.loads(neutral_body(done, Event.IN_PROGRESS).content)
