"""Signing in to the job monitor with ``[auth] mode = oidc``: the cookie that keeps a browser's token.

A browser cannot add ``Authorization: Bearer`` to a page it follows a link to, so the monitor's
sign-in page takes an access token the site's identity provider issued, the authenticator verifies it
as any Bearer token (``Authenticator.sign_in``), and the answer sets it as a cookie:

- HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Secure when the
  service's public URL is https, Path the API's root (WPS below it too: outputs are downloaded there);
- Max-Age the token's remaining lifetime, so the browser forgets it when the token ends.

When the cookie counts as the caller's token, and why a change needs a header beside it, is
``app/auth/browser.py``; the sign-in and sign-out are such changes too (no other site may sign a
browser in as someone else). The token never appears in a URL or a log line: it comes in a POST body.
These routes are the monitor's, not resources of the API (its OpenAPI document leaves them out), so
they are a blueprint of their own, answering errors as the API does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, request

from app.auth import Refusal
from app.auth.browser import COOKIE, MONITOR_HEADER, from_monitor
from app.ogcapi import views
from app.ogcapi.errors import ApiError
from app.ogcapi.negotiation import respond
from app.ogcapi.urls import Urls

bp = Blueprint("signin", __name__)
bp.register_error_handler(Exception, views.error_response)
PREFIXES = ("/signin", "/signout")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _signing_in() -> views.Binding:
    """The binding, when this service signs browsers in itself (``mode = oidc``); 404 otherwise."""
    api = views.binding()
    mode = api.auth.auth.mode
    if mode != "oidc":
        raise ApiError(404, f"signing in is for [auth] mode = oidc; this service's mode is {mode}")
    return api


def _from_monitor() -> None:
    if not from_monitor(request.headers):
        raise ApiError(403, "sign in and out from the job monitor's page, with its script on", locator=MONITOR_HEADER)


@bp.route("/signin", methods=["GET"])
def page() -> Response:
    api = _signing_in()
    with contextlib.suppress(ApiError):  # a stale cookie is what one signs in again for, not an error here
        views.caller("GetCapabilities")  # the header then shows who is signed in already
    return respond("signin", {"title": "Sign in", "issuer": api.auth.auth.issuer})


@bp.route("/signin", methods=["POST"])
def sign_in() -> Response:
    api = _signing_in()
    _from_monitor()
    token = request.form.get("token", "").strip()
    if not token:
        raise ApiError(400, "paste an access token of the identity provider", locator="token")
    try:
        who, lifetime = api.auth.sign_in(token)
    except Refusal as refusal:  # the pasted token is at fault, not an Authorization header
        raise views.refused(dataclasses.replace(refusal, locator="token")) from None
    body = json.dumps({"user": who.name, "expiresIn": lifetime})
    response = Response(body, content_type="application/json")
    response.set_cookie(COOKIE, token, max_age=lifetime, **_cookie(api.urls))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/signout", methods=["POST"])
def sign_out() -> Response:
    api = _signing_in()
    _from_monitor()
    response = Response(status=204)
    response.delete_cookie(COOKIE, **_cookie(api.urls))
    response.headers["Cache-Control"] = "no-store"
    return response


def _cookie(urls: Urls) -> dict[str, Any]:
    public = urlsplit(urls.root)
    return {"path": public.path or "/", "secure": public.scheme == "https", "httponly": True, "samesite": "Strict"}
