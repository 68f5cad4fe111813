"""The job table's guards (``tests/unit/test_transitions.py``) against PostgreSQL: the same tests,
collected again here with a PostgreSQL table, so the unit folder needs no service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.unit.test_transitions import *  # noqa: F403 (every test of that module, collected here again)
from tests.unit.test_transitions import migrated


@pytest.fixture(scope="module")
def engine(pg_url: str) -> Iterator[Engine]:
    yield from migrated(pg_url)
