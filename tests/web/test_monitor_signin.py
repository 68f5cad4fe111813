"""Signing in to the job monitor with ``[auth] mode = oidc``, through the Flask test client: the
cookie's attributes, what it opens (reading) and what it opens only beside the monitor's header (a
change: CSRF), tokens refused at sign-in with the reason, sign-out, the page header, and JSON clients
answered as before. The browser tests drive the same pages: ``test_monitor_auth_browser.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from app.auth.browser import COOKIE, MONITOR_HEADER, MONITOR_VALUE
from app.settings import Settings
from tests.conftest import ApiClient, ValidatingClient, client_of
from tests.tokens import AUDIENCE, ISSUER, Provider, bearer, unsigned
from tests.web.test_auth import wordcounter_job

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
MONITOR = {MONITOR_HEADER: MONITOR_VALUE}
PROVIDER = Provider()
SLEEP = {"inputs": {"delay": 30}}


def _oidc(settings: Settings, tmp_path: Path, url: str = "http://testserver/wps") -> Settings:
    jwks = PROVIDER.write_jwks(tmp_path / "jwks.json")
    configured = settings.replace("auth", mode="oidc", jwks_file=str(jwks), issuer=ISSUER, audience=AUDIENCE)
    return configured.replace("server", url=url)


@pytest.fixture
def users(settings: Settings, tmp_path: Path) -> Iterator[ApiClient]:
    yield from client_of(_oidc(settings, tmp_path), ApiClient)


def _sign_in(client: ApiClient, token: str, headers: dict[str, str] = MONITOR):  # type: ignore[no-untyped-def]
    return client.post("/signin", data={"token": token}, headers={"Accept": "application/json"} | headers)


def _cookie(response) -> SimpleCookie:  # type: ignore[no-untyped-def]
    (header,) = response.headers.getlist("Set-Cookie")
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    return jar


def _hold(client: ApiClient, token: str) -> ApiClient:
    """The client as a browser holding the sign-in cookie of ``token``."""
    client.client.set_cookie(COOKIE, token)
    return client


def test_the_cookie_is_httponly_strict_secure_on_https_and_ends_with_the_token(settings, tmp_path):  # type: ignore[no-untyped-def]
    for url, secure, path in (("https://example.org/hpc/wps", True, "/hpc"), ("http://testserver/wps", False, "/")):
        for client in client_of(_oidc(settings, tmp_path, url), ApiClient):
            exp = int(time.time()) + 240
            token = PROVIDER.token("alice", exp=exp)
            response = _sign_in(client, token)
            assert response.status_code == 200, response.get_data(as_text=True)
            assert response.get_json()["user"] == "alice"
            assert response.headers["Cache-Control"] == "no-store"
            morsel = _cookie(response)[COOKIE]
            assert morsel.value == token
            assert (morsel["httponly"], morsel["samesite"], morsel["path"]) == (True, "Strict", path)
            assert bool(morsel["secure"]) is secure
            assert 0 < int(morsel["max-age"]) <= exp - int(time.time()) + 1  # never outlives the token


def test_tokens_refused_at_sign_in_say_why_and_set_no_cookie(users):
    now = int(time.time())
    refused = {
        PROVIDER.token("alice", exp=now - 120, iat=now - 600, nbf=now - 600): "the token has expired",
        PROVIDER.token("alice", iss="https://other.example.org/"): "not issued by the identity provider",
        PROVIDER.token("alice", aud="another-client"): "not meant for this service (aud)",
        Provider("other").token("alice"): "signed with a key the identity provider does not list",
        unsigned() + "AAAA": "algorithm is not accepted",
    }
    for token, reason in refused.items():
        response = _sign_in(users, token)
        assert (response.status_code, response.mimetype) == (401, "application/problem+json"), token
        assert reason in response.get_json()["detail"]
        assert response.get_json()["locator"] == "token"
        assert "Set-Cookie" not in response.headers
    assert _sign_in(users, "x" * 5000).status_code == 400  # longer than a browser keeps
    assert _sign_in(users, "").status_code == 400
    valid = PROVIDER.token("alice")
    for malformed in ("not a token", f"{valid};Path=/x", f"{valid}\r\nX-Injected: 1", f"{valid}=="):
        response = _sign_in(users, malformed)
        assert response.status_code == 400 and "not a JWT" in response.get_json()["detail"], malformed
        assert "Set-Cookie" not in response.headers


def test_sign_in_and_out_are_the_monitor_scripts_only(users, caplog):
    token = PROVIDER.token("alice")
    for headers in ({}, {MONITOR_HEADER: "XMLHttpRequest"}):  # a plain form post, another script
        response = _sign_in(users, token, headers)
        assert (response.status_code, response.mimetype) == (403, "application/problem+json")
        assert "Set-Cookie" not in response.headers
    page = users.post("/signin", data={"token": token}, headers={"Accept": BROWSER})
    assert (page.status_code, page.mimetype) == (403, "text/html")  # a form posted with the script off
    assert users.post("/signout").status_code == 403
    assert _sign_in(users, token).status_code == 200
    assert token not in caplog.text  # never logged


def test_the_cookie_reads_its_users_jobs_and_changes_them_only_beside_the_monitors_header(users):
    alice, bob = PROVIDER.token("alice"), PROVIDER.token("bob")
    headers = {"Prefer": "respond-async"}
    mine = users.post("/processes/sleep/execution", json=SLEEP, headers=headers | bearer(alice)).get_json()["jobID"]
    theirs = users.post("/processes/sleep/execution", json=SLEEP, headers=headers | bearer(bob)).get_json()["jobID"]
    _hold(users, alice)
    listed = users.get("/jobs").get_json()["jobs"]
    assert [job["jobID"] for job in listed] == [mine]
    assert users.get(f"/jobs/{theirs}").status_code == 404
    # A change with the cookie alone (a form another site posts) is refused, and changes nothing.
    for response in (
        users.post("/processes/sleep/execution", json=SLEEP, headers=headers),
        users.delete(f"/jobs/{mine}"),
    ):
        assert (response.status_code, response.mimetype) == (403, "application/problem+json")
        assert response.get_json()["locator"] == MONITOR_HEADER
    wps_execute = "/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=0"
    assert users.get(wps_execute).status_code == 403  # a GET that changes something
    assert users.get(f"/jobs/{mine}").get_json()["status"] == "accepted"
    assert len(users.get("/jobs").get_json()["jobs"]) == 1
    # From the monitor's script, the same requests go through.
    created = users.post("/processes/sleep/execution", json=SLEEP, headers=headers | MONITOR)
    assert created.status_code == 201
    assert users.delete(f"/jobs/{mine}", headers=MONITOR).get_json()["status"] == "dismissed"
    assert users.delete(f"/jobs/{theirs}", headers=MONITOR).status_code == 404
    # A bad cookie is refused as a bad Bearer token is, even where no token is needed.
    _hold(users, PROVIDER.token("alice", exp=int(time.time()) - 120))
    assert users.get("/processes").status_code == 401


def test_the_cookie_opens_its_users_outputs_where_wps_serves_them(users):
    alice = PROVIDER.token("alice")
    job_id, filename = wordcounter_job(ValidatingClient(users.client), bearer(alice))
    output = f"/wps/jobs/{job_id}/outputs/{filename}"  # the link on the monitor's job page
    assert users.get(output).status_code == 401
    assert _hold(users, PROVIDER.token("bob")).get(output).status_code == 404
    assert _hold(users, alice).get(output).status_code == 200


def test_signing_out_forgets_the_cookie(users):
    assert _sign_in(users, PROVIDER.token("alice")).status_code == 200  # the client keeps the cookie
    assert users.get("/jobs").status_code == 200
    response = users.post("/signout", headers=MONITOR)
    assert response.status_code == 204
    morsel = _cookie(response)[COOKIE]
    assert (morsel.value, morsel["max-age"], morsel["path"]) == ("", "0", "/")
    refused = users.get("/jobs")
    assert (refused.status_code, refused.mimetype) == (401, "application/problem+json")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_pages_show_who_is_signed_in_as_text_and_refusals_as_pages(users):
    marked = "<b>mallory</b><img src=x>"
    body = _hold(users, PROVIDER.token(marked)).get("/?f=html").get_data(as_text=True)
    assert marked not in body and "&lt;b&gt;mallory&lt;/b&gt;&lt;img src=x&gt;" in body
    assert 'id="signout"' in body
    users.client.delete_cookie(COOKIE)
    anonymous = users.get("/", headers={"Accept": BROWSER}).get_data(as_text=True)
    assert 'id="signin-link"' in anonymous and 'id="user"' not in anonymous
    page = users.get("/jobs", headers={"Accept": BROWSER})
    assert (page.status_code, page.mimetype) == (401, "text/html")
    assert page.headers["WWW-Authenticate"] == 'Bearer realm="hpc-wps"'
    assert 'id="problem-signin"' in page.get_data(as_text=True)
    form = users.get("/signin", headers={"Accept": BROWSER}).get_data(as_text=True)
    assert 'id="signin" method="post"' in form and ISSUER in form


def test_behind_a_proxy_the_header_names_its_user_and_offers_no_sign_in(header_client):
    pages = ApiClient(header_client.client)
    body = pages.get("/?f=html", headers={"X-Remote-User": "dave"}).get_data(as_text=True)
    assert '<span id="user">dave</span>' in body and "signin" not in body and "signout" not in body
    assert pages.get("/signin").status_code == 404


def test_without_users_there_is_no_sign_in(api):
    assert api.get("/signin").status_code == 404
    assert api.post("/signin", data={"token": "x"}, headers=MONITOR).status_code == 404
    body = api.get("/?f=html").get_data(as_text=True)
    assert "signin" not in body and 'id="user"' not in body
