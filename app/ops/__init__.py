"""Operations endpoints of the web service: /health, /metrics, and the access log with request metrics."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.engine import Engine

from app.ops import access, health, metrics
from app.ops.probe import Probe
from app.settings import Settings


def init_app(app: Flask, settings: Settings, engine: Engine) -> None:
    probe = Probe(settings, engine)
    app.register_blueprint(health.blueprint(probe))
    if settings.monitoring.metrics:
        app.register_blueprint(metrics.blueprint(probe, settings.monitoring.metrics_clients))
    app.wsgi_app = access.timed(app.wsgi_app)  # type: ignore[method-assign]
    app.after_request(access.finish)
