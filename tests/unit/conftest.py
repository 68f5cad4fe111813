"""Unit tests use no service: the job table is SQLite here. The same tests that exercise the table run
against PostgreSQL too, from ``tests/web`` (see ``test_transitions_postgres.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.sqlite'}"
