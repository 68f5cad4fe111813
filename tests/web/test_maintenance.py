"""The dispatcher's upkeep: jobs abandoned by a dead web worker end Failed; expired jobs disappear; over
the disk high-water mark the oldest finished jobs go first."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from app.settings import SettingsError, load_settings
from processes.registry import build_registry
from scheduler import lifecycle, queries
from scheduler.dispatcher import Dispatcher
from scheduler.launcher import Outcome, write_result
from scheduler.maintenance import bytes_over_high_water, evict_over_high_water, fail_abandoned_web_jobs, remove_expired
from scheduler.models import DISPATCHERS, JOBS, JobStatus, utcnow
from scheduler.pids import holder, identity, pid_namespace
from scheduler.removal import directory_size
from tests.tmpfs import mounted_tmpfs

REQUEST = {"inputs": [], "outputs": [], "response": "document"}
MIB = 1024**2


def _age(engine, job_id: str, **values) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))


def test_abandoned_web_job_fails_and_fresh_one_stays(app):
    engine = app.extensions["hpc_wps"].engine
    old = lifecycle.create_job(engine, "sleep", "1.0.0", "sync", REQUEST, JobStatus.RUNNING, "web")["id"]
    fresh = lifecycle.create_job(engine, "sleep", "1.0.0", "sync", REQUEST, JobStatus.RUNNING, "web")["id"]
    _age(engine, old, updated_at=utcnow() - dt.timedelta(seconds=700))
    assert fail_abandoned_web_jobs(engine, 600, utcnow()) == 1
    row = queries.get_job(engine, old)
    assert row["status"] == "failed" and "web worker" in row["message"]
    assert queries.get_job(engine, fresh)["status"] == "running"


def test_a_web_job_whose_worker_is_gone_fails_at_once(app):
    """Well within its time limit: its worker is known gone (this host, this pid namespace)."""
    engine = app.extensions["hpc_wps"].engine
    ended = subprocess.Popen(["true"])
    ended.wait()
    gone = f"{socket.gethostname()}/{ended.pid}:0"  # its pid may be reused, never with that start time

    def web_job(claimed_by: str) -> str:
        job = lifecycle.create_job(engine, "sleep", "1.0.0", "sync", REQUEST, JobStatus.RUNNING, "web", claimed_by)
        return job["id"]

    dead = web_job(f"{gone}|{pid_namespace()}")
    alive = web_job(holder())  # this test's own process
    other_host = web_job(f"elsewhere/{ended.pid}:0|{pid_namespace()}")
    other_namespace = web_job(f"{gone}|pid:[1]")
    assert fail_abandoned_web_jobs(engine, 600, utcnow()) == 1
    row = queries.get_job(engine, dead)
    assert row["status"] == "failed" and "web worker" in row["message"]
    assert all(queries.get_job(engine, j)["status"] == "running" for j in (alive, other_host, other_namespace))


def test_expired_jobs_lose_files_and_rows(app, settings, wps):
    engine = app.extensions["hpc_wps"].engine
    response = wps.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=wordcounter&DataInputs=text=a b a")
    assert response.status_code == 200
    job_id = next(iter(settings.jobs_dir.iterdir())).name
    assert (settings.jobs_dir / job_id / "outputs").is_dir()
    assert remove_expired(engine, settings.jobs_dir) == 0
    _age(engine, job_id, expires_at=utcnow() - dt.timedelta(seconds=1))
    assert remove_expired(engine, settings.jobs_dir) == 1
    assert queries.get_job(engine, job_id) is None
    assert not (settings.jobs_dir / job_id).exists()
    gone = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}")
    assert gone.xml.find("{http://www.opengis.net/ows/2.0}Exception").get("exceptionCode") == "NoSuchJob"


def test_dispatcher_runs_maintenance(app, settings):
    engine = app.extensions["hpc_wps"].engine
    job_id = lifecycle.create_job(engine, "sleep", "1.0.0", "sync", REQUEST, JobStatus.RUNNING, "web")["id"]
    _age(engine, job_id, updated_at=utcnow() - dt.timedelta(days=1))
    Dispatcher(settings.jobs, engine, build_registry(True, [])).cycle()
    assert queries.get_job(engine, job_id)["status"] == "failed"


# -- local jobs of a host gone for good --------------------------------------------------------------


def test_local_jobs_of_a_host_gone_for_good_end(app, settings, wps):
    """A host without a live dispatcher for host_lost_after: its silent local jobs end, from the result
    they left in the (shared) job directory if any; jobs of live hosts, and jobs with news, stay."""
    engine = app.extensions["hpc_wps"].engine
    silent = settings.monitoring.host_lost_after

    def local_job(native_id: str, silent_for: float) -> str:
        job_id = lifecycle.create_job(engine, "sleep", "1.0.0", "async", REQUEST, JobStatus.RUNNING, "local")["id"]
        _age(engine, job_id, native_id=native_id, native_active=True)
        _age(engine, job_id, updated_at=utcnow() - dt.timedelta(seconds=silent_for))
        return job_id

    lost = local_job("gone-host/10:1/11:1:1", silent + 60)
    ended_there = local_job("gone-host/10:1/12:1:1", silent + 60)
    (settings.jobs_dir / ended_there).mkdir(parents=True)
    write_result(settings.jobs_dir / ended_there, Outcome("succeeded", "done on gone-host"))
    with_news = local_job("gone-host/10:1/13:1:1", silent / 2)
    on_live_host = local_job("live-host/20:1/21:1:1", silent + 60)
    with engine.begin() as conn:
        conn.execute(
            insert(DISPATCHERS).values(
                id="live", host="live-host", pid=20, executors="local", started_at=utcnow(), beat_at=utcnow()
            )
        )
        # A dispatcher of the lost host that beat long ago does not keep its jobs alive.
        conn.execute(
            insert(DISPATCHERS).values(
                id="gone",
                host="gone-host",
                pid=10,
                executors="local",
                started_at=utcnow() - dt.timedelta(hours=2),
                beat_at=utcnow() - dt.timedelta(seconds=silent + 1),
            )
        )
    Dispatcher(settings.jobs, engine, build_registry(True, [])).maintain()

    def status(job_id: str):  # type: ignore[no-untyped-def]
        return wps.get(f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}").xml

    failed = status(lost)
    assert failed.findtext("{http://www.opengis.net/wps/2.0}Status") == "Failed"
    assert "lost with its host gone-host" in queries.get_job(engine, lost)["message"]
    assert status(ended_there).findtext("{http://www.opengis.net/wps/2.0}Status") == "Succeeded"
    for job_id in (with_news, on_live_host):
        assert status(job_id).findtext("{http://www.opengis.net/wps/2.0}Status") == "Running"
    assert not any(queries.get_job(engine, j)["native_active"] for j in (lost, ended_there))


# -- the disk high-water mark ---------------------------------------------------------------------------

BIG1 = "/wps?service=WPS&version=1.0.0&request=Execute&identifier=bigoutput&DataInputs=size_mb=1"


def finished_big_jobs(wps, engine, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    """``count`` succeeded jobs with a 1 MiB output each, oldest first."""
    before = {row[0] for row in _ids(engine)}
    for _ in range(count):
        assert wps.get(BIG1).status_code == 200
    rows = sorted((queries.get_job(engine, i) for i in {r[0] for r in _ids(engine)} - before), key=_finished)
    assert [r["status"] for r in rows] == ["succeeded"] * count
    return [r["id"] for r in rows]


def _ids(engine):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return list(conn.execute(select(JOBS.c.id)))


def _finished(row):  # type: ignore[no-untyped-def]
    return row["finished_at"]


def running_job_with_files(engine, jobs_dir: Path, size: int) -> str:  # type: ignore[no-untyped-def]
    """A job claimed by the local pool (running, held by its executor) that wrote ``size`` bytes; created
    before every other job, so it is the oldest of all."""
    job_id = lifecycle.create_job(engine, "bigoutput", "1.0.0", "async", REQUEST)["id"]
    _age(engine, job_id, created_at=utcnow() - dt.timedelta(days=30))
    assert lifecycle.claim_many(engine, [job_id], "local", True, identity()) == {job_id}
    (jobs_dir / job_id / "outputs").mkdir(parents=True)
    (jobs_dir / job_id / "outputs" / "output.bin").write_bytes(b"\1" * size)
    return job_id


def test_budget_evicts_oldest_finished_jobs_and_never_a_running_one(app, settings, wps, caplog):
    engine = app.extensions["hpc_wps"].engine
    running = running_job_with_files(engine, settings.jobs_dir, 2 * MIB)
    waiting = lifecycle.create_job(engine, "sleep", "1.0.0", "async", REQUEST)["id"]
    oldest, middle, newest = finished_big_jobs(wps, engine, 3)
    assert directory_size(settings.jobs_dir) >= 5 * MIB
    # 5 MiB and a little in all, 3.5 MiB allowed: the two oldest finished jobs must go, no more.
    with caplog.at_level(logging.WARNING, logger="scheduler.maintenance"):
        evicted = evict_over_high_water(engine, settings.jobs_dir, 0, int(3.5 * MIB))
    assert evicted == [oldest, middle]
    for job_id in (oldest, middle):
        assert queries.get_job(engine, job_id) is None and not (settings.jobs_dir / job_id).exists()
        assert f"evicted job {job_id} (bigoutput, succeeded" in caplog.text
    assert queries.get_job(engine, newest)["status"] == "succeeded"
    assert (settings.jobs_dir / newest / "outputs" / "output.bin").stat().st_size == MIB
    assert queries.get_job(engine, running)["status"] == "running"
    assert (settings.jobs_dir / running / "outputs" / "output.bin").exists()
    assert queries.get_job(engine, waiting)["status"] == "accepted"
    assert directory_size(settings.jobs_dir) <= 3.5 * MIB
    assert evict_over_high_water(engine, settings.jobs_dir, 0, int(3.5 * MIB)) == []
    # The newest finished job still served: eviction leaves the jobs it keeps whole.
    served = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetResult&jobId={newest}")
    assert served.status_code == 200


def test_high_water_mark_of_a_real_small_filesystem(app, settings, wps, tmp_path, caplog):
    """A 4 MiB filesystem holds the job directories; above 50 % the oldest finished jobs go, and when
    only a running job is left over the mark, it stays and the log says so."""
    engine = app.extensions["hpc_wps"].engine
    with mounted_tmpfs(settings.jobs_dir, "4m"):
        oldest, middle, newest = finished_big_jobs(wps, engine, 3)
        assert bytes_over_high_water(settings.jobs_dir, 50, 0) >= MIB - 64 * 1024
        assert evict_over_high_water(engine, settings.jobs_dir, 0, 0) == []  # both limits off
        assert evict_over_high_water(engine, settings.jobs_dir, 50, 0) == [oldest]
        usage = shutil.disk_usage(settings.jobs_dir)
        assert usage.used <= usage.total / 2
        assert bytes_over_high_water(settings.jobs_dir, 50, 0) == 0
        assert [queries.get_job(engine, j) is not None for j in (oldest, middle, newest)] == [False, True, True]
        running = running_job_with_files(engine, settings.jobs_dir, int(1.5 * MIB))
        with caplog.at_level(logging.WARNING, logger="scheduler.maintenance"):
            assert evict_over_high_water(engine, settings.jobs_dir, 10, 0) == [middle, newest]
        assert "no finished job left to evict" in caplog.text
        assert queries.get_job(engine, running)["status"] == "running"
        assert (settings.jobs_dir / running / "outputs" / "output.bin").exists()
        assert sorted(p.name for p in settings.jobs_dir.iterdir()) == [running]


def test_high_water_settings_and_their_errors():
    settings = load_settings(environ={"HPC_WPS_PROCESSING_DISK_HIGH_WATER": "85%"})
    assert settings.processing.disk_high_water == 85.0
    assert load_settings(environ={}).processing.disk_high_water == 90.0
    budget = load_settings(environ={"HPC_WPS_PROCESSING_JOBS_BUDGET": "2GiB"})
    assert budget.processing.jobs_budget == 2 * 1024**3
    with pytest.raises(SettingsError, match=r"\[processing\] disk_high_water: '120%' is not a percentage"):
        load_settings(environ={"HPC_WPS_PROCESSING_DISK_HIGH_WATER": "120%"})
