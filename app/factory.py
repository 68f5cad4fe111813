"""Build the Flask application: settings, job table engine, process registry, the job service, its two
protocol bindings (WPS at /wps, OGC API - Processes at the root), /health and /metrics, and the
answers for errors no blueprint answers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask

from app import errors, ops, served
from app.auth import Authenticator
from app.ogcapi import signin
from app.ogcapi import views as ogcapi
from app.settings import Settings, check_process_names, load_settings
from app.wps import views as wps
from processes.container.config import configured
from processes.pywps_adapter import PywpsSettings
from processes.registry import Registry, build_registry
from scheduler.db import make_engine
from scheduler.logs import configure_logging
from scheduler.service import JobService

log = logging.getLogger(__name__)

# Named in [processing] processes by configurations older than the rule that the [docker] processes
# file's processes are always offered; accepted, and said to be unneeded.
LEGACY_CONTAINER_ENTRY = "processes.container:configured"

# The job service, shared by every protocol binding (tests reach its engine and settings through it).
JOBS_EXTENSION = "hpc_wps"


def service_registry(settings: Settings) -> Registry:
    """The processes this configuration offers, the same in web workers and the dispatcher."""
    paths = [p for p in settings.processing.processes if p != LEGACY_CONTAINER_ENTRY]
    if len(paths) != len(settings.processing.processes):
        log.warning("[processing] processes: %s is no longer needed and is ignored", LEGACY_CONTAINER_ENTRY)
    containers = configured(settings.docker)
    pywps = PywpsSettings(server_url=settings.server.url)
    registry = build_registry(settings.processing.demo_processes, paths, containers.processes, pywps)
    return Registry(containers.apply(list(registry)))


class ServiceFlask(Flask):
    """Flask, remembering what ``ensure_sync`` (the documented place to change it) answers for each
    view and hook: Flask asks ``inspect`` anew whether each is a coroutine function on every request,
    three times a request here, a thirtieth of what ``GET /processes`` costs."""

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        synced = self._synced.get(func)
        if synced is None:
            synced = self._synced[func] = super().ensure_sync(func)
        return synced


def build_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings.logging)
    app = ServiceFlask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_request_size
    registry = service_registry(settings)
    check_process_names(settings, {p.identifier for p in registry})
    jobs = JobService(settings.jobs, make_engine(settings.database_url, settings.server.threads), registry)
    app.extensions[JOBS_EXTENSION] = jobs
    auth = Authenticator(settings.auth)
    wps.init_app(app, settings, jobs, auth)
    ogcapi.init_app(app, settings, jobs, auth)
    signin.init_app(app)
    ops.init_app(app, settings, jobs.engine)
    owners = {wps.PREFIX: wps.error_response} | dict.fromkeys(ogcapi.PREFIXES + signin.PREFIXES, ogcapi.error_response)
    errors.init_app(app, owners)
    app.wsgi_app = served.nosniff(app.wsgi_app)  # type: ignore[method-assign]
    return app
