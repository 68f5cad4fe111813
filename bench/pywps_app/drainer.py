"""PyWPS queue drainer, run beside gunicorn (python -m pywps_app.drainer).

PyWPS 4.8.1 starts a stored (queued) async request only when a running job
finishes (Process.launch_next_process), so a request stored just after the
last running job looked at the queue waits forever (geopython/pywps#493;
seen here: 50 of 500 jobs stuck). PyWPS's docs describe a `[jobqueue]
pause` service that looks at the queue periodically, but 4.8.1 does not
ship it. This is that service: a single-threaded process (jobs are forked,
so not from a thread of a busy gunicorn worker, where a fork can inherit a
held SQLite lock and hang) which every PYWPS_BENCH_QUEUE_PAUSE seconds
starts stored requests with PyWPS's own launch_next_process while fewer
than `parallelprocesses` jobs run. Same configuration as the server.
"""

import logging
import multiprocessing
import os
import time
import types

from pywps import configuration, dblog
from pywps.app.Process import Process

from pywps_app.wsgi import service

LOGGER = logging.getLogger("PYWPS")


def main():
    pause = float(os.environ.get("PYWPS_BENCH_QUEUE_PAUSE", "0.5"))
    maxparallel = int(configuration.get_config_value("server", "parallelprocesses"))
    launcher = types.SimpleNamespace(service=service)  # all launch_next_process uses
    while True:
        time.sleep(pause)
        multiprocessing.active_children()  # reap finished jobs
        try:
            for _ in range(max(1, maxparallel)):
                running, stored = dblog.get_process_counts()
                if not stored or (maxparallel != -1 and running >= maxparallel):
                    break
                Process.launch_next_process(launcher)
        except Exception:  # keep draining
            LOGGER.exception("queue drainer")


if __name__ == "__main__":
    main()
