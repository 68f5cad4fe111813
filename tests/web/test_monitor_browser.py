"""The job monitor in a real browser: Debian's Chromium, headless, driven by Playwright, against
``hpc-wps serve`` with its dispatcher. A job submitted from the execution form is followed to 100 %
without reloading, its output opened; another is dismissed with the button; a job message with markup
stays text; the job list fits a phone's width and gains a new job by itself.

The tests wait on the pages' own attributes (``data-status``), never on script they evaluate: the
pages' Content-Security-Policy forbids evaluating strings, and Playwright's ``wait_for_function`` does.
The browser is the distribution's (``scripts/services.sh`` installs it): Playwright's own download
needs the internet. Without Chromium or Playwright the tests skip, and fail in CI.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import LiveServer, need_backend, wait_for

CHROMIUM = Path("/usr/bin/chromium")
PHONE = {"width": 390, "height": 844}
UNBROKEN = "unbroken" * 20  # a word wider than a phone, which only the stylesheet wraps
MARKUP = "<b>bold</b><img src=x onerror=\"document.body.dataset.pwned='1'\">"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need_backend("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        need_backend(f"{CHROMIUM} is missing (scripts/services.sh start installs Debian's chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def root(live_server: LiveServer) -> str:
    return live_server.url.removesuffix("/wps")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser tab; any error the page logs or a missing resource (a script error, a Content-Security-Policy
    violation) fails the test."""
    context = browser.new_context()
    tab = context.new_page()
    errors: list[str] = []
    tab.on(
        "console",
        lambda message: errors.append(f"{message.text} {message.location}") if message.type == "error" else None,
    )
    tab.on("requestfailed", lambda request: errors.append(f"{request.url}: {request.failure}"))
    tab.on("response", lambda response: errors.append(response.url) if response.status == 404 else None)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    # A document that names no icon (an output, a JSON document) makes the browser ask /favicon.ico.
    assert not [e for e in errors if "/favicon.ico'" not in e]


def _submit(root: str, process: str, inputs: dict[str, Any]) -> str:
    response = requests.post(
        f"{root}/processes/{process}/execution",
        json={"inputs": inputs},
        headers={"Prefer": "respond-async"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["jobID"]


def _progress(page: Any) -> float | None:
    return page.eval_on_selector("#job progress", "bar => bar.hasAttribute('value') ? bar.value : null")


def test_a_job_from_the_form_runs_to_100_and_its_output_opens(page, root):
    page.goto(f"{root}/processes/sleep?f=html")
    page.fill("[data-input=delay] [name=value]", "3")
    page.click("#execute button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}\?f=html$"))
    job_id = page.url.rsplit("/", 1)[1].split("?")[0]
    seen = []
    deadline = time.monotonic() + 60
    while page.inner_text("#job [data-field=status]") != "successful" and time.monotonic() < deadline:
        seen.append(_progress(page))
        page.wait_for_timeout(100)
    assert page.inner_text("#job [data-field=status]") == "successful", seen
    assert _progress(page) == 100
    assert any(value is not None and 0 < value < 100 for value in seen), seen
    # The page was never reloaded: the timeline and outputs were swapped in as the job moved on.
    assert page.url.endswith(f"/jobs/{job_id}?f=html")
    page.wait_for_selector("[data-step=successful]")
    assert page.inner_text("[data-step=started] .detail").startswith("on local, native id ")
    assert page.inner_text("[data-output=sleep_output] .value") == "slept for 3.0 seconds"
    with page.expect_navigation() as navigation:
        page.click("[data-output=sleep_output] a")
    response = navigation.value
    assert response.status == 200
    assert json.loads(response.body()) == {"sleep_output": "slept for 3.0 seconds"}
    status = requests.get(f"{root}/jobs/{job_id}", timeout=30).json()
    assert (status["status"], status["progress"]) == ("successful", 100)


def test_dismiss_stops_a_running_job(page, root):
    job_id = _submit(root, "sleep", {"delay": 120})
    page.goto(f"{root}/jobs/{job_id}?f=html")
    page.wait_for_selector("#job[data-status=running]", timeout=60_000)
    page.click("#dismiss")
    page.wait_for_selector("#job[data-status=dismissed]")
    page.wait_for_selector("[data-step=dismissed]")
    assert page.locator("#dismiss").count() == 0
    assert requests.get(f"{root}/jobs/{job_id}", timeout=30).json()["status"] == "dismissed"


def test_a_job_message_with_markup_is_shown_as_text(page, root):
    page.goto(f"{root}/processes/fail?f=html")
    page.fill("[data-input=message] [name=value]", MARKUP)
    page.click("#execute button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}\?f=html$"))
    page.wait_for_selector("#job[data-status=failed]", timeout=60_000)
    assert MARKUP in page.inner_text("#job [data-field=message]")
    assert page.locator("#job .message b, #job .message img").count() == 0
    page.goto(f"{root}/jobs?f=html")
    assert MARKUP in page.inner_text("#jobs")
    assert page.locator("#jobs b, #jobs img").count() == 0
    assert page.evaluate("document.body.dataset.pwned") is None


def test_the_job_list_fits_a_phone_and_follows_new_jobs(browser, root):
    context = browser.new_context(viewport=PHONE, is_mobile=True)
    page = context.new_page()
    try:
        _submit(root, "fail", {"message": UNBROKEN})  # in the list, as its message
        page.goto(f"{root}/jobs?f=html&limit=5")
        job_id = _submit(root, "say_hello", {"name": UNBROKEN})  # on its page, as its output
        row = f"#jobs [data-job='{job_id}']"
        page.wait_for_selector(row)  # swapped in by the page's own polling
        page.wait_for_selector(f"{row}[data-status=successful]", timeout=60_000)
        assert page.eval_on_selector(f"{row} progress", "bar => bar.value") == 100
        wait_for(lambda: page.locator("#jobs [data-job]").count() >= 2)
        paths = ("/jobs?f=html", "/processes/echo?f=html", f"/jobs/{job_id}?f=html", "/conformance?f=html")
        for path in paths:
            page.goto(root + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
    finally:
        context.close()


def test_complex_and_bounding_box_inputs_from_the_form(page, root):
    text = "line one\n<line two> & three"
    page.goto(f"{root}/processes/echo?f=html")
    page.fill("[data-input=complexInput] [name=value]", text)
    page.select_option("[data-input=complexInput] [name=mediaType]", "text/plain")
    page.fill("[data-input=boundingBoxInput] [name=value]", "1, 2, 3, 4")
    page.click("#execute button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}\?f=html$"))
    page.wait_for_selector("#job[data-status=successful]", timeout=60_000)
    page.wait_for_selector("[data-output=complexOutput] a")
    assert page.inner_text("[data-output=boundingBoxOutput] .value") == "[1, 2] [3, 4] EPSG:4326"
    with page.expect_navigation() as navigation:
        page.click("[data-output=complexOutput] a")
    assert navigation.value.body() == text.encode()
