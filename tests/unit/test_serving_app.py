"""What gunicorn loads (``app:serving_app()``): the app ``create_app`` builds, with the objects left by
the worker's start frozen out of the garbage collector's full passes (``gc.freeze``)."""

from __future__ import annotations

import gc

import pytest

import app


def test_serving_app_freezes_what_the_start_left(monkeypatch: pytest.MonkeyPatch):
    built = object()
    monkeypatch.setattr(app, "create_app", lambda: built)
    before = gc.get_freeze_count()
    try:
        assert app.serving_app() is built
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_serve_runs_gunicorn_on_the_serving_app():
    from app.cli import _gunicorn_command
    from app.settings import Settings

    assert _gunicorn_command(Settings())[-1] == "app:serving_app()"
