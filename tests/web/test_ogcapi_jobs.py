"""OGC API - Processes jobs: statusInfo, the job list with its filters and keyset pages, dismissal
(which kills a running job), the exceptions of results, one job table with WPS (either protocol
submits, the other follows), and users: another user's job is no job."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from scheduler import queries
from scheduler.executors.local import worker_pid
from tests.conftest import ApiClient, client_of, wait_for
from tests.ogcapi_json import validate, validate_results
from tests.web.test_auth import ADMIN, ALICE, BOB, oidc_settings  # noqa: F401 (a fixture, used by name)
from tests.xsd import WPS10, WPS20

OGC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
ASYNC = {"Prefer": "respond-async"}


def submit(api, process: str = "sleep", inputs: dict | None = None, **headers: str) -> str:  # type: ignore[no-untyped-def]
    body = {"inputs": {"delay": 30} if inputs is None else inputs, "response": "document"}
    response = api.post(f"/processes/{process}/execution", json=body, headers=ASYNC | headers)
    assert response.status_code == 201, response.get_data()
    return response.get_json()["jobID"]


def run(api, process: str, inputs: dict, **headers: str) -> str:  # type: ignore[no-untyped-def]
    """A synchronous job; returns its id (from the Link to it, or the problem's instance when it failed)."""
    response = api.post(f"/processes/{process}/execution", json={"inputs": inputs}, headers=headers)
    if response.status_code == 500:
        return response.get_json()["instance"].rsplit("/", 1)[1]
    return response.headers["Link"].split(">")[0].rsplit("/", 1)[1]


def listing(api, query: str = "", **headers: str) -> dict:  # type: ignore[no-untyped-def]
    response = api.get(f"/jobs{query}", headers=headers)
    assert response.status_code == 200, response.get_data()
    return validate(response.get_json(), "jobList")


def ids(page: dict) -> list[str]:
    return [job["jobID"] for job in page["jobs"]]


def links(page: dict) -> dict[str, str]:
    return {link["rel"]: link["href"].removeprefix("http://testserver") for link in page["links"]}


def status(api, job_id: str, **headers: str) -> dict:  # type: ignore[no-untyped-def]
    response = api.get(f"/jobs/{job_id}", headers=headers)
    assert response.status_code == 200, response.get_data()
    return validate(response.get_json(), "statusInfo")


# -- the list ------------------------------------------------------------------------------------------


def test_list_newest_first_with_filters(api):
    before = dt.datetime.now(dt.UTC)
    waiting = [submit(api) for _ in range(3)]
    time.sleep(0.01)
    middle = dt.datetime.now(dt.UTC)
    hello = run(api, "say_hello", {"name": "a"})
    failed = run(api, "fail", {"message": "no"})
    slow = run(api, "sleep", {"delay": 1.2})
    everything = ids(listing(api))
    assert everything == [slow, failed, hello, *reversed(waiting)]
    assert ids(listing(api, "?status=successful")) == [slow, hello]
    assert ids(listing(api, "?status=failed,accepted")) == [failed, *reversed(waiting)]
    assert ids(listing(api, "?status=failed&status=accepted")) == [failed, *reversed(waiting)]
    assert ids(listing(api, "?processID=sleep")) == [slow, *reversed(waiting)]
    assert ids(listing(api, "?processID=say_hello,fail")) == [failed, hello]
    assert ids(listing(api, "?type=process")) == everything
    stamp = middle.isoformat().replace("+00:00", "Z")
    assert ids(listing(api, f"?datetime={stamp}/..")) == [slow, failed, hello]
    assert ids(listing(api, f"?datetime=../{stamp}")) == list(reversed(waiting))
    assert ids(listing(api, f"?datetime={quote(before.isoformat())}/{stamp}")) == list(reversed(waiting))
    assert ids(listing(api, "?minDuration=1")) == [slow]
    assert ids(listing(api, "?maxDuration=1")) == [failed, hello]  # never one not started
    assert ids(listing(api, "?minDuration=0&processID=sleep")) == [slow]


@pytest.mark.parametrize(
    ("query", "locator"),
    [
        ("status=done", "status"),
        ("status=", "status"),
        ("status=running,", "status"),
        ("type=", "type"),
        ("type=workflow", "type"),
        ("limit=0", "limit"),
        ("limit=100001", "limit"),
        ("limit=ten", "limit"),
        ("minDuration=-1", "minDuration"),
        ("maxDuration=1.5", "maxDuration"),
        ("datetime=yesterday", "datetime"),
        ("datetime=2026-01-01/never", "datetime"),
        ("after=1", "after"),
        ("before=2026-01-01T00:00:00_x", "before"),
        ("processID=a%00b", "processID"),
    ],
)
def test_bad_filters_are_400_naming_them(api, query, locator):
    response = api.get(f"/jobs?{query}")
    assert response.status_code == 400
    assert response.get_json()["locator"] == locator


def test_pages_next_and_prev_walk_every_job_once(api):
    submitted = [submit(api) for _ in range(7)]
    newest_first = list(reversed(submitted))
    seen, page = [], listing(api, "?limit=3&processID=sleep")
    assert "prev" not in links(page)
    pages = [page]
    while "next" in links(page):
        assert parse_qs(urlsplit(links(page)["next"]).query)["processID"] == ["sleep"]  # filters kept
        page = listing(api, links(page)["next"].removeprefix("/jobs"))
        pages.append(page)
    for each in pages:
        seen += ids(each)
    assert seen == newest_first
    assert [len(ids(p)) for p in pages] == [3, 3, 1]
    back = listing(api, links(pages[-1])["prev"].removeprefix("/jobs"))
    assert ids(back) == ids(pages[1])
    first = listing(api, links(back)["prev"].removeprefix("/jobs"))
    assert ids(first) == ids(pages[0])
    assert "prev" not in links(first)
    assert links(first)["next"]


def test_statusinfo_of_an_accepted_job(api):
    job_id = submit(api)
    info = status(api, job_id)
    assert (info["status"], info["type"], info["processID"], info["jobID"]) == ("accepted", "process", "sleep", job_id)
    rels = {link["rel"] for link in info["links"]}
    assert {"self", "monitor"} <= rels
    assert "http://www.opengis.net/def/rel/ogc/1.0/results" not in rels


# -- results and their exceptions -------------------------------------------------------------------------


def test_results_exceptions(api):
    waiting = submit(api)
    response = api.get(f"/jobs/{waiting}/results")
    assert (response.status_code, response.get_json()["type"]) == (404, OGC + "result-not-ready")
    for unknown in ("00000000-0000-4000-8000-000000000000", "not-a-job", "x" * 300):
        for path in (f"/jobs/{unknown}", f"/jobs/{unknown}/results"):
            response = api.get(path)
            assert (response.status_code, response.get_json()["type"]) == (404, OGC + "no-such-job")
        assert api.delete(f"/jobs/{unknown}").status_code == 404
    failed = run(api, "fail", {"message": "broken on purpose"})
    response = api.get(f"/jobs/{failed}/results")
    assert response.status_code == 500
    assert "broken on purpose" in response.get_json()["detail"]
    done = run(api, "say_hello", {"name": "again"})
    assert validate_results(api.get(f"/jobs/{done}/results").get_json()) == {"response": "Hello again"}


def test_dismiss_kills_a_running_job_and_deletes_its_outputs(api, dispatcher, app, settings):
    job_id = submit(api, inputs={"delay": 60})
    engine = app.extensions["hpc_wps"].engine
    wait_for(lambda: status(api, job_id)["status"] == "running")
    pid = worker_pid(wait_for(lambda: queries.get_job(engine, job_id)["native_id"]))
    os.kill(pid, 0)
    response = api.delete(f"/jobs/{job_id}")
    assert response.status_code == 200
    assert validate(response.get_json(), "statusInfo")["status"] == "dismissed"
    wait_for(lambda: not queries.get_job(engine, job_id)["native_active"])
    wait_for(lambda: not (settings.jobs_dir / job_id).exists())
    assert not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    assert status(api, job_id)["status"] == "dismissed"
    response = api.get(f"/jobs/{job_id}/results")
    assert (response.status_code, response.get_json()["type"]) == (404, OGC + "no-such-job")


def test_dismiss_a_finished_job(api):
    done = run(api, "say_hello", {"name": "gone"})
    assert api.delete(f"/jobs/{done}").get_json()["status"] == "dismissed"
    assert api.get(f"/jobs/{done}/results").status_code == 404


# -- one job table for both protocols -------------------------------------------------------------------


def test_an_api_job_answers_wps(api, wps, dispatcher):
    job_id = submit(api, inputs={"delay": 0.2})
    wait_for(lambda: status(api, job_id)["status"] == "successful")
    k20 = f"/wps?service=WPS&version=2.0.0&jobId={job_id}&request="
    assert wps.get(k20 + "GetStatus").xml.findtext(f"{{{WPS20}}}Status") == "Succeeded"
    result = wps.get(k20 + "GetResult").xml
    assert result.findtext(f".//{{{WPS20}}}LiteralValue") == "slept for 0.2 seconds"
    document = wps.get(f"/wps/jobs/{job_id}").xml
    assert document.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessSucceeded") is not None
    assert wps.get(k20 + "Dismiss").xml.findtext(f"{{{WPS20}}}Status") == "Dismissed"
    assert status(api, job_id)["status"] == "dismissed"


def test_a_wps_job_shows_in_the_api(api, wps):
    response = wps.get(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=5"
        "&storeExecuteResponse=true&status=true"
    )
    job_id = response.xml.get("statusLocation").rsplit("/", 1)[1]
    assert status(api, job_id)["status"] == "accepted"
    assert job_id in ids(listing(api))
    assert api.delete(f"/jobs/{job_id}").get_json()["status"] == "dismissed"
    k20 = f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}"
    assert wps.get(k20).xml.findtext(f"{{{WPS20}}}Status") == "Dismissed"


# -- users --------------------------------------------------------------------------------------------


@pytest.fixture
def users(settings, request: pytest.FixtureRequest) -> Iterator[ApiClient]:  # type: ignore[no-untyped-def]
    """The API with [auth] mode = oidc, as ``tests/web/test_auth.py`` configures it (its fixture; named
    through ``request`` to keep its import; ``settings`` gives this fixture the database parameter)."""
    yield from client_of(request.getfixturevalue("oidc_settings"), ApiClient)


def test_jobs_belong_to_their_users(users):
    alice, bob, root = ALICE, BOB, ADMIN
    job_id = submit(users, **alice)
    assert ids(listing(users, **alice)) == [job_id]
    assert ids(listing(users, **bob)) == []
    assert ids(listing(users, **root)) == [job_id]
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/results"):
        response = users.get(path, headers=bob)
        assert (response.status_code, response.get_json()["type"]) == (404, OGC + "no-such-job")
    assert users.delete(f"/jobs/{job_id}", headers=bob).status_code == 404
    assert status(users, job_id, **alice)["status"] == "accepted"
    no_token = users.get("/jobs")
    assert no_token.status_code == 401
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")
    assert users.get("/processes").status_code == 200  # GetCapabilities is anonymous by default
    bad = users.get("/jobs", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401 and "invalid_token" in bad.headers["WWW-Authenticate"]
