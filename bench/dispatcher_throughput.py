"""The dispatcher and the local pool alone: how fast accepted jobs run to their end, without HTTP.

Submits N asynchronous ``sleep delay=0`` jobs through the WSGI app in process (so each job row is the
one a real Execute writes, and the submission cost is measured too), then runs a real dispatcher in
this process until every job is final. Prints submissions per second, completed jobs per second, and
the CPU the dispatcher and its workers spent per job. Rerun with
``.venv/bin/python bench/dispatcher_throughput.py [--jobs 500] [--slots 2] [--database URL]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from app import create_app  # noqa: E402
from app.settings import load_settings  # noqa: E402
from scheduler.db import make_engine  # noqa: E402
from scheduler.dispatcher import Dispatcher  # noqa: E402
from scheduler.models import FINAL_STATES, JOBS  # noqa: E402

EXECUTE = (
    '<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" '
    'service="WPS" version="2.0.0" mode="async" response="document"><ows:Identifier>sleep</ows:Identifier>'
    '<wps:Input id="delay"><wps:Data>0</wps:Data></wps:Input>'
    '<wps:Output id="sleep_output" transmission="value"/></wps:Execute>'
)


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--database", default="", help="job table URL; default: SQLite in a temporary directory")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hpc-wps-bench-") as workdir:
        environ = {
            "HPC_WPS_SERVER_WORKDIR": workdir,
            "HPC_WPS_PROCESSING_SLOTS": str(args.slots),
            "HPC_WPS_PROCESSING_QUEUE_LENGTH": str(args.jobs + 1),
            "HPC_WPS_LOGGING_LEVEL": "WARNING",
        }
        if args.database:
            environ["HPC_WPS_DATABASE_URL"] = args.database
        os.environ.update(environ)
        settings = load_settings()
        from migrations import upgrade  # the same step as `hpc-wps db upgrade`

        upgrade(settings.database_url)
        client = create_app(settings).test_client()

        latencies = []
        for _ in range(args.jobs):
            started = time.perf_counter()
            response = client.post("/wps", data=EXECUTE, content_type="text/xml")
            latencies.append(time.perf_counter() - started)
            assert response.status_code in (200, 201), response.data[:300]
        latencies.sort()

        engine = make_engine(settings.database_url)
        dispatcher = Dispatcher(settings.jobs, engine, client.application.extensions["hpc_wps"].registry)
        stop = threading.Event()
        final = [s.value for s in FINAL_STATES]

        def watch() -> None:
            count = select(func.count()).select_from(JOBS).where(JOBS.c.status.in_(final))
            while not stop.is_set():
                with engine.connect() as conn:
                    if conn.execute(count).scalar_one() >= args.jobs:
                        stop.set()
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        cpu_before, children_before = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        watcher.start()
        dispatcher.run(stop)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu_before
        children = cpu_seconds(resource.RUSAGE_CHILDREN) - children_before
        with engine.connect() as conn:
            states = dict(conn.execute(select(JOBS.c.status, func.count()).group_by(JOBS.c.status)).all())

    figures = {
        "jobs": args.jobs,
        "slots": args.slots,
        "database": "postgresql" if args.database.startswith("postgresql") else "sqlite",
        "submit_p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "submit_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
        "completed_jobs_per_s": round(args.jobs / elapsed, 1),
        "dispatcher_cpu_ms_per_job": round(cpu * 1000 / args.jobs, 3),
        "reaped_children_cpu_ms_per_job": round(children * 1000 / args.jobs, 3),
        "states": states,
    }
    print(json.dumps(figures, indent=2))
    return 0 if states.get("succeeded") == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
