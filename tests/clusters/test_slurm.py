"""End to end on a real Slurm (scripts/clusters.sh start): `hpc-wps serve` in scheduler mode submits
every asynchronous job with sbatch, and each test drives it over HTTP as a client would, checking
what Slurm itself says with squeue and scancel.

One server serves the module. Its job directories lie under a path with spaces, quotes, ``#``,
``%j`` and ``$``, so every job also proves the submit script's quoting. Slurm's commands reach it
through logging wrappers first on its PATH (``Tools``), which can also play an unreachable
controller. The over-walltime job is submitted first and checked late: Slurm ends it about 80 s
after it starts, and the other tests run meanwhile on the node's second CPU. The cluster keeps
accounting in slurmdbd and finished jobs leave squeue after MinJobAge (10 s): what Slurm says of a
finished job is read from squeue while it lists it, from sacct after.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from app.settings import load_settings
from scheduler import queries
from scheduler.db import make_engine
from scheduler.executors.base import JobSpec, NativeState, NativeStatus
from scheduler.executors.batch.slurm import SlurmExecutor
from scheduler.resources import Resources
from tests.conftest import LiveServer, wait_for
from tests.xsd import IN_CI, OWS11, OWS20, WPS10, WPS20, validate

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm")]

NS = {"wps": WPS10, "ows": OWS11, "wps2": WPS20, "ows2": OWS20}
NASTY = "jobs dir 'q' \"d\" #1 %j $HOME"
HTTP = 30  # seconds per request
JOB = 90  # seconds for a short job to run on a busy two-CPU node
POLL = 0.2

HELD_MODULE = '''"""The sleep process, submitted held (--hold): it stays PENDING on Slurm until released."""
from dataclasses import replace

from processes.builtin.sleep import PROCESS as SLEEP

PROCESS = replace(SLEEP, identifier="held_sleep", title="Sleep, held on Slurm", resources={"native": "--hold"})
'''
VANISHING_MODULE = '''"""A process importable on the service host only: the test removes this file after start."""
from processes.model import LiteralOutput, Process


def answer(job):
    job.set_output("answer", "42")


PROCESS = Process(
    identifier="vanishing", title="Not on the nodes", handler=answer, outputs=(LiteralOutput("answer", "Answer"),)
)
'''


CRASH_MODULE = '''"""A process that ends its interpreter with exit code 3 after a few seconds: no result file."""
import os
import time

from processes.model import LiteralInput, Process


def crash(job):
    time.sleep(job.value("delay"))
    os._exit(3)


PROCESS = Process(
    identifier="crash",
    title="Exit 3",
    handler=crash,
    inputs=(LiteralInput("delay", "Seconds before the exit", data_type="double"),),
)
'''


class Tools:
    """Wrappers for Slurm's commands, first on the server's PATH: each call is logged with its
    arguments, and all of them answer as an unreachable controller does while the file ``down`` exists."""

    NAMES = ("sbatch", "squeue", "scancel", "sacct")

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True)
        self.dir = directory
        self.log = directory / "calls.log"
        self.down = directory / "down"
        for name in self.NAMES:
            real = shutil.which(name)
            assert real, f"{name} is not installed"
            wrapper = directory / name
            failed = "Batch job submission failed: " if name == "sbatch" else ""
            wrapper.write_text(
                "#!/bin/sh\n"
                f'echo {name} "$*" >> {shlex.quote(str(self.log))}\n'
                f"if [ -e {shlex.quote(str(self.down))} ]; then\n"
                f'    echo "{name}: error: {failed}Unable to contact slurm controller (connect failure)" >&2\n'
                "    exit 1\n"
                "fi\n"
                f'exec {shlex.quote(real)} "$@"\n',
                encoding="utf-8",
            )
            wrapper.chmod(0o755)

    def calls(self) -> list[list[str]]:
        """Every command the server ran so far, as words."""
        return [line.split() for line in self.log.read_text(encoding="utf-8").splitlines()]


class Served:
    """A server in scheduler mode and its job table, which the tests look at behind the client's back."""

    def __init__(self, server: LiveServer) -> None:
        self.url = server.url
        self.engine = make_engine(load_settings(server.config, environ={}).database_url)
        self._server_log = server.log

    def row(self, job_id: str):  # type: ignore[no-untyped-def]
        return queries.get_job(self.engine, job_id)

    def native_id(self, job_id: str) -> str:
        return wait_for(lambda: self.row(job_id)["native_id"], timeout=JOB)

    def log(self) -> str:
        return self._server_log.read_text(errors="replace")


class Service(Served):
    """The module's server, with what the tests need to look behind it."""

    def __init__(self, base: Path) -> None:
        self.tools = Tools(base / "tools")
        self.modules = base / "modules"
        self.modules.mkdir()
        (self.modules / "slurm_test_held.py").write_text(HELD_MODULE, encoding="utf-8")
        (self.modules / "slurm_test_vanishing.py").write_text(VANISHING_MODULE, encoding="utf-8")
        (self.modules / "slurm_test_crash.py").write_text(CRASH_MODULE, encoding="utf-8")
        self.jobs_dir = base / NASTY
        self.server = LiveServer(
            base / "server",
            extra_config=(
                "[processing]\nmode = scheduler\n"
                "processes = slurm_test_held:PROCESS, slurm_test_vanishing:PROCESS, slurm_test_crash:PROCESS\n"
                "[scheduler]\nsystem = slurm\npoll_interval = 0.5\nwalltime = 120\nretry_max = 2\n"
                f"workdir = {self.jobs_dir}\n"
            ),
        )
        super().__init__(self.server)

    def start(self) -> None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PATH", f"{self.tools.dir}:{os.environ['PATH']}")
            patch.setenv("PYTHONPATH", str(self.modules))
            try:
                self.server.start()
            except requests.Timeout:  # LiveServer.start gives up on a first answer slower than 2 s
                wait_for(self.answers, 60, 0.5)

    def answers(self) -> bool:
        params = {"service": "WPS", "request": "GetCapabilities"}
        try:
            return requests.get(self.url, params=params, timeout=HTTP).ok
        except requests.RequestException:
            return False


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(tmp_path_factory.mktemp("slurm"))
    service.start()
    try:
        yield service
    finally:
        service.server.stop()
        service.engine.dispose()
        cancel_jobs_under(service.jobs_dir)


def cancel_jobs_under(directory: Path) -> None:
    """Leave no job of ours on the shared cluster."""
    listing = squeue("-t", "pending,running,suspended", "-O", "JobID:|,WorkDir:|")
    for line in listing.splitlines():
        native_id, _, workdir = line.removesuffix("|").partition("|")
        if workdir.startswith(str(directory)):
            subprocess.run(["scancel", native_id], check=False, timeout=30)


@pytest.fixture(scope="module")
def walltime_job(service: Service) -> tuple[str, float]:
    """A sleep of 300 s asking for 60 s of walltime, submitted before every other job."""
    return execute10(service, "sleep", "delay=300;resources.walltime=60"), time.monotonic()


@pytest.fixture(scope="module")
def accounting() -> None:
    """sacct answering from slurmdbd, as scripts/clusters.sh sets it up: a skip without, a failure in CI."""
    done = subprocess.run(
        ["sacct", "-n", "-X", "-j", "1", "-o", "JobIDRaw"], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        message = f"Slurm accounting does not answer ({done.stderr.strip()}); start it with scripts/clusters.sh start"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def diagnose(service: Service) -> Iterator[None]:
    """On a failure, show the server's log (dispatcher included)."""
    yield
    # pytest prints captured output for failing tests only.
    print("---- server log (tail) ----\n" + "\n".join(service.log().splitlines()[-80:]))


# -- Slurm's own view -------------------------------------------------------------------------------


def squeue(*args: str) -> str:
    done = subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, timeout=30, check=False)
    return done.stdout


def slurm_view(native_id: str) -> dict[str, str]:
    """What squeue says of one job (finished jobs included, for MinJobAge); once it has left squeue,
    what sacct says (the same fields but Comment, TimeLimit as sacct prints it). A task of an array
    ("12_3") is listed on its own (-r) under that id."""
    fields = ("JobArrayID", "Name", "State", "Reason", "TimeLimit", "Partition", "Comment", "WorkDir")
    line = squeue("-r", "-t", "all", "-j", native_id, "-O", ",".join(f"{f}:|" for f in fields)).strip()
    if line:
        return dict(zip(fields, line.removesuffix("|").split("|", len(fields) - 1), strict=False))
    return sacct_view(native_id)


SACCT_VIEW = {"JobArrayID": "JobID", "Name": "JobName", "State": "State", "Reason": "Reason"}
SACCT_VIEW |= {"TimeLimit": "Timelimit", "Partition": "Partition", "WorkDir": "WorkDir"}


def sacct_view(native_id: str) -> dict[str, str]:
    """What Slurm's accounting says of one job: squeue's field names, sacct's values ("CANCELLED by 0"
    is "CANCELLED")."""
    done = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-j", native_id, "-o", ",".join(SACCT_VIEW.values())],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    line = done.stdout.strip()
    if done.returncode != 0 or not line:
        return {}
    view = dict(zip(SACCT_VIEW, line.split("|", len(SACCT_VIEW) - 1), strict=False))
    view["State"] = view["State"].split()[0]
    return view


def slurm_job_dir(native_id: str) -> Path:
    """The job directory of a Slurm job of ours, as Slurm shows it: its working directory, named after
    it; for a task of an array, the array directory's link named by the task's index."""
    view = slurm_view(native_id)
    workdir = Path(view["WorkDir"])
    _array, _, task = native_id.partition("_")
    assert view["Name"] == f"hpc-wps-{workdir.name[:8]}"
    return (workdir / task).resolve() if task else workdir


def slurm_state(native_id: str) -> str:
    return slurm_view(native_id).get("State", "")


# -- the client's view ------------------------------------------------------------------------------


def xml(response: requests.Response) -> etree._Element:
    assert response.headers["Content-Type"].startswith("text/xml"), response.text[:500]
    return validate(response.content)


def execute10(service: Service, identifier: str, inputs: str) -> str:
    # DataInputs' separators (; = @) travel unencoded: encoded, they would be part of a value.
    query = (
        f"service=WPS&version=1.0.0&request=Execute&identifier={identifier}&storeExecuteResponse=true&status=true"
        f"&DataInputs={urllib.parse.quote(inputs, safe='=;@')}"
    )
    root = xml(requests.get(f"{service.url}?{query}", timeout=HTTP))
    assert root.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessAccepted") is not None, etree.tostring(root)
    location = root.get("statusLocation")
    assert location.startswith(service.url + "/jobs/")
    return location.rsplit("/", 1)[1]


def document10(service: Service, job_id: str) -> etree._Element:
    return xml(requests.get(f"{service.url}/jobs/{job_id}", timeout=HTTP))


def status10(service: Service, job_id: str) -> etree._Element:
    return document10(service, job_id).find(f"{{{WPS10}}}Status")[0]


def wait10(service: Service, job_id: str, tag: str, timeout: float = JOB) -> etree._Element:
    def reached():  # type: ignore[no-untyped-def]
        status = status10(service, job_id)
        if status.tag.endswith(("ProcessSucceeded", "ProcessFailed")) and not status.tag.endswith(tag):
            raise AssertionError(f"job {job_id} ended otherwise: {etree.tostring(status).decode()}")
        return status.tag == f"{{{WPS10}}}{tag}" and (status,)

    return wait_for(reached, timeout, POLL)[0]


def execute20(service: Served, identifier: str, inputs: str) -> str:
    body = (
        f'<wps:Execute xmlns:wps="{WPS20}" xmlns:ows="{OWS20}" service="WPS" version="2.0.0" mode="async"'
        f' response="document"><ows:Identifier>{identifier}</ows:Identifier>{inputs}</wps:Execute>'
    )
    response = requests.post(service.url, data=body.encode(), headers={"Content-Type": "text/xml"}, timeout=HTTP)
    root = xml(response)
    assert root.findtext(f"{{{WPS20}}}Status") == "Accepted", etree.tostring(root)
    return root.findtext(f"{{{WPS20}}}JobID")


def status20(service: Served, job_id: str) -> tuple[str, etree._Element]:
    params = {"service": "WPS", "version": "2.0.0", "request": "GetStatus", "jobId": job_id}
    root = xml(requests.get(service.url, params=params, timeout=HTTP))
    return root.findtext(f"{{{WPS20}}}Status"), root


def wait20(service: Served, job_id: str, state: str, timeout: float = JOB) -> etree._Element:
    def reached():  # type: ignore[no-untyped-def]
        current, root = status20(service, job_id)
        if current in ("Succeeded", "Failed", "Dismissed") and current != state:
            raise AssertionError(f"job {job_id} is {current}, not {state}: {service.row(job_id)['message']}")
        return current == state and (root,)

    return wait_for(reached, timeout, POLL)[0]


def result20(service: Served, job_id: str) -> etree._Element:
    params = {"service": "WPS", "version": "2.0.0", "request": "GetResult", "jobId": job_id}
    return xml(requests.get(service.url, params=params, timeout=HTTP))


def dismiss20(service: Service, job_id: str) -> str:
    params = {"service": "WPS", "version": "2.0.0", "request": "Dismiss", "jobId": job_id}
    return xml(requests.get(service.url, params=params, timeout=HTTP)).findtext(f"{{{WPS20}}}Status")


def complex_text(element: etree._Element) -> str:
    """A complex output's content, inline or by reference."""
    reference = element.find(f"{{{WPS10}}}Reference")
    if reference is None:
        reference = element.find(f"{{{WPS20}}}Reference")
    if reference is not None:
        href = reference.get("href") or reference.get("{http://www.w3.org/1999/xlink}href")
        return requests.get(href, timeout=HTTP).text
    data = element.find(f"{{{WPS10}}}Data/{{{WPS10}}}ComplexData")
    if data is None:
        data = element.find(f"{{{WPS20}}}Data")
    return data.text


def failure_text(status: etree._Element) -> str:
    return status.findtext(f".//{{{OWS11}}}ExceptionText") or ""


TEXT = "the cat and the hat and the bat"
COUNTS = {"the": 3, "and": 2, "cat": 1, "hat": 1, "bat": 1}


# -- the tests ---------------------------------------------------------------------------------------


def test_slurm_reads_the_script_as_written(tmp_path):
    """Without the service: a script for a directory and options full of quotes and shell characters
    runs on Slurm where it should, with what it asks for."""
    settings = load_settings(environ={}).scheduler
    job_dir = tmp_path / NASTY / "0123abcd-0000-4000-8000-000000000000"
    job_dir.mkdir(parents=True)
    slurm = SlurmExecutor(settings, job_dir.parent)
    resources = Resources(1, 300 * 1024**2, 90, "debug", "--comment='a \"quoted\" #comment $HOME'")
    native_id = slurm.submit(JobSpec(job_dir.name, "sleep", job_dir, {}, resources))
    view = slurm_view(native_id)
    assert view["Name"] == "hpc-wps-0123abcd"
    assert view["WorkDir"] == str(job_dir)
    assert view["Partition"] == "debug" and view["TimeLimit"] == "2:00"
    assert view["Comment"] == 'a "quoted" #comment $HOME'
    # It runs the launcher, which finds no payload here: it says so in result.json and exits 2.
    ended = wait_for(lambda: (s := slurm.poll_many([native_id])[native_id]).state is NativeState.ENDED and s, JOB)
    assert ended.reason == "failed on Slurm with exit code 2"
    assert "payload.dill" in json.loads((job_dir / "result.json").read_text())["message"]
    assert (job_dir / f"slurm-{native_id}.out").exists() and (job_dir / f"slurm-{native_id}.err").exists()


def test_sleep_and_wordcounter_in_both_versions(service, walltime_job, diagnose):
    jobs10 = {
        "sleep": execute10(service, "sleep", "delay=1"),
        "wordcounter": execute10(service, "wordcounter", f"text={TEXT}@mimeType=text/plain"),
    }
    jobs20 = {
        "sleep": execute20(
            service,
            "sleep",
            '<wps:Input id="delay"><wps:Data><wps:LiteralValue>1.5</wps:LiteralValue></wps:Data></wps:Input>',
        ),
        "wordcounter": execute20(
            service,
            "wordcounter",
            f'<wps:Input id="text"><wps:Data mimeType="text/plain">{TEXT}</wps:Data></wps:Input>',
        ),
    }
    for job_id in [*jobs10.values(), *jobs20.values()]:  # every job is a Slurm job (or task) of ours
        assert slurm_job_dir(service.native_id(job_id)) == service.jobs_dir / job_id
    for job_id in jobs10.values():
        wait10(service, job_id, "ProcessSucceeded")
    document = document10(service, jobs10["sleep"])
    assert document.xpath("//wps:LiteralData/text()", namespaces=NS) == ["slept for 1.0 seconds"]
    output = document10(service, jobs10["wordcounter"]).find(f".//{{{WPS10}}}Output")
    assert json.loads(complex_text(output)) == COUNTS
    for job_id in jobs20.values():
        wait20(service, job_id, "Succeeded")
    result = result20(service, jobs20["sleep"])
    assert result.xpath("//wps2:LiteralValue/text()", namespaces=NS) == ["slept for 1.5 seconds"]
    output = result20(service, jobs20["wordcounter"]).find(f"{{{WPS20}}}Output")
    assert json.loads(complex_text(output)) == COUNTS
    for job_id in [*jobs10.values(), *jobs20.values()]:
        wait_for(lambda j=job_id: not service.row(j)["native_active"], JOB)
        assert slurm_state(service.row(job_id)["native_id"]) == "COMPLETED"


@pytest.fixture(scope="module")
def progress_series(service: Service) -> list[tuple[str, int | None, str, int | None]]:
    """A 6 s sleep (five steps) polled through both versions until it succeeds: (2.0 status, 2.0
    PercentCompleted, 1.0.0 status element, 1.0.0 percentCompleted) at each poll while it runs."""
    job_id = execute10(service, "sleep", "delay=6")  # status=true: 1.0.0 shows ProcessStarted
    series = []
    deadline = time.monotonic() + JOB
    while time.monotonic() < deadline:
        state, root = status20(service, job_id)
        status = status10(service, job_id)
        if state == "Succeeded":
            return series
        assert state in ("Accepted", "Running"), (state, service.row(job_id)["message"])
        percent20 = root.findtext(f"{{{WPS20}}}PercentCompleted")
        percent10 = status.get("percentCompleted")
        series.append(
            (state, percent20 and int(percent20), etree.QName(status).localname, percent10 and int(percent10))
        )
        time.sleep(POLL)
    raise AssertionError(f"job {job_id} did not succeed within {JOB} s: {series}")


def test_progress_from_the_node_reaches_both_versions(progress_series, diagnose):
    assert {p for _s, p, _t, _q in progress_series} & set(range(1, 100)), progress_series
    assert {q for _s, _p, t, q in progress_series if t == "ProcessStarted"} & set(range(1, 100)), progress_series


def test_progress_never_goes_back(progress_series):
    percents = [p for _s, p, _t, _q in progress_series if p is not None]
    assert percents == sorted(percents), progress_series


def test_queued_job_names_its_slurm_job_and_dismiss_cancels_it(service, diagnose):
    job_id = execute10(service, "held_sleep", "delay=1")
    accepted = wait_for(
        lambda: (
            (s := status10(service, job_id)).tag == f"{{{WPS10}}}ProcessAccepted"
            and re.fullmatch(r"queued on Slurm as job (\d+)", s.text or "")
        ),
        JOB,
        POLL,
    )
    native_id = accepted.group(1)
    view = slurm_view(native_id)
    assert (view["State"], view["Reason"]) == ("PENDING", "JobHeldUser")
    assert view["Name"] == f"hpc-wps-{job_id[:8]}" and view["WorkDir"] == str(service.jobs_dir / job_id)
    assert status20(service, job_id)[0] == "Accepted"
    assert dismiss20(service, job_id) == "Dismissed"
    wait_for(lambda: slurm_state(native_id) == "CANCELLED", 30, POLL)
    wait_for(lambda: not (service.jobs_dir / job_id).exists(), 30, POLL)
    wait_for(lambda: not service.row(job_id)["native_active"], 30, POLL)
    assert status20(service, job_id)[0] == "Dismissed"


def wait_launched(service: Service, job_id: str) -> None:
    """Until the launcher runs the process on the node (Slurm's RUNNING comes a moment before: a job
    dismissed in between ends without running, as it should, but then Slurm never cancels it)."""
    wait20(service, job_id, "Running")
    wait_for(lambda: service.row(job_id)["message"].startswith(("running on ", "slept ")), JOB, POLL)


def test_dismiss_running_job_cancels_it_on_slurm(service, diagnose):
    job_id = execute10(service, "sleep", "delay=300")
    wait_launched(service, job_id)
    native_id = service.native_id(job_id)
    assert slurm_state(native_id) == "RUNNING"
    assert dismiss20(service, job_id) == "Dismissed"
    wait_for(lambda: slurm_state(native_id) == "CANCELLED", 30, POLL)
    wait_for(lambda: not (service.jobs_dir / job_id).exists(), 30, POLL)
    assert status20(service, job_id)[0] == "Dismissed"
    assert requests.get(f"{service.url}/jobs/{job_id}/outputs/x", timeout=HTTP).status_code == 404


def test_job_cancelled_with_scancel_fails_with_the_reason(service, diagnose):
    job_id = execute10(service, "sleep", "delay=300")
    wait_launched(service, job_id)
    native_id = service.native_id(job_id)
    subprocess.run(["scancel", native_id], check=True, timeout=30)
    started = time.monotonic()
    failed = wait10(service, job_id, "ProcessFailed", timeout=30)
    assert failure_text(failed) == "the job's process was cancelled on Slurm (scancel)"
    assert time.monotonic() - started < 30
    assert slurm_state(native_id) == "CANCELLED"
    assert status20(service, job_id)[0] == "Failed"


def test_process_the_node_cannot_import_fails_with_the_launchers_reason(service, diagnose):
    """The process's module exists on the service host only (deleted once the service has loaded it)."""
    module = service.modules / "slurm_test_vanishing.py"
    source = module.read_text()
    module.unlink()
    shutil.rmtree(service.modules / "__pycache__", ignore_errors=True)
    try:
        job_id = execute10(service, "vanishing", "")
        failed = wait10(service, job_id, "ProcessFailed")
    finally:
        module.write_text(source)
    assert failure_text(failed) == (
        "the launcher cannot load the job: ModuleNotFoundError: No module named 'slurm_test_vanishing'"
    )
    assert slurm_state(service.row(job_id)["native_id"]) == "FAILED"


def test_scheduler_down_at_submission_keeps_the_job_accepted(service, diagnose):
    service.tools.down.touch()
    try:
        job_id = execute10(service, "sleep", "delay=0")
        status = wait_for(
            lambda: (s := status10(service, job_id)).text and "waiting for slurm" in s.text and (s,), 30, POLL
        )[0]
        assert status.tag == f"{{{WPS10}}}ProcessAccepted"
        assert "Slurm is unavailable" in status.text and "Unable to contact slurm controller" in status.text
        assert re.search(r"next try in \d+ s$", status.text)
        time.sleep(3)  # retried meanwhile, still refused: still accepted, never lost, never failed
        assert status10(service, job_id).tag == f"{{{WPS10}}}ProcessAccepted"
        assert status20(service, job_id)[0] == "Accepted"
        assert service.row(job_id)["native_id"] is None
    finally:
        service.tools.down.unlink()
    wait10(service, job_id, "ProcessSucceeded", timeout=JOB)
    native_id = service.row(job_id)["native_id"]
    wait_for(lambda: slurm_state(native_id) == "COMPLETED", 30, POLL)  # the launcher reports before it exits


def test_restart_reattaches_a_job_running_on_slurm(service, diagnose):
    job_id = execute10(service, "sleep", "delay=10")
    wait_launched(service, job_id)
    native_id = service.native_id(job_id)
    service.server.stop()  # SIGTERM: gunicorn and the dispatcher stop; the Slurm job does not
    assert slurm_state(native_id) == "RUNNING"
    service.start()
    wait10(service, job_id, "ProcessSucceeded", timeout=JOB)
    wait_for(lambda: not service.row(job_id)["native_active"], JOB, POLL)
    # It ran exactly once: one Slurm job of that name, one set of Slurm log files.
    name = f"hpc-wps-{job_id[:8]}"
    runs = subprocess.run(
        ["sacct", "-n", "-P", "-X", "--name", name, "-S", "now-1hours", "-o", "JobIDRaw"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert runs.stdout.split() == [native_id]
    assert [p.name for p in (service.jobs_dir / job_id).glob("slurm-*.out")] == [f"slurm-{native_id}.out"]


def test_job_over_its_walltime_fails_with_the_time_limit(service, walltime_job, diagnose):
    job_id, submitted = walltime_job
    native_id = service.native_id(job_id)
    assert slurm_view(native_id)["TimeLimit"] == "1:00"
    failed = wait10(service, job_id, "ProcessFailed", timeout=max(1.0, 150 - (time.monotonic() - submitted)))
    assert failure_text(failed) == "the job's process exceeded its time limit of 0:01:00 on Slurm"
    assert slurm_state(native_id) == "TIMEOUT"


def test_accounting_tells_the_same_end_as_squeue(service, walltime_job, accounting):
    """The over-walltime job, as the executor reads it from sacct (one call): the same reason as from
    squeue, once slurmdbd has its record."""
    native_id = service.row(walltime_job[0])["native_id"]
    executor = SlurmExecutor(load_settings(environ={}).scheduler, service.jobs_dir)
    status = wait_for(lambda: executor.query_finished([native_id]).get(native_id), 30, POLL)
    assert status == NativeStatus(NativeState.ENDED, "exceeded its time limit of 0:01:00 on Slurm")
    assert sacct_view(native_id)["State"] == "TIMEOUT"


def test_jobs_that_end_while_the_service_is_down_get_their_end_from_sacct(service, accounting, diagnose):
    """The service is down while its jobs end and leave squeue (MinJobAge): the restarted dispatcher
    learns each end from sacct, for all of them in one call: COMPLETED (its result file decides),
    FAILED with its exit code, CANCELLED. (Last in the module: the node is free for a two-core job.)"""
    blocker = execute10(service, "sleep", "delay=300;resources.cores=2")  # keeps the others pending
    wait_launched(service, blocker)
    completed = execute10(service, "sleep", "delay=1")
    crashed = execute10(service, "crash", "delay=1")
    ids = {job_id: service.native_id(job_id) for job_id in (blocker, completed, crashed)}
    for job_id in (completed, crashed):
        assert slurm_state(ids[job_id]) == "PENDING"
    service.server.stop()
    subprocess.run(["scancel", ids[blocker]], check=True, timeout=30)
    listed = ["-t", "all", "-j", ",".join(ids.values()), "-o", "%i"]
    wait_for(lambda: not squeue(*listed).split(), 120, 1.0)  # ended, and gone from squeue
    assert [sacct_view(n)["State"] for n in ids.values()] == ["CANCELLED", "COMPLETED", "FAILED"]
    before = len(service.tools.calls())
    service.start()
    wait10(service, completed, "ProcessSucceeded")
    failed = wait10(service, crashed, "ProcessFailed")
    assert failure_text(failed).startswith("the job's process failed on Slurm with exit code 3")
    failed = wait10(service, blocker, "ProcessFailed")
    assert failure_text(failed) == "the job's process was cancelled on Slurm (scancel)"
    sacct_calls = [c for c in service.tools.calls()[before:] if c[0] == "sacct" and "-j" in c]
    asked = [set(c[c.index("-j") + 1].split(",")) & set(ids.values()) for c in sacct_calls]
    assert [a for a in asked if a] == [set(ids.values())]  # one sacct for the three, never one per job
