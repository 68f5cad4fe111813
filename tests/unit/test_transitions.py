"""The job table's guards: every transition function moves a job only from the states that
``lifecycle.TRANSITIONS`` allows, on real rows of a migrated job table (SQLite and PostgreSQL).

Races between a Dismiss, the dispatcher and the job itself are decided by these guards alone, so a
guard that lets one move too many would let a finished job run again or a dismissed one succeed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from migrations import upgrade
from scheduler import lifecycle, queries
from scheduler.db import make_engine
from scheduler.lifecycle import TRANSITIONS, moves_into
from scheduler.models import ACTIVE_STATES, FINAL_STATES, JobStatus

REQUEST = {"inputs": [], "outputs": [], "response": "document"}
DISPATCHER = "elsewhere/1:0"
OUTPUTS = [{"id": "result", "kind": "literal", "value": "42"}]


def migrated(url: str) -> Iterator[Engine]:
    upgrade(url)
    made = make_engine(url)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One migrated SQLite job table; every test makes rows of its own. The same tests run against
    PostgreSQL in ``tests/web/test_transitions_postgres.py``."""
    yield from migrated(f"sqlite:///{Path(tmp_path_factory.mktemp('transitions')) / 'jobs.sqlite'}")


def row(engine: Engine, job_id: str) -> dict[str, Any]:
    found = queries.get_job(engine, job_id)
    assert found is not None
    return dict(found)


def claim(engine: Engine, job_id: str, starts_now: bool) -> bool:
    return lifecycle.claim_many(engine, [job_id], "slurm", starts_now, DISPATCHER) == {job_id}


def job_in(engine: Engine, status: JobStatus) -> str:
    """A job brought to ``status`` the way the service brings one there."""
    job_id = lifecycle.create_job(engine, "sleep", "2.0.0", "async", REQUEST)["id"]
    if status is not JobStatus.ACCEPTED:
        assert claim(engine, job_id, starts_now=False)
    if status not in (JobStatus.ACCEPTED, JobStatus.QUEUED):
        assert lifecycle.mark_running(engine, job_id, "running on node1")
    if status is JobStatus.SUCCEEDED:
        assert lifecycle.mark_succeeded(engine, job_id, OUTPUTS, None)
    elif status is JobStatus.FAILED:
        assert lifecycle.mark_failed(engine, job_id, "the process failed")
    elif status is JobStatus.DISMISSED:
        assert lifecycle.dismiss(engine, job_id)
    assert row(engine, job_id)["status"] == status.value
    return job_id


Move = Callable[[Engine, str], bool]
# The function that moves a job to each state; running -> running is update_progress.
MOVES: dict[JobStatus, Move] = {
    JobStatus.ACCEPTED: lambda engine, job_id: lifecycle.release(engine, job_id, "queued again"),
    JobStatus.QUEUED: lambda engine, job_id: claim(engine, job_id, starts_now=False),
    JobStatus.RUNNING: lambda engine, job_id: lifecycle.mark_running(engine, job_id, "running on node2"),
    JobStatus.SUCCEEDED: lambda engine, job_id: lifecycle.mark_succeeded(engine, job_id, OUTPUTS, None),
    JobStatus.FAILED: lambda engine, job_id: lifecycle.mark_failed(engine, job_id, "it broke"),
    JobStatus.DISMISSED: lambda engine, job_id: lifecycle.dismiss(engine, job_id),
}


def progress(engine: Engine, job_id: str) -> bool:
    return lifecycle.update_progress(engine, job_id, "half way", 50)


# Every function that changes a job's state or reports on it, with the state it leaves the job in.
FUNCTIONS: dict[str, tuple[Move, JobStatus]] = {
    "release": (MOVES[JobStatus.ACCEPTED], JobStatus.ACCEPTED),
    "claim_many": (MOVES[JobStatus.QUEUED], JobStatus.QUEUED),
    "claim_many starting now": (lambda engine, job_id: claim(engine, job_id, starts_now=True), JobStatus.RUNNING),
    "mark_running": (MOVES[JobStatus.RUNNING], JobStatus.RUNNING),
    "update_progress": (progress, JobStatus.RUNNING),
    "mark_succeeded": (MOVES[JobStatus.SUCCEEDED], JobStatus.SUCCEEDED),
    "mark_failed": (MOVES[JobStatus.FAILED], JobStatus.FAILED),
    "dismiss": (MOVES[JobStatus.DISMISSED], JobStatus.DISMISSED),
}


def test_the_table_names_every_state_and_keeps_finished_jobs_finished() -> None:
    assert set(TRANSITIONS) == set(JobStatus)
    assert all(targets <= set(JobStatus) for targets in TRANSITIONS.values())
    assert TRANSITIONS[JobStatus.SUCCEEDED] == TRANSITIONS[JobStatus.FAILED] == {JobStatus.DISMISSED}
    assert TRANSITIONS[JobStatus.DISMISSED] == frozenset()
    assert all(TRANSITIONS[s] >= FINAL_STATES for s in ACTIVE_STATES)  # any active job may end, either way


@pytest.mark.parametrize("to", list(JobStatus), ids=str)
@pytest.mark.parametrize("start", list(JobStatus), ids=str)
def test_a_job_moves_iff_the_table_allows_it(engine: Engine, start: JobStatus, to: JobStatus) -> None:
    job_id = job_in(engine, start)
    before = row(engine, job_id)
    move = progress if start is to is JobStatus.RUNNING else MOVES[to]
    allowed = to in TRANSITIONS[start]
    assert move(engine, job_id) is allowed
    after = row(engine, job_id)
    if allowed:
        assert after["status"] == to.value
        assert after["updated_at"] >= before["updated_at"] and after != before
    else:
        assert after == before


@pytest.mark.parametrize("function", list(FUNCTIONS))
@pytest.mark.parametrize("start", sorted(FINAL_STATES), ids=str)
def test_a_finished_job_never_moves_again_but_to_dismissed(engine: Engine, start: JobStatus, function: str) -> None:
    job_id = job_in(engine, start)
    before = row(engine, job_id)
    move, to = FUNCTIONS[function]
    moved = move(engine, job_id)
    after = row(engine, job_id)
    if to is JobStatus.DISMISSED and start is not JobStatus.DISMISSED:
        assert moved and after["status"] == "dismissed" and after["message"] == lifecycle.DISMISSED_BY_CLIENT
    else:
        assert not moved and after == before


def test_a_dismissed_job_never_becomes_succeeded(engine: Engine) -> None:
    """The outcome of a job dismissed while it ran arrives later and is dropped."""
    job_id = job_in(engine, JobStatus.RUNNING)
    assert lifecycle.dismiss(engine, job_id)
    dismissed = row(engine, job_id)
    assert not lifecycle.mark_succeeded(engine, job_id, OUTPUTS, None, native_active=False)
    assert not lifecycle.mark_failed(engine, job_id, "killed", None, native_active=False)
    assert not lifecycle.dismiss(engine, job_id, "dismissed twice")
    assert row(engine, job_id) == dismissed
    assert dismissed["status"] == "dismissed" and dismissed["outputs"] is None


@pytest.mark.parametrize("start", [JobStatus.SUCCEEDED, JobStatus.FAILED], ids=str)
def test_dismiss_takes_back_a_finished_job(engine: Engine, start: JobStatus) -> None:
    job_id = job_in(engine, start)
    assert lifecycle.dismiss(engine, job_id, "dismissed by an operator")
    after = row(engine, job_id)
    assert after["status"] == "dismissed" and after["message"] == "dismissed by an operator"


@pytest.mark.parametrize("starts_now", [False, True], ids=["queued", "running"])
@pytest.mark.parametrize("start", list(JobStatus), ids=str)
def test_a_claim_takes_only_accepted_jobs(engine: Engine, start: JobStatus, starts_now: bool) -> None:
    assert moves_into(JobStatus.QUEUED) == {JobStatus.ACCEPTED}
    job_id = job_in(engine, start)
    before = row(engine, job_id)
    claimed = claim(engine, job_id, starts_now)
    after = row(engine, job_id)
    assert claimed is (start is JobStatus.ACCEPTED)
    if claimed:
        assert after["status"] == ("running" if starts_now else "queued")
        assert after["claimed_by"] == DISPATCHER and after["executor"] == "slurm" and after["native_active"]
    else:
        assert after == before


@pytest.mark.parametrize("start", list(JobStatus), ids=str)
def test_only_a_running_job_reports_progress(engine: Engine, start: JobStatus) -> None:
    job_id = job_in(engine, start)
    before = row(engine, job_id)
    reported = progress(engine, job_id)
    after = row(engine, job_id)
    assert reported is (start is JobStatus.RUNNING)
    if reported:
        assert (after["status"], after["progress"], after["message"]) == ("running", 50, "half way")
        assert after["started_at"] == before["started_at"]
    else:
        assert after == before


def test_a_running_job_is_not_started_again(engine: Engine) -> None:
    """mark_running sets started_at; a second start (a launcher run twice) must not move it."""
    job_id = job_in(engine, JobStatus.RUNNING)
    before = row(engine, job_id)
    assert not lifecycle.mark_running(engine, job_id, "running on node3")
    assert row(engine, job_id) == before


@pytest.mark.parametrize("start", list(JobStatus), ids=str)
def test_release_gives_back_only_a_claimed_job(engine: Engine, start: JobStatus) -> None:
    job_id = job_in(engine, start)
    before = row(engine, job_id)
    released = lifecycle.release(engine, job_id, "queued again")
    after = row(engine, job_id)
    assert released is (start in (JobStatus.QUEUED, JobStatus.RUNNING))
    if released:
        assert after["status"] == "accepted" and not after["native_active"] and after["started_at"] is None
    else:
        assert after == before
