"""Build the Flask application: settings, job table engine, process registry, the WPS blueprint."""

from __future__ import annotations

import logging

from flask import Flask

from app.settings import Settings, load_settings
from app.wps.service import WPSService
from app.wps.views import bp
from processes.container.config import configured
from processes.registry import build_registry
from scheduler.db import make_engine


def configure_logging(settings: Settings) -> None:
    handler: logging.Handler = (
        logging.FileHandler(settings.logging.file) if settings.logging.file else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level)


def build_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_request_size
    engine = make_engine(settings.database_url)
    registry = build_registry(
        settings.processing.demo_processes, settings.processing.processes, configured(settings).processes
    )
    app.extensions["hpc_wps"] = WPSService(settings, engine, registry)
    app.register_blueprint(bp)
    return app
