"""The dispatcher's upkeep: jobs abandoned by a dead web worker end Failed; expired jobs disappear."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from processes.registry import build_registry
from scheduler import lifecycle
from scheduler.dispatcher import Dispatcher
from scheduler.maintenance import fail_abandoned_web_jobs, remove_expired
from scheduler.models import JOBS, JobStatus, utcnow

REQUEST = {"inputs": [], "outputs": [], "response": "document"}


def _age(engine, job_id: str, **values) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))


def test_abandoned_web_job_fails_and_fresh_one_stays(app):
    engine = app.extensions["hpc_wps"].engine
    old = lifecycle.create_job(engine, "sleep", "1.0.0", "sync", REQUEST, JobStatus.RUNNING, "web")["id"]
    fresh = lifecycle.create_job(engine, "sleep", "1.0.0", "sync", REQUEST, JobStatus.RUNNING, "web")["id"]
    _age(engine, old, updated_at=utcnow() - dt.timedelta(seconds=700))
    assert fail_abandoned_web_jobs(engine, 600, utcnow()) == 1
    row = lifecycle.get_job(engine, old)
    assert row["status"] == "failed" and "web worker" in row["message"]
    assert lifecycle.get_job(engine, fresh)["status"] == "running"


def test_expired_jobs_lose_files_and_rows(app, settings, wps):
    engine = app.extensions["hpc_wps"].engine
    response = wps.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=wordcounter&DataInputs=text=a b a")
    assert response.status_code == 200
    job_id = next(iter(settings.jobs_dir.iterdir())).name
    assert (settings.jobs_dir / job_id / "outputs").is_dir()
    assert remove_expired(engine, settings.jobs_dir) == 0
    _age(engine, job_id, expires_at=utcnow() - dt.timedelta(seconds=1))
    assert remove_expired(engine, settings.jobs_dir) == 1
    assert lifecycle.get_job(engine, job_id) is None
    assert not (settings.jobs_dir / job_id).exists()
    gone = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}")
    assert gone.xml.find("{http://www.opengis.net/ows/2.0}Exception").get("exceptionCode") == "NoSuchJob"


def test_dispatcher_runs_maintenance(app, settings):
    engine = app.extensions["hpc_wps"].engine
    job_id = lifecycle.create_job(engine, "sleep", "1.0.0", "sync", REQUEST, JobStatus.RUNNING, "web")["id"]
    _age(engine, job_id, updated_at=utcnow() - dt.timedelta(days=1))
    Dispatcher(settings, engine, build_registry(True, [])).cycle()
    assert lifecycle.get_job(engine, job_id)["status"] == "failed"
