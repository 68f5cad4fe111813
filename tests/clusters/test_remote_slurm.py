"""``[scheduler] remote``: `hpc-wps serve` drives Slurm on a login host over SSH (scripts/sshd.sh start).

The login host is this machine through a real OpenSSH sshd of its own on port 2222, where the user
``hpcwps-remote`` logs in with a key the set-up made: every Slurm command of the service runs as that
user, so Slurm's own records (the job's user) prove the command went over SSH. Two servers: one whose
job directories both sides see (``staging = shared``, under the set-up's shared directory), one whose
job directories stay on the service side and are copied to the user's home with SFTP
(``staging = sftp``). The sshd is killed with every connection it serves, and started again, while
jobs run: none is lost.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from scheduler.executors.batch.commands import SchedulerUnavailable
from scheduler.executors.batch.ssh import SshRunner
from scheduler.settings import SchedulerSettings
from tests.clusters.test_slurm import (
    COUNTS,
    HTTP,
    JOB,
    NS,
    TEXT,
    Served,
    complex_text,
    execute20,
    result20,
    wait20,
)
from tests.conftest import ROOT, LiveServer, need_backend, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm")]

SSHD_SCRIPT = ROOT / "scripts" / "sshd.sh"
REMOTE_USER = "hpcwps-remote"


@pytest.fixture(scope="module")
def sshd() -> dict[str, str]:
    """The login host of scripts/sshd.sh, as its ``env`` prints it: a skip without one, a failure in CI."""
    status = subprocess.run([str(SSHD_SCRIPT), "status"], capture_output=True, text=True, timeout=60)
    if status.returncode != 0:
        need_backend(f"the test sshd is down ({status.stdout.strip()}); start it with scripts/sshd.sh start")
    printed = subprocess.run([str(SSHD_SCRIPT), "env"], capture_output=True, text=True, timeout=30, check=True)
    return dict(line.split("=", 1) for line in printed.stdout.splitlines())


def restart_sshd() -> None:
    """sshd and every connection it serves killed (as a crash or a dropped network ends them), then started."""
    subprocess.run([str(SSHD_SCRIPT), "restart"], capture_output=True, text=True, timeout=120, check=True)


def sessions() -> set[int]:
    """The login user's SSH sessions on the sshd side (``sshd: hpcwps-remote@notty``), by process id."""
    listing = subprocess.run(
        ["ps", "-u", REMOTE_USER, "-o", "pid=,args="], capture_output=True, text=True, timeout=30
    ).stdout
    rows = [line.split(None, 1) for line in listing.splitlines()]
    return {int(row[0]) for row in rows if row[1:] and row[1].strip() == f"sshd: {REMOTE_USER}@notty"}


def remote_keys(sshd: dict[str, str], known_hosts: str = "") -> dict[str, str]:
    return {
        "remote": sshd["HPC_WPS_TEST_SSH_REMOTE"],
        "ssh_key": sshd["HPC_WPS_TEST_SSH_KEY"],
        "ssh_known_hosts": known_hosts or sshd["HPC_WPS_TEST_SSH_KNOWN_HOSTS"],
    }


class RemoteService(Served):
    """A server whose Slurm commands run on the login host; ``stage`` is the remote job directory's parent
    with SFTP staging, None when shared."""

    def __init__(self, base: Path, sshd: dict[str, str], jobs_dir: Path, staging: str, stage: Path | None) -> None:
        self.jobs_dir = jobs_dir
        self.stage = stage
        keys = "".join(f"{key} = {value}\n" for key, value in remote_keys(sshd).items())
        staged = f"staging = sftp\nremote_workdir = {stage}\n" if stage else "staging = shared\n"
        # The node runs this checkout's code: the login shell's environment is not the service's.
        python = shlex.join(["env", f"PYTHONPATH={ROOT}", sys.executable])
        self.server = LiveServer(
            base / "server",
            extra_config=(
                "[processing]\nmode = scheduler\n"
                "[scheduler]\nsystem = slurm\npoll_interval = 0.5\nwalltime = 120\nretry_max = 2\n"
                f"workdir = {jobs_dir}\npython = {python}\n{keys}{staged}"
            ),
        )
        super().__init__(self.server)
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
        self.engine.dispose()


@pytest.fixture(scope="module")
def shared(sshd: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteService]:
    # Made with mkdir, not mkdtemp (0700): the set-up's default ACL then lets the login user in.
    jobs_dir = Path(sshd["HPC_WPS_TEST_SSH_SHARED"]) / f"jobs-{uuid.uuid4().hex[:8]}"
    jobs_dir.mkdir()
    service = RemoteService(tmp_path_factory.mktemp("remote-shared"), sshd, jobs_dir, "shared", None)
    yield service
    service.stop()
    subprocess.run(["rm", "-rf", "--", str(jobs_dir)], check=False)


@pytest.fixture(scope="module")
def staged(sshd: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteService]:
    base = tmp_path_factory.mktemp("remote-sftp")
    stage = Path(sshd["HPC_WPS_TEST_SSH_HOME"]) / f"stage-{uuid.uuid4().hex[:8]}"
    service = RemoteService(base, sshd, base / "jobs", "sftp", stage)
    yield service
    service.stop()
    subprocess.run(["rm", "-rf", "--", str(stage)], check=False)


def sacct_user(native_id: str) -> str:
    """Whose job Slurm's accounting says it was."""
    done = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-j", native_id, "-o", "User"], capture_output=True, text=True, timeout=30
    )
    return done.stdout.strip()


def sleep_job(service: RemoteService, seconds: float) -> str:
    return execute20(
        service,
        "sleep",
        f'<wps:Input id="delay"><wps:Data><wps:LiteralValue>{seconds}</wps:LiteralValue></wps:Data></wps:Input>',
    )


def wordcounter_job(service: RemoteService) -> str:
    return execute20(
        service,
        "wordcounter",
        f'<wps:Input id="text"><wps:Data mimeType="text/plain">{TEXT}</wps:Data></wps:Input>',
    )


def assert_succeeded_as_remote_user(service: RemoteService, sleeps: dict[str, float], counter: str) -> None:
    """Every job Succeeded with its output, and Slurm ran it for the login host's user."""
    for job_id, seconds in sleeps.items():
        wait20(service, job_id, "Succeeded", timeout=3 * JOB)
        result = result20(service, job_id)
        assert result.xpath("//wps2:LiteralValue/text()", namespaces=NS) == [f"slept for {seconds} seconds"]
    wait20(service, counter, "Succeeded", timeout=3 * JOB)
    output = result20(service, counter).find(f"{{{NS['wps2']}}}Output")
    assert json.loads(complex_text(output)) == COUNTS
    for job_id in [*sleeps, counter]:
        native_id = service.row(job_id)["native_id"]
        wait_for(lambda n=native_id: sacct_user(n), JOB)
        assert sacct_user(native_id) == REMOTE_USER


# -- the tests ---------------------------------------------------------------------------------------


def test_jobs_over_ssh_on_a_shared_filesystem(shared: RemoteService) -> None:
    sleeps = {sleep_job(shared, 1.5): 1.5, sleep_job(shared, 2.0): 2.0}
    counter = wordcounter_job(shared)
    assert_succeeded_as_remote_user(shared, sleeps, counter)
    # The job ran in the directory the service made: its Slurm log lies there, owned by the login user.
    native_id = shared.row(counter)["native_id"]
    log = shared.jobs_dir / counter / f"slurm-{native_id}.out"
    assert log.exists() and log.stat().st_uid != os.getuid()


def test_sshd_restart_while_jobs_run_loses_no_job(shared: RemoteService) -> None:
    sleeps = {sleep_job(shared, 20.0): 20.0 for _ in range(3)}
    counter = wordcounter_job(shared)
    for job_id in [*sleeps, counter]:
        shared.native_id(job_id)  # every job is on Slurm
    wait_for(lambda: any(shared.row(j)["status"] == "running" for j in sleeps), JOB)
    before = wait_for(sessions, JOB)  # the service's master connection, as sshd serves it
    restart_sshd()
    after = {sleep_job(shared, 1.0): 1.0}  # submitted over a new connection
    again = wait_for(sessions, JOB)
    assert not again & before  # the first connection is gone: the service made a new one
    restart_sshd()  # and once more, with a job just submitted
    assert_succeeded_as_remote_user(shared, sleeps | after, counter)
    assert not wait_for(sessions, JOB) & again


def test_sftp_staging_copies_jobs_up_and_results_back(staged: RemoteService) -> None:
    sleeps = {sleep_job(staged, 1.0): 1.0}
    counter = wordcounter_job(staged)
    assert_succeeded_as_remote_user(staged, sleeps, counter)
    assert staged.stage is not None
    # The job ran in its copy on the login host, and its whole directory came back...
    native_id = staged.row(counter)["native_id"]
    assert (staged.jobs_dir / counter / f"slurm-{native_id}.out").exists()
    assert (staged.jobs_dir / counter / "result.json").exists()
    # ...after which the copy was removed there.
    assert not (staged.stage / counter).exists()


def test_a_wrong_host_key_is_refused_with_a_clear_error(sshd: dict[str, str]) -> None:
    runner = SshRunner(SchedulerSettings(**remote_keys(sshd, sshd["HPC_WPS_TEST_SSH_WRONG_KNOWN_HOSTS"])))
    try:
        with pytest.raises(SchedulerUnavailable) as refused:
            runner.run(["squeue", "-h"], 30)
    finally:
        runner.close()
    message = str(refused.value)
    assert refused.value.certain  # nothing reached the login host: a submission can be offered again
    assert "host key" in message and sshd["HPC_WPS_TEST_SSH_WRONG_KNOWN_HOSTS"] in message
    assert "ssh_known_hosts" in message


def test_commands_are_quoted_for_the_login_shell(sshd: dict[str, str]) -> None:
    runner = SshRunner(SchedulerSettings(**remote_keys(sshd)))
    try:
        word = "a b 'c' \"d\" $HOME `id` ; rm -rf x & #"
        done = runner.run(["printf", "%s\\n", word, "--help"], 30)
    finally:
        runner.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [word, "--help"]


def test_the_service_answers_while_the_login_host_is_down(shared: RemoteService) -> None:
    """Not an HTTP concern of SSH: Execute is accepted with the login host gone, and runs once it is back."""
    subprocess.run([str(SSHD_SCRIPT), "stop"], capture_output=True, text=True, timeout=60, check=True)
    try:
        job_id = sleep_job(shared, 0.5)
        response = requests.get(shared.url, params={"service": "WPS", "request": "GetCapabilities"}, timeout=HTTP)
        assert response.ok
        # The job waits, saying why (a WPS 1.0 status document shows this message).
        message = wait_for(
            lambda: "cannot reach" in shared.row(job_id)["message"] and shared.row(job_id)["message"], JOB
        )
        assert "Connection refused" in message and shared.row(job_id)["status"] == "accepted"
    finally:
        subprocess.run([str(SSHD_SCRIPT), "start"], capture_output=True, text=True, timeout=120, check=True)
    wait20(shared, job_id, "Succeeded", timeout=3 * JOB)
