"""Signing in to the job monitor with ``[auth] mode = oidc``: the cookie that keeps a browser's token.

A browser cannot add ``Authorization: Bearer`` to a page it follows a link to, so the monitor's
sign-in page takes an access token the site's identity provider issued, the authenticator verifies it
as any Bearer token (``Authenticator.sign_in``), and the answer sets it as a cookie:

- HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Secure when the
  service's public URL is https, Path the API's root (WPS below it too: outputs are downloaded there);
- Max-Age the token's remaining lifetime, so the browser forgets it when the token ends.

When the cookie counts as the caller's token, and why a change needs a header beside it, is
``app/auth/browser.py``. The token never appears in a URL or a log line: it arrives in a POST body.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Response, g

from app.auth.browser import COOKIE
from app.ogcapi.urls import Urls
from scheduler.access import ANONYMOUS_CALLER, Caller

SHOWN = "hpc_wps_caller"  # the request's caller in ``flask.g``, shown in the pages' header


def remember(who: Caller) -> Caller:
    """Keep the caller of this request for the page header (``shown``)."""
    setattr(g, SHOWN, who)
    return who


def shown(mode: str) -> dict[str, Any]:
    """What the pages' header shows: with users on, who is signed in (None: no one), and whether this
    service signs browsers in itself (oidc) rather than through its proxy (header)."""
    who: Caller | None = g.get(SHOWN)
    user = who.name if who is not None and who != ANONYMOUS_CALLER else None
    return {"auth_mode": mode, "signed_in": user}


def _where(urls: Urls) -> dict[str, Any]:
    public = urlsplit(urls.root)
    return {"path": public.path or "/", "secure": public.scheme == "https", "httponly": True, "samesite": "Strict"}


def keep(response: Response, token: str, lifetime: int, urls: Urls) -> Response:
    response.set_cookie(COOKIE, token, max_age=lifetime, **_where(urls))
    response.headers["Cache-Control"] = "no-store"
    return response


def forget(response: Response, urls: Urls) -> Response:
    response.delete_cookie(COOKIE, **_where(urls))
    response.headers["Cache-Control"] = "no-store"
    return response
