#!/opt/hpc-wps/bin/python
"""HEALTHCHECK of the service image: GetCapabilities answers on the port the service listens on."""

import sys
import urllib.request

from app.settings import load_settings

port = load_settings().server.port
url = f"http://127.0.0.1:{port}/wps?service=WPS&request=GetCapabilities"
try:
    with urllib.request.urlopen(url, timeout=4) as response:
        sys.exit(0 if response.status == 200 and b"Capabilities" in response.read() else 1)
except OSError as exc:
    print(f"unhealthy: {url}: {exc}", file=sys.stderr)
    sys.exit(1)
