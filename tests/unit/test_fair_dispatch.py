"""Fair dispatch and per-user quotas against a real SQLite job table: the order in which the
dispatcher's claim query offers waiting jobs (round robin between users, first in first out within
one), ``running_per_user`` in that query, and the quotas the job service checks as it inserts a job
(``queued_per_user``, ``sync_per_user``, ``storage_per_user``). Workers racing for one quota are
tested on both databases in ``tests/web/test_quotas.py``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from migrations import upgrade
from processes.registry import build_registry
from scheduler import lifecycle, queries
from scheduler.access import Caller
from scheduler.db import make_engine
from scheduler.errors import QuotaExceeded
from scheduler.executor_names import LOCAL, WEB
from scheduler.models import ANONYMOUS, JOBS, JobStatus, utcnow
from scheduler.quotas import Quota
from scheduler.service import JobService
from scheduler.settings import JobSettings, QuotaSettings

REQUEST: dict[str, Any] = {"resources": {}, "inputs": [], "outputs": [], "response": "document"}


@pytest.fixture
def engine(database_url: str) -> Engine:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def queue(engine: Engine, jobs: list[str]) -> dict[str, list[str]]:
    """Accepted jobs of the owners named, in this order, one microsecond apart; ids by owner, oldest first."""
    start = utcnow()
    ids: dict[str, list[str]] = {}
    with engine.begin() as conn:
        for n, owner in enumerate(jobs):
            job_id = lifecycle.create_job(conn, "sleep", "2.0.0", "async", REQUEST, owner=owner)["id"]
            conn.execute(
                update(JOBS).where(JOBS.c.id == job_id).values(created_at=start + dt.timedelta(microseconds=n))
            )
            ids.setdefault(owner, []).append(job_id)
    return ids


def start(engine: Engine, job_ids: list[str]) -> None:
    """Hand jobs to the local pool, as the dispatcher's claim does."""
    assert lifecycle.claim_many(engine, job_ids, LOCAL, True, "test/1:1") == set(job_ids)


def test_round_robin_between_users_first_in_first_out_within_each(engine):
    """alice queued a thousand jobs first, then bob one, then carol five: bob's and carol's first jobs
    come right after alice's first, not after her thousand."""
    ids = queue(engine, ["alice"] * 1000 + ["bob"] + ["carol"] * 5)
    a, b, c = ids["alice"], ids["bob"], ids["carol"]
    order = [row["id"] for row in queries.next_to_start(engine, 12)]
    assert order == [a[0], b[0], c[0], a[1], c[1], a[2], c[2], a[3], c[3], a[4], c[4], a[5]]
    everything = [row["id"] for row in queries.next_to_start(engine, 2000)]
    assert len(everything) == 1006
    assert [i for i in everything if i in set(a)] == a  # first in, first out within a user
    assert everything[-994:] == a[6:]  # once the others are served, alice's remaining jobs follow


def test_one_user_waiting_is_first_in_first_out(engine):
    ids = queue(engine, ["alice"] * 5)
    assert [row["id"] for row in queries.next_to_start(engine, 3)] == ids["alice"][:3]
    start(engine, ids["alice"][:2])
    assert [row["id"] for row in queries.next_to_start(engine, 5)] == ids["alice"][2:]
    assert [row["id"] for row in queries.next_to_start(engine, 5, cap=3)] == ids["alice"][2:3]


def test_a_user_with_jobs_running_comes_after_users_without(engine):
    """alice has two jobs running: the next free slot goes to bob's one job, although alice's waiting
    jobs are older; then carol (equal turn, younger), then alice again."""
    ids = queue(engine, ["alice"] * 1000 + ["bob"] + ["carol"] * 5)
    start(engine, ids["alice"][:2])
    order = [row["id"] for row in queries.next_to_start(engine, 4)]
    assert order == [ids["bob"][0], ids["carol"][0], ids["carol"][1], ids["alice"][2]]


def test_running_per_user_keeps_the_rest_accepted(engine):
    """With running_per_user = 2, a user with two jobs on executors gets none more until one ends."""
    ids = queue(engine, ["alice"] * 1000 + ["bob"] + ["carol"] * 5)
    offered = [row["id"] for row in queries.next_to_start(engine, 64, cap=2)]
    assert offered == [ids["alice"][0], ids["bob"][0], ids["carol"][0], ids["alice"][1], ids["carol"][1]]
    start(engine, ids["alice"][:2])
    start(engine, ids["carol"][:1])
    offered = [row["id"] for row in queries.next_to_start(engine, 64, cap=2)]
    assert offered == [ids["bob"][0], ids["carol"][1]]
    # queued on a batch system counts as running does; a synchronous job in a web worker does not
    lifecycle.create_job(engine, "sleep", "2.0.0", "sync", REQUEST, JobStatus.RUNNING, WEB, owner="bob")
    assert [row["id"] for row in queries.next_to_start(engine, 64, cap=2)] == offered
    lifecycle.mark_failed(engine, ids["alice"][0], "ended", utcnow())
    offered = [row["id"] for row in queries.next_to_start(engine, 64, cap=2)]
    assert offered == [ids["bob"][0], ids["alice"][2], ids["carol"][1]]  # equal turns: the older first


def test_running_per_user_counts_every_executor(engine):
    ids = queue(engine, ["alice"] * 3)
    assert lifecycle.claim_many(engine, ids["alice"][:1], "slurm", False, "test/1:1")
    assert [row["id"] for row in queries.next_to_start(engine, 64, cap=1)] == []
    assert [row["id"] for row in queries.next_to_start(engine, 64, cap=2)] == ids["alice"][1:2]


# -- quotas at insertion ------------------------------------------------------------------------------


def count(engine: Engine, owner: str, status: JobStatus) -> int:
    stmt = select(func.count()).select_from(JOBS).where(JOBS.c.owner == owner, JOBS.c.status == status.value)
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def test_queued_per_user_counts_accepted_and_queued_of_that_user_only(engine):
    within = Quota("queued_per_user", 2)
    ids = [lifecycle.create_job(engine, "sleep", "2.0.0", "async", REQUEST, owner="alice", within=within)["id"]]
    assert lifecycle.claim_many(engine, ids, "slurm", False, "test/1:1")  # queued still waits
    lifecycle.create_job(engine, "sleep", "2.0.0", "async", REQUEST, owner="alice", within=within)
    with pytest.raises(QuotaExceeded) as refused:
        lifecycle.create_job(engine, "sleep", "2.0.0", "async", REQUEST, owner="alice", within=within)
    assert refused.value.quota == "queued_per_user"
    assert "queued_per_user" in str(refused.value) and "2 jobs waiting" in str(refused.value)
    lifecycle.create_job(engine, "sleep", "2.0.0", "async", REQUEST, owner="bob", within=within)
    lifecycle.mark_running(engine, ids[0])  # running no longer waits
    lifecycle.create_job(engine, "sleep", "2.0.0", "async", REQUEST, owner="alice", within=within)
    assert count(engine, "alice", JobStatus.ACCEPTED) == 2


# -- through the job service ------------------------------------------------------------------------


@pytest.fixture
def jobs(engine: Engine, database_url: str, tmp_path: Path) -> JobService:
    settings = JobSettings(database_url=database_url, jobs_dir=tmp_path / "jobs")
    return JobService(settings, engine, build_registry(True, []))


def literal_request(**inputs: str) -> dict[str, Any]:
    return REQUEST | {"inputs": [{"id": k, "kind": "literal", "value": v} for k, v in inputs.items()]}


def test_service_quotas_are_off_by_default(jobs):
    assert QuotaSettings() == QuotaSettings(0, 0, 0, 0)
    sleep = jobs.process("sleep")
    for _ in range(5):
        assert jobs.submit(sleep, "2.0.0", literal_request(delay="0")).owner == ANONYMOUS


def test_service_submit_and_run_apply_the_owners_quotas(jobs):
    jobs.settings = jobs.settings.replace("quotas", queued_per_user=1, sync_per_user=1)
    sleep, hello = jobs.process("sleep"), jobs.process("say_hello")
    assert jobs.submit(sleep, "2.0.0", literal_request(delay="0"), caller=Caller("alice")).owner == "alice"
    with pytest.raises(QuotaExceeded, match="queued_per_user"):
        jobs.submit(sleep, "2.0.0", literal_request(delay="0"), caller=Caller("alice"))
    assert jobs.submit(sleep, "2.0.0", literal_request(delay="0"), caller=Caller("bob")).owner == "bob"
    # a synchronous execution of alice's runs in another web worker
    lifecycle.create_job(jobs.engine, "sleep", "2.0.0", "sync", REQUEST, JobStatus.RUNNING, WEB, owner="alice")
    with pytest.raises(QuotaExceeded, match="sync_per_user"):
        jobs.run(hello, "2.0.0", literal_request(name="x"), caller=Caller("alice"))
    assert jobs.run(hello, "2.0.0", literal_request(name="x"), caller=Caller("bob")).status is JobStatus.SUCCEEDED


def test_service_storage_per_user_refuses_until_jobs_are_dismissed(jobs):
    hello = jobs.process("say_hello")
    done = jobs.run(hello, "2.0.0", literal_request(name="x"), caller=Caller("alice"))
    (jobs.settings.job_dir(done.id) / "outputs").mkdir(parents=True, exist_ok=True)
    (jobs.settings.job_dir(done.id) / "outputs" / "big.bin").write_bytes(b"x" * 100_000)
    jobs.settings = jobs.settings.replace("quotas", storage_per_user=50_000)
    with pytest.raises(QuotaExceeded, match="storage_per_user") as refused:
        jobs.run(hello, "2.0.0", literal_request(name="x"), caller=Caller("alice"))
    assert "KiB" in str(refused.value) and "dismiss" in str(refused.value)
    jobs.run(hello, "2.0.0", literal_request(name="x"), caller=Caller("bob"))  # bob keeps nothing
    jobs.dismiss(done.id, Caller("alice"))
    assert jobs.run(hello, "2.0.0", literal_request(name="x"), caller=Caller("alice")).status is JobStatus.SUCCEEDED
