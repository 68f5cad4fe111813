"""WSGI entry point for PyWPS 4.8.1 in the benchmark.

Run from bench/ (the benchmark does it):
    PYWPS_CFG=pywps_app/pywps.cfg PYWPS_BENCH_PORT=... PYWPS_BENCH_TMP=... \
    .venv-pywps/bin/gunicorn -w 2 -b 127.0.0.1:PORT pywps_app.wsgi:application

Two things on top of a plain `Service`, both deployment-level, PyWPS's own
code is untouched:

* PyWPS has no route for its outputs and status documents: the WPS 1.0.0
  statusLocation it hands out is `outputurl`/<uuid>.xml, so, as PyWPS's
  flask demo does, the files under `outputpath` are served at /outputs.

* The recursion limit is raised: PyWPS 4.8.1 starts each queued (stored)
  async request from the process of the job that just finished, deep in
  its stack (fork inherits it), so long chains of queued jobs otherwise
  fail with RecursionError (seen with 500 jobs: 4 failed).

The benchmark also runs pywps_app/drainer.py beside gunicorn, see there.
"""

import os
import sys

from pywps import configuration
from pywps.app.Service import Service
from werkzeug.middleware.shared_data import SharedDataMiddleware

from pywps_app.processes import all_processes

_CFG = os.environ.get("PYWPS_CFG", os.path.join(os.path.dirname(__file__), "pywps.cfg"))
os.environ.setdefault("PYWPS_BENCH_MODE", "multiprocessing")

sys.setrecursionlimit(int(os.environ.get("PYWPS_BENCH_RECURSION_LIMIT", "20000")))

service = Service(all_processes(), [_CFG])

for key in ("workdir", "outputpath", "temp_path"):
    os.makedirs(configuration.get_config_value("server", key), exist_ok=True)

application = SharedDataMiddleware(
    service, {"/outputs": configuration.get_config_value("server", "outputpath")}, cache=False
)
