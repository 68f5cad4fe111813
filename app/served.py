"""How an output reaches a browser: the headers that keep a client's content from running on our origin.

An output is whatever a process wrote, and for ``echo`` whatever a client sent: an HTML page or an SVG
with a script, served from the service's own origin, would run with access to it (stored XSS). Every
output (a download of ``/wps/jobs/<id>/outputs/<file>`` and a raw Execute response) therefore carries:

- ``X-Content-Type-Options: nosniff``: the browser uses the declared type and never guesses HTML in
  ``text/plain`` or ``application/octet-stream``. Every answer of the service carries it, outputs or
  not (``nosniff``, around the whole app);
- ``Content-Security-Policy: sandbox; default-src 'none'; ...`` (``SANDBOX``): should the document be
  rendered at all, it runs no script, submits no form, opens no window, fetches nothing (no external
  stylesheet or XSLT, no tracking image) and has an opaque origin, so it reaches no cookie or job of ours.
  Inline styles and ``data:`` images stay allowed, so an SVG map still looks right;

and by type, one of three treatments (``treatment``):

- **data** (JSON, plain text, CSV, raster images other than SVG, octet-stream, NetCDF, HDF, GeoTIFF,
  ZIP...): inline. No browser runs any of them; nosniff keeps it that way.
- **viewable** (XML and any ``+xml`` type, SVG): inline under the sandbox. Browsers render these and run
  scripts in them (an ``xml-stylesheet`` instruction, XHTML or SVG elements with ``<script>``); people
  also look at a GML or an SVG map in a browser, and the sandbox lets them without anything running.
- **attachment** (HTML, XHTML, JavaScript, and any type not named here): ``Content-Disposition:
  attachment``, downloaded, never rendered. A page shown on our origin misleads even with scripts off
  (a login form that looks like ours), and an unknown type is one whose behaviour we cannot vouch for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

NOSNIFF = ("X-Content-Type-Options", "nosniff")
SANDBOX = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"

DATA_TYPES = frozenset(
    {
        "application/json",
        "application/geo+json",
        "application/octet-stream",
        "application/x-netcdf",
        "application/netcdf",
        "application/x-hdf5",
        "application/x-hdf",
        "application/zip",
        "application/gzip",
        "text/plain",
        "text/csv",
        "text/tab-separated-values",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/tiff",
        "image/geotiff",
        "image/bmp",
    }
)
ATTACHMENT_TYPES = frozenset(
    {"text/html", "application/xhtml+xml", "application/javascript", "text/javascript", "application/ecmascript"}
)
SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")


def essence(content_type: str) -> str:
    """``text/xml; charset=utf-8`` -> ``text/xml``: the type and subtype, lower-cased."""
    return content_type.split(";", 1)[0].strip().lower()


def treatment(content_type: str) -> str:
    """``data``, ``viewable`` or ``attachment`` for a content type (see the module's documentation)."""
    mime = essence(content_type)
    if mime in DATA_TYPES:
        return "data"
    if mime not in ATTACHMENT_TYPES and (mime in ("text/xml", "application/xml") or mime.endswith("+xml")):
        return "viewable"
    return "attachment"


def output_headers(content_type: str, filename: str | None = None) -> dict[str, str]:
    """The headers an output of ``content_type`` is served with; ``filename`` names a download."""
    headers = {"Content-Security-Policy": SANDBOX}
    if treatment(content_type) == "attachment":
        named = filename is not None and SAFE_FILE_NAME.fullmatch(filename)
        headers["Content-Disposition"] = f'attachment; filename="{filename}"' if named else "attachment"
    return headers


def nosniff(wsgi_app: WSGIApplication) -> WSGIApplication:
    """``wsgi_app`` with ``nosniff`` on every answer, whichever part of the app made it (an output, a
    page, a document, an error, a static file, a 404 of no blueprint). Added as the answer starts, at
    a tenth of the cost of a Flask ``after_request`` function, which every request would pay for."""

    def answer(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            headers.append(NOSNIFF)
            return start_response(status, headers, *exc_info)

        return wsgi_app(environ, start)

    return answer
