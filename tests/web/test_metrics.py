"""GET /metrics of ``hpc-wps serve`` (two gunicorn workers and the dispatcher), read with the Prometheus
parser after real jobs ran: each counter moves by exactly what happened, whichever worker answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from app import create_app
from app.settings import SettingsError, load_settings
from migrations import upgrade
from scheduler import queries
from scheduler.db import make_engine
from scheduler.executors.local import worker_pid
from scheduler.failure_reasons import REASONS, failure_reason
from tests.conftest import LiveServer, free_port, settings_environ, wait_for
from tests.xsd import ROOT, WPS10, WPS20

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
EXECUTE = "service=WPS&version=1.0.0&request=Execute"
STORED = f"{EXECUTE}&storeExecuteResponse=true&status=true"


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """One local slot, so a second job waits; a synchronous time limit of 1 s."""
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("pg_url")
        upgrade(database_url)
        engine = create_engine(database_url)
        with engine.begin() as conn:  # the session's database: no job of another test may run here
            conn.execute(text("TRUNCATE jobs, dispatchers"))
        engine.dispose()
    live = LiveServer(tmp_path, "[processing]\nslots = 1\nsync_time_limit = 1\n", database_url).start()
    yield live
    live.stop()


class Client:
    """Requests to the live server, counted per operation, to compare with what /metrics counted."""

    def __init__(self, server: LiveServer) -> None:
        self.wps = server.url
        self.root = server.url.removesuffix("/wps")
        self.sent: dict[str, int] = {}

    def get(self, operation: str, url: str) -> requests.Response:
        response = requests.get(url, timeout=60)
        assert response.status_code == 200, response.text
        self.sent[operation] = self.sent.get(operation, 0) + 1
        return response

    def execute(self, query: str) -> etree._Element:
        return etree.fromstring(self.get("Execute", f"{self.wps}?{query}").content)

    def submit(self, identifier: str, inputs: str) -> str:
        location = self.execute(f"{STORED}&identifier={identifier}&DataInputs={inputs}").get("statusLocation")
        return location.rsplit("/", 1)[1]

    def status(self, job_id: str) -> str:
        document = etree.fromstring(self.get("StatusDocument", f"{self.wps}/jobs/{job_id}").content)
        return etree.QName(document.find(f"{{{WPS10}}}Status")[0]).localname

    def wait(self, job_id: str, status: str) -> None:
        wait_for(lambda: self.status(job_id) == status, timeout=60, interval=0.2)

    def scrape(self) -> Samples:
        response = requests.get(f"{self.root}/metrics", timeout=30)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def counters(samples: Samples) -> Samples:
    """Every counter and histogram sample, but those the scrapes themselves move."""
    return {
        key: v
        for key, v in samples.items()
        if key[0].endswith(("_total", "_count", "_sum", "_bucket")) and ("operation", "metrics") not in key[1]
    }


def job_engine(server: LiveServer, database_url: str):  # type: ignore[no-untyped-def]
    return make_engine(database_url or f"sqlite:///{server.workdir / 'var' / 'jobs.sqlite'}")


def test_counters_and_gauges_after_real_jobs(server: LiveServer, request: pytest.FixtureRequest):
    client = Client(server)
    wait_for(lambda: requests.get(f"{client.root}/health", timeout=10).status_code == 200, timeout=60)
    database_url = "" if "sqlite" in request.node.name else request.getfixturevalue("pg_url")
    engine = job_engine(server, database_url)
    before = client.scrape()

    # Synchronous jobs, in the web workers: a process error, a success, the time limit.
    client.execute(f"{EXECUTE}&identifier=fail&DataInputs=message=broken")
    client.execute(f"{EXECUTE}&identifier=say_hello&DataInputs=name=metrics")
    client.execute(f"{EXECUTE}&identifier=sleep&DataInputs=delay=5")
    # Asynchronous ones, settled by the dispatcher: a process error, and a crash (its worker killed).
    failing = client.submit("fail", "message=broken")
    client.wait(failing, "ProcessFailed")
    crashing = client.submit("sleep", "delay=60")
    client.wait(crashing, "ProcessStarted")
    os.kill(worker_pid(queries.get_job(engine, crashing)["native_id"]), signal.SIGKILL)
    client.wait(crashing, "ProcessFailed")
    # One job holds the only slot, two wait behind it: the gauges show the table as it is.
    holding = client.submit("sleep", "delay=60")
    client.wait(holding, "ProcessStarted")
    waiting = [client.submit("say_hello", f"name={n}") for n in ("a", "b")]
    during = client.scrape()
    client.get("Dismiss", f"{client.wps}?service=WPS&version=2.0.0&request=Dismiss&jobId={holding}")
    for job_id in waiting:
        client.wait(job_id, "ProcessSucceeded")
    wait_for(lambda: queries.get_job(engine, holding)["native_active"] is False)
    engine.dispose()
    after = client.scrape()

    assert value(during, "hpc_wps_queue_depth") == 2
    assert value(during, "hpc_wps_queue_oldest_seconds") > 0
    assert value(during, "hpc_wps_jobs_running", executor="local") == 1
    assert value(during, "hpc_wps_jobs_running", executor="web") == 0
    assert value(during, "hpc_wps_dispatchers_alive") == 1
    assert value(during, "hpc_wps_job_table_up") == 1
    assert value(after, "hpc_wps_queue_depth") == 0
    assert value(after, "hpc_wps_jobs_running", executor="local") == 0

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ended = "hpc_wps_jobs_ended_total"
    assert moved(ended, process="fail", status="failed") == 2
    assert moved(ended, process="say_hello", status="succeeded") == 3
    assert moved(ended, process="sleep", status="failed") == 2
    assert moved(ended, process="sleep", status="dismissed") == 1
    failures = "hpc_wps_job_failures_total"
    assert moved(failures, reason="process error", executor="web") == 1
    assert moved(failures, reason="process error", executor="local") == 1
    assert moved(failures, reason="time limit", executor="web") == 1
    assert moved(failures, reason="crash", executor="local") == 1
    assert (
        sum(v for (name, _), v in after.items() if name == failures)
        - sum(v for (name, _), v in before.items() if name == failures)
        == 4
    )
    durations = "hpc_wps_job_duration_seconds"
    assert moved(f"{durations}_count", process="say_hello", status="succeeded") == 3
    assert moved(f"{durations}_count", process="sleep", status="failed") == 2
    assert moved(f"{durations}_sum", process="sleep", status="failed") >= 1.0  # one ran into its 1 s limit
    assert moved(f"{durations}_bucket", process="sleep", status="failed", le="+Inf") == 2
    # Requests: every one this test sent, counted by whichever worker served it.
    latency = "hpc_wps_http_request_duration_seconds_count"
    assert moved(latency, operation="Execute", version="1.0.0") == client.sent["Execute"] == 8
    assert moved("hpc_wps_http_responses_total", operation="Execute", status="200") == 8
    assert moved(latency, operation="StatusDocument", version="1.0.0") == client.sent["StatusDocument"]
    assert moved(latency, operation="Dismiss", version="2.0.0") == 1

    # Two workers answer in turn: every scrape shows the same counts, all processes added up.
    scrapes = [counters(client.scrape()) for _ in range(6)]
    assert all(s == scrapes[0] for s in scrapes)
    assert scrapes[0] == counters(after)


def test_failure_reasons_of_the_messages_our_code_writes():
    """The messages executors and the launcher write, each to its reason (a fast check beside the
    live one above); anything else a process says is a process error."""
    from processes.container.engine import Limits, failure
    from scheduler.executors.batch.slurm import native_status
    from scheduler.executors.local import RESTARTED
    from scheduler.pids import describe_wait_status

    def settled(reason: str) -> str:  # as the dispatcher words an executor's reason
        return f"the job's process {reason}"

    def slurm(state: str, exit_code: str = "0:0") -> str:
        return settled(native_status("7", state, "None", exit_code, "1:00", "1G", "/tmp").reason)

    limits = Limits(memory=64 * 1024**2, cores=1.0, pids=64, walltime=5.0)
    no_stderr = Path("/nonexistent/stderr")
    cases = {
        settled(describe_wait_status(signal.SIGKILL)): "crash",
        settled(RESTARTED): "interrupted",
        slurm("TIMEOUT"): "time limit",
        slurm("OUT_OF_MEMORY"): "out of memory",
        slurm("CANCELLED"): "cancelled outside",
        slurm("FAILED", "3:0"): "crash",
        slurm("NODE_FAIL"): "system failure",
        settled("exceeded its wall-clock limit (h_rt) on Grid Engine"): "time limit",
        settled("was deleted on Grid Engine (qdel)"): "cancelled outside",
        failure(-1, "timeout", limits, no_stderr): "time limit",
        failure(137, None, limits, no_stderr): "out of memory",
        "could not be submitted: sbatch: error: invalid partition": "submission failed",
        "interrupted: the web worker running it stopped before it ended": "interrupted",
        "interrupted by a restart of the service before its hand-over to local was recorded": "interrupted",
        "time limit of 1 s exceeded": "time limit",
        "input delay: not a number": "invalid input",
        "the disk holding the job's files is full (no space left on device)": "disk full",
        "the launcher cannot load the job: ModuleNotFoundError: mypkg": "launch failed",
        "process gone is no longer offered": "process unavailable",
        "the process raised ZeroDivisionError: division by zero": "process error",
        "killed by signal SIGKILL (a process's own message)": "process error",
    }
    assert {message: failure_reason(message) for message in cases} == cases
    assert set(cases.values()) <= set(REASONS)


@pytest.mark.parametrize(
    ("monitoring", "status"),
    [
        ({}, 200),
        ({"metrics_clients": ("127.0.0.0/8",)}, 200),
        ({"metrics_clients": ("10.0.0.0/8", "::1")}, 403),
        ({"metrics": False}, 404),
    ],
)
def test_who_may_read_the_metrics(tmp_path: Path, monitoring: dict, status: int):
    """The test client connects from 127.0.0.1."""
    settings = load_settings(environ={}).replace("server", workdir=tmp_path, url="http://testserver/wps")
    upgrade(settings.database_url)
    app = create_app(settings.replace("monitoring", **monitoring))
    assert app.test_client().get("/metrics").status_code == status


def test_metrics_clients_must_be_addresses():
    with pytest.raises(SettingsError, match=r"\[monitoring\] metrics_clients: 'intranet' is not an address or network"):
        load_settings(environ={"HPC_WPS_MONITORING_METRICS_CLIENTS": "10.0.0.0/8, intranet"})


def test_a_dispatcher_on_its_own_serves_the_counts_of_the_jobs_it_ended(wps, settings, tmp_path: Path):
    """`hpc-wps dispatcher` on another host: its job counts are in its process, so it serves them. A
    busy local worker that outlives it must not keep the port from its successor."""
    port = free_port()
    env = settings_environ(settings) | {"HPC_WPS_MONITORING_DISPATCHER_METRICS_PORT": str(port)}

    def start(n: int) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"dispatcher{n}.log").open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "dispatcher"], cwd=ROOT, env=env, stdout=log, stderr=log
        )

    def scrape() -> Samples:
        response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert response.status_code == 200
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def submit(delay: float) -> str:
        response = wps.get(f"/wps?{STORED}&identifier=sleep&DataInputs=delay={delay}")
        return response.xml.get("statusLocation").rsplit("/", 1)[1]

    def status(job_id: str) -> str:
        return wps.get(f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}").xml.findtext(
            f"{{{WPS20}}}Status"
        )

    first = start(0)
    try:
        quick = submit(0)
        wait_for(lambda: status(quick) == "Succeeded")
        ended = ("hpc_wps_jobs_ended_total", frozenset({"process": "sleep", "status": "succeeded"}.items()))
        wait_for(lambda: scrape().get(ended) == 1.0)
        slow = submit(3)
        wait_for(lambda: status(slow) == "Running")
        first.terminate()  # its busy worker finishes the job for the next dispatcher
        first.wait(timeout=30)
        second = start(1)
        try:
            wait_for(lambda: status(slow) == "Succeeded", timeout=60)
            wait_for(lambda: _answers(scrape, ended), timeout=30)
        finally:
            second.terminate()
            second.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()


def _answers(scrape, key) -> bool:  # type: ignore[no-untyped-def]
    """The successor serves its own counts: the job it settled, once."""
    try:
        return scrape().get(key) == 1.0
    except requests.RequestException:
        return False
