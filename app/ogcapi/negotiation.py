"""Which encoding a response is in: ``f`` in the query wins, then the ``Accept`` header, then JSON.

Each resource is rendered once as a dict (``landing.py``, ``processes.py``, ``jobs.py``...) and
encoded here by name (``landing``, ``process``, ``job``...): JSON as it is, HTML (the job monitor,
``html.py``) as a page rendered from the same dict. A page may show what the document leaves out (the
executor a job runs on, its native id): the view then passes ``more``, called only when a page is
asked for, so a JSON response never pays for it. JSON is listed first:
``Accept: */*``, no Accept header, and an Accept this service cannot meet all get JSON (a client that
asked for something else still reads a document rather than a bare 406).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from flask import Request, Response, request

from app.ogcapi import html
from app.ogcapi.errors import bad_request
from app.ogcapi.urls import JSON

More = Callable[[], Mapping[str, Any]]  # what a page shows beyond the document
# (resource name, document, more) -> (body, content type)
Encoder = Callable[[str, Any, More | None], tuple[bytes, str]]


def _json(resource: str, document: Any, more: More | None) -> tuple[bytes, str]:
    return json.dumps(document, ensure_ascii=False).encode("utf-8"), JSON


# f value -> (media type, encoder, headers of every answer in it); the first is the default.
ENCODINGS: dict[str, tuple[str, Encoder, dict[str, str]]] = {
    "json": (JSON, _json, {}),
    "html": (html.MEDIA_TYPE, html.page, html.PAGE_HEADERS),
}


def chosen() -> str:
    """The ``f`` value of the encoding this request gets."""
    req = _request()
    asked = _f(req)
    if asked is not None:
        if asked not in ENCODINGS:
            raise bad_request(f"f is one of {', '.join(ENCODINGS)}", "f")
        return asked
    return _by_accept(req)


def error_encoding() -> str:
    """The ``f`` value of an error's answer: as ``chosen``, but an ``f`` this service cannot meet gets
    JSON (the problem that says so) rather than a second error."""
    req = _request()
    asked = _f(req)
    if asked is not None:
        return asked if asked in ENCODINGS else next(iter(ENCODINGS))
    return _by_accept(req)


def _request() -> Request:
    """The request itself: read a few times here, once through Flask's proxy (each pass costs as much
    as parsing the Accept header)."""
    return request._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _f(req: Request) -> str | None:
    """The query's ``f``. A request without a query has none, and its empty query is not parsed (a
    fifth of what negotiating cost); looked up, not fetched with ``get``, which raises and catches a
    KeyError when absent."""
    if not req.environ.get("QUERY_STRING"):
        return None
    args = req.args
    return args["f"] if "f" in args else None  # noqa: SIM401


# Accept headers that get JSON without being parsed: none, anything, JSON itself (what clients send).
PLAIN_JSON = frozenset(("", "*/*", JSON))


def _by_accept(req: Request) -> str:
    if req.headers.get("Accept", "").strip() in PLAIN_JSON:
        return "json"
    by_type = {media_type: name for name, (media_type, *_) in ENCODINGS.items()}
    best = req.accept_mimetypes.best_match(list(by_type))
    return by_type.get(best or "", next(iter(ENCODINGS)))


def respond(
    resource: str,
    document: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    more: More | None = None,
) -> Response:
    _, encoder, own = ENCODINGS[chosen()]
    body, content_type = encoder(resource, document, more)
    return encoded(body, content_type, status, own | headers if headers else own)


def encoded(body: bytes, content_type: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A response of a document already encoded (``respond``, or bytes a view keeps)."""
    response = Response(body, status=status, content_type=content_type)
    # Vary added whole, not through ``response.vary``, which parses and rewrites the header; and
    # added, not passed to ``Response``, which checks each header it is given anew (40% of the cost).
    response.headers.add("Vary", "Accept")
    if headers:
        response.headers.update(headers)
    return response


def respond_kept(resource: str, kept: dict[Any, bytes], key: Any, document: Callable[[], Any]) -> Response:
    """As ``respond`` for a document that only changes with ``key``: its JSON is encoded once and kept
    in ``kept``; other encodings are rendered each time."""
    if chosen() != "json":
        return respond(resource, document())
    body = kept.get(key)
    if body is None:
        body = kept[key] = _json(resource, document(), None)[0]
    return encoded(body, JSON)
