"""The job monitor with users on (``[auth] mode = oidc``), in Debian's Chromium driven by Playwright,
against ``hpc-wps serve`` with its dispatcher: refused at first, a user signs in with a token of the
identity provider, sees only their own jobs, submits one from the form, dismisses it, signs out and is
refused again; a job that does not exist is a 404 page. The browser and its fixture are those of
``test_monitor_browser.py``; the cookie's rules are tested through the test client in
``test_monitor_signin.py``."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import LOCAL_HOSTS, LiveServer
from tests.tokens import AUDIENCE, ISSUER, Provider, bearer
from tests.web.test_monitor_browser import browser  # noqa: F401  (a fixture)

PROVIDER = Provider()
EXPECTED = re.compile(r"status of (401|404)")  # the refusals and the missing job these tests ask for


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("live-oidc")
    jwks = PROVIDER.write_jwks(Path(workdir) / "jwks.json")
    auth = f"[auth]\nmode = oidc\njwks_file = {jwks}\nissuer = {ISSUER}\naudience = {AUDIENCE}\n"
    server = LiveServer(workdir / "server", f"[inputs]\nallowed_hosts = {LOCAL_HOSTS}\n{auth}").start()
    yield server.url.removesuffix("/wps")
    server.stop()


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:  # noqa: F811
    """A fresh browser (no cookie) whose page may log nothing but the refusals the test asks for."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and not EXPECTED.search(m.text) else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors


def _submit(root: str, token: str) -> str:
    response = requests.post(
        f"{root}/processes/sleep/execution",
        json={"inputs": {"delay": 0}},
        headers={"Prefer": "respond-async"} | bearer(token),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["jobID"]


def test_a_user_signs_in_runs_and_dismisses_a_job_and_signs_out(tab, root):
    alice, bob = (PROVIDER.token(user, exp=int(time.time()) + 900) for user in ("alice", "bob"))
    hers, his = _submit(root, alice), _submit(root, bob)

    refused = tab.goto(f"{root}/jobs?f=html")
    assert refused.status == 401
    tab.click("#problem-signin")
    tab.fill("#token", alice)
    tab.click("#signin button[type=submit]")
    tab.wait_for_url(re.compile(r"/jobs\?f=html$"))
    assert tab.inner_text("#user") == "alice"
    (cookie,) = tab.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"], cookie["secure"]) == (True, "Strict", "/", False)
    assert 0 < cookie["expires"] - time.time() <= 900
    assert alice not in tab.url
    assert tab.locator(f"#jobs [data-job='{hers}']").count() == 1
    assert tab.locator(f"#jobs [data-job='{his}']").count() == 0

    tab.goto(f"{root}/processes/sleep?f=html")
    tab.fill("[data-input=delay] [name=value]", "120")
    tab.click("#execute button[type=submit]")
    tab.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}\?f=html$"))
    job_id = tab.url.rsplit("/", 1)[1].split("?")[0]
    tab.wait_for_selector("#job[data-status=running]", timeout=60_000)
    tab.click("#dismiss")
    tab.wait_for_selector("#job[data-status=dismissed]")
    status = requests.get(f"{root}/jobs/{job_id}", headers=bearer(alice), timeout=30).json()
    assert status["status"] == "dismissed"
    assert requests.get(f"{root}/jobs/{job_id}", headers=bearer(bob), timeout=30).status_code == 404

    tab.click("#signout button")
    tab.wait_for_url(re.compile(r"/signin\?f=html$"))
    assert tab.context.cookies() == []
    again = tab.goto(f"{root}/jobs?f=html")
    assert again.status == 401
    assert tab.locator("#problem[data-status='401']").count() == 1
    assert tab.locator("#user").count() == 0


def test_a_job_that_does_not_exist_is_a_404_page(tab, root):
    tab.goto(f"{root}/signin?f=html")
    tab.fill("#token", PROVIDER.token("carol", exp=int(time.time()) + 900))
    tab.click("#signin button[type=submit]")
    tab.wait_for_url(re.compile(r"/jobs\?f=html$"))
    missing = str(uuid.uuid4())
    response = tab.goto(f"{root}/jobs/{missing}")  # a link followed: the browser's own Accept
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    assert tab.locator("#problem[data-status='404']").count() == 1
    assert missing in tab.inner_text("main")
    assert tab.inner_text("#user") == "carol"
    tab.click("main a[href='/jobs?f=html']")
    tab.wait_for_url(re.compile(r"/jobs\?f=html$"))
