"""Operations endpoints of the web service: /health, /metrics, and the access log with request metrics."""

from __future__ import annotations

from functools import partial

from flask import Flask
from sqlalchemy.engine import Engine

from app.ops import access, health, metrics
from app.ops.probe import Probe
from app.settings import Settings


def init_app(app: Flask, settings: Settings, engine: Engine) -> None:
    probe = Probe(settings, engine)
    app.add_url_rule("/health", "health", partial(health.ready, probe))
    app.add_url_rule("/health/live", "health_live", health.live)
    if settings.monitoring.metrics:
        app.add_url_rule("/metrics", "metrics", partial(metrics.exposition, probe, settings.monitoring.metrics_clients))
    app.before_request(access.start)
    app.after_request(access.finish)
