"""The ``hpc-wps`` command: serve, dispatcher, db upgrade, config, jobs.

``serve`` is a small supervisor: it migrates the job table, then runs gunicorn and the dispatcher as
two child processes, restarts the dispatcher if it dies, and stops both on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence

from app.jobs_cli import add_jobs_parser
from app.settings import ENV_CONFIG, Settings, SettingsError, check_process_names, load_settings, reference

log = logging.getLogger("hpc_wps")


class RestartBackoff:
    """How long ``serve`` waits before it starts a dead dispatcher again: 1 s after a dispatcher that ran
    a while, then twice as long after each one that died young, up to a minute. A dispatcher that dies
    at once (a database out of reach, a broken executor) would otherwise be started every second for
    ever, flooding the log and the job table with its start-up work; one that ran for ``settled``
    seconds was not in a loop, and is restarted at once."""

    def __init__(self, first: float = 1.0, longest: float = 60.0, settled: float = 120.0) -> None:
        self.first, self.longest, self.settled = first, longest, settled
        self.next = first

    def delay(self, ran_for: float) -> float:
        """The wait before the next start, for a dispatcher that ran ``ran_for`` seconds."""
        if ran_for >= self.settled:
            self.next = self.first
        wait, self.next = self.next, min(self.next * 2, self.longest)
        return wait


WORKER_TIMEOUT = 30  # seconds, gunicorn's --timeout


def _settings(args: argparse.Namespace) -> Settings:
    if args.config:
        os.environ[ENV_CONFIG] = os.path.abspath(args.config)
    for key in ("host", "port", "workers", "threads"):
        value = getattr(args, key, None)
        if value is not None:
            os.environ[f"HPC_WPS_SERVER_{key.upper()}"] = str(value)
    return load_settings()


def cmd_db(args: argparse.Namespace) -> int:
    from migrations import upgrade

    settings = _settings(args)
    upgrade(settings.database_url)
    print(f"job table at {settings.database_url} is up to date")
    return 0


def _check_service(settings: Settings) -> None:
    """What settings alone cannot tell: the processes load, ``[processes]`` names only offered ones, and
    this Python has the packages of every executor the configuration uses (SettingsError otherwise)."""
    from app.factory import service_registry
    from scheduler.executors.registry import MissingPackages, check_packages, needed_executors

    registry = service_registry(settings)
    check_process_names(settings, {p.identifier for p in registry})
    try:
        check_packages(needed_executors(settings.jobs, registry))
    except MissingPackages as exc:
        raise SettingsError(f"{settings.source}: {exc}") from None


def cmd_config(args: argparse.Namespace) -> int:
    if args.action == "reference":
        print(reference())
        return 0
    settings = _settings(args)
    _check_service(settings)
    print(f"configuration from {settings.source} is valid; WPS endpoint {settings.server.url}")
    return 0


def cmd_config_from_pywps(args: argparse.Namespace) -> int:
    """The converted configuration on standard output, its notes as comments at its top (they stay with
    the file they explain); standard error only says how many there are, so a redirected run is not silent."""
    from app.pywps_config import convert, document, read_pywps_config

    text, notes = convert(read_pywps_config(args.files, os.environ))
    sys.stdout.write(document(text, notes, args.files))
    if notes:
        print(
            f"hpc-wps: {len(notes)} notes on PyWPS settings that did not carry over as they were: "
            "see the comments at the top of the output",
            file=sys.stderr,
        )
    return 0


def _preload_for_drmaa(settings: Settings) -> None:
    """Re-execute this process with the libraries libdrmaa needs preloaded.

    Grid Engine's libdrmaa pulls in libjemalloc, which can only be loaded at process start (static
    TLS); preloading it later is impossible, so the dispatcher restarts itself once with LD_PRELOAD.
    """
    preload = settings.scheduler.drmaa_preload
    uses_drmaa = settings.scheduler.system == "drmaa" and (
        settings.processing.mode == "scheduler" or settings.scheduler.scheduler_processes
    )
    if not preload or not uses_drmaa or preload in os.environ.get("LD_PRELOAD", "").split(":"):
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(p for p in (preload, env.get("LD_PRELOAD", "")) if p)
    if settings.scheduler.drmaa_library:
        env.setdefault("DRMAA_LIBRARY_PATH", settings.scheduler.drmaa_library)
    os.execve(sys.executable, [sys.executable, "-m", "app.cli", *sys.argv[1:]], env)


def cmd_dispatcher(args: argparse.Namespace) -> int:
    from app.factory import service_registry
    from app.ogcapi.notifications import notification_body
    from scheduler.db import make_engine
    from scheduler.dispatcher import Dispatcher
    from scheduler.logs import configure_logging

    settings = _settings(args)
    _preload_for_drmaa(settings)
    configure_logging(settings.logging)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    body = notification_body(settings.server.url, settings.jobs)  # subscribers are OGC API jobs'
    dispatcher = Dispatcher(settings.jobs, make_engine(settings.database_url), service_registry(settings), body)
    _serve_dispatcher_metrics(settings)
    log.info("dispatcher started: mode %s, %d local slots", settings.processing.mode, settings.processing.slots)
    dispatcher.run(stop)
    log.info("dispatcher stopped")
    return 0


def _serve_dispatcher_metrics(settings: Settings) -> None:
    """A dispatcher on a host of its own counts the jobs it ends (durations, failures by reason) in
    its own process, where no /metrics of a web server can read them: serve them on a port.

    Forked local workers close the listening socket, or a busy worker that outlives this dispatcher
    would hold the port its successor binds.
    """
    monitoring = settings.monitoring
    if not monitoring.dispatcher_metrics_port:
        return
    from prometheus_client import CollectorRegistry, start_http_server

    from app.ops.metrics import add_counts

    registry = CollectorRegistry(auto_describe=False)
    add_counts(registry)
    try:
        server, _thread = start_http_server(
            monitoring.dispatcher_metrics_port, monitoring.dispatcher_metrics_host, registry=registry
        )
    except OSError as exc:  # monitoring must not stop the jobs: dispatch without it, and say so
        log.error("dispatcher metrics not served on port %d: %s", monitoring.dispatcher_metrics_port, exc)
        return
    os.register_at_fork(after_in_child=server.socket.close)
    log.info("dispatcher metrics at http://%s:%d/metrics", *server.server_address[:2])


def cmd_run_job(args: argparse.Namespace) -> int:
    """``hpc-wps run-job DIR``, for operators: the same as the nodes' ``python -m scheduler.run_job DIR``."""
    from scheduler.run_job import run

    return run(args.job_dir)


def _gunicorn_command(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{settings.server.host}:{settings.server.port}",
        "--workers",
        str(settings.server.workers),
        # Threads, so that a waiting synchronous Execute holds one thread, not a whole worker; gunicorn's
        # gthread hands a connection that sends nothing for a while back to the worker's poller, where
        # it holds no thread at all (a slow client).
        "--worker-class",
        "gthread",
        "--threads",
        str(settings.server.threads),
        # How long a worker's main loop may stay silent before gunicorn replaces it. Requests run in
        # the threads beside that loop, so a synchronous Execute running to its limit never trips it.
        "--timeout",
        str(WORKER_TIMEOUT),
        "--graceful-timeout",
        "30",
        # gunicorn 27 opens a control socket at one fixed path per user: two services would collide.
        "--no-control-socket",
        # The longest request line gunicorn allows (KVP Execute with inline data); longer: use POST.
        "--limit-request-line",
        "8190",
        "--logger-class",
        "app.gunicorn_logging.ServiceLogger",
        "app:serving_app()",
    ]


def _metrics_dir() -> tuple[str, bool]:
    """The directory where every process of ``serve`` keeps its metrics, emptied: PROMETHEUS_MULTIPROC_DIR
    if set, else a new temporary one. Returns it and whether it is ours to remove at the end."""
    from app.ops.metrics import MULTIPROC_ENV

    chosen = os.environ.get(MULTIPROC_ENV)
    if not chosen:
        return tempfile.mkdtemp(prefix="hpc-wps-metrics-"), True
    os.makedirs(chosen, exist_ok=True)
    for name in os.listdir(chosen):
        if name.endswith(".db"):  # counts of a previous run: their processes are gone
            os.unlink(os.path.join(chosen, name))
    return chosen, False


def cmd_serve(args: argparse.Namespace) -> int:
    from app.ops.metrics import MULTIPROC_ENV
    from migrations import upgrade
    from scheduler.logs import configure_logging

    settings = _settings(args)
    _check_service(settings)  # before anything starts: a dispatcher that cannot run jobs would only crash
    configure_logging(settings.logging)  # the supervisor's lines too, in the service's format
    upgrade(settings.database_url)
    # Web workers and the dispatcher inherit it, so /metrics adds up the counts of all of them.
    metrics_dir, own_metrics_dir = _metrics_dir()
    os.environ[MULTIPROC_ENV] = metrics_dir
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    dispatcher_cmd = [sys.executable, "-m", "app.cli", "dispatcher"]
    web = subprocess.Popen(_gunicorn_command(settings))
    dispatcher, started = subprocess.Popen(dispatcher_cmd), time.monotonic()
    backoff, restart_at = RestartBackoff(), None
    log.info("hpc-wps serving %s (configuration: %s)", settings.server.url, settings.source)
    code = 0
    while not stopping.is_set():
        if web.poll() is not None:
            code = web.returncode or 1
            log.error("gunicorn exited with code %s; stopping", web.returncode)
            break
        if restart_at is None and dispatcher.poll() is not None:
            wait = backoff.delay(time.monotonic() - started)
            log.error("dispatcher exited with code %s; restarting it in %g s", dispatcher.returncode, wait)
            restart_at = time.monotonic() + wait
        if restart_at is not None and time.monotonic() >= restart_at:
            dispatcher, started, restart_at = subprocess.Popen(dispatcher_cmd), time.monotonic(), None
        stopping.wait(0.5)
    for child in (web, dispatcher):
        if child.poll() is None:
            child.terminate()
    for child in (web, dispatcher):
        try:
            child.wait(timeout=40)
        except subprocess.TimeoutExpired:
            child.kill()
    if own_metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return code


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="hpc-wps", description="OGC WPS 1.0.0/2.0 server for local pools, HPC schedulers and containers"
    )
    top.add_argument("--config", help=f"INI configuration file (default: ${ENV_CONFIG}, else embedded defaults)")
    commands = top.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run gunicorn and the dispatcher")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--threads", type=int)
    serve.set_defaults(func=cmd_serve)
    commands.add_parser("dispatcher", help="run only the dispatcher").set_defaults(func=cmd_dispatcher)
    run_job = commands.add_parser("run-job", help="run one batch job from its directory (on a compute node)")
    run_job.add_argument("job_dir")
    run_job.set_defaults(func=cmd_run_job)
    db = commands.add_parser("db", help="job table maintenance")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(func=cmd_db)
    config = commands.add_parser("config", help="check the configuration, print the reference, convert PyWPS's")
    config.set_defaults(func=cmd_config)
    config_actions = config.add_subparsers(dest="action")
    config_actions.add_parser("check", help="validate the configuration (the default)")
    config_actions.add_parser("reference", help="print every key with its default and meaning")
    from_pywps = config_actions.add_parser(
        "from-pywps", help="print a PyWPS configuration as hpc-wps's, with notes on what did not carry over"
    )
    from_pywps.add_argument(
        "files", nargs="+", metavar="PYWPS_CFG", help="PyWPS files, each overriding the ones before"
    )
    from_pywps.set_defaults(func=cmd_config_from_pywps)
    add_jobs_parser(commands, _settings)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"hpc-wps: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
