"""GET /metrics: the Prometheus text format, the same whichever web worker answers.

Two sources. Counters and histograms (requests, job ends) live in the process that counted them;
under ``hpc-wps serve`` every process (web workers, dispatcher) writes them to a file in the
directory named by PROMETHEUS_MULTIPROC_DIR and the answer adds all files up, so counts survive a
worker that dies and never go backwards. Gauges (queue depth, jobs per executor, live dispatchers)
are read from the job table at scrape time by ``TableCollector``. Without that directory (one
process, as in tests or a single gunicorn worker) this process's own metrics are shown.

``[monitoring] metrics_clients`` restricts who may read it (by client address), ``metrics = false``
removes the endpoint. Its own errors are plain text too (the blueprint's handler), as a scraper expects.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterable, Iterator
from functools import partial

from flask import Blueprint, Response, request
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app import errors
from app.ops.probe import Probe
from scheduler.executor_names import WEB

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class TableCollector(Collector):
    """Gauges from the job table. An unreachable table yields ``hpc_wps_job_table_up 0`` and no other
    gauge: a scrape answers in any case, and absent series are not mistaken for zeros."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("hpc_wps_job_table_up", "1 if the job table answered this scrape, else 0")
        try:
            snapshot = self.probe.read()
        except Exception as exc:  # the scrape must answer: the failure is the metric
            log.warning("metrics: the job table does not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        shape = snapshot.shape
        yield GaugeMetricFamily("hpc_wps_queue_depth", "Accepted jobs waiting for an executor", value=shape.waiting)
        yield GaugeMetricFamily(
            "hpc_wps_queue_oldest_seconds",
            "Age of the oldest waiting job (0: none waits)",
            value=shape.waiting_seconds(),
        )
        # Executors of live dispatchers, and "web" (synchronous jobs), show 0 when idle rather than nothing.
        known = {WEB} | {name for d in snapshot.alive for name in d.executors.split(",") if name}
        yield _per_executor("hpc_wps_jobs_running", "Jobs running, per executor", shape.running, known)
        yield _per_executor(
            "hpc_wps_jobs_queued", "Jobs handed to an executor that has not started them", shape.queued, known
        )
        yield GaugeMetricFamily(
            "hpc_wps_dispatchers_alive", "Dispatchers whose heartbeat is recent", value=len(snapshot.alive)
        )


def _per_executor(name: str, documentation: str, counts: dict[str, int], known: Iterable[str]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation, labels=["executor"])
    for executor in sorted(set(known) | set(counts)):
        gauge.add_metric([executor], counts.get(executor, 0))
    return gauge


def client_allowed(address: str | None, networks: Iterable[str]) -> bool:
    networks = list(networks)
    if not networks:
        return True
    try:
        client = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(n, strict=False) for n in networks)


def add_counts(registry: CollectorRegistry) -> None:
    """The counters and histograms: every process's files under ``hpc-wps serve``, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)


def blueprint(probe: Probe, clients: tuple[str, ...]) -> Blueprint:
    bp = Blueprint("metrics", __name__)
    bp.add_url_rule("/metrics", "exposition", partial(exposition, probe, clients))
    bp.register_error_handler(Exception, partial(errors.answer, render=_text))
    return bp


def _text(status: int, message: str) -> Response:
    return Response(f"{message}\n", status=status, mimetype="text/plain")


def exposition(probe: Probe, clients: tuple[str, ...]) -> Response:
    if not client_allowed(request.remote_addr, clients):
        return _text(403, "metrics are not served to this address")
    registry = CollectorRegistry(auto_describe=False)
    add_counts(registry)
    registry.register(TableCollector(probe))
    encoder, content_type = choose_encoder(request.headers.get("Accept"))  # OpenMetrics when the scraper asks
    return Response(encoder(registry), content_type=content_type)
