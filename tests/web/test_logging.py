"""Structured logs: JSON lines from every process of ``hpc-wps serve``, each record of a job tagged with
its id (in the web worker of a synchronous job, in the local worker of an asynchronous one), one
access line per request; and text lines with the job id from the launcher on a compute node."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import requests
from lxml import etree
from sqlalchemy import select

from processes.container.settings import DockerSettings
from processes.context import JobContext
from processes.fetch import FetchLimits
from processes.model import LiteralOutput, Process
from scheduler.db import make_engine
from scheduler.launcher import read_result
from scheduler.logs import JobIdFilter, JsonFormatter, TextFormatter, job_context
from scheduler.models import JOBS
from scheduler.payload import Payload, write_payload
from tests.conftest import LiveServer, free_port, wait_for
from tests.xsd import ROOT, WPS10

WORKING = "chatty process at work"
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ [A-Z]+ ")


def chatty(job: JobContext) -> None:
    logging.getLogger("tests.chatty").info(WORKING)
    job.set_output("said", "done")


CHATTY = Process(
    identifier="chatty",
    title="Logs a line",
    handler=chatty,
    outputs=(LiteralOutput("said", "What it said", data_type="string"),),
)


def json_lines(log: Path) -> list[dict]:
    """The JSON objects of a log."""
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("{")]


def test_json_logs_of_the_production_shape(tmp_path: Path):
    config = "[processing]\nprocesses = tests.web.test_logging:CHATTY\n[logging]\nformat = json\n"
    server = LiveServer(tmp_path, config).start()
    try:
        execute = f"{server.url}?service=WPS&version=1.0.0&request=Execute&identifier=chatty"
        assert requests.get(execute, timeout=30).status_code == 200
        stored = etree.fromstring(requests.get(f"{execute}&storeExecuteResponse=true", timeout=30).content)
        async_id = stored.get("statusLocation").rsplit("/", 1)[1]

        def succeeded() -> bool:
            document = etree.fromstring(requests.get(f"{server.url}/jobs/{async_id}", timeout=30).content)
            return document.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessSucceeded") is not None

        wait_for(succeeded, interval=0.2)
        get_status = f"{server.url}?service=WPS&version=2.0.0&request=GetStatus&jobId={async_id}"
        assert requests.get(get_status, timeout=30).status_code == 200
        engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'jobs.sqlite'}")
        with engine.connect() as conn:
            sync_id = conn.execute(select(JOBS.c.id).where(JOBS.c.mode == "sync")).scalar_one()
        engine.dispose()
    finally:
        server.stop()
    log = server.log.read_text(encoding="utf-8")
    assert not [line for line in log.splitlines() if TEXT_LINE.match(line)], "a record not in JSON"
    # gunicorn's own lines and the supervisor's too: every line of the log is one JSON object.
    assert [line for line in log.splitlines() if line and not line.startswith("{")] == []
    assert any(
        r["logger"] == "gunicorn.error" and r["message"].startswith("Booting worker") for r in json_lines(server.log)
    )
    records = json_lines(server.log)
    for record in records:
        assert {"time", "level", "logger", "message", "pid"} <= set(record)

    # The process's own records name their job, from the web worker (sync) and a local worker (async).
    working = {r["job_id"]: r for r in records if r["message"] == WORKING}
    assert set(working) == {sync_id, async_id}
    access = [r for r in records if r["logger"] == "hpc_wps.access"]
    # The first Execute is the synchronous one. Each worker writes its access lines in batches, so the
    # lines of two workers are not in time order in the file: the first is found by its time.
    sync_access = min((r for r in access if r["operation"] == "Execute"), key=lambda r: r["time"])
    assert working[sync_id]["pid"] == sync_access["pid"]  # the worker that served the request ran it
    dispatcher_pids = {r["pid"] for r in records if r["message"].startswith("dispatcher started")}
    assert working[async_id]["pid"] not in dispatcher_pids | {sync_access["pid"]}

    # One access line per request, with its operation, status and duration.
    status_line = next(r for r in access if r["operation"] == "GetStatus")
    assert status_line["job_id"] == async_id
    assert (status_line["method"], status_line["version"], status_line["status"]) == ("GET", "2.0.0", 200)
    assert status_line["path"] == "/wps" and status_line["duration_s"] >= 0
    executes = [r for r in access if r["operation"] == "Execute"]
    assert [(r["version"], r["status"]) for r in executes] == [("1.0.0", 200), ("1.0.0", 200)]
    assert "job_id" not in executes[0]


def test_node_launcher_tags_its_lines_with_the_job_id(tmp_path: Path):
    """``hpc-wps run-job`` on a node that cannot reach the job table: text lines, each with the job id."""
    job_id = "0f0e0d0c-0b0a-4908-8706-050403020100"
    job_dir = tmp_path / job_id
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/jobs"
    payload = Payload(job_id, CHATTY, {"inputs": [], "outputs": []}, unreachable, FetchLimits(), 60.0, DockerSettings())
    write_payload(job_dir, payload)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPC_WPS_")}
    env["PYTHONPATH"] = str(ROOT)  # where the node finds the process's module, as a site installs it
    done = subprocess.run(
        [str(Path(sys.executable).with_name("hpc-wps")), "run-job", str(job_dir)],  # the console script
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if TEXT_LINE.match(line)]
    assert any("the job table is out of reach from this node" in line for line in lines)
    assert any(line.endswith(f"tests.chatty [job {job_id}]: {WORKING}") for line in lines)
    assert all(f"[job {job_id}]" in line for line in lines)
    assert read_result(job_dir).status == "succeeded"


def test_formatters_carry_the_context_and_the_extra_fields():
    """The handler's filter, not the call site, adds the job id; ``extra`` fields become JSON keys."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(JobIdFilter())
    logger = logging.getLogger("tests.formatters")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with job_context("job-a"):
            logger.warning("inside %s", "a", extra={"attempt": 2})
            try:
                raise ValueError("broken")
            except ValueError:
                logger.exception("failed")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, failed, outside = (json.loads(JsonFormatter().format(r)) for r in records)
    assert (inside["job_id"], inside["message"], inside["attempt"], inside["pid"]) == (
        "job-a",
        "inside a",
        2,
        os.getpid(),
    )
    assert failed["job_id"] == "job-a" and failed["exception"].endswith("ValueError: broken")
    assert "job_id" not in outside
    assert TextFormatter().format(records[0]).endswith("WARNING tests.formatters [job job-a]: inside a")
    assert TextFormatter().format(records[2]).endswith("WARNING tests.formatters: outside")
