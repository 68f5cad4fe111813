"""What a restarted dispatcher does with local jobs the restart interrupted.

A job whose process died with the service fails with "interrupted by a restart of the service",
unless its process is rerunnable: then it runs again from the start, once. A job caught between its
claim and its hand-over runs again when it certainly never started.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from scheduler import lifecycle, queries
from scheduler.dispatcher import HANDOVER_GRACE
from scheduler.executors.local import worker_pid
from scheduler.models import JOBS, utcnow
from tests.conftest import settings_environ, wait_for
from tests.xsd import ROOT

PROCESSES = "tests.processes.run_log:PROCESS,tests.processes.run_log:RERUNNABLE"


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return settings.replace("processing", processes=tuple(PROCESSES.split(",")))


@pytest.fixture
def run_log(tmp_path: Path) -> Path:
    return tmp_path / "runs.log"


@pytest.fixture
def start_dispatcher(settings, run_log, tmp_path) -> Iterator:  # type: ignore[no-untyped-def]
    started: list[subprocess.Popen[bytes]] = []
    env = settings_environ(settings) | {"HPC_WPS_PROCESSING_PROCESSES": PROCESSES, "HPC_WPS_TEST_RUN_LOG": str(run_log)}

    def start() -> subprocess.Popen[bytes]:
        log = (tmp_path / f"dispatcher{len(started)}.log").open("wb")
        started.append(
            subprocess.Popen([sys.executable, "-m", "app.cli", "dispatcher"], cwd=ROOT, env=env, stdout=log, stderr=log)
        )
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def submit(wps, process: str, tag: str, seconds: float) -> str:  # type: ignore[no-untyped-def]
    response = wps.post(
        "/wps",
        data=(
            '<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0"'
            ' service="WPS" version="2.0.0" mode="async" response="document">'
            f"<ows:Identifier>{process}</ows:Identifier>"
            f'<wps:Input id="tag"><wps:Data>{tag}</wps:Data></wps:Input>'
            f'<wps:Input id="seconds"><wps:Data>{seconds}</wps:Data></wps:Input>'
            '<wps:Output id="tag" transmission="value"/></wps:Execute>'
        ),
        content_type="text/xml",
    )
    assert response.status_code == 200, response.data
    return response.xml.findtext("{http://www.opengis.net/wps/2.0}JobID")


def runs(run_log: Path, tag: str) -> int:
    return sum(line.split()[0] == tag for line in run_log.read_text().splitlines()) if run_log.exists() else 0


def kill_service_and_job(dispatcher: subprocess.Popen[bytes], engine, job_id: str) -> None:  # type: ignore[no-untyped-def]
    """What a crash of the whole host's service looks like to one job: dispatcher and worker gone."""
    worker = worker_pid(queries.get_job(engine, job_id)["native_id"])
    dispatcher.kill()
    dispatcher.wait()
    os.killpg(worker, signal.SIGKILL)


def status(wps, job_id: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    root = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}").xml
    return root.findtext("{http://www.opengis.net/wps/2.0}Status"), root


def wait_running(engine, run_log: Path, job_id: str, tag: str, count: int) -> None:  # type: ignore[no-untyped-def]
    wait_for(lambda: runs(run_log, tag) == count and queries.get_job(engine, job_id)["native_id"])


@pytest.mark.parametrize(("process", "expected_runs"), [("run_log", 1), ("run_log_rerunnable", 2)])
def test_a_job_interrupted_by_a_restart(wps, app, start_dispatcher, run_log, process, expected_runs):
    engine = app.extensions["hpc_wps"].engine
    first = start_dispatcher()
    job_id = submit(wps, process, "t", 3)
    wait_running(engine, run_log, job_id, "t", 1)
    kill_service_and_job(first, engine, job_id)
    start_dispatcher()
    final = wait_for(lambda: (s := status(wps, job_id))[0] in ("Succeeded", "Failed") and s, timeout=60)
    assert runs(run_log, "t") == expected_runs
    if process == "run_log":
        assert final[0] == "Failed"
        row = queries.get_job(engine, job_id)
        assert row["message"] == "the job's process was interrupted by a restart of the service"
    else:
        assert final[0] == "Succeeded"


def test_a_rerunnable_job_runs_again_once_only(wps, app, start_dispatcher, run_log):
    engine = app.extensions["hpc_wps"].engine
    job_id = submit(wps, "run_log_rerunnable", "again", 30)
    for run in (1, 2):
        dispatcher = start_dispatcher()
        wait_running(engine, run_log, job_id, "again", run)
        kill_service_and_job(dispatcher, engine, job_id)
    start_dispatcher()
    wait_for(lambda: status(wps, job_id)[0] == "Failed", timeout=60)
    assert runs(run_log, "again") == 2
    assert "interrupted by a restart of the service" in queries.get_job(engine, job_id)["message"]


GONE_HERE = f"{socket.gethostname()}/1:0"  # pid 1 started at another time: a dispatcher of this host, gone


@pytest.mark.parametrize(
    ("process", "made_dir", "claimed_by", "crashes", "expected"),
    [
        ("run_log", False, GONE_HERE, 0, "Succeeded"),  # a local job without its directory never started: it runs
        ("run_log", True, GONE_HERE, 0, "Failed"),  # it may have started: it is failed, not run twice
        ("run_log_rerunnable", True, GONE_HERE, 0, "Succeeded"),  # safe to run again
        ("run_log", False, "elsewhere/1:0", 0, "Succeeded"),  # another host's claim, older than a hand-over takes
        # Its hand-over stopped a dispatcher before: this second one does not get another try.
        ("run_log_rerunnable", False, GONE_HERE, 1, "Failed"),
    ],
)
def test_a_job_claimed_but_not_handed_over(
    wps, app, settings, start_dispatcher, run_log, process, made_dir, claimed_by, crashes, expected
):
    engine = app.extensions["hpc_wps"].engine
    job_id = submit(wps, process, "claimed", 0)
    assert lifecycle.claim_many(engine, [job_id], "local", True, claimed_by) == {job_id}  # a dispatcher's first step
    with engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(handover_crashes=crashes))
    if claimed_by.startswith("elsewhere/"):
        with engine.begin() as conn:
            old = utcnow() - dt.timedelta(seconds=HANDOVER_GRACE + 60)
            conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(updated_at=old))
    if made_dir:
        (settings.jobs_dir / job_id).mkdir(parents=True)
    start_dispatcher()
    wait_for(lambda: status(wps, job_id)[0] == expected, timeout=60)
    if expected == "Failed":
        assert runs(run_log, "claimed") == 0
        message = queries.get_job(engine, job_id)["message"]
        assert message == (
            "could not be submitted: handing it over to local stopped the dispatcher 2 times"
            if crashes
            else "interrupted by a restart of the service before its hand-over to local was recorded"
        )
    else:
        assert runs(run_log, "claimed") == 1


def test_a_hand_over_in_progress_elsewhere_is_left_alone(wps, app, start_dispatcher, run_log):
    """A recent claim by another host's dispatcher is its hand-over in progress, not this one's to judge."""
    engine = app.extensions["hpc_wps"].engine
    job_id = submit(wps, "run_log", "theirs", 0)
    assert lifecycle.claim_many(engine, [job_id], "local", True, "elsewhere/1:0") == {job_id}
    start_dispatcher()
    other = submit(wps, "run_log", "ours", 0)  # the dispatcher is up and past its first upkeep
    wait_for(lambda: status(wps, other)[0] == "Succeeded")
    row = queries.get_job(engine, job_id)
    assert (row["status"], row["native_id"], runs(run_log, "theirs")) == ("running", None, 0)
