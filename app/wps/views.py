"""The HTTP face of the WPS binding: one endpoint for both protocol versions, plus job documents and outputs.

Views only parse, call an operation (``app/wps/operations/``) and turn its reply into a response. Every
failure under these routes becomes an OWS ExceptionReport: the job service's errors through
``error_map``, anything else through this blueprint's error handlers, which answer for its routes only
(/health and /metrics answer in their own formats). No traceback ever reaches a client.

Who asks is found out in one place, :func:`authorized`, for every operation of every route (the 1.0.0
status document counts as GetStatus, an output download as GetResult); the caller it returns goes to
the job service with the operation. A refusal is an ExceptionReport with code NoApplicableCode (OWS has
no code for authentication), locator ``Authorization`` (or the user header), HTTP 401 with
``WWW-Authenticate: Bearer`` (or 403, 503), in the request's version.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, g, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app import errors
from app.auth import Authenticator, Refusal
from app.client import disconnect_check
from app.served import SANDBOX
from app.settings import Settings
from app.wps.error_map import to_ows
from app.wps.errors import CONTENT_TYPE, OWSException, render_exception
from app.wps.operations import downloads
from app.wps.operations.context import Context, Reply
from app.wps.operations.discovery import Discovery
from app.wps.operations.execute import execute
from app.wps.operations.job_control import job_operation
from app.wps.parse_kvp import parse_kvp
from app.wps.parse_xml import parse_xml
from app.wps.requests import DescribeProcess, Execute, GetCapabilities, JobRequest, WPSRequest
from scheduler.access import Caller
from scheduler.errors import JobServiceError
from scheduler.service import JobService

log = logging.getLogger(__name__)

bp = Blueprint("wps", __name__)

EXTENSION = "hpc_wps.wps"
PREFIX = "/wps"  # every path this blueprint serves starts with it
JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
VERSION_2_HINT = re.compile(rb"(?i)(version=2\.|acceptversions=2\.|opengis\.net/wps/2\.0)")
FORM = "application/x-www-form-urlencoded"
ACCEPT_POST = f"text/xml, application/xml, application/*+xml, {FORM}"  # told with a 415 (RFC 9110, 15.5.16)


@dataclass(frozen=True)
class Binding:
    """What the views use, built once per app: documents that depend on the configuration alone are
    rendered then, not per request."""

    context: Context
    discovery: Discovery
    auth: Authenticator


def init_app(app: Flask, settings: Settings, jobs: JobService, auth: Authenticator) -> None:
    """``auth``: the app's one Authenticator, shared with the other binding (one token cache, one key set)."""
    context = Context(jobs, settings.server.url, settings.server.language)
    app.extensions[EXTENSION] = Binding(context, Discovery(settings, context), auth)
    app.register_blueprint(bp)


def binding() -> Binding:
    return current_app.extensions[EXTENSION]


def to_response(reply: Reply) -> Response:
    if reply.file is not None:
        # Streamed from disk in blocks (wsgi.file_wrapper under gunicorn): memory stays flat for any size.
        response = send_file(reply.file, mimetype=reply.content_type, conditional=True, max_age=0)
    else:
        response = Response(reply.body, status=reply.status, content_type=reply.content_type)
    response.headers.update(reply.headers)
    return response


def exception_response(exc: OWSException, version: str) -> Response:
    body = render_exception(exc, version, binding().context.language)
    response = Response(body, status=exc.status, content_type=CONTENT_TYPE)
    response.headers.update(exc.headers)
    return response


def _version_hint(sample: bytes) -> str:
    return "2.0.0" if VERSION_2_HINT.search(sample[:4096]) else "1.0.0"


def authorized(operation: str) -> Caller:
    """The caller of ``operation`` in this request, or an OWSException saying why it may not ask."""
    try:
        return binding().auth.caller_of(operation, request)
    except Refusal as refusal:
        raise OWSException("NoApplicableCode", refusal.text, refusal.locator, refusal.status, refusal.headers) from None


def _operation(parsed: WPSRequest) -> str:
    if isinstance(parsed, JobRequest):
        return parsed.operation
    return type(parsed).__name__  # GetCapabilities, DescribeProcess, Execute


def _dispatch(parsed: WPSRequest) -> Reply:
    wps = binding()
    caller = authorized(_operation(parsed))
    if isinstance(parsed, GetCapabilities):
        return wps.discovery.get_capabilities(parsed, caller)
    try:
        if isinstance(parsed, DescribeProcess):
            return wps.discovery.describe(parsed, caller)
        if isinstance(parsed, Execute):
            return execute(wps.context, parsed, caller, disconnect_check(request.environ))
        return job_operation(wps.context, parsed, caller)
    except JobServiceError as exc:
        raise to_ows(exc, parsed.version) from None


def is_xml_type(mimetype: str) -> bool:
    """``text/xml``, ``application/xml`` or ``application/<anything>+xml`` (``request.mimetype`` has
    no parameters and is lower-cased already)."""
    return mimetype in ("text/xml", "application/xml") or (
        mimetype.startswith("application/") and mimetype.endswith("+xml")
    )


def _parse_post(body: bytes) -> WPSRequest:
    """A POST body as its declared type: XML, or KVP from an HTML form. Anything else is refused before
    it is parsed: an XML document sent as ``text/plain`` or ``multipart/form-data`` is what a form on
    another site can make a browser send (no CORS preflight for those types), and a body that declares
    no type says nothing of what it is."""
    mimetype = request.mimetype
    if mimetype == FORM:
        return parse_kvp(body)
    if is_xml_type(mimetype):
        return parse_xml(body)
    declared = f"this one is {mimetype}" if mimetype else "this one declares no Content-Type"
    raise OWSException(
        "InvalidParameterValue",
        f"a POST request is XML (text/xml, application/xml, application/*+xml) or {FORM}; {declared}",
        "Content-Type",
        status=415,
    )


@bp.route(PREFIX, methods=["GET", "POST"])
def wps_endpoint() -> Response:
    """HEAD is routed here too (Flask adds it to every GET route) and answered as the GET, without the body."""
    sample = request.query_string
    try:
        if request.method in ("GET", "HEAD"):
            parsed = parse_kvp(request.query_string)
        else:
            body = request.get_data(cache=False)
            sample = body
            g.wps_version = _version_hint(body)
            parsed = _parse_post(body)
        g.wps_request = parsed  # the access log and the request metrics name the operation from it
        return to_response(_dispatch(parsed))
    except OWSException as exc:
        response = exception_response(exc, _version_hint(sample))
        if exc.status == 415:
            response.headers["Accept-Post"] = ACCEPT_POST
        return response
    except RequestEntityTooLarge:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        exc = OWSException("FileSizeExceeded", f"the request is larger than {limit} bytes", "request", status=413)
        return exception_response(exc, "1.0.0")


@bp.route(f"{PREFIX}/jobs/<job_id>", methods=["GET"])
def status_document(job_id: str) -> Response:
    try:
        if not JOB_ID.match(job_id):
            raise OWSException("NoSuchJob", f"no job {job_id}", "jobId", status=404)
        caller = authorized("GetStatus")
        return to_response(downloads.status_document(binding().context, job_id, caller))
    except JobServiceError as exc:
        ows = to_ows(exc, "1.0.0")
    except OWSException as exc:
        ows = exc
    if ows.code == "NoSuchJob":
        ows.status = 404
    return exception_response(ows, "1.0.0")


# A file a process published beside its outputs, in a folder of its own (PyWPS's storage writes the
# members of a Metalink to <outputs>/<uuid>/<name>): one level, each part checked as a file name.
@bp.route(f"{PREFIX}/jobs/<job_id>/outputs/<folder>/<filename>", methods=["GET"], merge_slashes=False)
@bp.route(f"{PREFIX}/jobs/<job_id>/outputs/<filename>", methods=["GET"])
def output(job_id: str, filename: str, folder: str | None = None) -> Response:
    try:
        parts = [filename] if folder is None else [folder, filename]
        if not JOB_ID.match(job_id) or not all(FILE_NAME.match(p) and not p.startswith(".") for p in parts):
            raise OWSException("NoSuchJob", "no such output", "jobId", status=404)
        filename = "/".join(parts)
        caller = authorized("GetResult")
        return to_response(downloads.output_file(binding().context, job_id, filename, caller))
    except JobServiceError as exc:
        ows = to_ows(exc, "1.0.0")
    except OWSException as exc:
        ows = exc
    ows.status = 404 if ows.code in ("NoSuchJob", "InvalidParameterValue") else ows.status
    return exception_response(ows, "1.0.0")


@bp.after_request
def inert(response: Response) -> Response:
    """Every answer under /wps renders inert in a browser (and, as every answer, carries ``nosniff``:
    ``app/served.py``). ExecuteResponse and Result documents embed a client's XML by value, which may
    hold XHTML or SVG elements with scripts; OWS clients ignore the header. Outputs bring their own
    policy (``app/served.py``), which this keeps."""
    response.headers.setdefault("Content-Security-Policy", SANDBOX)
    return response


@bp.errorhandler(Exception)
def error_response(exc: Exception) -> Response:
    """Every error under /wps a view did not answer itself; the app's fallback (``app/errors.py``)
    calls it too, for paths under /wps no route serves (a wrong path, a wrong method)."""
    if isinstance(exc, HTTPException):
        code = "OperationNotSupported" if exc.code == 405 else "NoApplicableCode"
        ows = OWSException(code, exc.description or exc.name, request.path, status=exc.code)
        return exception_response(ows, "1.0.0")
    version = g.get("wps_version") or _version_hint(request.query_string)
    if isinstance(exc, errors.OUT_OF_REACH):
        ows = OWSException("NoApplicableCode", errors.OUT_OF_REACH_TEXT, status=503)
        return errors.retry_later(exc, exception_response(ows, version))
    log.exception("unexpected error serving %s", request.path)
    return exception_response(OWSException("NoApplicableCode", errors.INTERNAL_TEXT, status=500), version)
