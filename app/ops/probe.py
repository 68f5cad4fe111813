"""What /health and /metrics read from the job database, in one short read with a time limit.

On PostgreSQL the probe has an engine of its own: a connection attempt and every statement give up
after ``[monitoring] probe_timeout`` (the service's engine waits as long as the network does), and a
pool of one connection keeps health checks from taking connections the service needs. SQLite is a
local file that readers in WAL mode never wait for, so the service's engine serves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from app.settings import Settings
from scheduler.heartbeat import DispatcherState, dispatchers
from scheduler.queries import TableShape, table_shape


@dataclass(frozen=True)
class Snapshot:
    shape: TableShape
    dispatchers: list[DispatcherState]
    seconds: float  # how long the read took

    @property
    def alive(self) -> list[DispatcherState]:
        return [d for d in self.dispatchers if d.alive]


def probe_engine(url: str, timeout: float) -> Engine:
    return create_engine(
        url,
        pool_size=1,
        max_overflow=1,
        pool_timeout=timeout,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": max(2, math.ceil(timeout)),  # libpq counts whole seconds, at least 2
            "options": f"-c statement_timeout={int(timeout * 1000)}",
        },
    )


class Probe:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        monitoring = settings.monitoring
        self.heartbeat_timeout = monitoring.heartbeat_timeout
        url = settings.database_url
        self.engine = probe_engine(url, monitoring.probe_timeout) if url.startswith("postgresql") else engine

    def read(self) -> Snapshot:
        """Raises whatever the database raises."""
        started = time.perf_counter()
        with self.engine.connect() as conn:
            shape = table_shape(conn)
            states = dispatchers(conn, self.heartbeat_timeout)
        return Snapshot(shape, states, time.perf_counter() - started)
