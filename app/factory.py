"""Build the Flask application: settings, job table engine, process registry, the WPS blueprint,
/health and /metrics."""

from __future__ import annotations

import logging

from flask import Flask

from app import ops
from app.settings import Settings, load_settings
from app.wps.service import WPSService
from app.wps.views import bp
from processes.container.config import configured
from processes.registry import Registry, build_registry
from scheduler.db import make_engine
from scheduler.logs import configure_logging

log = logging.getLogger(__name__)

# Named in [processing] processes by configurations older than the rule that the [docker] processes
# file's processes are always offered; accepted, and said to be unneeded.
LEGACY_CONTAINER_ENTRY = "processes.container:configured"


def service_registry(settings: Settings) -> Registry:
    """The processes this configuration offers, the same in web workers and the dispatcher."""
    paths = [p for p in settings.processing.processes if p != LEGACY_CONTAINER_ENTRY]
    if len(paths) != len(settings.processing.processes):
        log.warning("[processing] processes: %s is no longer needed and is ignored", LEGACY_CONTAINER_ENTRY)
    return build_registry(settings.processing.demo_processes, paths, configured(settings.docker).processes)


def build_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings.logging)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_request_size
    engine = make_engine(settings.database_url)
    registry = service_registry(settings)
    app.extensions["hpc_wps"] = WPSService(settings, engine, registry)
    app.register_blueprint(bp)
    ops.init_app(app, settings, engine)
    return app
