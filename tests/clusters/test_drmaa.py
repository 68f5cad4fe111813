"""Asynchronous jobs on Grid Engine through DRMAA, end to end over HTTP against a real server.

Needs the single-node Grid Engine of ``scripts/clusters.sh start``: skipped without it, failed in CI.
Two servers: one that submits jobs as they come, and one whose jobs Grid Engine holds (``native = -h``)
until the test releases them with ``qrls``, so that a queued job can be looked at without racing the
scheduler.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from scheduler import queries
from scheduler.db import make_engine
from scheduler.executors.batch.gridengine import parse_qacct, task_numbers
from tests.conftest import LiveServer, wait_for
from tests.xsd import IN_CI, OWS11, ROOT, WPS10, WPS20, validate

NS = {"wps": WPS10, "ows": OWS11, "wps2": WPS20}
W2 = 'xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0"'
CLUSTERS = ROOT / "scripts" / "clusters.sh"
# A job, or a task of a task array ("12.3"): jobs handed over in one dispatcher cycle go as one array.
QUEUED = re.compile(r"^queued on Grid Engine as job (\d+(?:\.\d+)?)$")

pytestmark = pytest.mark.slow


# -- Grid Engine --------------------------------------------------------------------------------------


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"Grid Engine with DRMAA is needed in CI: {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def grid_engine() -> Iterator[dict[str, str]]:
    """The variables of ``scripts/clusters.sh env`` in this process's environment (for qstat, qacct and
    the servers), once Grid Engine answers and its DRMAA library loads in a fresh process."""
    try:
        exported = subprocess.run(["bash", str(CLUSTERS), "env"], capture_output=True, text=True, timeout=30)
        status = subprocess.run(["bash", str(CLUSTERS), "status"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"scripts/clusters.sh does not run: {exc}")
    env = dict(re.findall(r"^export (\w+)=(.*)$", exported.stdout, re.MULTILINE))
    missing = {"SGE_ROOT", "SGE_CELL", "DRMAA_LIBRARY_PATH", "HPC_WPS_DRMAA_PRELOAD"} - env.keys()
    if missing:
        _unavailable(f"scripts/clusters.sh env does not export {', '.join(sorted(missing))}")
    if "sge: up" not in status.stdout:
        _unavailable(f"Grid Engine is not up ({status.stdout.strip()}); run scripts/clusters.sh start")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import drmaa\ns = drmaa.Session()\ns.initialize()\nprint(s.drmsInfo)\ns.exit()",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "LD_PRELOAD": env.get("HPC_WPS_DRMAA_PRELOAD", "")},
        )
        if probe.returncode != 0:
            _unavailable(f"the DRMAA library does not load: {probe.stderr.strip()[-500:]}")
        qhost = subprocess.run(["qhost"], capture_output=True, text=True, timeout=30)
        if qhost.returncode != 0:
            _unavailable(f"qhost fails: {qhost.stderr.strip()}")
        yield env


def config(env: dict[str, str], extra: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
        [processing]
        mode = scheduler
        [scheduler]
        system = drmaa
        poll_interval = 0.5
        walltime = 120
        drmaa_library = {env["DRMAA_LIBRARY_PATH"]}
        drmaa_preload = {env["HPC_WPS_DRMAA_PRELOAD"]}
        """
        )
        + extra
    )


class PatientLiveServer(LiveServer):
    """LiveServer that waits out a slow first answer (a loaded machine) and stops what it started if the
    server never answers."""

    def start(self) -> PatientLiveServer:
        self.process = None
        try:
            super().start()
        except requests.RequestException:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if requests.get(self.url, params={"service": "WPS", "request": "GetCapabilities"}, timeout=10).ok:
                        return self
                except requests.RequestException:
                    time.sleep(0.5)
            self.stop()
            raise
        except BaseException:
            self.stop()
            raise
        return self


class Server:
    """A LiveServer with the requests these tests make, and its job table."""

    def __init__(self, workdir: Path, extra_config: str) -> None:
        self.workdir = workdir
        self.extra_config = extra_config
        self.live = PatientLiveServer(workdir, extra_config).start()
        self.engine = make_engine(f"sqlite:///{workdir / 'var' / 'jobs.sqlite'}")

    def restart(self) -> None:
        """Stop the service (SIGTERM, as an administrator would) and start it again on the same workdir."""
        self.live.stop()
        self.live = PatientLiveServer(self.workdir, self.extra_config).start()

    def stop(self) -> None:
        self.live.stop()
        self.engine.dispose()

    def get(self, **params: str) -> etree._Element:
        response = requests.get(self.live.url, params={"service": "WPS", **params}, timeout=30)
        return validate(response.content)

    def post(self, body: str) -> etree._Element:
        response = requests.post(self.live.url, data=body.encode(), headers={"Content-Type": "text/xml"}, timeout=30)
        return validate(response.content)

    def submit10(self, identifier: str, inputs: str) -> str:
        # DataInputs as KVP writes it: its = and ; are syntax, so not percent-encoded.
        query = f"version=1.0.0&request=Execute&identifier={identifier}&storeExecuteResponse=true&status=true"
        response = requests.get(f"{self.live.url}?service=WPS&{query}&DataInputs={inputs}", timeout=30)
        root = validate(response.content)
        assert root.find("wps:Status/wps:ProcessAccepted", NS) is not None, etree.tostring(root)
        return root.get("statusLocation").rsplit("/", 1)[1]

    def submit20(self, identifier: str, inputs: str) -> str:
        body = (
            f'<wps:Execute service="WPS" version="2.0.0" mode="async" response="document" {W2}>'
            f"<ows:Identifier>{identifier}</ows:Identifier>{inputs}"
            f'<wps:Output id="{"output" if identifier == "wordcounter" else "sleep_output"}" transmission="value"/>'
            "</wps:Execute>"
        )
        root = self.post(body)
        assert root.findtext("wps2:Status", namespaces=NS) == "Accepted", etree.tostring(root)
        return root.findtext("wps2:JobID", namespaces=NS)

    def status10(self, job_id: str) -> etree._Element:
        """The 1.0.0 status element (ProcessAccepted, ProcessStarted, ...) from the statusLocation."""
        response = requests.get(f"{self.live.url}/jobs/{job_id}", timeout=30)
        return validate(response.content).find("wps:Status", NS)[0]

    def status20(self, job_id: str) -> etree._Element:
        return self.get(version="2.0.0", request="GetStatus", jobId=job_id)

    def state20(self, job_id: str) -> str:
        return self.status20(job_id).findtext("wps2:Status", namespaces=NS)

    def result20(self, job_id: str) -> etree._Element:
        return self.get(version="2.0.0", request="GetResult", jobId=job_id)

    def dismiss(self, job_id: str) -> str:
        return self.get(version="2.0.0", request="Dismiss", jobId=job_id).findtext("wps2:Status", namespaces=NS)

    def row(self, job_id: str):  # type: ignore[no-untyped-def]
        return queries.get_job(self.engine, job_id)

    def native_id(self, job_id: str) -> str:
        return wait_for(lambda: self.row(job_id)["native_id"], timeout=30)

    def job_dir(self, job_id: str) -> Path:
        return self.workdir / "var" / "jobs" / job_id

    def wait10(self, job_id: str, tag: str, timeout: float = 60.0) -> etree._Element:
        """Wait for the 1.0.0 status ``tag``; another final state first fails at once with its text."""

        def reached():  # type: ignore[no-untyped-def]
            status = self.status10(job_id)
            name = etree.QName(status).localname
            if name != tag and name in ("ProcessSucceeded", "ProcessFailed"):
                raise AssertionError(f"job {job_id} is {name}: {''.join(status.itertext())}")
            return (status,) if name == tag else None

        return wait_for(reached, timeout=timeout, interval=0.1)[0]


def wait_launched(server: Server, job_id: str) -> None:
    """Until the launcher runs on the node (it says where): Grid Engine reports a job running a moment
    before, and a job dismissed in that moment is ended by its own launcher, not by a signal."""
    wait_for(lambda: (server.wait10(job_id, "ProcessStarted").text or "").startswith("running on"), timeout=60)


def failure_text(status: etree._Element) -> str:
    return status.findtext(".//ows:ExceptionText", namespaces=NS)


def qstat() -> dict[str, str]:
    """Grid Engine's state letters of every job it lists, by job number, and of every task of a task
    array by "NUMBER.TASK", read here from its own XML."""
    done = subprocess.run(["qstat", "-xml"], capture_output=True, text=True, timeout=30, check=True)
    listed = {}
    for job in etree.fromstring(done.stdout.encode()).iter("job_list"):
        number, state = job.findtext("JB_job_number").strip(), job.findtext("state").strip()
        listed[number] = state
        listed |= {f"{number}.{task}": state for task in task_numbers(job.findtext("tasks") or "")}
    return listed


def qacct(job_id: str, native_id: str = "") -> list[dict[str, str]]:
    """Accounting records of a WPS job's Grid Engine jobs, by job name (job numbers may repeat after a
    qmaster restart, names do not); a task of an array ("12.3", named as its array) by number and task;
    none for a job that never ran."""
    number, _, task = native_id.partition(".")
    argv = ["qacct", "-j", number, "-t", task] if task else ["qacct", "-j", f"wps-{job_id}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return parse_qacct(done.stdout) if done.returncode == 0 else []


def record_id(record: dict[str, str]) -> str:
    """The native id of an accounting record: its job number, and its task's where it is one."""
    task = record.get("taskid", "undefined")
    return record["jobnumber"] if task == "undefined" else f"{record['jobnumber']}.{task}"


def gone_from_grid_engine(native_id: str) -> bool:
    return native_id not in qstat()


@pytest.fixture(scope="module")
def server(grid_engine, tmp_path_factory) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    started = Server(tmp_path_factory.mktemp("drmaa"), config(grid_engine))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def held(grid_engine, tmp_path_factory) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    """A server whose jobs Grid Engine holds until ``qrls``."""
    started = Server(tmp_path_factory.mktemp("drmaa-held"), config(grid_engine, "native = -h\n"))
    yield started
    for row in queries.active_native_jobs(started.engine, "drmaa"):
        subprocess.run(["qdel", row["native_id"]], capture_output=True, timeout=30)
    started.stop()


# -- through the service ------------------------------------------------------------------------------


def test_sleep_and_wordcounter_succeed_in_both_versions(server):
    text = "the cat saw the hat and the cat sat"
    sleep_id = server.submit10("sleep", "delay=3")
    count_id = server.submit20(
        "wordcounter", f'<wps:Input id="text"><wps:Data mimeType="text/plain">{text}</wps:Data></wps:Input>'
    )
    percents10, percents20 = set(), set()

    def finished() -> bool:
        status = server.status10(sleep_id)
        if status.tag == f"{{{WPS10}}}ProcessStarted":
            percents10.add(int(status.get("percentCompleted")))
        percent = server.status20(sleep_id).findtext("wps2:PercentCompleted", namespaces=NS)
        if percent is not None:
            percents20.add(int(percent))
        return status.tag == f"{{{WPS10}}}ProcessSucceeded"

    wait_for(finished, timeout=90, interval=0.1)
    assert {p for p in percents10 if 0 < p < 100}, percents10  # progress from the node reached 1.0.0 ...
    assert {p for p in percents20 if 0 < p < 100}, percents20  # ... and 2.0
    assert server.state20(sleep_id) == "Succeeded"
    literal = server.result20(sleep_id).xpath("//wps2:LiteralValue/text()", namespaces=NS)
    assert literal == ["slept for 3.0 seconds"]
    document = validate(requests.get(f"{server.live.url}/jobs/{sleep_id}", timeout=30).content)
    assert document.xpath("//wps:LiteralData/text()", namespaces=NS) == ["slept for 3.0 seconds"]

    wait_for(lambda: server.state20(count_id) in ("Succeeded", "Failed"), timeout=60, interval=0.2)
    assert server.state20(count_id) == "Succeeded", failure_text(server.status10(count_id))
    data = server.result20(count_id).find("wps2:Output/wps2:Data", NS)
    assert json.loads(data.text) == {"the": 3, "cat": 2, "saw": 1, "hat": 1, "and": 1, "sat": 1}

    for job_id in (sleep_id, count_id):  # real Grid Engine jobs, named after the WPS job, that exited 0
        native_id = server.native_id(job_id)
        (record,) = wait_for(lambda j=job_id, n=native_id: qacct(j, n), timeout=20)
        assert record_id(record) == native_id
        assert record["failed"] == "0" and record["exit_status"].split()[0] == "0"
        assert (server.job_dir(job_id) / "stdout").exists() and (server.job_dir(job_id) / "stderr").exists()
        wait_for(lambda j=job_id: not server.row(j)["native_active"], timeout=20)  # the dispatcher saw its end


def test_job_deleted_with_qdel_fails_with_the_reason(server):
    job_id = server.submit10("sleep", "delay=60")
    wait_launched(server, job_id)
    native_id = server.native_id(job_id)
    subprocess.run(["qdel", native_id], check=True, capture_output=True, timeout=30)
    failed = server.wait10(job_id, "ProcessFailed", timeout=30)
    assert failure_text(failed) == "the job's process was deleted on Grid Engine (qdel)"
    assert server.state20(job_id) == "Failed"
    assert gone_from_grid_engine(native_id)


def test_job_over_its_walltime_fails_with_the_h_rt_reason(server):
    job_id = server.submit10("sleep", "delay=60;resources.walltime=5")
    native_id = server.native_id(job_id)
    failed = server.wait10(job_id, "ProcessFailed", timeout=60)
    assert failure_text(failed) == "the job's process exceeded its wall-clock limit (h_rt) on Grid Engine"
    (record,) = wait_for(lambda: qacct(job_id), timeout=20)
    assert record["jobnumber"] == native_id
    assert record["failed"].startswith("37") and "h_rt" in record["failed"]
    assert record["category"] == "-l h_rt=5,h_vmem=1024M"


def test_dismiss_running_job_deletes_it_and_its_outputs(server):
    job_id = server.submit10("sleep", "delay=60")
    wait_launched(server, job_id)
    native_id = server.native_id(job_id)
    assert server.job_dir(job_id).exists()
    assert server.dismiss(job_id) == "Dismissed"
    wait_for(lambda: not server.row(job_id)["native_active"], timeout=30)
    wait_for(lambda: not server.job_dir(job_id).exists(), timeout=10)
    assert gone_from_grid_engine(native_id)
    (record,) = wait_for(lambda: qacct(job_id), timeout=20)  # it ran, and was deleted while running
    assert record["jobnumber"] == native_id
    assert record["failed"].startswith("100") and record["exit_status"].split()[0] == "137"
    assert server.state20(job_id) == "Dismissed"


def test_queued_job_names_its_grid_engine_job_until_released(held):
    job_id = held.submit10("sleep", "delay=1;resources.cores=2;resources.memory=512MB")
    accepted = held.wait10(job_id, "ProcessAccepted")
    message = wait_for(lambda: QUEUED.match(held.status10(job_id).text or ""), timeout=30).group(0)
    native_id = QUEUED.match(message).group(1)
    assert accepted is not None and held.row(job_id)["native_id"] == native_id
    assert qstat()[native_id] == "hqw"  # really Grid Engine's job, held there
    details = subprocess.run(["qstat", "-j", native_id], capture_output=True, text=True, timeout=30).stdout
    assert re.search(r"job_name:\s+wps-" + job_id, details)
    assert re.search(r"hard resource_list:\s+h_rt=120,h_vmem=256M", details)  # 512 MB over 2 slots
    assert re.search(r"parallel environment:\s+smp range:\s+2", details)
    assert held.state20(job_id) == "Accepted"
    subprocess.run(["qrls", native_id], check=True, capture_output=True, timeout=30)
    held.wait10(job_id, "ProcessSucceeded", timeout=60)
    assert held.state20(job_id) == "Succeeded"
    (record,) = wait_for(lambda: qacct(job_id), timeout=20)
    assert record["jobnumber"] == native_id
    assert record["granted_pe"] == "smp" and record["slots"] == "2"


def test_dismiss_queued_job_deletes_it_before_it_runs(held):
    job_id = held.submit10("sleep", "delay=1")
    native_id = wait_for(lambda: QUEUED.match(held.status10(job_id).text or ""), timeout=30).group(1)
    assert held.dismiss(job_id) == "Dismissed"
    wait_for(lambda: not held.row(job_id)["native_active"], timeout=30)
    wait_for(lambda: not held.job_dir(job_id).exists(), timeout=10)
    assert gone_from_grid_engine(native_id)
    assert qacct(job_id) == []  # it never ran
    assert held.state20(job_id) == "Dismissed"


def test_restart_reattaches_running_and_queued_jobs(held):
    """Jobs submitted under one dispatcher are followed by the next one: the running job succeeds
    and ran once, the queued one is dismissed through qdel."""
    running = held.submit10("sleep", "delay=8")
    waiting = held.submit10("sleep", "delay=1")
    running_native = wait_for(lambda: QUEUED.match(held.status10(running).text or ""), timeout=30).group(1)
    waiting_native = wait_for(lambda: QUEUED.match(held.status10(waiting).text or ""), timeout=30).group(1)
    subprocess.run(["qrls", running_native], check=True, capture_output=True, timeout=30)
    held.wait10(running, "ProcessStarted")
    held.restart()
    held.wait10(running, "ProcessSucceeded", timeout=60)
    assert held.state20(running) == "Succeeded"
    wait_for(lambda: not held.row(running)["native_active"], timeout=30)  # the new dispatcher saw it end
    (record,) = qacct(running, running_native)  # submitted once, ran once, and the restart did not touch it
    assert record_id(record) == running_native and record["failed"] == "0"

    assert held.status10(waiting).text == f"queued on Grid Engine as job {waiting_native}"
    # The new dispatcher names the system its library drives as it takes the jobs up, before any poll.
    assert f"following Grid Engine job {waiting_native} submitted before the restart" in held.live.log.read_text()
    assert held.dismiss(waiting) == "Dismissed"
    wait_for(lambda: not held.row(waiting)["native_active"], timeout=30)
    assert gone_from_grid_engine(waiting_native)
    assert qacct(waiting, waiting_native) == []
    assert not held.job_dir(waiting).exists()


# -- the library --------------------------------------------------------------------------------------


def test_library_that_cannot_load_names_the_fix(grid_engine, tmp_path):
    """Without the preload, submitting fails with a reason that says which setting fixes it."""
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from app.settings import load_settings
        from scheduler.executors.base import JobSpec, SubmitError
        from scheduler.executors.batch.drmaa import DrmaaExecutor
        settings = load_settings(environ={{}}).replace("scheduler", drmaa_library={grid_engine["DRMAA_LIBRARY_PATH"]!r})
        executor = DrmaaExecutor(settings.scheduler, Path({str(tmp_path)!r}))
        try:
            executor.submit(JobSpec("j", "sleep", Path({str(tmp_path)!r}), {{}}))
        except SubmitError as exc:
            print(exc.retry, exc)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert done.stdout.startswith("False cannot load the DRMAA library"), done.stdout + done.stderr
    assert f"set [scheduler] drmaa_preload = {grid_engine['HPC_WPS_DRMAA_PRELOAD']}" in done.stdout
