"""Build the Flask application: settings, job table engine, process registry, the WPS blueprint,
/health and /metrics."""

from __future__ import annotations

from flask import Flask

from app import ops
from app.logs import configure_logging
from app.settings import Settings, load_settings
from app.wps.service import WPSService
from app.wps.views import bp
from processes.container.config import configured
from processes.registry import build_registry
from scheduler.db import make_engine


def build_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings.logging)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_request_size
    engine = make_engine(settings.database_url)
    registry = build_registry(
        settings.processing.demo_processes, settings.processing.processes, configured(settings).processes
    )
    app.extensions["hpc_wps"] = WPSService(settings, engine, registry)
    app.register_blueprint(bp)
    ops.init_app(app, settings, engine)
    return app
