"""``[scheduler] system = gridengine``: Grid Engine through qsub, qstat, qacct and qdel, end to end over
HTTP against a real server, on this host and on a login host over SSH.

Needs the single-node Grid Engine of ``scripts/clusters.sh start`` and, for the remote half, the sshd of
``scripts/sshd.sh start`` (its user ``hpcwps-remote`` submits, so Grid Engine's own records, the job's
owner, prove the commands went over SSH): skipped without them, failed in CI. Accounting records are
written at once on the test cluster (``accounting_flush_time`` 0, ``scripts/clusters.sh``); elsewhere
they lag up to 15 s, which the executor waits out (VANISH_GRACE).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clusters.test_drmaa import (
    NS,
    Server,
    failure_text,
    gone_from_grid_engine,
    grid_engine,  # noqa: F401 (a fixture)
    qacct,
    record_id,
    wait_launched,
)
from tests.clusters.test_remote_slurm import REMOTE_USER, remote_keys, restart_sshd, sessions, sshd  # noqa: F401
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.slow

TEXT = "the cat saw the hat and the cat sat"
COUNTS = {"the": 3, "cat": 2, "saw": 1, "hat": 1, "and": 1, "sat": 1}
JOB = 90  # seconds for a short job on a busy two-core node whose two slots other tests share


def config(extra: str = "") -> str:
    return (
        "[processing]\nmode = scheduler\n[scheduler]\nsystem = gridengine\npoll_interval = 0.5\nwalltime = 120\n"
        + extra
    )


class GridServer(Server):
    """A server of this module; ``jobs_dir`` where its job directories are when not under its workdir."""

    def __init__(self, workdir: Path, extra_config: str, jobs_dir: Path | None = None) -> None:
        super().__init__(workdir, extra_config)
        self.jobs_dir = jobs_dir or workdir / "var" / "jobs"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def wordcounter(self) -> str:
        return self.submit20(
            "wordcounter", f'<wps:Input id="text"><wps:Data mimeType="text/plain">{TEXT}</wps:Data></wps:Input>'
        )

    def assert_succeeded(self, job_id: str, owner: str) -> dict[str, str]:
        """The job Succeeded with its output, and Grid Engine ran it once, for ``owner``: its record (jobs
        submitted in one dispatcher cycle go as a task array)."""
        self.wait10(job_id, "ProcessSucceeded", timeout=JOB)
        assert self.state20(job_id) == "Succeeded"
        result = self.result20(job_id)
        data = result.find("wps2:Output/wps2:Data", NS)
        if data is not None and data.text and data.text.startswith("{"):
            assert json.loads(data.text) == COUNTS
        else:
            assert result.xpath("//wps2:LiteralValue/text()", namespaces=NS)[0].startswith("slept for ")
        native_id = self.native_id(job_id)  # of a job, or of a task of an array ("NUMBER.TASK")
        (record,) = wait_for(lambda: qacct(job_id, native_id), timeout=20)
        assert record_id(record) == native_id
        assert record["failed"] == "0" and record["exit_status"].split()[0] == "0"
        assert record["owner"] == owner
        return record


@pytest.fixture(scope="module")
def local(grid_engine, tmp_path_factory) -> Iterator[GridServer]:  # type: ignore[no-untyped-def]  # noqa: F811
    started = GridServer(tmp_path_factory.mktemp("gecli"), config())
    yield started
    started.stop()


def python_for_the_login_user() -> str:
    """The login shell has not the service's environment: the node runs this checkout's code."""
    return shlex.join(["env", f"PYTHONPATH={ROOT}", sys.executable])


def remote_config(sshd: dict[str, str], staging: str) -> str:  # noqa: F811
    keys = "".join(f"{key} = {value}\n" for key, value in remote_keys(sshd).items())
    return config(f"python = {python_for_the_login_user()}\nretry_max = 2\n{keys}{staging}")


@pytest.fixture(scope="module")
def shared(grid_engine, sshd, tmp_path_factory) -> Iterator[GridServer]:  # type: ignore[no-untyped-def]  # noqa: F811
    # Made with mkdir, not mkdtemp (0700): the set-up's default ACL then lets the login user in.
    jobs_dir = Path(sshd["HPC_WPS_TEST_SSH_SHARED"]) / f"ge-jobs-{uuid.uuid4().hex[:8]}"
    jobs_dir.mkdir()
    extra = remote_config(sshd, f"staging = shared\nworkdir = {jobs_dir}\n")
    started = GridServer(tmp_path_factory.mktemp("gecli-ssh"), extra, jobs_dir)
    yield started
    started.stop()
    subprocess.run(["rm", "-rf", "--", str(jobs_dir)], check=False)


@pytest.fixture(scope="module")
def staged(grid_engine, sshd, tmp_path_factory) -> Iterator[GridServer]:  # type: ignore[no-untyped-def]  # noqa: F811
    stage = Path(sshd["HPC_WPS_TEST_SSH_HOME"]) / f"ge-stage-{uuid.uuid4().hex[:8]}"
    started = GridServer(
        tmp_path_factory.mktemp("gecli-sftp"), remote_config(sshd, f"staging = sftp\nremote_workdir = {stage}\n")
    )
    started.stage = stage  # type: ignore[attr-defined]
    yield started
    started.stop()
    subprocess.run(["rm", "-rf", "--", str(stage)], check=False)


def qdel(native_id: str) -> None:
    subprocess.run(["qdel", native_id], check=True, capture_output=True, timeout=30)


# -- on this host ---------------------------------------------------------------------------------------


def test_jobs_succeed_with_their_outputs(local):
    sleep_id = local.submit10("sleep", "delay=2")
    local.native_id(sleep_id)  # handed over alone, not in a task array with the next
    count_id = local.wordcounter()
    for job_id in (sleep_id, count_id):
        record = local.assert_succeeded(job_id, "root")
        assert record["jobname"] == f"wps-{job_id}"
        assert (local.job_dir(job_id) / "stdout").exists() and (local.job_dir(job_id) / "gridengine.sh").exists()
    assert local.result20(sleep_id).xpath("//wps2:LiteralValue/text()", namespaces=NS) == ["slept for 2.0 seconds"]
    assert "system = gridengine" in local.live.config.read_text()


def test_dismiss_running_job_deletes_it_and_its_outputs(local):
    job_id = local.submit10("sleep", "delay=60")
    wait_launched(local, job_id)
    native_id = local.native_id(job_id)
    assert local.dismiss(job_id) == "Dismissed"
    wait_for(lambda: not local.row(job_id)["native_active"], timeout=30)
    wait_for(lambda: not local.job_dir(job_id).exists(), timeout=10)
    assert gone_from_grid_engine(native_id)
    (record,) = wait_for(lambda: qacct(job_id), timeout=20)  # it ran, and was deleted while running
    assert record["failed"].startswith("100") and record["exit_status"].split()[0] == "137"
    assert local.state20(job_id) == "Dismissed"


def test_job_deleted_with_qdel_fails_with_the_reason(local):
    job_id = local.submit10("sleep", "delay=60")
    wait_launched(local, job_id)
    qdel(local.native_id(job_id))
    failed = local.wait10(job_id, "ProcessFailed", timeout=JOB)
    assert failure_text(failed) == "the job's process was deleted on Grid Engine (qdel)"
    assert local.state20(job_id) == "Failed"


def test_job_over_its_walltime_fails_with_the_h_rt_reason(local):
    job_id = local.submit10("sleep", "delay=60;resources.walltime=5")
    failed = local.wait10(job_id, "ProcessFailed", timeout=JOB)
    assert failure_text(failed) == "the job's process exceeded its wall-clock limit (h_rt) on Grid Engine"
    (record,) = wait_for(lambda: qacct(job_id), timeout=20)
    assert record["failed"].startswith("37") and record["category"] == "-l h_rt=5,h_vmem=1024M"


def test_restart_reattaches_a_running_job(local):
    """A job submitted under one dispatcher is followed by the next one: it succeeds, and ran once."""
    job_id = local.submit10("sleep", "delay=8")
    wait_launched(local, job_id)
    native_id = local.native_id(job_id)
    local.restart()
    local.assert_succeeded(job_id, "root")
    assert local.native_id(job_id) == native_id
    assert "Traceback" not in local.live.log.read_text()


# -- on a login host over SSH -------------------------------------------------------------------------


def test_jobs_over_ssh_on_a_shared_filesystem(shared):
    sleep_id = shared.submit10("sleep", "delay=1.5")
    count_id = shared.wordcounter()
    for job_id in (sleep_id, count_id):
        shared.assert_succeeded(job_id, REMOTE_USER)  # qsub ran as the login user
    stdout = shared.job_dir(count_id) / "stdout"  # written by the job, as the login user
    assert stdout.exists() and stdout.stat().st_uid != 0


def test_dismiss_and_qdel_over_ssh(shared):
    dismissed = shared.submit10("sleep", "delay=60")
    deleted = shared.submit10("sleep", "delay=60")
    wait_launched(shared, dismissed)
    wait_launched(shared, deleted)
    assert shared.dismiss(dismissed) == "Dismissed"
    qdel(shared.native_id(deleted))
    failed = shared.wait10(deleted, "ProcessFailed", timeout=JOB)
    assert failure_text(failed) == "the job's process was deleted on Grid Engine (qdel)"
    wait_for(lambda: not shared.row(dismissed)["native_active"], timeout=30)
    assert gone_from_grid_engine(shared.native_id(dismissed))
    assert shared.state20(dismissed) == "Dismissed"


def test_sshd_restart_while_jobs_run_loses_no_job(shared):
    sleeps = [shared.submit10("sleep", "delay=8") for _ in range(2)]
    counter = shared.wordcounter()
    for job_id in [*sleeps, counter]:
        shared.native_id(job_id)  # every job is on Grid Engine
    wait_launched(shared, sleeps[0])
    before = wait_for(sessions, JOB)  # the service's master connection, as sshd serves it
    restart_sshd()
    after = shared.submit10("sleep", "delay=1")  # submitted over a new connection
    again = wait_for(sessions, JOB)
    assert not again & before  # the first connection is gone: the service made a new one
    restart_sshd()  # and once more, with a job just submitted
    for job_id in [*sleeps, counter, after]:
        shared.assert_succeeded(job_id, REMOTE_USER)
    assert not wait_for(sessions, JOB) & again


def test_sftp_staging_copies_jobs_up_and_results_back(staged):
    job_id = staged.wordcounter()
    staged.assert_succeeded(job_id, REMOTE_USER)
    # The job ran in its copy on the login host, and its whole directory came back...
    assert (staged.job_dir(job_id) / "stdout").exists() and (staged.job_dir(job_id) / "result.json").exists()
    # ...after which the copy was removed there.
    assert not (staged.stage / job_id).exists()
