"""Who answers an error, and in which format: the WPS binding under /wps (an OWS ExceptionReport, also
for a path or method no route serves), /health in JSON, /metrics in plain text, anything else a JSON
problem document. The job table out of reach is 503 with Retry-After everywhere; no traceback, and no
word of the failure's own text, ever reaches a client."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.exc import OperationalError

from app import create_app
from app.ops import health, metrics
from app.settings import Settings, load_settings
from migrations import upgrade
from scheduler.service import JobService
from tests.conftest import ValidatingClient, free_port
from tests.xsd import OWS11, OWS20

JOB = "00000000-0000-4000-8000-000000000000"
SECRET = "postgres@db.internal.example"  # what a driver's message may name, and a client must not read
LEAKS = (SECRET.encode(), b"Traceback", b'File "/')


def sqlite_settings(tmp_path: Path) -> Settings:
    settings = load_settings(environ={}).replace("server", workdir=tmp_path / "work", url="http://testserver/wps")
    upgrade(settings.database_url)
    return settings


@pytest.fixture
def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    application = create_app(sqlite_settings(tmp_path))
    application.testing = True  # errors a handler misses would propagate into the test
    yield application
    application.extensions["hpc_wps"].engine.dispose()


@pytest.fixture
def wps(app: Flask) -> ValidatingClient:
    return ValidatingClient(app.test_client())


def out_of_reach(*_args: object, **_kwargs: object) -> None:
    raise OperationalError("SELECT 1", {}, Exception(f"connection to {SECRET} refused"))


def unexpected(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError(f"a bug that mentions {SECRET}")


def assert_no_leak(body: bytes) -> None:
    for leak in LEAKS:
        assert leak not in body, body[:500]


def ows_exception(response, namespace: str = OWS11):  # type: ignore[no-untyped-def]
    """The one exception of a valid OWS ExceptionReport (the client validated it against the schema)."""
    assert response.headers["Content-Type"] == "text/xml"
    assert response.xml.tag == f"{{{namespace}}}ExceptionReport"
    assert_no_leak(response.get_data())
    return response.xml.find(f"{{{namespace}}}Exception")


# -- under /wps: always an OWS ExceptionReport -----------------------------------------------------------


def test_an_unexpected_error_under_wps_is_an_ows_report(wps, monkeypatch):
    monkeypatch.setattr(JobService, "get", unexpected)
    for url, namespace in (
        (f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={JOB}", OWS20),
        (f"/wps/jobs/{JOB}", OWS11),
    ):
        response = wps.get(url)
        assert response.status_code == 500, url
        assert ows_exception(response, namespace).get("exceptionCode") == "NoApplicableCode", url


def test_the_job_table_out_of_reach_under_wps_is_an_ows_report_with_retry_after(wps, monkeypatch):
    monkeypatch.setattr(JobService, "get", out_of_reach)
    response = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={JOB}")
    assert (response.status_code, response.headers.get("Retry-After")) == (503, "5")
    assert ows_exception(response, OWS20).get("exceptionCode") == "NoApplicableCode"


def test_a_path_or_method_no_route_serves_under_wps_is_an_ows_report(wps):
    missing = wps.get("/wps/no/such/path")
    assert missing.status_code == 404
    exception = ows_exception(missing)
    assert (exception.get("exceptionCode"), exception.get("locator")) == ("NoApplicableCode", "/wps/no/such/path")
    wrong_method = wps.client.put("/wps")
    assert wrong_method.status_code == 405
    assert ows_exception(wps._check(wrong_method)).get("exceptionCode") == "OperationNotSupported"


# -- /health: JSON whatever happens ----------------------------------------------------------------------


def health_json(response):  # type: ignore[no-untyped-def]
    assert response.mimetype == "application/json", response.get_data()[:500]
    assert response.headers["Cache-Control"] == "no-store"
    assert_no_leak(response.get_data())
    body = response.get_json()
    assert body["status"] == "fail"
    return body


def test_health_with_the_job_table_unreachable_answers_json(tmp_path: Path):
    settings = sqlite_settings(tmp_path)
    settings = settings.replace("database", url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    app = create_app(settings)
    app.testing = True
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert health_json(response)["checks"]["database"]["status"] == "fail"
    app.extensions["hpc_wps"].engine.dispose()


def test_health_failing_itself_answers_json(app, monkeypatch):
    """Beyond the probe, whose failures are its answer: the report itself fails."""
    monkeypatch.setattr(health, "_report", unexpected)
    response = app.test_client().get("/health")
    assert response.status_code == 500
    assert health_json(response)["reasons"] == ["internal server error; the service log has the details"]
    monkeypatch.setattr(health, "_report", out_of_reach)
    response = app.test_client().get("/health")
    assert (response.status_code, response.headers.get("Retry-After")) == (503, "5")
    health_json(response)


# -- /metrics: plain text ---------------------------------------------------------------------------------


def test_metrics_failing_answers_plain_text(app, monkeypatch):
    monkeypatch.setattr(metrics, "add_counts", unexpected)
    response = app.test_client().get("/metrics")
    assert (response.status_code, response.mimetype) == (500, "text/plain")
    assert_no_leak(response.get_data())


# -- anywhere else: a JSON problem document, no OWS ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/no/such/path", 404), ("GET", "/wpsnot", 404), ("PUT", "/", 405), ("POST", "/health", 405)],
)
def test_errors_outside_wps_are_not_ows(app, method: str, path: str, status: int):
    response = app.test_client().open(path, method=method)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert not response.get_data().lstrip().startswith(b"<")
    body = response.get_json()
    assert (body["status"], body["title"]) == (status, HTTPStatus(status).phrase)
    assert body["detail"]


def test_a_wrong_method_outside_wps_says_which_are_allowed(app):
    response = app.test_client().post("/health/live")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET"}
