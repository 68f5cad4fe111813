"""Asynchronous jobs through the real dispatcher: status in both versions, progress, Dismiss, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from scheduler import queries
from scheduler.executors.local import worker_pid
from scheduler.models import JobStatus
from scheduler.pids import start_time
from tests.conftest import settings_environ, wait_for
from tests.xsd import OWS11, OWS20, ROOT, WPS10, WPS20

NS = {"wps": WPS10, "ows": OWS11, "wps2": WPS20, "ows2": OWS20}
ASYNC_SLEEP = "/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&storeExecuteResponse=true&status=true"


def submit_sleep(wps, delay: float) -> str:  # type: ignore[no-untyped-def]
    response = wps.get(f"{ASYNC_SLEEP}&DataInputs=delay={delay}")
    assert response.status_code == 200
    assert response.xml.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessAccepted") is not None
    location = response.xml.get("statusLocation")
    assert location.startswith("http://testserver/wps/jobs/")
    return location.rsplit("/", 1)[1]


def status10(wps, job_id: str):  # type: ignore[no-untyped-def]
    return wps.get(f"/wps/jobs/{job_id}").xml.find(f"{{{WPS10}}}Status")[0]


def wait_status10(wps, job_id: str, tag: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    """Wait until the 1.0.0 status document shows ``tag``; an element is returned in a tuple, as an
    element without children is false."""
    return wait_for(lambda: (s := status10(wps, job_id)).tag == f"{{{WPS10}}}{tag}" and (s,), timeout)[0]


def status20(wps, job_id: str):  # type: ignore[no-untyped-def]
    root = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}").xml
    return root.findtext(f"{{{WPS20}}}Status"), root


def test_job_runs_to_success_and_both_versions_agree(wps, dispatcher):
    job_id = submit_sleep(wps, 1.5)
    started = wait_status10(wps, job_id, "ProcessStarted")
    assert 0 <= int(started.get("percentCompleted")) <= 100
    _state, root = wait_for(lambda: (r := status20(wps, job_id))[0] == "Running" and r)
    assert root.find(f"{{{WPS20}}}NextPoll") is not None
    percents = set()
    wait_for(lambda: percents.add(int(status10(wps, job_id).get("percentCompleted") or 0)) or len(percents) >= 2)
    wait_for(lambda: status20(wps, job_id)[0] == "Succeeded")
    assert status10(wps, job_id).tag == f"{{{WPS10}}}ProcessSucceeded"
    result = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetResult&jobId={job_id}").xml
    assert result.xpath("//wps2:LiteralValue/text()", namespaces=NS) == ["slept for 1.5 seconds"]
    document = wps.get(f"/wps/jobs/{job_id}").xml
    assert document.xpath("//wps:LiteralData/text()", namespaces=NS) == ["slept for 1.5 seconds"]


def test_failing_job_is_failed_with_its_message(wps, dispatcher):
    response = wps.get(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=fail&storeExecuteResponse=true"
        "&DataInputs=message=broken%20on%20purpose"
    )
    job_id = response.xml.get("statusLocation").rsplit("/", 1)[1]
    failed = wait_status10(wps, job_id, "ProcessFailed")
    assert failed.findtext(f".//{{{OWS11}}}ExceptionText") == "broken on purpose"
    assert status20(wps, job_id)[0] == "Failed"
    result = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetResult&jobId={job_id}")
    assert result.status_code >= 400


def test_get_result_before_the_end_and_unknown_job(wps, dispatcher):
    job_id = submit_sleep(wps, 3)
    early = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetResult&jobId={job_id}")
    assert early.status_code == 400
    assert early.xml.find(f"{{{OWS20}}}Exception").get("exceptionCode") == "ResultNotReady"
    unknown = wps.get("/wps?service=WPS&version=2.0.0&request=GetStatus&jobId=00000000-0000-4000-8000-000000000000")
    assert unknown.xml.find(f"{{{OWS20}}}Exception").get("exceptionCode") == "NoSuchJob"
    assert wps.get("/wps/jobs/not-a-job").status_code == 404


def test_dismiss_running_job_kills_it_and_removes_outputs(wps, dispatcher, app, settings):
    job_id = submit_sleep(wps, 60)
    engine = app.extensions["hpc_wps"].engine
    wait_for(lambda: status20(wps, job_id)[0] == "Running")
    native = wait_for(lambda: queries.get_job(engine, job_id)["native_id"])
    pid = worker_pid(native)
    os.kill(pid, 0)  # the job's process exists
    response = wps.post(
        "/wps",
        data=f'<wps:Dismiss xmlns:wps="http://www.opengis.net/wps/2.0" service="WPS" version="2.0.0">'
        f"<wps:JobID>{job_id}</wps:JobID></wps:Dismiss>".encode(),
        content_type="text/xml",
    )
    assert response.xml.findtext(f"{{{WPS20}}}Status") == "Dismissed"
    wait_for(lambda: not queries.get_job(engine, job_id)["native_active"])
    wait_for(lambda: not (settings.jobs_dir / job_id).exists())
    assert not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    assert status20(wps, job_id)[0] == "Dismissed"
    assert status10(wps, job_id).tag == f"{{{WPS10}}}ProcessFailed"


def test_a_job_dismissed_just_before_the_dispatcher_stops_does_not_run_on(wps, dispatcher, app):
    """A busy local worker outlives its dispatcher by design; the worker of a dismissed job must not."""
    job_id = submit_sleep(wps, 60)
    engine = app.extensions["hpc_wps"].engine
    wait_for(lambda: status20(wps, job_id)[0] == "Running")
    pid = worker_pid(wait_for(lambda: queries.get_job(engine, job_id)["native_id"]))
    os.kill(dispatcher.pid, signal.SIGSTOP)  # so that no ordinary cycle sees the Dismiss
    try:
        wps.get(f"/wps?service=WPS&version=2.0.0&request=Dismiss&jobId={job_id}")
        assert start_time(pid) is not None
        dispatcher.terminate()
    finally:
        os.kill(dispatcher.pid, signal.SIGCONT)
    dispatcher.wait(timeout=30)
    wait_for(lambda: start_time(pid) is None, timeout=10)  # gone, or a zombie
    assert status20(wps, job_id)[0] == "Dismissed"


def test_dismiss_queued_job_never_runs(wps, app, settings):
    """Without a dispatcher the job stays accepted; dismissed, it must never start later."""
    job_id = submit_sleep(wps, 0)
    wps.get(f"/wps?service=WPS&version=2.0.0&request=Dismiss&jobId={job_id}")
    row = queries.get_job(app.extensions["hpc_wps"].engine, job_id)
    assert row["status"] == JobStatus.DISMISSED.value and row["started_at"] is None


def test_local_jobs_run_niced_and_the_dispatcher_does_not(wps, dispatcher, app, settings):
    """Jobs that fill the cores must leave the CPU to the web workers first ([processing] worker_nice)."""
    job_id = submit_sleep(wps, 2)
    engine = app.extensions["hpc_wps"].engine
    wait_for(lambda: status20(wps, job_id)[0] == "Running")
    pid = worker_pid(wait_for(lambda: queries.get_job(engine, job_id)["native_id"]))
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, ours + settings.processing.worker_nice)
    assert os.getpriority(os.PRIO_PROCESS, dispatcher.pid) == ours
    wait_for(lambda: status20(wps, job_id)[0] == "Succeeded")


def test_crashed_process_marks_job_failed(wps, dispatcher, app):
    job_id = submit_sleep(wps, 60)
    engine = app.extensions["hpc_wps"].engine
    wait_for(lambda: status20(wps, job_id)[0] == "Running")
    pid = worker_pid(wait_for(lambda: queries.get_job(engine, job_id)["native_id"]))
    os.kill(pid, signal.SIGKILL)
    failed = wait_status10(wps, job_id, "ProcessFailed")
    assert "killed by signal SIGKILL" in failed.findtext(f".//{{{OWS11}}}ExceptionText")


def test_fifo_and_slots(wps, dispatcher, app):
    """Two slots: of four jobs, the first two run first, the last two wait."""
    engine = app.extensions["hpc_wps"].engine
    ids = [submit_sleep(wps, 1.0) for _ in range(4)]
    wait_for(lambda: all(queries.get_job(engine, j)["status"] == "succeeded" for j in ids), timeout=60)
    starts = [queries.get_job(engine, j)["started_at"] for j in ids]
    ends = [queries.get_job(engine, j)["finished_at"] for j in ids]
    assert starts[0] <= starts[2] and starts[1] <= starts[3]
    assert min(starts[2], starts[3]) >= min(ends[0], ends[1])


def test_server_busy_when_queue_full(app, wps):
    service = app.extensions["hpc_wps"]
    service.settings = service.settings.replace("processing", queue_length=2)
    submit_sleep(wps, 0)
    submit_sleep(wps, 0)
    response = wps.get(f"{ASYNC_SLEEP}&DataInputs=delay=0")
    assert response.status_code == 503
    assert response.xml.find(f"{{{OWS11}}}Exception").get("exceptionCode") == "ServerBusy"


def test_dispatcher_restart_reattaches_running_job(wps, settings, app):
    """A job started under one dispatcher finishes, and is settled, under the next one."""

    def start():  # type: ignore[no-untyped-def]
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "dispatcher"], cwd=ROOT, env=settings_environ(settings)
        )

    engine = app.extensions["hpc_wps"].engine
    first = start()
    try:
        job_id = submit_sleep(wps, 2)
        wait_for(lambda: status20(wps, job_id)[0] == "Running")
        first.kill()
        first.wait()
        second = start()
        try:
            wait_for(lambda: status20(wps, job_id)[0] == "Succeeded")
            wait_for(lambda: not queries.get_job(engine, job_id)["native_active"])
        finally:
            second.terminate()
            second.wait()
    finally:
        if first.poll() is None:
            first.kill()
