"""Several dispatchers on one PostgreSQL job table: they share the queue and no job runs twice."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from scheduler import queries
from tests.conftest import settings_environ, wait_for
from tests.xsd import ROOT

JOBS = 200


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return settings.replace("processing", processes=("tests.processes.run_log:PROCESS",), queue_length=JOBS)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_dispatchers_share_the_queue_and_run_every_job_once(wps, app, settings, tmp_path):
    run_log = tmp_path / "runs.log"
    env = settings_environ(settings) | {
        "HPC_WPS_PROCESSING_PROCESSES": "tests.processes.run_log:PROCESS",
        "HPC_WPS_TEST_RUN_LOG": str(run_log),
    }
    logs = [(tmp_path / f"dispatcher{i}.log").open("wb") for i in range(2)]
    dispatchers = [
        subprocess.Popen([sys.executable, "-m", "app.cli", "dispatcher"], cwd=ROOT, env=env, stdout=log, stderr=log)
        for log in logs
    ]
    try:
        ids = []
        for tag in range(JOBS):
            response = wps.post(
                "/wps",
                data=(
                    '<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0"'
                    ' service="WPS" version="2.0.0" mode="async" response="document">'
                    "<ows:Identifier>run_log</ows:Identifier>"
                    f'<wps:Input id="tag"><wps:Data>{tag}</wps:Data></wps:Input>'
                    '<wps:Output id="tag" transmission="value"/></wps:Execute>'
                ),
                content_type="text/xml",
            )
            assert response.status_code == 200, response.data
            ids.append(response.xml.findtext("{http://www.opengis.net/wps/2.0}JobID"))
        engine = app.extensions["hpc_wps"].engine

        def unfinished() -> list[dict[str, object]]:
            rows = (queries.get_job(engine, j) for j in ids)
            return [dict(r) for r in rows if r is not None and r["status"] != "succeeded"]

        try:
            wait_for(lambda: not unfinished(), timeout=120)
        except AssertionError:
            raise AssertionError(f"jobs that did not succeed: {unfinished()}") from None
    finally:
        for process in dispatchers:
            process.terminate()
            process.wait(timeout=30)
        for log in logs:
            log.close()
    runs = [line.split() for line in run_log.read_text().splitlines()]
    assert Counter(tag for tag, _ in runs) == Counter(str(tag) for tag in range(JOBS))  # each exactly once
    by_dispatcher = Counter(int(pid) for _, pid in runs)
    assert set(by_dispatcher) == {p.pid for p in dispatchers}, by_dispatcher
