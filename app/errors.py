"""How the web app answers errors, each part of it in its own format.

Every blueprint answers the errors of its own routes: the WPS binding with OWS exception reports,
/health in JSON, /metrics in plain text. Flask finds a blueprint's handlers only once one of its
routes has matched, so what no route serves (a wrong path, a wrong method) is answered here, at the
app: under a prefix a binding owns (/wps) by that binding, so WPS clients still read a report, and
anywhere else with a small JSON problem document (RFC 9457) that says nothing of any protocol.

Whatever the format, the job table out of reach (the database restarting, unreachable, or SQLite
locked past its busy timeout) is a passing condition: 503 with Retry-After rather than an internal
error, and one log line rather than a traceback (the driver's message can name hosts and users a
client should not see). No traceback ever reaches a client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus

from flask import Flask, Response, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, MethodNotAllowed

log = logging.getLogger(__name__)

OUT_OF_REACH = (OperationalError, InterfaceError, PoolTimeout)
RETRY_AFTER = 5  # seconds a client is asked to wait while the job table is out of reach
OUT_OF_REACH_TEXT = "the job table is out of reach; try again in a few seconds"
INTERNAL_TEXT = "internal server error; the service log has the details"

Render = Callable[[int, str], Response]  # (HTTP status, message) -> a response in some format
Handler = Callable[[Exception], Response]


def retry_later(exc: Exception, response: Response) -> Response:
    """Log ``exc`` in one line and ask the client to come back."""
    log.warning("the job table is out of reach serving %s: %s", request.path, str(exc).split("\n", 1)[0])
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def answer(exc: Exception, render: Render) -> Response:
    """Any error, in the format of ``render``."""
    if isinstance(exc, HTTPException):
        response = render(exc.code or 500, exc.description or exc.name)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response
    if isinstance(exc, OUT_OF_REACH):
        return retry_later(exc, render(503, OUT_OF_REACH_TEXT))
    log.exception("unexpected error serving %s", request.path)
    return render(500, INTERNAL_TEXT)


def problem(status: int, detail: str) -> Response:
    body = {"title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def owns(prefix: str, path: str) -> bool:
    return path == prefix or path.startswith(f"{prefix}/")


def init_app(app: Flask, owners: Mapping[str, Handler]) -> None:
    """``owners``: path prefix -> the handler of the binding that answers for every path below it."""

    def fallback(exc: Exception) -> Response:
        for prefix, handler in owners.items():
            if owns(prefix, request.path):
                return handler(exc)
        return answer(exc, problem)

    app.register_error_handler(Exception, fallback)
