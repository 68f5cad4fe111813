"""The HTTP face of the service: one endpoint for both protocol versions, plus job documents and outputs.

Views only parse, call the service and turn its reply into a response; every failure becomes an OWS
ExceptionReport and no traceback ever reaches a client.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, g, request, send_file
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.wps.errors import CONTENT_TYPE, OWSException, render_exception
from app.wps.parse_kvp import parse_kvp
from app.wps.parse_xml import parse_xml
from app.wps.requests import DescribeProcess, Execute, GetCapabilities, JobRequest
from app.wps.service import Reply, WPSService

log = logging.getLogger(__name__)

bp = Blueprint("wps", __name__)

JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
VERSION_2_HINT = re.compile(rb"(?i)(version=2\.|acceptversions=2\.|opengis\.net/wps/2\.0)")
RETRY_AFTER = 5  # seconds a client is asked to wait while the job table is out of reach


def service() -> WPSService:
    return current_app.extensions["hpc_wps"]


def to_response(reply: Reply) -> Response:
    if reply.file is not None:
        # Streamed from disk in blocks (wsgi.file_wrapper under gunicorn): memory stays flat for any size.
        response = send_file(reply.file, mimetype=reply.content_type, conditional=True, max_age=0)
    else:
        response = Response(reply.body, status=reply.status, content_type=reply.content_type)
    response.headers.update(reply.headers)
    return response


def exception_response(exc: OWSException, version: str) -> Response:
    body = render_exception(exc, version, service().language)
    return Response(body, status=exc.status, content_type=CONTENT_TYPE)


def _version_hint(sample: bytes) -> str:
    return "2.0.0" if VERSION_2_HINT.search(sample[:4096]) else "1.0.0"


def _dispatch(parsed: object) -> Reply:
    wps = service()
    if isinstance(parsed, GetCapabilities):
        return wps.get_capabilities(parsed)
    if isinstance(parsed, DescribeProcess):
        return wps.describe(parsed)
    if isinstance(parsed, Execute):
        return wps.execute(parsed)
    assert isinstance(parsed, JobRequest)
    return wps.job_operation(parsed)


@bp.route("/wps", methods=["GET", "POST"])
def wps_endpoint() -> Response:
    sample = request.query_string
    try:
        if request.method == "GET":
            parsed = parse_kvp(request.query_string)
        else:
            body = request.get_data(cache=False)
            sample = body
            g.wps_version = _version_hint(body)
            parsed = parse_kvp(body) if request.mimetype == "application/x-www-form-urlencoded" else parse_xml(body)
        g.wps_request = parsed  # the access log and the request metrics name the operation from it
        return to_response(_dispatch(parsed))
    except OWSException as exc:
        return exception_response(exc, _version_hint(sample))
    except RequestEntityTooLarge:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        exc = OWSException("FileSizeExceeded", f"the request is larger than {limit} bytes", "request", status=413)
        return exception_response(exc, "1.0.0")


@bp.route("/wps/jobs/<job_id>", methods=["GET"])
def status_document(job_id: str) -> Response:
    try:
        if not JOB_ID.match(job_id):
            raise OWSException("NoSuchJob", f"no job {job_id}", "jobId", status=404)
        return to_response(service().status_document(job_id))
    except OWSException as exc:
        if exc.code == "NoSuchJob":
            exc.status = 404
        return exception_response(exc, "1.0.0")


@bp.route("/wps/jobs/<job_id>/outputs/<filename>", methods=["GET"])
def output(job_id: str, filename: str) -> Response:
    try:
        if not JOB_ID.match(job_id) or not FILE_NAME.match(filename) or filename.startswith("."):
            raise OWSException("NoSuchJob", "no such output", "jobId", status=404)
        return to_response(service().output_file(job_id, filename))
    except OWSException as exc:
        exc.status = 404 if exc.code in ("NoSuchJob", "InvalidParameterValue") else exc.status
        return exception_response(exc, "1.0.0")


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    code = "OperationNotSupported" if exc.code == 405 else "NoApplicableCode"
    ows = OWSException(code, exc.description or exc.name, request.path, status=exc.code)
    return exception_response(ows, "1.0.0")


@bp.app_errorhandler(OperationalError)
@bp.app_errorhandler(InterfaceError)
@bp.app_errorhandler(PoolTimeout)
def job_table_out_of_reach(exc: Exception) -> Response:
    """The database is restarting, unreachable or (SQLite) locked past its busy timeout: a passing
    condition, so 503 with Retry-After rather than an internal error, and one log line, not a traceback."""
    log.warning("the job table is out of reach serving %s: %s", request.path, str(exc).split("\n", 1)[0])
    ows = OWSException("NoApplicableCode", "the job table is out of reach; try again in a few seconds", status=503)
    response = exception_response(ows, g.get("wps_version") or _version_hint(request.query_string))
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


@bp.app_errorhandler(Exception)
def unexpected_error(exc: Exception) -> Response:
    log.exception("unexpected error serving %s", request.path)
    ows = OWSException("NoApplicableCode", "internal server error; the service log has the details", status=500)
    return exception_response(ows, g.get("wps_version") or _version_hint(request.query_string))
