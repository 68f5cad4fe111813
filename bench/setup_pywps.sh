#!/usr/bin/env bash
# Creates bench/.venv-pywps with PyWPS 4.8.1 (and gunicorn) for the
# benchmark, and installs wrk if it is missing. PyWPS goes nowhere else.
#   bash bench/setup_pywps.sh            # create or bring up to date
#   bash bench/setup_pywps.sh --recreate # start from an empty venv
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-pywps"

py="${PYTHON:-}"
if [ -z "$py" ]; then
    for cand in python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1; then py="$cand"; break; fi
    done
fi
[ -n "$py" ] || { echo "no python3 found" >&2; exit 1; }

if [ "${1:-}" = "--recreate" ]; then
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements-pywps.txt"
"$venv/bin/python" - <<'PY'
import pywps, gunicorn
assert pywps.__version__ == "4.8.1", pywps.__version__
print("PyWPS", pywps.__version__, "gunicorn", gunicorn.__version__, "ready in bench/.venv-pywps")
PY

if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends wrk \
            || { apt-get -o DPkg::Lock::Timeout=600 update \
                 && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends wrk; }
    else
        echo "wrk is missing: install the Debian package wrk" >&2
        exit 1
    fi
fi
