#!/usr/bin/env python3
"""Instructions per request, in process: hpc-wps against a bare Flask view of the same bytes (callgrind).

    apt-get install valgrind && .venv/bin/python bench/instructions.py [--requests 500] [--path /processes]

Wall-clock timings of one request in process swung by 30 µs between identical runs on this machine
kind, more than a change worth making; callgrind counts the instructions instead, and repeat runs
agree within about 15,000 a request. Each app runs in a valgrind process of its own, called through
WSGI directly (no server, no socket): the app as gunicorn loads it (``app:serving_app()``), request
metrics in multiprocess mode as under ``hpc-wps serve``, the access log written to /dev/null by
the loop itself (its writer thread is not started, so that every line is counted here),
``PYTHONHASHSEED=0``. Counted: ``--requests`` requests after 300 unmeasured ones, inside a call of
``sorted`` (callgrind's ``--toggle-collect=builtin_sorted``), so that imports and the app's start
are not.
"""

import argparse
import gc
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

import servers

HERE = os.path.abspath(__file__)
WARM = 300


def environ(path):
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:5000",
        "HTTP_ACCEPT": "application/json",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def call(app, path):
    statuses = []
    body = b"".join(app(environ(path), lambda status, headers, exc_info=None: statuses.append(status)))
    if not statuses[0].startswith("200"):
        raise RuntimeError(f"{path} answered {statuses[0]}: {body[:200]!r}")
    return body


def inner(which, path, requests):
    """In the valgrind process: build the app, warm it, then run the counted requests."""
    workdir = tempfile.mkdtemp(prefix="hpc-wps-instructions-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(dir=workdir)
    os.environ["HPC_WPS_CONFIG"], _ = servers.write_ours_config(workdir, 5000)
    sys.path.insert(0, servers.REPO_DIR)
    from flask import Flask, Response

    from app import serving_app
    from app.ops import access

    ours = serving_app()
    access.LINES._started_in = os.getpid()  # no writer thread: ``flush`` below writes every line, counted
    body = call(ours, path)
    bare = Flask("bare")
    bare.add_url_rule(path, "bare", lambda: Response(body, content_type="application/json"))
    app = ours if which == "ours" else bare

    def run(count):
        for _ in range(count):
            call(app, path)
        access.LINES.flush()

    run(WARM)
    gc.collect()  # every run starts its count with the collector's generations empty
    sorted([0], key=lambda _: run(requests))


def counted(which, path, requests, tmpdir):
    out = os.path.join(tmpdir, f"callgrind.{which}")
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--collect-atstart=no",
        "--toggle-collect=builtin_sorted",
        sys.executable,
        HERE,
        "--inner",
        which,
        "--path",
        path,
        "--requests",
        str(requests),
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    with open(os.devnull, "w") as devnull:
        subprocess.run(cmd, check=True, env=env, stdout=devnull, stderr=devnull, timeout=1800)
    with open(out) as f:
        total = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.MULTILINE)
    if total is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(total.group(1)) / requests


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--path", default="/processes")
    parser.add_argument("--inner", choices=("ours", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        inner(args.inner, args.path, args.requests)
        return
    if not shutil.which("valgrind"):
        sys.exit("valgrind is missing: apt-get install valgrind")
    tmpdir = tempfile.mkdtemp(prefix="hpc-wps-callgrind-")
    try:
        per = {which: counted(which, args.path, args.requests, tmpdir) for which in ("bare", "ours")}
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    print(f"GET {args.path}, {args.requests} requests in process, instructions per request:")
    print(f"  bare Flask {per['bare']:10,.0f}")
    print(f"  hpc-wps    {per['ours']:10,.0f}  ({per['ours'] - per['bare']:,.0f} above bare Flask)")
    print(f"  bare : ours {per['bare'] / per['ours']:.2f} (the rate ours would reach without a server's own cost)")


if __name__ == "__main__":
    main()
