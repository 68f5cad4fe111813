"""Accounts through the WSGI app (issue 13, section 3): users and roles from verified tokens, the
``resources.account`` literal input in both WPS versions, a refusal as the OWS exception a client reads
before any job exists, and the account chosen kept with the job for operators. The batch systems
themselves: ``tests/clusters/test_accounts_clusters.py``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from scheduler import queries
from scheduler.accounts import AccountMap
from scheduler.db import make_engine
from tests.conftest import ValidatingClient, client_of
from tests.tokens import AUDIENCE, ISSUER, Provider, bearer
from tests.xsd import OWS11, OWS20

K10 = "/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&storeExecuteResponse=true&status=true"
W2 = 'service="WPS" version="2.0.0" xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0"'

PROVIDER = Provider()
ALICE = bearer(PROVIDER.token("alice", ("users",)))
CAROL = bearer(PROVIDER.token("carol", ("users", "cmip")))


@pytest.fixture
def accounts_settings(settings: Settings, tmp_path: Path) -> Settings:
    jwks = PROVIDER.write_jwks(tmp_path / "jwks.json")
    configured = settings.replace(
        "auth", mode="oidc", jwks_file=str(jwks), issuer=ISSUER, audience=AUDIENCE, roles_claim="realm_access.roles"
    )
    configured = configured.replace("scheduler", account="climate-default")
    accounts = AccountMap.parse({"alice": "proj-a qos=high, proj-b", "role.cmip": "cmip6, shared"})
    return dataclasses.replace(configured, accounts=accounts)


@pytest.fixture
def wps(accounts_settings: Settings) -> Iterator[ValidatingClient]:
    yield from client_of(accounts_settings)


def execute20(account: str) -> str:
    return (
        f'<wps:Execute {W2} mode="async" response="document"><ows:Identifier>sleep</ows:Identifier>'
        '<wps:Input id="delay"><wps:Data>0</wps:Data></wps:Input>'
        f'<wps:Input id="resources.account"><wps:Data>{account}</wps:Data></wps:Input></wps:Execute>'
    )


def stored_account(settings: Settings, job_id: str) -> tuple[str, str]:
    engine = make_engine(settings.database_url)
    try:
        resources = queries.get_job(engine, job_id)["request"]["resources"]
    finally:
        engine.dispose()
    return resources["account"], resources["qos"]


def test_an_account_the_caller_may_not_charge_is_refused_in_both_versions(wps, accounts_settings):
    refusals = (
        (wps.get(f"{K10}&DataInputs=delay=0;resources.account=cmip6", headers=ALICE), OWS11),
        (wps.post("/wps", data=execute20("proj-a"), content_type="text/xml", headers=CAROL), OWS20),
    )
    for response, namespace in refusals:
        assert response.status_code == 400
        found = response.xml.find(f"{{{namespace}}}Exception")
        assert (found.get("exceptionCode"), found.get("locator")) == ("InvalidParameterValue", "resources.account")
        assert "is not one you may charge" in found.findtext(f"{{{namespace}}}ExceptionText")
    engine = make_engine(accounts_settings.database_url)
    assert queries.find_jobs(engine) == []
    engine.dispose()


def test_the_account_charged_comes_from_the_user_or_its_roles_and_is_kept_with_the_job(wps, accounts_settings):
    own = wps.get(f"{K10}&DataInputs=delay=0", headers=ALICE).xml.get("statusLocation").rsplit("/", 1)[1]
    assert stored_account(accounts_settings, own) == ("proj-a", "high")
    by_role = wps.post("/wps", data=execute20("shared"), content_type="text/xml", headers=CAROL)
    assert by_role.status_code == 200
    job_id = by_role.xml.findtext("{http://www.opengis.net/wps/2.0}JobID")
    assert stored_account(accounts_settings, job_id) == ("shared", "")
