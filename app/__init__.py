"""hpc-wps: the web service. ``create_app`` is the application factory gunicorn calls.

The factory's imports are deferred so that ``app.settings`` stays importable without Flask, by the
dispatcher and by the launcher on compute nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from app.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    from app.factory import build_app

    return build_app(settings)
