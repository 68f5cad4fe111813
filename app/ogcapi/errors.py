"""Errors of the OGC API - Processes binding as RFC 7807 problem documents (``application/problem+json``).

The standard names three kinds with type URIs of its own (no-such-process, no-such-job,
result-not-ready); any other problem is ``about:blank`` with the HTTP status phrase as its title, the
message in ``detail``, and, when one request part is at fault, that part (an input, an output,
``response``...) in ``locator`` and the WPS exception code the same mistake has in ``code``. The job
service's errors map here once, as the WPS binding maps them in ``app/wps/error_map.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from app.wps.error_map import to_ows
from app.wps.errors import OWSException
from scheduler.errors import JobFailed, JobServiceError, NoSuchJob, NoSuchProcess, ResultNotReady

PROBLEM = "application/problem+json"
OGC_TYPES = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
NO_SUCH_PROCESS = OGC_TYPES + "no-such-process"
NO_SUCH_JOB = OGC_TYPES + "no-such-job"
RESULT_NOT_READY = OGC_TYPES + "result-not-ready"
BLANK = "about:blank"


@dataclass
class ApiError(Exception):
    status: int
    detail: str
    type: str = BLANK
    locator: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    instance: str | None = None  # the URI of this occurrence: the job, when one failed

    def document(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }
        if self.locator:
            body["locator"] = self.locator
        if self.code:
            body["code"] = self.code
        if self.instance:
            body["instance"] = self.instance
        return body


def bad_request(detail: str, locator: str | None = None) -> ApiError:
    return ApiError(400, detail, locator=locator)


def from_ows(exc: OWSException) -> ApiError:
    """A refusal of the shared Execute checks (``app/wps/validate.py``), with the part it names."""
    detail = exc.text
    if exc.locator and exc.locator not in detail:
        detail = f"{exc.locator}: {detail}"
    return ApiError(exc.status, detail, locator=exc.locator, code=exc.code, headers=exc.headers)


def from_service(error: JobServiceError) -> ApiError:
    match error:
        case NoSuchProcess():
            return ApiError(404, str(error), NO_SUCH_PROCESS)
        case NoSuchJob():
            return ApiError(404, str(error), NO_SUCH_JOB)
        case ResultNotReady():
            return ApiError(404, str(error), RESULT_NOT_READY)
        case JobFailed():  # the job's own failure, as the standard asks (the process failed: a server-side 500)
            return ApiError(500, str(error), code="JobFailed")
    return from_ows(to_ows(error, "2.0.0"))  # the same statuses and locators as WPS 2.0
