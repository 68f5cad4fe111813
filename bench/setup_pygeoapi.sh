#!/usr/bin/env bash
# Creates bench/.venv-pygeoapi with pygeoapi (its hello-world process and TinyDB job manager) and
# gunicorn for bench/ogcapi.py, and installs wrk if it is missing. pygeoapi goes nowhere else.
#   bash bench/setup_pygeoapi.sh            # create or bring up to date
#   bash bench/setup_pygeoapi.sh --recreate # start from an empty venv
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-pygeoapi"
py="${PYTHON:-python3}"
if [ "${1:-}" = "--recreate" ]; then
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-pygeoapi.txt"
"$venv/bin/python" -c 'import pygeoapi, gunicorn; print("pygeoapi", pygeoapi.__version__, "gunicorn", gunicorn.__version__, "ready in bench/.venv-pygeoapi")'
if ! command -v wrk >/dev/null 2>&1; then
    apt-get install -y -q wrk
fi
