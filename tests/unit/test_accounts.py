"""Accounts and projects (issue 13, section 3): which account a caller's job is charged to, a request
for an account the caller may not charge refused before a job exists, and the account reaching each
batch system's options. The real systems: ``tests/clusters/test_accounts_clusters.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.settings import SettingsError, load_settings, reference
from migrations import upgrade
from processes.registry import build_registry
from scheduler import queries
from scheduler.access import ANONYMOUS_CALLER, Caller
from scheduler.accounts import Account, AccountMap
from scheduler.db import make_engine
from scheduler.errors import InvalidResource
from scheduler.executors.base import JobSpec
from scheduler.executors.batch.drmaa import GRID_ENGINE, PBS, SLURM, native_specification
from scheduler.executors.batch.slurm import SlurmExecutor
from scheduler.resources import Resources, resolve
from scheduler.service import JobService
from scheduler.settings import JobSettings, SchedulerSettings

GiB = 1024**3
CONFIG = """
[auth]
mode = header
trusted_proxies = 127.0.0.1
[scheduler]
account = climate-default
qos = normal
[accounts]
Alice = proj-a qos=high, proj-b
bob = proj-c
"""
ROLES = {"role.cmip": "cmip6, shared", "role.ops": "ops qos=urgent, shared qos=low", "carol": "proj-c"}
DEFAULT = Account("climate-default", "normal")


@pytest.fixture
def accounts() -> AccountMap:
    return AccountMap.parse(ROLES | {"alice": "proj-a qos=high, proj-b"})


def test_a_users_own_accounts_come_first_then_its_roles_in_the_order_written(accounts):
    alice = Caller("alice", frozenset({"ops", "cmip"}))
    assert accounts.allowed(alice, DEFAULT) == (
        Account("proj-a", "high"),
        Account("proj-b"),
        Account("cmip6"),
        Account("shared"),  # cmip's, written before ops's "shared qos=low"
        Account("ops", "urgent"),
    )
    assert accounts.choose(alice, None, DEFAULT) == Account("proj-a", "high")
    assert accounts.choose(Caller("dave", frozenset({"ops", "cmip"})), None, DEFAULT) == Account("cmip6")
    assert accounts.choose(Caller("carol", frozenset({"ops"})), "shared", DEFAULT) == Account("shared", "low")


def test_callers_without_accounts_and_anonymous_callers_get_the_default_only(accounts):
    for caller in (Caller("erin"), Caller("erin", frozenset({"other"})), ANONYMOUS_CALLER):
        assert accounts.allowed(caller, DEFAULT) == (DEFAULT,)
        assert accounts.choose(caller, "climate-default", DEFAULT) == DEFAULT
        with pytest.raises(ValueError, match="'proj-a' is not one you may charge; yours: climate-default"):
            accounts.choose(caller, "proj-a", DEFAULT)
    assert accounts.choose(Caller("erin"), None, Account("")) is None  # the system's own default
    with pytest.raises(ValueError, match="yours: none but the batch system's default"):
        accounts.choose(Caller("erin"), "proj-a", Account(""))
    with pytest.raises(ValueError, match="'climate-default' is not one you may charge; yours: proj-a, proj-b"):
        accounts.choose(Caller("alice"), "climate-default", DEFAULT)  # a user's own list replaces the default


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"alice": ""}, "alice: give at least one account"),
        ({"alice": "proj-a high"}, "'proj-a high' is not an account, or an account and qos=NAME"),
        ({"alice": "proj-a qos="}, "is not an account, or an account and qos=NAME"),
        ({"alice": "proj-a qos=a qos=b"}, "is not an account, or an account and qos=NAME"),
        ({"alice": "-P"}, "'-P' is not one word"),
        ({"alice": "a;b"}, "'a;b' is not one word"),
        ({"role.": "x"}, "role.: keys are user names or role.<role>"),
        ({"anonymous": "x"}, "anonymous: keys are user names or role.<role>; anonymous callers get the default"),
    ],
)
def test_bad_entries_are_refused_naming_the_key(entries, message):
    with pytest.raises(ValueError, match=message):
        AccountMap.parse(entries)


# -- the configuration ------------------------------------------------------------------------------------


def test_the_accounts_section_reaches_the_job_system_with_names_as_written(tmp_path: Path):
    config = tmp_path / "accounts.cfg"
    config.write_text(CONFIG, encoding="utf-8")
    jobs = load_settings(config, environ={}).jobs
    assert (jobs.scheduler.account, jobs.scheduler.qos) == ("climate-default", "normal")
    assert jobs.accounts.users == {"Alice": (Account("proj-a", "high"), Account("proj-b")), "bob": (Account("proj-c"),)}
    assert "[accounts]" in reference() and "account = \n" in reference()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CONFIG + "role.cmip = cmip6\n", r"\[accounts\] role.cmip: roles come from tokens; set \[auth\] mode = oidc"),
        (CONFIG.replace("mode = header", "mode = none"), r"\[accounts\] Alice: with \[auth\] mode = none every"),
        (CONFIG + "carol = a b\n", r"accounts.cfg: \[accounts\] carol: 'a b' is not an account"),
        (CONFIG.replace("climate-default", "climate default"), r"\[scheduler\] account: 'climate default' is not"),
        (
            CONFIG.replace("climate-default", ""),
            r"\[scheduler\] qos: is the QoS of \[scheduler\] account; set that too",
        ),
    ],
)
def test_configurations_that_could_not_apply_are_refused_at_start(tmp_path: Path, text: str, message: str):
    config = tmp_path / "accounts.cfg"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match=message):
        load_settings(config, environ={})


# -- the job service ------------------------------------------------------------------------------------


@pytest.fixture
def jobs(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    upgrade(url)
    settings = JobSettings(
        database_url=url,
        jobs_dir=tmp_path / "jobs",
        scheduler=SchedulerSettings(account="climate-default", qos="normal"),
        accounts=AccountMap.parse({"alice": "proj-a qos=high, proj-b", "role.cmip": "cmip6"}),
    )
    engine = make_engine(url)
    yield JobService(settings, engine, build_registry(True, []))
    engine.dispose()


def _request(account: str | None = None) -> dict[str, Any]:
    resources = {"cores": "2"} | ({"account": account} if account is not None else {})
    inputs = [{"id": "delay", "kind": "literal", "value": "0"}]
    return {"resources": resources, "inputs": inputs, "outputs": [], "response": "document"}


def _stored_resources(jobs: JobService, job_id: str) -> dict[str, Any]:
    row = queries.get_job(jobs.engine, job_id)
    assert row is not None
    return row["request"]["resources"]


@pytest.mark.parametrize(
    ("caller", "account", "stored"),
    [
        (Caller("alice"), None, {"account": "proj-a", "qos": "high"}),
        (Caller("alice"), "proj-b", {"account": "proj-b", "qos": ""}),
        (Caller("zoe", frozenset({"cmip"})), None, {"account": "cmip6", "qos": ""}),
        (Caller("bob"), None, {"account": "climate-default", "qos": "normal"}),
        (ANONYMOUS_CALLER, "climate-default", {"account": "climate-default", "qos": "normal"}),
    ],
)
def test_the_account_charged_is_stored_with_the_jobs_resources(jobs, caller, account, stored):
    job = jobs.submit(jobs.process("sleep"), "2.0.0", _request(account), caller)
    assert _stored_resources(jobs, job.id) == {"cores": 2} | stored


@pytest.mark.parametrize(
    ("caller", "account"),
    [(Caller("alice"), "cmip6"), (Caller("bob"), "proj-a"), (ANONYMOUS_CALLER, "proj-a"), (Caller("alice"), "")],
)
def test_an_account_the_caller_may_not_charge_is_refused_before_a_job_exists(jobs, caller, account):
    for start in (jobs.submit, jobs.run):  # every executor alike, those that ignore accounts too
        with pytest.raises(InvalidResource) as raised:
            start(jobs.process("sleep"), "2.0.0", _request(account), caller)
        assert (raised.value.input_id, raised.value.reason) == ("resources.account", "invalid")
        assert "is not one you may charge" in str(raised.value)
    assert queries.find_jobs(jobs.engine) == []


def test_a_qos_cannot_be_requested_past_the_account(jobs):
    with pytest.raises(InvalidResource) as raised:
        jobs.resolve_resources({"qos": "high"}, Caller("bob"))
    assert raised.value.input_id == "resources.qos"


# -- what reaches the systems ---------------------------------------------------------------------------


def test_the_dispatcher_uses_the_stored_account_never_a_process_declared_one():
    settings = SchedulerSettings(account="climate-default", qos="normal")
    stored = {"cores": 2, "account": "proj-b", "qos": ""}
    assert resolve(settings, {"account": "other"}, stored) == Resources(2, GiB, 3600.0, account="proj-b")
    before = resolve(settings, {"account": "other"}, {"cores": 2})  # a row stored before accounts existed
    assert (before.account, before.qos) == ("climate-default", "normal")


def test_slurm_scripts_charge_the_account_with_its_qos(tmp_path: Path):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    slurm = SlurmExecutor(SchedulerSettings(), tmp_path)
    charged = Resources(1, GiB, 60.0, account="proj-a", qos="high")
    script = slurm.render_script(JobSpec("j", "sleep", job_dir, {}, charged))
    assert '#SBATCH --account="proj-a"\n#SBATCH --qos="high"\n' in script  # quoted for Slurm's parser
    plain = slurm.render_script(JobSpec("j", "sleep", job_dir, {}, Resources(1, GiB, 60.0)))
    assert "--account" not in plain and "--qos" not in plain


def test_drmaa_native_specifications_charge_the_account():
    charged = Resources(1, GiB, 60.0, account="proj-a", qos="high")
    assert native_specification(charged, GRID_ENGINE).endswith(" -P proj-a")  # Grid Engine has no QoS
    assert native_specification(charged, SLURM).endswith(" --account=proj-a --qos=high")
    assert native_specification(charged, PBS).endswith(" -A proj-a")
    for family in (GRID_ENGINE, SLURM, PBS):
        plain = native_specification(Resources(1, GiB, 60.0), family)
        assert not {"-P", "-A"} & set(plain.split()) and "--account" not in plain
