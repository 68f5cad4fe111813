"""Retention as clients see it: every finished job carries its expiration date, an expired job is swept
(files and row) by the real dispatcher, and Dismiss removes a job's files whether it waited, ran or ended."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

from scheduler import queries
from scheduler.models import utcnow
from tests.conftest import settings_environ, wait_for
from tests.xsd import OWS11, OWS20, ROOT, WPS10, WPS20

NS = {"wps": WPS10, "ows": OWS11, "wps2": WPS20, "ows2": OWS20}
EXECUTE10 = "/wps?service=WPS&version=1.0.0&request=Execute"
WORDCOUNT_BY_REFERENCE = (
    f"{EXECUTE10}&identifier=wordcounter&DataInputs=text=a b a&ResponseDocument=output@asReference=true"
)
ASYNC = "&storeExecuteResponse=true&status=true"
WEEK = dt.timedelta(days=7)


def kvp20(wps, operation: str, job_id: str):  # type: ignore[no-untyped-def]
    return wps.get(f"/wps?service=WPS&version=2.0.0&request={operation}&jobId={job_id}")


def submit(wps, query: str) -> str:  # type: ignore[no-untyped-def]
    response = wps.get(query + ASYNC)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.xml.get("statusLocation").rsplit("/", 1)[1]


def state(wps, job_id: str) -> str:  # type: ignore[no-untyped-def]
    return kvp20(wps, "GetStatus", job_id).xml.findtext(f"{{{WPS20}}}Status")


def expiration(document) -> dt.datetime | None:  # type: ignore[no-untyped-def]
    text = document.findtext(f"{{{WPS20}}}ExpirationDate")
    return dt.datetime.fromisoformat(text.removesuffix("Z")) if text else None


def exception_code(response) -> str:  # type: ignore[no-untyped-def]
    return response.xml.find(f"{{{OWS20}}}Exception").get("exceptionCode")


def local_path(href: str) -> str:
    return href.removeprefix("http://testserver")


def test_expiration_date_in_status_and_result_documents(wps, app, settings, dispatcher):
    """None while a job runs; the end plus the retention (7 days by default) once it has ended,
    successful or not, run by the dispatcher or in the web worker."""
    engine = app.extensions["hpc_wps"].engine
    job_id = submit(wps, f"{EXECUTE10}&identifier=sleep&DataInputs=delay=1")
    wait_for(lambda: state(wps, job_id) == "Running")
    assert expiration(kvp20(wps, "GetStatus", job_id).xml) is None
    wait_for(lambda: state(wps, job_id) == "Succeeded")
    row = queries.get_job(engine, job_id)
    expires = expiration(kvp20(wps, "GetStatus", job_id).xml)
    assert expires == row["expires_at"].replace(microsecond=0)
    assert abs(expires - row["finished_at"] - WEEK) < dt.timedelta(seconds=2)
    assert expiration(kvp20(wps, "GetResult", job_id).xml) == expires

    failed = submit(wps, f"{EXECUTE10}&identifier=fail&DataInputs=message=no")
    wait_for(lambda: state(wps, failed) == "Failed")
    failed_row = queries.get_job(engine, failed)
    assert abs(expiration(kvp20(wps, "GetStatus", failed).xml) - failed_row["finished_at"] - WEEK) < dt.timedelta(
        seconds=2
    )

    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    sync = wps.post(
        "/wps",
        data=(
            f'<wps:Execute xmlns:wps="{WPS20}" xmlns:ows="{OWS20}" service="WPS" version="2.0.0" '
            'response="document" mode="sync"><ows:Identifier>say_hello</ows:Identifier>'
            '<wps:Input id="name"><wps:Data>you</wps:Data></wps:Input>'
            '<wps:Output id="response" transmission="value"/></wps:Execute>'
        ).encode(),
        content_type="text/xml",
    )
    assert sync.status_code == 200 and sync.xml.tag == f"{{{WPS20}}}Result"
    assert before + WEEK <= expiration(sync.xml) <= before + WEEK + dt.timedelta(seconds=5)


def test_expired_job_is_swept_by_the_dispatcher(wps, app, settings):
    """With a retention of 2 s the job's files and row are gone at the dispatcher's next upkeep (which
    a restarted dispatcher runs at once); clients then get NoSuchJob and 404."""
    engine = app.extensions["hpc_wps"].engine
    env = settings_environ(settings) | {"HPC_WPS_PROCESSING_RETENTION": "2"}

    def dispatcher() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "app.cli", "dispatcher"], cwd=ROOT, env=env)

    first = dispatcher()
    try:
        job_id = submit(wps, WORDCOUNT_BY_REFERENCE)
        wait_for(lambda: state(wps, job_id) == "Succeeded")
    finally:
        first.terminate()
        first.wait(timeout=30)
    row = queries.get_job(engine, job_id)
    assert dt.timedelta(seconds=1) <= row["expires_at"] - row["finished_at"] <= dt.timedelta(seconds=3)
    href = wps.get(f"/wps/jobs/{job_id}").xml.xpath("//wps:Reference/@href", namespaces=NS)[0]
    assert wps.get(local_path(href)).status_code == 200
    time.sleep(max(0.0, (row["expires_at"] - utcnow()).total_seconds()) + 0.5)
    assert (settings.jobs_dir / job_id).is_dir()  # expired, but nothing has swept it yet
    second = dispatcher()
    try:
        wait_for(lambda: queries.get_job(engine, job_id) is None)
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert not (settings.jobs_dir / job_id).exists()
    assert exception_code(kvp20(wps, "GetStatus", job_id)) == "NoSuchJob"
    assert wps.get(f"/wps/jobs/{job_id}").status_code == 404
    assert wps.get(local_path(href)).status_code == 404


def test_dismiss_finished_job_removes_its_outputs(wps, app, settings):
    engine = app.extensions["hpc_wps"].engine
    response = wps.get(WORDCOUNT_BY_REFERENCE)
    href = response.xml.xpath("//wps:Reference/@href", namespaces=NS)[0]
    job_id = href.split("/jobs/")[1].split("/")[0]
    assert wps.get(local_path(href)).get_json() == {"a": 2, "b": 1}
    dismissed = kvp20(wps, "Dismiss", job_id)
    assert dismissed.xml.findtext(f"{{{WPS20}}}Status") == "Dismissed"
    assert not (settings.jobs_dir / job_id).exists()
    assert queries.get_job(engine, job_id)["status"] == "dismissed"
    assert wps.get(local_path(href)).status_code == 404
    assert exception_code(kvp20(wps, "GetResult", job_id)) == "NoSuchJob"
    failed = wps.get(f"/wps/jobs/{job_id}").xml.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessFailed")
    assert failed.findtext(f".//{{{OWS11}}}ExceptionText") == "dismissed by the client"


def test_dismiss_waiting_and_running_jobs_leaves_nothing(wps, app, settings, dispatcher):
    """Two slots, three jobs: the two running ones are stopped and their directories removed; the
    waiting one never starts, not even once slots are free again."""
    engine = app.extensions["hpc_wps"].engine
    running = [submit(wps, f"{EXECUTE10}&identifier=sleep&DataInputs=delay=60") for _ in range(2)]
    wait_for(lambda: all(state(wps, j) == "Running" for j in running))
    wait_for(lambda: all((settings.jobs_dir / j).is_dir() for j in running))
    waiting = submit(wps, f"{EXECUTE10}&identifier=sleep&DataInputs=delay=0")
    assert state(wps, waiting) == "Accepted"
    for job_id in [waiting, *running]:
        assert kvp20(wps, "Dismiss", job_id).xml.findtext(f"{{{WPS20}}}Status") == "Dismissed"
    wait_for(lambda: not any(queries.get_job(engine, j)["native_active"] for j in running))
    wait_for(lambda: not any((settings.jobs_dir / j).exists() for j in running))
    # A job submitted after them runs to its end: the dispatcher has had free slots since.
    later = submit(wps, f"{EXECUTE10}&identifier=say_hello&DataInputs=name=x")
    wait_for(lambda: state(wps, later) == "Succeeded")
    row = queries.get_job(engine, waiting)
    assert (row["status"], row["started_at"], row["native_id"]) == ("dismissed", None, None)
    assert not (settings.jobs_dir / waiting).exists()
    assert all(state(wps, j) == "Dismissed" for j in [waiting, *running])
