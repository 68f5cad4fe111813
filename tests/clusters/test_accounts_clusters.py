"""Accounts and projects on the real systems (issue 13, section 3): `hpc-wps serve` with users from a
trusted proxy's header and an ``[accounts]`` section, driven over HTTP as a client would.

Slurm (scripts/clusters.sh start: accounting in slurmdbd with ``AccountingStorageEnforce=associations``)
gets an account ``proj-a`` with a QoS ``wps-high`` that root (who submits) is associated with, made
here with sacctmgr; squeue and sacct must show a job's account and QoS, and Slurm itself refuses an
account root has no association with. Grid Engine (through DRMAA, and through qsub with ``system =
gridengine``) gets a project ``proj-a`` made here with qconf;
``qstat -j`` and ``qacct`` must show a job's project, and Grid Engine refuses one it does not know. An
account the user may not charge is refused by the service before any job exists, on both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from scheduler import queries
from scheduler.db import make_engine
from tests.clusters.test_drmaa import PatientLiveServer, config, grid_engine  # noqa: F401 (a fixture)
from tests.conftest import need_backend, wait_for
from tests.xsd import OWS20, ROOT, WPS20, validate

pytestmark = pytest.mark.slow

NS = {"wps": WPS20, "ows": OWS20}
USER = {"X-Remote-User": "alice"}
JOB = 90  # seconds for a short job on a busy two-CPU node
# alice may charge proj-a (her default, with its QoS on Slurm) and proj-x, which the systems do not
# know for root; bob has no accounts, so his jobs go to the systems' own defaults.
USERS = textwrap.dedent(
    """\
    [auth]
    mode = header
    trusted_proxies = 127.0.0.1
    [accounts]
    alice = proj-a qos=wps-high, proj-x
    """
)


class Client:
    """A server of this module and what a client (alice, unless told) asks of it over WPS 2.0."""

    def __init__(self, workdir: Path, extra_config: str) -> None:
        self.live = PatientLiveServer(workdir, extra_config).start()
        self.engine = make_engine(f"sqlite:///{workdir / 'var' / 'jobs.sqlite'}")

    def stop(self) -> None:
        self.live.stop()
        self.engine.dispose()

    def execute(self, account: str | None = None, user: dict[str, str] = USER) -> requests.Response:
        charged = (
            "" if account is None else f'<wps:Input id="resources.account"><wps:Data>{account}</wps:Data></wps:Input>'
        )
        body = (
            f'<wps:Execute xmlns:wps="{WPS20}" xmlns:ows="{OWS20}" service="WPS" version="2.0.0" mode="async"'
            ' response="document"><ows:Identifier>sleep</ows:Identifier>'
            f'<wps:Input id="delay"><wps:Data>2</wps:Data></wps:Input>{charged}'
            '<wps:Output id="sleep_output" transmission="value"/></wps:Execute>'
        )
        headers = {"Content-Type": "text/xml", **user}
        return requests.post(self.live.url, data=body.encode(), headers=headers, timeout=30)

    def submit(self, account: str | None = None, user: dict[str, str] = USER) -> str:
        root = validate(self.execute(account, user).content)
        assert root.findtext("wps:Status", namespaces=NS) == "Accepted", etree.tostring(root)
        return root.findtext("wps:JobID", namespaces=NS)

    def status(self, job_id: str, user: dict[str, str]) -> etree._Element:
        params = {"service": "WPS", "version": "2.0.0", "request": "GetStatus", "jobId": job_id}
        return validate(requests.get(self.live.url, params=params, headers=user, timeout=30).content)

    def wait(self, job_id: str, state: str, user: dict[str, str] = USER) -> str:
        """Until the job is in ``state`` (another final state first fails at once); its message."""

        def reached():  # type: ignore[no-untyped-def]
            found = self.status(job_id, user).findtext("wps:Status", namespaces=NS)
            if found != state and found in ("Succeeded", "Failed"):
                raise AssertionError(f"job {job_id} is {found}: {self.message(job_id)}")
            return found == state

        wait_for(reached, timeout=JOB, interval=0.2)
        return self.message(job_id)

    def message(self, job_id: str) -> str:
        row = queries.get_job(self.engine, job_id)
        return row["message"] or ""

    def native_id(self, job_id: str) -> str:
        return wait_for(lambda: (queries.get_job(self.engine, job_id) or {}).get("native_id"), timeout=JOB)

    def jobs_show(self, job_id: str) -> dict:  # type: ignore[type-arg]
        """What an operator sees: ``hpc-wps jobs show --json``."""
        argv = [sys.executable, "-m", "app.cli", "--config", str(self.live.config), "jobs", "show", job_id, "--json"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
        return json.loads(done.stdout)

    def job_count(self) -> int:
        return len(queries.find_jobs(self.engine))


def refused_before_a_job_exists(client: Client) -> None:
    """An account alice may not charge: InvalidParameterValue (HTTP 400) naming resources.account, no job."""
    before = client.job_count()
    response = client.execute("proj-b")
    assert response.status_code == 400
    exception = validate(response.content).find("ows:Exception", NS)
    assert (exception.get("exceptionCode"), exception.get("locator")) == ("InvalidParameterValue", "resources.account")
    assert "'proj-b' is not one you may charge; yours: proj-a, proj-x" in exception.findtext(
        "ows:ExceptionText", namespaces=NS
    )
    assert client.job_count() == before


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# -- Slurm --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_accounts(slurm: None) -> None:
    """Account proj-a and QoS wps-high in slurmdbd, root associated with both; proj-x left unknown."""
    enforce = run(["scontrol", "show", "config"]).stdout
    if "associations" not in next((line for line in enforce.splitlines() if "AccountingStorageEnforce" in line), ""):
        need_backend("Slurm does not enforce associations; run scripts/clusters.sh start")
    for argv in (
        ["sacctmgr", "-i", "add", "account", "proj-a"],
        ["sacctmgr", "-i", "add", "qos", "wps-high"],
        ["sacctmgr", "-i", "add", "user", "root", "account=proj-a"],
        ["sacctmgr", "-i", "modify", "user", "root", "where", "account=proj-a", "set", "qos=normal,wps-high"],
    ):
        done = run(argv)
        assert done.returncode == 0 or "Nothing new added" in done.stdout, (argv, done.stdout, done.stderr)
    associations = run(["sacctmgr", "-n", "-P", "show", "assoc", "user=root", "format=account,qos"]).stdout
    assert "proj-a|normal,wps-high" in associations.splitlines(), associations
    assert "proj-x" not in associations


@pytest.fixture(scope="module")
def slurm_client(slurm_accounts: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    extra = "[processing]\nmode = scheduler\n[scheduler]\nsystem = slurm\npoll_interval = 0.5\nwalltime = 120\n"
    client = Client(tmp_path_factory.mktemp("accounts-slurm"), extra + USERS)
    yield client
    client.stop()


def slurm_account(native_id: str) -> str:
    """Account and QoS of a job as squeue shows it while it lists it, else as sacct does."""
    listed = run(["squeue", "-h", "-t", "all", "-j", native_id, "-O", "Account:|,QOS:|"]).stdout.strip()
    if listed:
        return listed.removesuffix("|")
    return run(["sacct", "-n", "-P", "-X", "-j", native_id, "-o", "Account,QOS"]).stdout.strip()


def test_slurm_charges_the_users_default_account_with_its_qos(slurm_client):
    job_id = slurm_client.submit()
    native_id = slurm_client.native_id(job_id)
    assert slurm_account(native_id) == "proj-a|wps-high"
    slurm_client.wait(job_id, "Succeeded")

    def accounted() -> str | None:  # slurmctld sends the job's record to slurmdbd a moment after it ends
        listed = run(["sacct", "-n", "-P", "-X", "-j", native_id, "-o", "Account,QOS"]).stdout.strip()
        return listed if listed == "proj-a|wps-high" else None

    assert wait_for(accounted, timeout=30, interval=0.5) == "proj-a|wps-high"
    resources = slurm_client.jobs_show(job_id)["request"]["resources"]
    assert (resources["account"], resources["qos"]) == ("proj-a", "wps-high")


def test_slurm_refuses_an_account_its_user_has_no_association_with(slurm_client):
    job_id = slurm_client.submit("proj-x")
    message = slurm_client.wait(job_id, "Failed")
    assert "Slurm refused the job: " in message and "Invalid account" in message, message
    bob = {"X-Remote-User": "bob"}  # no accounts: root's default on Slurm
    job_id = slurm_client.submit(user=bob)
    slurm_client.wait(job_id, "Succeeded", bob)
    assert slurm_account(slurm_client.native_id(job_id)) == "root|normal"


def test_slurm_an_account_the_user_may_not_charge_is_refused_before_a_job_exists(slurm_client):
    refused_before_a_job_exists(slurm_client)


# -- Grid Engine, through DRMAA and through its commands (system = gridengine) ------------------------


@pytest.fixture(scope="module")
def project(grid_engine: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:  # noqa: F811
    """Grid Engine's project proj-a (no project list on the host, queue or cluster restricts it);
    proj-x is none."""
    if run(["qconf", "-sprj", "proj-a"]).returncode != 0:
        definition = tmp_path_factory.mktemp("project") / "proj-a"
        definition.write_text("name proj-a\noticket 0\nfshare 0\nacl NONE\nxacl NONE\n", encoding="utf-8")
        done = run(["qconf", "-Aprj", str(definition)])
        assert done.returncode == 0, done.stdout + done.stderr
    assert run(["qconf", "-sprj", "proj-x"]).returncode != 0


@pytest.fixture(scope="module", params=["drmaa", "gridengine"])
def gridengine_client(
    request: pytest.FixtureRequest,
    grid_engine: dict[str, str],  # noqa: F811
    project: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Client]:
    system = config(grid_engine).replace("system = drmaa", f"system = {request.param}")
    client = Client(tmp_path_factory.mktemp("accounts-sge"), system + USERS)
    yield client
    client.stop()


def test_grid_engine_runs_the_job_in_the_users_project(gridengine_client):
    job_id = gridengine_client.submit()
    native_id = gridengine_client.native_id(job_id)
    listed = run(["qstat", "-j", native_id]).stdout
    assert any(line.split() == ["project:", "proj-a"] for line in listed.splitlines()), listed
    gridengine_client.wait(job_id, "Succeeded")
    accounting = wait_for(lambda: run(["qacct", "-j", native_id]).stdout, timeout=30, interval=0.5)
    assert any(line.split() == ["project", "proj-a"] for line in accounting.splitlines()), accounting
    assert gridengine_client.jobs_show(job_id)["request"]["resources"]["account"] == "proj-a"


def test_grid_engine_refuses_a_project_it_does_not_know(gridengine_client):
    job_id = gridengine_client.submit("proj-x")
    message = gridengine_client.wait(job_id, "Failed")
    assert 'the requested project "proj-x" does not exist' in message, message


def test_grid_engine_an_account_the_user_may_not_charge_is_refused_before_a_job_exists(gridengine_client):
    refused_before_a_job_exists(gridengine_client)
