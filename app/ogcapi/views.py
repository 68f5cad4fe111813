"""The HTTP face of OGC API - Processes: routes that parse, call the job service and render.

A second binding of the same job service as WPS (``app/wps/``): the same processes, executors,
limits, users and quotas, and the same job ids, so a job submitted through either is seen, followed
and dismissed through both. Who asks is found out once per request, as for WPS, under the WPS
operation each route amounts to (``OPERATION``), so ``[auth] anonymous`` reads the same for both.

Every error under these routes is an RFC 7807 problem document (``errors.py``); the app answers a
wrong path or method below the API's prefixes with it too (``app/errors.py``). A request that
negotiated HTML (a browser following a link) gets the same problem as a page of the job monitor, with
the same status and headers. With ``[auth] mode = oidc`` a browser signs in at ``/signin``
(``signin.py``, a blueprint of its own: the monitor's, not a resource of the API's document).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request, send_file
from werkzeug.exceptions import RequestEntityTooLarge

from app import errors
from app.auth import Authenticator, Refusal
from app.client import disconnect_check
from app.ogcapi import html, landing, openapi, pages, processes, results
from app.ogcapi import jobs as job_docs
from app.ogcapi.errors import PROBLEM, ApiError, from_ows, from_service
from app.ogcapi.execute import execution_mode, parse_execute
from app.ogcapi.negotiation import error_encoding, respond, respond_kept
from app.ogcapi.urls import OPENAPI, Urls
from app.settings import Settings
from app.wps.errors import OWSException
from app.wps.validate import job_request
from app.wps.views import JOB_ID
from scheduler.access import Caller
from scheduler.errors import JobServiceError, NoSuchJob
from scheduler.job import Job
from scheduler.models import JobMode, JobStatus
from scheduler.service import JobService
from scheduler.subscribers import Subscribers

log = logging.getLogger(__name__)

# The job monitor's pages are templates of this blueprint (html.py); its script and stylesheet are html.ASSETS.
bp = Blueprint("ogcapi", __name__, template_folder="templates")

EXTENSION = "hpc_wps.ogcapi"
PREFIXES = ("/", "/processes", "/jobs", "/conformance", "/api")  # what the API answers for (/ itself only)
JOB_VERSION = "ogcapi/1"  # recorded with the jobs this binding creates (the job table's version column)
ACCEPT_POST = "application/json"


@dataclass(frozen=True)
class Binding:
    jobs: JobService
    urls: Urls
    auth: Authenticator
    title: str
    description: str
    megabytes: int  # what a complex input that declares no maximum may hold
    api: bytes  # the OpenAPI document, rendered once
    # The process list's JSON by the processes a caller sees: the registry and URLs are fixed, so a
    # list is encoded once per distinct set of processes ([processes] roles make a few), not per request.
    process_lists: dict[tuple[str, ...], bytes] = field(default_factory=dict)


def init_app(app: Flask, settings: Settings, jobs: JobService, auth: Authenticator) -> None:
    urls = Urls(settings.server.url)
    title, description = settings.metadata.title, settings.metadata.abstract
    api = json.dumps(openapi.document(urls, title, description, app_version())).encode()
    megabytes = settings.inputs.default_megabytes
    app.extensions[EXTENSION] = Binding(jobs, urls, auth, title, description, megabytes, api)
    app.register_blueprint(bp)
    app.register_blueprint(html.ASSETS)
    app.context_processor(lambda: html.page_header(auth.auth.mode))


def app_version() -> str:
    try:
        return version("hpc-wps")
    except PackageNotFoundError:
        return "0"


def binding() -> Binding:
    return current_app.extensions[EXTENSION]


def caller(operation: str, api: Binding | None = None) -> Caller:
    """The caller of this request, as WPS finds it (``app/auth``), for the WPS operation it amounts to;
    ``api``: the binding, where the view has it already (``binding`` costs a lookup through a proxy)."""
    try:
        return html.remember((api or binding()).auth.caller_of(operation, request))
    except Refusal as refusal:
        raise refused(refusal) from None


def refused(refusal: Refusal) -> ApiError:
    return ApiError(refusal.status, refusal.text, locator=refusal.locator, headers=refusal.headers)


def problem_response(error: ApiError) -> Response:
    """The problem document; as a page of the monitor when HTML was negotiated (same status and headers)."""
    if error_encoding() == "html":
        body, content_type = html.page("error", error.document(), None)
        response = Response(body, status=error.status, content_type=content_type, headers=html.PAGE_HEADERS)
    else:
        response = Response(json.dumps(error.document()), status=error.status, content_type=PROBLEM)
    response.vary.add("Accept")
    response.headers.update(error.headers)
    return response


# -- discovery -------------------------------------------------------------------------------------


@bp.route("/", methods=["GET"])
def landing_page() -> Response:
    api = binding()
    caller("GetCapabilities", api)
    return respond("landing", landing.landing_page(api.urls, api.title, api.description))


@bp.route("/conformance", methods=["GET"])
def conformance() -> Response:
    caller("GetCapabilities")
    return respond("conformance", landing.conformance())


@bp.route("/api", methods=["GET"])
def api_document() -> Response:
    api = binding()
    caller("GetCapabilities", api)
    return Response(api.api, content_type=OPENAPI)


@bp.route("/processes", methods=["GET"])
def process_list() -> Response:
    api = binding()
    offered = api.jobs.processes(caller("GetCapabilities", api))
    key = tuple(p.identifier for p in offered)
    return respond_kept("processes", api.process_lists, key, lambda: processes.process_list(offered, api.urls))


@bp.route("/processes/<process_id>", methods=["GET"])
def process_description(process_id: str) -> Response:
    api = binding()
    process = api.jobs.process(process_id, caller("DescribeProcess", api))
    document = processes.description(process, api.urls, api.megabytes)
    return respond("process", document, more=lambda: pages.process_page(document))


# -- execution -------------------------------------------------------------------------------------


def _body() -> Any:
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        declared = request.mimetype or "none"
        error = ApiError(
            415, f"an execute request is JSON (application/json); this one is {declared}", locator="Content-Type"
        )
        error.headers["Accept-Post"] = ACCEPT_POST
        raise error
    try:
        return json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):
        raise ApiError(400, "the request body is not JSON", locator="body") from None


@bp.route("/processes/<process_id>/execution", methods=["POST"])
def execute(process_id: str) -> Response:
    api = binding()
    who = caller("Execute", api)
    process = api.jobs.process(process_id, who)
    parsed = parse_execute(process, _body())
    try:
        stored = job_request(process, parsed.execute)
    except OWSException as exc:
        raise from_ows(exc) from None
    mode, preferred = execution_mode(process, request.headers.get("Prefer", ""))
    subscribers = Subscribers(**parsed.subscribers) if parsed.subscribers else None
    if mode is JobMode.ASYNC:
        job = api.jobs.submit(process, JOB_VERSION, stored, who, subscribers)
        headers = {"Location": api.urls.job(job.id)}
        if preferred:
            headers["Preference-Applied"] = "respond-async"
        return _job(job, 201, headers)
    job = api.jobs.run(process, JOB_VERSION, stored, who, disconnect_check(request.environ), subscribers=subscribers)
    if job.status is not JobStatus.SUCCEEDED:
        raise ApiError(500, job.message or "the process failed", code="JobFailed", instance=api.urls.job(job.id))
    link = {"Link": f'<{api.urls.job(job.id)}>; rel="monitor"'}
    if parsed.execute.response == "raw":
        return _raw(results.raw(job, api.urls, api.jobs.outputs_dir(job.id)), link)
    return respond("results", results.results(job, api.urls, api.jobs.outputs_dir(job.id)), headers=link)


def _raw(output: results.Raw, headers: dict[str, str]) -> Response:
    if output.file is not None:  # streamed from disk in blocks, as WPS serves outputs
        response = send_file(output.file, mimetype=output.content_type, conditional=False, max_age=0)
    else:
        response = Response(output.body, status=output.status, content_type=output.content_type)
    response.headers.update(output.headers)
    for name, value in headers.items():
        response.headers.add(name, value)  # a Link of the output's beside the job's
    return response


# -- jobs ------------------------------------------------------------------------------------------


def _job_id(job_id: str) -> str:
    """Only a job id reaches the job table: anything else is a job that does not exist (named in the
    answer only when it prints on one short line)."""
    if not JOB_ID.match(job_id):
        raise NoSuchJob(job_id if job_id.isprintable() and len(job_id) <= 64 else "(not a job id)")
    return job_id


def _job(job: Job, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A job's statusInfo; as a page, with its timeline and outputs."""
    urls = binding().urls
    return respond("job", job_docs.status_info(job, urls), status, headers, lambda: pages.job_page(job, urls))


@bp.route("/jobs", methods=["GET"])
def job_list() -> Response:
    api = binding()
    query = job_docs.list_query(request.args)
    found = api.jobs.list_states(query.which, caller("GetStatus", api))
    return respond("jobs", job_docs.job_list(found, query, api.urls), more=lambda: pages.list_page(request.args))


@bp.route("/jobs/<job_id>", methods=["GET"])
def job_status(job_id: str) -> Response:
    api = binding()
    who = caller("GetStatus", api)
    return _job(api.jobs.get(_job_id(job_id), who))


@bp.route("/jobs/<job_id>", methods=["DELETE"])
def dismiss(job_id: str) -> Response:
    api = binding()
    who = caller("Dismiss", api)
    return _job(api.jobs.dismiss(_job_id(job_id), who))


@bp.route("/jobs/<job_id>/results", methods=["GET"])
def job_results(job_id: str) -> Response:
    api = binding()
    who = caller("GetResult", api)
    job = api.jobs.result(_job_id(job_id), who)
    return respond("results", results.results(job, api.urls, api.jobs.outputs_dir(job.id)))


# -- errors ----------------------------------------------------------------------------------------


@bp.errorhandler(Exception)
def error_response(exc: Exception) -> Response:
    """Every error under the API's routes; the app's fallback calls it for the API's paths no route serves."""
    if isinstance(exc, ApiError):
        return problem_response(exc)
    if isinstance(exc, JobServiceError):
        return problem_response(from_service(exc))
    if isinstance(exc, RequestEntityTooLarge):
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        return problem_response(ApiError(413, f"the request is larger than {limit} bytes", locator="body"))
    return errors.answer(exc, lambda status, detail: problem_response(ApiError(status, detail)))
