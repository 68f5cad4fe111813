"""Per HTTP request: one access log line, and the request metrics (latency, responses by status).

Labels stay a small fixed set whatever clients send: the WPS operation (or what the path serves),
and the protocol version only when it is one this service speaks. The metrics are recorded whether
or not /metrics is served: it costs a microsecond, and the switch then only decides what is shown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

from flask import Request, Response, g, request
from prometheus_client import Counter, Histogram

from app.ops.deferred_log import DeferredLines
from app.wps.errors import OWSException
from app.wps.requests import SUPPORTED_VERSIONS, DescribeProcess, Execute, GetCapabilities, JobRequest
from app.wps.versions import negotiate
from app.wps.views import JOB_ID

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("hpc_wps.access")
LINES = DeferredLines(log)  # written by a thread of their own: ``deferred_log``

OPERATIONS = {
    o.lower(): o for o in ("GetCapabilities", "DescribeProcess", "Execute", "GetStatus", "GetResult", "Dismiss")
}
INVALID = "invalid"  # a WPS request that names no operation this service knows, or that cannot be parsed
# Paths other than /wps, by Flask endpoint; anything else (a 404) is "other".
ENDPOINTS = {
    "wps.status_document": "StatusDocument",
    "wps.output": "GetOutput",
    "health.ready": "health",
    "health.live": "health",
    "metrics.exposition": "metrics",
    # OGC API - Processes, by the WPS operation each route amounts to, marked as the API's.
    "ogcapi.landing_page": "api:landing",
    "ogcapi.conformance": "api:conformance",
    "ogcapi.api_document": "api:definition",
    "ogcapi.process_list": "api:GetCapabilities",
    "ogcapi.process_description": "api:DescribeProcess",
    "ogcapi.execute": "api:Execute",
    "ogcapi.job_list": "api:JobList",
    "ogcapi.job_status": "api:GetStatus",
    "ogcapi.dismiss": "api:Dismiss",
    "ogcapi.job_results": "api:GetResult",
    "signin.page": "api:signin",
    "signin.sign_in": "api:signin",
    "signin.sign_out": "api:signout",
}

REQUEST_SECONDS = Histogram(
    "hpc_wps_http_request_duration_seconds",
    "Time from request to response headers (a streamed output's transfer not included)",
    ["operation", "version"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf")),
)
RESPONSES = Counter("hpc_wps_http_responses", "HTTP responses by operation and status code", ["operation", "status"])


def _version(text: str | None) -> str:
    return text if text in SUPPORTED_VERSIONS else ""


def describe(req: Request) -> tuple[str, str, str | None]:
    """(operation, version, job id) of a request, for labels and the log."""
    job_id = (req.view_args or {}).get("job_id")
    if req.endpoint != "wps.wps_endpoint":
        operation = ENDPOINTS.get(req.endpoint or "", "other")
        return operation, "1.0.0" if operation == "StatusDocument" else "", job_id
    parsed = g.get("wps_request")
    if isinstance(parsed, GetCapabilities):
        try:
            return "GetCapabilities", negotiate(parsed.accept_versions), None
        except OWSException:
            return "GetCapabilities", "", None
    if isinstance(parsed, DescribeProcess | Execute):
        return type(parsed).__name__, _version(parsed.version), None
    if isinstance(parsed, JobRequest):
        return parsed.operation, _version(parsed.version), parsed.job_id
    # Not parsed: what a KVP request said it was, if that is an operation at all.
    args = {k.lower(): v for k, v in req.args.items()}
    return OPERATIONS.get(args.get("request", "").lower(), INVALID), _version(args.get("version")), None


STARTED = "hpc_wps.started"  # the request's start, in its WSGI environ (cheaper than ``g``)


@cache
def _timer(operation: str, version: str) -> Histogram:
    """A label set's child, kept: ``labels`` takes a lock and checks its arguments on every call."""
    return REQUEST_SECONDS.labels(operation, version)


@cache
def _counter(operation: str, status: int) -> Counter:
    return RESPONSES.labels(operation, str(status))


def timed(wsgi_app: WSGIApplication) -> WSGIApplication:
    """``wsgi_app`` noting each request's start in its environ, before Flask sees it: a
    ``before_request`` function would cost a call through Flask's hooks and its ``request`` proxy."""

    def started(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[STARTED] = time.perf_counter()
        return wsgi_app(environ, start_response)

    return started


def finish(response: Response) -> Response:
    req = request._get_current_object()  # type: ignore[attr-defined]  # read a dozen times: once through the proxy
    seconds = time.perf_counter() - req.environ.get(STARTED, time.perf_counter())
    operation, version, job_id = describe(req)
    status = response.status_code
    _timer(operation, version).observe(seconds)
    _counter(operation, status).inc()
    if not log.isEnabledFor(logging.INFO):
        return response
    # A decoded path can hold a line break: escaped, it cannot forge a log line.
    path = req.path if req.path.isprintable() else req.path.encode("unicode_escape").decode("ascii")
    fields: dict[str, object] = {
        "method": req.method,
        "path": path,
        "operation": operation,
        "version": version,
        "status": status,
        "duration_s": round(seconds, 6),
        "remote_addr": req.remote_addr,
    }
    if job_id and JOB_ID.match(job_id):  # a client's text goes into the log only when it is a job id
        fields["job_id"] = job_id
    args = (req.method, path, operation, version or "-", status, seconds)
    LINES.note(time.time(), "%s %s %s %s %d %.3f s", args, fields)
    return response
