"""hpc-wps: the web service. ``create_app`` is the application factory; ``serving_app`` is what gunicorn loads.

The factory's imports are deferred so that ``app.settings`` stays importable without Flask, by the
dispatcher and by the launcher on compute nodes.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from app.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    from app.factory import build_app

    return build_app(settings)


def serving_app() -> Flask:
    """The application as a server process loads it (``gunicorn 'app:serving_app()'``, which ``hpc-wps
    serve`` runs): built, then every object its start left moved out of the garbage collector's sight.

    A worker starts with about 90,000 objects that live as long as it does. A full collection walks
    them all: a 50 to 100 ms pause for every request in flight in that worker, every few thousand
    requests (measured: the p99 of ``GET /jobs?limit=50`` in ``bench/ogcapi.py``). Not done in
    ``create_app``: a process that builds many apps (the tests) would keep each one's garbage for ever.
    """
    app = create_app()
    gc.collect()
    gc.freeze()
    return app
