"""Faults in the production shape, ``hpc-wps serve`` as a subprocess: ``kill -9`` of a gunicorn worker
in the middle of a synchronous job, of the dispatcher, of the whole service, and PostgreSQL restarted
under load. Every job must reach an end state with a readable reason, and the service must come back.

Re-attaching to jobs on Slurm, Grid Engine and Docker after a restart is covered by test_slurm.py,
test_drmaa.py and test_docker.py; these tests are about the local pool and the service's own processes.
What they assert is what a client sees (answers, status documents), so they hold whatever the
executors look like inside.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app import create_app
from app.settings import load_settings
from tests.conftest import LiveServer, ValidatingClient, free_port, fresh_pg_database, need_backend, wait_for
from tests.production.harness import (
    ASYNC,
    LOAD_DRIVER,
    children,
    command_line,
    kill_everything,
    status,
    submit,
    unfinished_jobs,
    wait_until_ended,
    wait_until_no_job_unfinished,
)
from tests.xsd import OWS11, OWS20, ROOT

INTERRUPTED = "interrupted by a restart of the service"
SWEEP_WAIT = 180.0  # a job abandoned by a live web worker is failed after its time limit + 60 s, swept every 30 s
GONE_WORKER_WAIT = 75.0  # the job of a web worker that is gone: failed at the next sweep (every 30 s)


# -- what a client sees -------------------------------------------------------------------------------


def submit_sleep(server: LiveServer, delay: float) -> str:
    return submit(server, "sleep", f"delay={delay}")


def assert_ended_well(outcomes: dict[str, tuple[str, str]], delay: float) -> None:
    """Each job either ran to its end or failed saying that a restart interrupted it."""
    for job_id, (state, text) in outcomes.items():
        if state == "Succeeded":
            assert text == f"slept for {float(delay)} seconds", job_id
        else:
            assert state == "Failed" and INTERRUPTED in text, (job_id, state, text)


# -- the service's processes ---------------------------------------------------------------------------


def role_of(pid: int) -> str:
    line = command_line(pid)
    if "gunicorn" in line:
        return "gunicorn"
    return "dispatcher" if "app.cli dispatcher" in line else "other"


def service_child(server: LiveServer, role: str) -> int | None:
    assert server.process is not None
    found = [pid for pid in children(server.process.pid) if role_of(pid) == role]
    return found[0] if found else None


def web_workers(server: LiveServer) -> list[int]:
    master = service_child(server, "gunicorn")
    return children(master) if master else []


def worker_serving(server: LiveServer, client_port: int) -> int | None:
    """The gunicorn worker holding the server end of the connection from ``client_port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if (local_port, remote_port) == (server.port, client_port):
                    inodes.add(f"socket:[{fields[9]}]")
    for worker in web_workers(server):
        with contextlib.suppress(OSError):
            fds = Path(f"/proc/{worker}/fd")
            if any(os.readlink(fd) in inodes for fd in fds.iterdir()):
                return worker
    return None


def database_of(server: LiveServer) -> str:
    return f"sqlite:///{server.workdir / 'var' / 'jobs.sqlite'}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "service", "[processing]\nsync_time_limit = 5\n")
    yield live.start()
    live.stop()


# -- kill -9 of a web worker ------------------------------------------------------------------------


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The default synchronous time limit (600 s): the abandoned job must end long before it."""
    live = LiveServer(tmp_path / "service")
    yield live.start()
    live.stop()


@pytest.mark.slow
def test_web_worker_killed_during_a_sync_job_is_replaced_and_the_job_fails(web_server: LiveServer):
    server = web_server
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.connect()
    client_port = connection.sock.getsockname()[1]
    answer: dict[str, object] = {}

    def execute() -> None:
        try:
            connection.request(
                "GET", "/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=4"
            )
            answer["status"] = connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            answer["error"] = exc

    client = threading.Thread(target=execute)
    client.start()
    job_id = wait_for(lambda: unfinished_jobs(database_of(server)))[0]["id"]  # the job runs: its row says so
    worker = wait_for(lambda: worker_serving(server, client_port))
    before = set(web_workers(server))
    os.kill(worker, signal.SIGKILL)
    client.join(timeout=60)
    assert "error" in answer, answer  # the connection dropped with its worker: no answer, no 5xx

    # gunicorn starts a new worker in its place, and the service answers as before
    wait_for(lambda: len(set(web_workers(server)) - before) == 1 and worker not in web_workers(server))
    assert requests.get(f"{server.url}?service=WPS&request=GetCapabilities", timeout=30).status_code == 200
    again = requests.get(
        f"{server.url}?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=again",
        timeout=30,
    )
    assert "Hello again" in again.text

    # the abandoned job ends Failed, with a reason, at the dispatcher's next sweep: its worker is gone
    state, text = wait_until_ended(server, [job_id], GONE_WORKER_WAIT)[job_id]
    assert state == "Failed"
    assert "interrupted" in text and "web worker" in text, text


# -- kill -9 of the dispatcher ----------------------------------------------------------------------


@pytest.mark.slow
def test_dispatcher_killed_is_restarted_and_every_job_ends(server: LiveServer):
    jobs = [submit_sleep(server, 3) for _ in range(4)]
    wait_for(lambda: any(status(server, j)[0] == "Started" for j in jobs))
    dispatcher = service_child(server, "dispatcher")
    assert dispatcher is not None
    os.kill(dispatcher, signal.SIGKILL)
    restarted = wait_for(lambda: (pid := service_child(server, "dispatcher")) not in (None, dispatcher) and pid)
    assert restarted != dispatcher
    jobs.append(submit_sleep(server, 3))  # the new dispatcher takes new work too
    outcomes = wait_until_ended(server, jobs, 90)
    assert_ended_well(outcomes, 3)
    assert outcomes[jobs[-1]][0] == "Succeeded"
    assert "dispatcher exited" in server.log.read_text(encoding="utf-8", errors="replace")


# -- kill -9 of the whole service, then a restart -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["process group", "every process"])
def test_service_killed_and_restarted_ends_every_job(server: LiveServer, scope: str):
    """``process group``: what ``kill -9 -PGID`` does (local jobs run in groups of their own and
    outlive it); ``every process``: what a cgroup kill or a crash of the machine does."""
    jobs = [submit_sleep(server, 3) for _ in range(6)]
    running = wait_for(lambda: [j for j in jobs if status(server, j)[0] == "Started"])
    assert server.process is not None
    if scope == "process group":
        os.killpg(server.process.pid, signal.SIGKILL)
    else:
        kill_everything(server.process.pid)
    server.process.wait(timeout=30)
    server.start()
    outcomes = wait_until_ended(server, jobs, 90)
    assert_ended_well(outcomes, 3)
    if scope == "every process":  # their processes are gone: they cannot have succeeded
        assert all(outcomes[j] == ("Failed", outcomes[j][1]) and INTERRUPTED in outcomes[j][1] for j in running)
    assert unfinished_jobs(database_of(server)) == []


# -- PostgreSQL out of reach, or restarted under load -----------------------------------------------------


def test_job_table_out_of_reach_answers_503_with_an_ows_exception(tmp_path: Path):
    """No database listens where the job table should be: what needs the table answers NoApplicableCode
    with 503 and Retry-After (a passing condition, not an internal error); the rest is served."""
    settings = load_settings(environ={}).replace("server", workdir=tmp_path, url="http://testserver/wps")
    settings = settings.replace("database", url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    app = create_app(settings)
    wps = ValidatingClient(app.test_client())
    assert wps.get("/wps?service=WPS&request=GetCapabilities").status_code == 200
    job = "00000000-0000-4000-8000-000000000000"
    for url, ows in (
        (f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job}", OWS20),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=x", OWS11),
        (f"/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=0&{ASYNC}", OWS11),
        (f"/wps/jobs/{job}", OWS11),
    ):
        response = wps.get(url)
        assert (response.status_code, response.headers.get("Retry-After")) == (503, "5"), url
        assert response.xml.find(f"{{{ows}}}Exception").get("exceptionCode") == "NoApplicableCode", url
    app.extensions["hpc_wps"].engine.dispose()


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own, in a temporary directory on a free port: restarting it
    disturbs no other test (the shared server on 5432 serves everyone else's)."""

    def __init__(self) -> None:
        programs = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
        if not programs:
            need_backend("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
        self.bin = programs[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="hpcwps-pg-"))  # not below pytest's root-only tmp_path
        self.port = free_port()
        self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.dir, "postgres")
        self.run("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync")

    def run(self, program: str, *args: str) -> None:
        user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*user, str(self.bin / program), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{program} failed: {done.stdout}{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(AssertionError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


LOAD_SECONDS = 40.0
OUTAGE = 3.0  # seconds PostgreSQL stays down


@pytest.mark.slow
def test_postgresql_restarted_under_load_the_service_recovers_and_loses_no_job(
    private_postgres: PrivatePostgres, tmp_path: Path
):
    with fresh_pg_database(private_postgres.admin_url) as database:
        server = LiveServer(tmp_path / "service", "[processing]\nsync_time_limit = 5\n", database).start()
        try:
            figures = tmp_path / "load.json"
            load = subprocess.Popen(
                [
                    sys.executable,
                    str(LOAD_DRIVER),
                    f"--url={server.url}",
                    "--clients=20",
                    f"--duration={LOAD_SECONDS}",
                    "--drain=120",
                    f"--json={figures}",
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            time.sleep(LOAD_SECONDS / 4)
            down = time.time()
            private_postgres.stop()
            time.sleep(OUTAGE)
            private_postgres.start()
            up = time.time()
            hello = f"{server.url}?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=back"
            wait_for(lambda: "Hello back" in requests.get(hello, timeout=30).text, timeout=60, interval=0.2)
            print(f"PostgreSQL down for {up - down:.1f} s; the service answered {time.time() - up:.2f} s after")
            table, _ = load.communicate(timeout=LOAD_SECONDS + 300)
            print(table)
            report = json.loads(figures.read_text(encoding="utf-8"))
            # Synchronous jobs cut off by the outage are failed by the dispatcher's sweep.
            wait_until_no_job_unfinished(database, SWEEP_WAIT)
        finally:
            server.stop()
    assert report["errors"] == 0, table  # every request got an answer
    assert report["jobs"]["accepted"] > 0 and report["jobs"]["not_ended"] == [], table
    assert report["http_5xx"] > 0, "the outage went unnoticed: the test did not test it"
    for failure in report["failures"]:  # 5xx only for requests sent while the database was down
        assert down - 1 <= failure["sent"] <= up, failure
        assert failure["status"] == 503 and failure["what"].startswith("NoApplicableCode"), failure
