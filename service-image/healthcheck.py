#!/opt/hpc-wps/bin/python
"""HEALTHCHECK of the service image: GET /health on the port the service listens on.

Healthy when it answers 200: a web worker serves, the job table answers and a dispatcher beats. On
503 the reasons it gives are printed, and ``docker inspect`` shows them in the health log.
"""

import json
import sys
import urllib.error
import urllib.request

from app.settings import load_settings

port = load_settings().server.port
url = f"http://127.0.0.1:{port}/health"
try:
    urllib.request.urlopen(url, timeout=4).close()  # any answer but 2xx raises HTTPError
    sys.exit(0)
except urllib.error.HTTPError as exc:
    try:
        reasons = json.loads(exc.read()).get("reasons") or [f"HTTP {exc.code}"]
    except ValueError:
        reasons = [f"HTTP {exc.code}"]
    print(f"unhealthy: {'; '.join(reasons)}", file=sys.stderr)
    sys.exit(1)
except OSError as exc:
    print(f"unhealthy: {url}: {exc}", file=sys.stderr)
    sys.exit(1)
