"""The job monitor's pages (the HTML encoding) through the Flask test client: each resource as a page
for ``f=html`` and a browser's Accept, the Content-Security-Policy that lets only the service's own
script and stylesheet run, escaping of what processes and jobs say, a job's timeline with its executor
and native id, and the execution form built from a description. The browser tests drive them:
``test_monitor_browser.py``."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser

import pytest

from app.ogcapi.html import PAGE_POLICY
from processes.context import JobContext
from processes.model import LiteralInput, LiteralOutput, Process, Range
from scheduler import lifecycle
from tests.conftest import ApiClient, client_of

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
MARKUP = '<script>alert("x")</script><b>bold</b>'


def _nothing(job: JobContext) -> None:
    job.set_output("out", "done")


# A process whose title, description and allowed values carry markup: a page shows them as text.
MARKED_UP = Process(
    identifier="marked_up",
    title=f"Title {MARKUP}",
    abstract=f"Abstract {MARKUP}",
    handler=_nothing,
    inputs=(
        LiteralInput("choice", "Choice", data_type="string", allowed_values=("plain", MARKUP)),
        LiteralInput("count", "Count", data_type="integer", allowed_values=(Range(1, 9),), min_occurs=0),
    ),
    outputs=(LiteralOutput("out", "Out", data_type="string"),),
)


@pytest.fixture
def pages(settings) -> Iterator[ApiClient]:  # type: ignore[no-untyped-def]
    processes = ("tests.web.test_monitor_pages:MARKED_UP",)
    yield from client_of(settings.replace("processing", processes=processes), ApiClient)


class _Page(HTMLParser):
    """The elements of a page with their attributes, and its text."""

    def __init__(self, body: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(body)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def _page(client: ApiClient, path: str, accept: str = BROWSER) -> _Page:
    response = client.get(path, headers={"Accept": accept})
    assert (response.status_code, response.mimetype) == (200, "text/html"), response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"] == PAGE_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Accept" in response.vary
    page = _Page(response.get_data(as_text=True))
    assert not [a for t, a in page.elements if t == "script" and "src" not in a], "an inline script"
    assert page.having("meta", name="viewport")
    return page


def _submit(client: ApiClient, process: str, inputs: dict) -> str:  # type: ignore[type-arg]
    response = client.post(
        f"/processes/{process}/execution", json={"inputs": inputs}, headers={"Prefer": "respond-async"}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["jobID"]


@pytest.mark.parametrize("path", ["/", "/conformance", "/processes", "/processes/sleep", "/jobs"])
def test_every_resource_is_a_page_for_a_browser(api, path):
    _page(api, path)
    assert _page(api, f"{path}?f=html", accept="application/json").text
    assert api.get(path).mimetype == "application/json"  # no Accept: JSON, as before


def test_the_pages_assets_are_served_by_the_service(api):
    page = _page(api, "/")
    (script,) = page.having("script")
    (style,) = page.having("link", rel="stylesheet")
    for href, mimetype in ((script["src"], "text/javascript"), (style["href"], "text/css")):
        assert href.startswith("/static/monitor/")
        response = api.get(href)
        assert (response.status_code, response.mimetype) == (200, mimetype)
        response.close()


def test_markup_in_a_process_is_shown_as_text(pages):
    for path in ("/processes", "/processes/marked_up"):
        response = pages.get(f"{path}?f=html")
        body = response.get_data(as_text=True)
        assert MARKUP not in body
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in body
        page = _Page(body)
        assert not page.having("b") and len(page.having("script")) == 1
        assert f"Title {MARKUP}" in "".join(page.text)


def test_the_execution_form_follows_the_description(pages):
    page = _page(pages, "/processes/marked_up")
    (form,) = page.having("form", id="execute")
    assert form["data-execution"] == "http://testserver/processes/marked_up/execution"
    assert {a["data-input"]: a["data-kind"] for a in page.having("div", **{"class": "field"})} == {
        "choice": "string",
        "count": "integer",
    }
    assert [a.get("value") for a in page.having("option")] == [None, None]  # plain, and the markup as text
    assert "".join(page.text).count(MARKUP) >= 2
    (count,) = page.having("input", type="number")
    assert (count["min"], count["max"], count["step"]) == ("1", "9", "1")
    assert page.having("li", **{"data-output": "out"})


def test_a_job_page_has_its_timeline_executor_native_id_and_message_as_text(api, app):
    job_id = _submit(api, "sleep", {"delay": 1})
    engine = app.extensions["hpc_wps"].engine
    assert lifecycle.claim_many(engine, [job_id], "slurm", False, "test/1:1") == {job_id}
    lifecycle.mark_submitted_many(engine, [(job_id, "4242", None)])
    assert lifecycle.mark_running(engine, job_id)
    assert lifecycle.update_progress(engine, job_id, f"step {MARKUP}", 40)
    body = api.get(f"/jobs/{job_id}?f=html").get_data(as_text=True)
    assert MARKUP not in body
    page = _Page(body)
    text = "".join(page.text)
    assert f"step {MARKUP}" in text
    assert "on slurm, native id 4242" in text
    assert [a["data-step"] for a in page.having("li") if "data-step" in a] == ["accepted", "started"]
    assert page.having("progress", value="40")
    assert page.having("button", id="dismiss")
    # The JSON statusInfo stays as the standard has it: no executor in it.
    assert "slurm" not in api.get(f"/jobs/{job_id}").get_data(as_text=True)


def test_a_finished_job_page_links_its_outputs(api, app):
    job_id = _submit(api, "say_hello", {"name": "World"})
    engine = app.extensions["hpc_wps"].engine
    lifecycle.claim_many(engine, [job_id], "local", True, "test/1:1")
    outputs = app.extensions["hpc_wps"].outputs_dir(job_id)
    outputs.mkdir(parents=True)
    (outputs / "greeting.txt").write_text("Hello World", encoding="utf-8")
    record = {"id": "greeting", "kind": "complex", "file": "greeting.txt", "mime_type": "text/plain"}
    assert lifecycle.mark_succeeded(engine, job_id, [record], None)
    page = _page(api, f"/jobs/{job_id}")
    (link,) = [a for a in page.having("a") if (a.get("href") or "").endswith("/greeting.txt")]
    assert api.get(link["href"].removeprefix("http://testserver")).get_data() == b"Hello World"
    assert not page.having("button", id="dismiss")
    assert [a["data-step"] for a in page.having("li") if "data-step" in a] == ["accepted", "started", "successful"]


def test_the_job_list_page_keeps_its_filters(api):
    job_id = _submit(api, "sleep", {"delay": 1})
    page = _page(api, "/jobs?status=accepted&processID=sleep&limit=5")
    assert page.having("li", **{"data-job": job_id})
    assert [a for a in page.having("input", type="checkbox") if "checked" in a] == [
        {"type": "checkbox", "name": "status", "value": "accepted", "checked": None}
    ]
    assert page.having("input", name="processID", value="sleep")
    assert page.having("input", name="limit", value="5")
    empty = _page(api, "/jobs?status=failed&f=html")
    assert not empty.having("li", **{"data-job": job_id})


def test_complex_and_bounding_box_inputs_get_their_fields(api):
    page = _page(api, "/processes/echo")
    kinds = {a["data-input"]: a["data-kind"] for a in page.having("div", **{"class": "field"})}
    assert kinds == {"literalInput": "string", "complexInput": "complex", "boundingBoxInput": "bbox"}
    assert page.having("textarea", name="value") and page.having("input", type="url", name="href")
    assert page.having("select", name="mediaType") and page.having("select", name="crs")
    text = "".join(page.text)
    assert "text/plain" in text and "http://www.opengis.net/def/crs/EPSG/0/4326" in text
    body = api.get("/processes/echo?f=html").get_data(as_text=True)  # EPSG:4326 and its URN: one URI, once
    assert body.count("<option>http://www.opengis.net/def/crs/EPSG/0/4326</option>") == 1


# -- errors: a page for a browser, the problem document for everyone else -------------------------


def _error_page(client: ApiClient, path: str, status: int, method: str = "GET") -> _Page:
    response = client.open(path, method=method, headers={"Accept": BROWSER})
    assert (response.status_code, response.mimetype) == (status, "text/html"), response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"] == PAGE_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = _Page(response.get_data(as_text=True))
    assert page.having("h1", id="problem", **{"data-status": str(status)})
    hrefs = {a.get("href") for a in page.having("a")}
    assert {"/jobs?f=html", "/?f=html"} <= hrefs  # the way back
    json_answer = client.open(path.replace("f=html", "f=json"), method=method, headers={"Accept": "application/json"})
    assert (json_answer.status_code, json_answer.mimetype) == (status, "application/problem+json")
    assert "Accept" in response.vary and "Accept" in json_answer.vary
    assert json_answer.get_json()["detail"] in "".join(page.text)
    return page


def test_an_unknown_job_is_a_404_page_with_the_id_as_text(api):
    marked = '<img src=x onerror="alert(1)">'
    response = api.get(f"/jobs/{marked}", headers={"Accept": BROWSER})
    assert marked not in response.get_data(as_text=True)
    page = _error_page(api, f"/jobs/{marked}", 404)
    assert not page.having("img") and marked in "".join(page.text)
    assert api.get(f"/jobs/{marked}").mimetype == "application/problem+json"  # no Accept: JSON, as before


def test_a_bad_filter_is_a_400_page_with_the_value_as_text(api):
    page = _error_page(api, f"/jobs?status={MARKUP}", 400)
    assert not page.having("b") and len(page.having("script")) == 1  # the monitor's own, nothing else
    assert MARKUP in "".join(page.text)
    bad_f = api.get("/jobs?f=xml", headers={"Accept": BROWSER})  # an f no one serves: the problem in JSON
    assert (bad_f.status_code, bad_f.mimetype) == (400, "application/problem+json")


def test_a_dismissed_jobs_results_a_wrong_path_and_method_are_pages_with_their_headers(api):
    job_id = _submit(api, "sleep", {"delay": 30})
    assert api.delete(f"/jobs/{job_id}").get_json()["status"] == "dismissed"
    _error_page(api, f"/jobs/{job_id}/results?f=html", 404)
    _error_page(api, f"/jobs/{job_id}/no/such/thing", 404)
    _error_page(api, "/processes/no-such-process", 404)
    response = api.open("/jobs", method="PUT", headers={"Accept": BROWSER})
    assert (response.status_code, response.mimetype) == (405, "text/html")
    assert set(response.headers["Allow"].split(", ")) >= {"GET"}
    _error_page(api, "/jobs", 405, method="PUT")
