"""Users through the WSGI app: tokens minted by the tests (RSA and EC keys of their own, the JWKS in a
file), a trusted proxy's user header, job ownership for every job operation in both WPS versions,
process roles, and the operator's listing by owner."""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from scheduler.access import ProcessAccess
from scheduler.models import ANONYMOUS
from tests.conftest import ValidatingClient, client_of
from tests.tokens import ADMIN_ROLE, AUDIENCE, ISSUER, Provider, bearer, unsigned
from tests.web.test_jobs_cli import listed
from tests.xsd import OWS11, OWS20, WPS10, WPS20

K10 = "/wps?service=WPS&version=1.0.0"
K20 = "/wps?service=WPS&version=2.0.0"
W1 = 'service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1"'
W2 = 'service="WPS" version="2.0.0" xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0"'
WORDCOUNTER_BY_REFERENCE = f"""<wps:Execute {W1}><ows:Identifier>wordcounter</ows:Identifier>
<wps:DataInputs><wps:Input><ows:Identifier>text</ows:Identifier>
<wps:Data><wps:ComplexData mimeType="text/plain">private words</wps:ComplexData></wps:Data></wps:Input></wps:DataInputs>
<wps:ResponseForm><wps:ResponseDocument><wps:Output asReference="true"><ows:Identifier>output</ows:Identifier>
</wps:Output></wps:ResponseDocument></wps:ResponseForm></wps:Execute>"""
ASYNC_SLEEP_20 = f"""<wps:Execute {W2} mode="async" response="document"><ows:Identifier>sleep</ows:Identifier>
<wps:Input id="delay"><wps:Data>0</wps:Data></wps:Input></wps:Execute>"""
ASYNC_SLEEP_10 = f"{K10}&request=Execute&identifier=sleep&DataInputs=delay=0&storeExecuteResponse=true&status=true"

PROVIDER = Provider()
DAY = int(time.time()) + 86400  # minted at import: valid however long the session runs before these tests
ALICE = bearer(PROVIDER.token("alice", ("users",), exp=DAY))
BOB = bearer(PROVIDER.token("bob", ("users", "greeters"), algorithm="ES256", exp=DAY))
ADMIN = bearer(PROVIDER.token("root", (ADMIN_ROLE,), exp=DAY))


@pytest.fixture
def oidc_settings(settings: Settings, tmp_path: Path) -> Settings:
    jwks = PROVIDER.write_jwks(tmp_path / "jwks.json")
    configured = settings.replace(
        "auth",
        mode="oidc",
        jwks_file=str(jwks),
        issuer=ISSUER,
        audience=AUDIENCE,
        roles_claim="realm_access.roles",
        admin_role=ADMIN_ROLE,
    )
    return dataclasses.replace(configured, processes=ProcessAccess({"say_hello": frozenset({"greeters"})}))


@pytest.fixture
def users(oidc_settings: Settings) -> Iterator[ValidatingClient]:
    yield from client_of(oidc_settings)


def exception(response, namespace: str = OWS11):  # type: ignore[no-untyped-def]
    found = response.xml.find(f"{{{namespace}}}Exception")
    return found.get("exceptionCode"), found.get("locator")


def wordcounter_job(wps, headers: dict[str, str]) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A finished synchronous job with one output file; returns (job id, file name)."""
    response = wps.post("/wps", data=WORDCOUNTER_BY_REFERENCE, content_type="text/xml", headers=headers)
    assert response.status_code == 200, response.get_data()
    href = response.xml.find(f".//{{{WPS10}}}Reference").get("href")
    return re.fullmatch(r"http://testserver/wps/jobs/([0-9a-f-]{36})/outputs/([^/]+)", href).groups()


# -- mode = oidc: the token -----------------------------------------------------------------------------


def test_discovery_is_anonymous_and_everything_else_needs_a_token(users):
    assert users.get(f"{K10}&request=GetCapabilities").status_code == 200
    assert users.get(f"{K20}&request=DescribeProcess&identifier=echo").status_code == 200
    job = str(uuid.uuid4())
    for url, namespace in (
        (f"{K10}&request=Execute&identifier=echo&DataInputs=literalInput=x", OWS11),
        (f"{K20}&request=GetStatus&jobId={job}", OWS20),
        (f"{K20}&request=GetResult&jobId={job}", OWS20),
        (f"{K20}&request=Dismiss&jobId={job}", OWS20),
        (f"/wps/jobs/{job}", OWS11),
        (f"/wps/jobs/{job}/outputs/output.txt", OWS11),
    ):
        response = users.get(url)
        assert response.status_code == 401, url
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="hpc-wps"', url
        assert exception(response, namespace) == ("NoApplicableCode", "Authorization"), url
    posted = users.post("/wps", data=ASYNC_SLEEP_20, content_type="text/xml")
    assert (posted.status_code, exception(posted, OWS20)) == (401, ("NoApplicableCode", "Authorization"))


def test_a_bad_token_is_401_invalid_token_in_both_versions(users):
    expired = PROVIDER.token(exp=1, iat=0, nbf=0)
    for token in (expired, PROVIDER.token(aud="other"), Provider().token(), unsigned(), "garbage"):
        for url, namespace in ((f"{K10}&request=GetCapabilities", OWS11), (f"{K20}&request=GetStatus&jobId=x", OWS20)):
            response = users.get(url, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (url, token)
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
            assert exception(response, namespace) == ("NoApplicableCode", "Authorization")


def test_valid_tokens_of_both_key_types_run_jobs_owned_by_their_users(users, oidc_settings):
    for headers in (ALICE, BOB, BOB):  # RS256, ES256
        response = users.get(f"{K10}&request=Execute&identifier=echo&DataInputs=literalInput=x", headers=headers)
        assert response.status_code == 200
    everyone = listed(oidc_settings)
    assert len(everyone) == 3
    assert len(listed(oidc_settings, "--owner", "alice")) == 1
    assert sorted(listed(oidc_settings, "--owner", "alice", "--owner", "bob")) == sorted(everyone)
    assert listed(oidc_settings, "--owner", "nobody") == []


# -- ownership: another user's job is an unknown job ----------------------------------------------------


def job_answers(wps, job_id: str, filename: str, headers: dict[str, str]) -> list[tuple[int, bytes]]:  # type: ignore[no-untyped-def]
    """Every job operation on one job, both versions, with the job's id blanked out of the answers."""
    answers = []
    for url in (
        f"{K20}&request=GetStatus&jobId={job_id}",
        f"{K20}&request=GetResult&jobId={job_id}",
        f"/wps/jobs/{job_id}",
        f"/wps/jobs/{job_id}/outputs/{filename}",
        f"{K20}&request=Dismiss&jobId={job_id}",
    ):
        response = wps.get(url, headers=headers)
        answers.append((response.status_code, response.get_data().replace(job_id.encode(), b"JOB")))
    posted = wps.post(
        "/wps",
        data=f"<wps:GetStatus {W2}><wps:JobID>{job_id}</wps:JobID></wps:GetStatus>",
        content_type="text/xml",
        headers=headers,
    )
    answers.append((posted.status_code, posted.get_data().replace(job_id.encode(), b"JOB")))
    return answers


def test_another_users_job_answers_exactly_as_an_unknown_one(users):
    job_id, filename = wordcounter_job(users, ALICE)
    unknown = job_answers(users, str(uuid.uuid4()), filename, BOB)
    # NoSuchJob: 400 through the KVP and XML encodings (as before users), 404 on the paths of stored documents
    assert [status for status, _ in unknown] == [400, 400, 404, 404, 400, 400]
    assert all(b'exceptionCode="NoSuchJob"' in body for _, body in unknown)
    assert job_answers(users, job_id, filename, BOB) == unknown
    # Bob's Dismiss did nothing: everything is still there for Alice, who dismisses it last
    owned = job_answers(users, job_id, filename, ALICE)
    assert [status for status, _ in owned] == [200, 200, 200, 200, 200, 200]
    assert b"Dismissed" in owned[-1][1]


def test_async_jobs_of_both_versions_are_their_owners(users):
    job20 = users.post("/wps", data=ASYNC_SLEEP_20, content_type="text/xml", headers=ALICE)
    job20_id = job20.xml.findtext(f"{{{WPS20}}}JobID")
    job10_id = users.get(ASYNC_SLEEP_10, headers=ALICE).xml.get("statusLocation").rsplit("/", 1)[1]
    for job_id in (job20_id, job10_id):
        assert users.get(f"{K20}&request=GetStatus&jobId={job_id}", headers=ALICE).status_code == 200
        assert users.get(f"/wps/jobs/{job_id}", headers=ALICE).status_code == 200
        other = users.get(f"{K20}&request=GetStatus&jobId={job_id}", headers=BOB)
        assert (other.status_code, exception(other, OWS20)) == (400, ("NoSuchJob", job_id))
        assert users.get(f"/wps/jobs/{job_id}", headers=BOB).status_code == 404
        dismissed = users.get(f"{K20}&request=Dismiss&jobId={job_id}", headers=BOB)
        assert exception(dismissed, OWS20)[0] == "NoSuchJob"
        assert (
            users.get(f"{K20}&request=GetStatus&jobId={job_id}", headers=ALICE).xml.findtext(f"{{{WPS20}}}Status")
            == "Accepted"
        )  # Bob's Dismiss did nothing


def test_the_admin_role_sees_and_dismisses_every_job(users):
    job_id, filename = wordcounter_job(users, ALICE)
    assert users.get(f"{K20}&request=GetStatus&jobId={job_id}", headers=ADMIN).status_code == 200
    assert users.get(f"{K20}&request=GetResult&jobId={job_id}", headers=ADMIN).status_code == 200
    assert users.get(f"/wps/jobs/{job_id}", headers=ADMIN).status_code == 200
    assert users.get(f"/wps/jobs/{job_id}/outputs/{filename}", headers=ADMIN).status_code == 200
    dismissed = users.get(f"{K20}&request=Dismiss&jobId={job_id}", headers=ADMIN)
    assert dismissed.xml.findtext(f"{{{WPS20}}}Status") == "Dismissed"
    assert (
        users.get(f"{K20}&request=GetStatus&jobId={job_id}", headers=ALICE).xml.findtext(f"{{{WPS20}}}Status")
        == "Dismissed"
    )


# -- process roles ---------------------------------------------------------------------------------------


def offered(wps, version: str, headers: dict[str, str]) -> set[str]:  # type: ignore[no-untyped-def]
    root = wps.get(f"/wps?service=WPS&request=GetCapabilities&acceptVersions={version}", headers=headers).xml
    namespace = OWS11 if version == "1.0.0" else OWS20
    return {e.text for e in root.iter(f"{{{namespace}}}Identifier")}


def test_a_process_is_hidden_from_users_without_its_role(users):
    for version in ("1.0.0", "2.0.0"):
        assert "say_hello" not in offered(users, version, {})
        assert "say_hello" not in offered(users, version, ALICE)
        assert "say_hello" in offered(users, version, BOB)
        assert "say_hello" in offered(users, version, ADMIN)
        assert "echo" in offered(users, version, ALICE)
    everything = users.get(f"{K10}&request=DescribeProcess&identifier=ALL", headers=ALICE).get_data()
    assert b"say_hello" not in everything and b"echo" in everything
    refused = users.get(f"{K10}&request=DescribeProcess&identifier=say_hello", headers=ALICE)
    unknown = users.get(f"{K10}&request=DescribeProcess&identifier=say_hellx", headers=ALICE)
    assert exception(refused) == ("InvalidParameterValue", "Identifier") == exception(unknown)
    refused = users.get(f"{K20}&request=DescribeProcess&identifier=say_hello", headers=ALICE)
    assert exception(refused, OWS20) == ("NoSuchProcess", "say_hello")
    run = users.get(f"{K10}&request=Execute&identifier=say_hello&DataInputs=name=x", headers=ALICE)
    assert (run.status_code, exception(run)) == (400, ("InvalidParameterValue", "Identifier"))
    allowed = users.get(f"{K10}&request=Execute&identifier=say_hello&DataInputs=name=x", headers=BOB)
    assert allowed.status_code == 200


def test_the_api_process_list_shows_each_caller_its_own_processes_whatever_was_asked_before(users):
    """The list's JSON is encoded once per set of processes: a role's list never reaches another caller."""

    def listed(headers: dict[str, str]) -> set[str]:
        response = users.get("/processes", headers=headers)
        assert response.status_code == 200
        return {p["id"] for p in response.get_json()["processes"]}

    for _ in range(2):  # the second round answers from what the first encoded
        assert "say_hello" in listed(BOB) and "say_hello" in listed(ADMIN)
        assert "say_hello" not in listed(ALICE) and "say_hello" not in listed({})
        assert "echo" in listed(ALICE) and listed(ALICE) == listed({}) == listed(BOB) - {"say_hello"}


# -- mode = header -------------------------------------------------------------------------------------


def test_header_mode_believes_the_trusted_proxy_only(header_client, settings):
    echo = f"{K10}&request=Execute&identifier=echo&DataInputs=literalInput=x"
    trusted = {"REMOTE_ADDR": "127.0.0.1"}
    untrusted = {"REMOTE_ADDR": "192.0.2.10"}
    user = {"X-Remote-User": "dora"}
    assert header_client.get(echo, headers=user, environ_base=trusted).status_code == 200
    spoofed = header_client.get(echo, headers=user, environ_base=untrusted)
    assert (spoofed.status_code, exception(spoofed)) == (403, ("NoApplicableCode", "X-Remote-User"))
    nobody = header_client.get(echo, environ_base=trusted)
    assert (nobody.status_code, exception(nobody)) == (403, ("NoApplicableCode", "X-Remote-User"))
    assert header_client.get(f"{K10}&request=GetCapabilities", environ_base=untrusted).status_code == 200
    assert len(listed(settings, "--owner", "dora")) == 1


def test_without_authentication_every_job_is_anonymous(wps, settings):
    job_id, filename = wordcounter_job(wps, {})
    assert wps.get(f"/wps/jobs/{job_id}/outputs/{filename}").status_code == 200
    assert listed(settings, "--owner", ANONYMOUS) == [job_id] == listed(settings)
