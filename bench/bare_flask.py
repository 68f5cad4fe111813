"""A bare Flask view serving cached WPS documents from memory: the ceiling
our GetCapabilities / DescribeProcess can reach under the same gunicorn.

As a script (the benchmark runs it with the repository's .venv, which has
Flask and gunicorn):

    python bench/bare_flask.py --port PORT --cache-dir DIR --source http://127.0.0.1:OURS/wps
    python bench/bare_flask.py --port PORT --cache-dir DIR --fixed 4096,8192

fetches the two documents once (from our running server with --source, or
makes filler bytes of the given sizes with --fixed), writes them to DIR,
then execs gunicorn (2 gthread workers of 16 threads, as `hpc-wps serve`, 127.0.0.1) on `bare_flask:app`; each
worker reads the files into memory once at import and the view only picks
one of the two byte strings by the `request` query parameter.
"""

import argparse
import os
import sys
import urllib.request

CAPS_QUERY = "service=WPS&request=GetCapabilities"
DESCRIBE_QUERY = "service=WPS&version=1.0.0&request=DescribeProcess&identifier=ALL"
FILES = {"getcapabilities": "capabilities", "describeprocess": "describe"}


def _fetch(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        if r.status != 200:
            raise RuntimeError(f"{url} answered HTTP {r.status}")
        return r.read(), r.headers.get("Content-Type", "text/xml; charset=utf-8")


def _filler(size, root):
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n<' + root + b">"
    tail = b"</" + root + b">\n"
    body = (b"bare flask filler " * (size // 18 + 1))[: max(0, size - len(head) - len(tail))]
    return head + body + tail


def prepare(cache_dir, source=None, fixed=None):
    os.makedirs(cache_dir, exist_ok=True)
    if source:
        docs = {"capabilities": _fetch(f"{source}?{CAPS_QUERY}"), "describe": _fetch(f"{source}?{DESCRIBE_QUERY}")}
    else:
        caps, desc = (int(x) for x in fixed.split(","))
        ctype = "text/xml; charset=utf-8"
        docs = {
            "capabilities": (_filler(caps, b"Capabilities"), ctype),
            "describe": (_filler(desc, b"ProcessDescriptions"), ctype),
        }
    for name, (body, ctype) in docs.items():
        with open(os.path.join(cache_dir, name + ".body"), "wb") as f:
            f.write(body)
        with open(os.path.join(cache_dir, name + ".type"), "w") as f:
            f.write(ctype)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache-dir", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--source", help="our WPS endpoint to copy the documents from")
    src.add_argument("--fixed", help="CAPS_BYTES,DESCRIBE_BYTES of filler instead")
    src.add_argument("--copy", help="a URL whose bytes are served at /processes (bench/ogcapi.py)")
    args = p.parse_args(argv)
    if args.copy:
        os.makedirs(args.cache_dir, exist_ok=True)
        body, ctype = _fetch(args.copy)
        with open(os.path.join(args.cache_dir, "copy.body"), "wb") as f:
            f.write(body)
        with open(os.path.join(args.cache_dir, "copy.type"), "w") as f:
            f.write(ctype)
    else:
        prepare(args.cache_dir, args.source, args.fixed)
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    os.environ["BARE_FLASK_CACHE"] = os.path.abspath(args.cache_dir)
    here = os.path.dirname(os.path.abspath(__file__))
    os.execv(
        gunicorn,
        [
            gunicorn,
            "--workers",
            str(args.workers),
            # the same gunicorn settings as our `hpc-wps serve`
            "--worker-class",
            "gthread",
            "--threads",
            "16",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--timeout",
            "30",
            "--graceful-timeout",
            "30",
            "--no-control-socket",
            "--chdir",
            here,
            "bare_flask:app",
        ],
    )


def _load(cache_dir):
    docs = {}
    for key, name in [*FILES.items(), ("copy", "copy")]:
        if not os.path.exists(os.path.join(cache_dir, name + ".body")):
            continue
        with open(os.path.join(cache_dir, name + ".body"), "rb") as f:
            body = f.read()
        with open(os.path.join(cache_dir, name + ".type")) as f:
            ctype = f.read().strip()
        docs[key] = (body, ctype)
    return docs


if __name__ == "__main__":
    main()
elif os.environ.get("BARE_FLASK_CACHE"):
    from flask import Flask, Response, request

    _DOCS = _load(os.environ["BARE_FLASK_CACHE"])
    app = Flask(__name__)

    @app.route("/wps")
    def wps():
        doc = _DOCS.get(request.args.get("request", "").lower())
        if doc is None:
            return Response(b"unknown request", status=400, mimetype="text/plain")
        return Response(doc[0], content_type=doc[1])

    @app.route("/processes")
    def processes():
        return Response(_DOCS["copy"][0], content_type=_DOCS["copy"][1])
