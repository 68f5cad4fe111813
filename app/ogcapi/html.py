"""The HTML encoding (``f=html``, or a browser's Accept): the job monitor, one Jinja2 page per resource.

Each page is rendered from the same dict the JSON encoding writes (``templates/ogcapi/<resource>.html``),
so a page never shows a job differently from its document; ``more`` adds what only a page shows
(``pages.py``). Autoescaping is on for every ``.html`` template (Flask's default), so a process title
or a job message with markup is shown as text.

The pages run no inline script and load nothing from elsewhere: their one script and stylesheet are
served by the service itself (``ASSETS``, from ``static/``), and ``PAGE_POLICY`` (a Content-Security-Policy set on every
page: ``PAGE_HEADERS``) lets the browser run and load only those, and fetch only from this service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, g, render_template

from scheduler.access import ANONYMOUS_CALLER, Caller

MEDIA_TYPE = "text/html"
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# What every page is answered with (its error pages too). Set where a page is made, not on whatever
# answer has an HTML type: a raw output of a job may be HTML, and keeps its sandbox (``app/served.py``).
PAGE_HEADERS = {"Content-Security-Policy": PAGE_POLICY}
# The monitor's script and stylesheet: a blueprint of their own, as they are no resource of the API.
ASSETS = Blueprint("monitor", __name__, static_folder="static", static_url_path="/static/monitor")
CALLER = "hpc_wps_caller"  # the request's caller in ``flask.g``, for the pages' header


def remember(who: Caller) -> Caller:
    """Keep the caller of this request for the pages' header (``page_header``), which shows the
    anonymous caller as no one: not kept (``g`` is a proxy, and every request of a service without
    users would pay for it)."""
    if who != ANONYMOUS_CALLER:
        setattr(g, CALLER, who)
    return who


def page_header(mode: str) -> dict[str, Any]:
    """What every page's header shows, with users on (``[auth] mode``): who is signed in (None: no one
    yet, or the request was refused before anyone was found), and with ``oidc`` the way to sign in or
    out (``signin.py``); with ``header`` the proxy signs users in."""
    who: Caller | None = g.get(CALLER)
    user = who.name if who is not None and who != ANONYMOUS_CALLER else None
    return {"auth_mode": mode, "signed_in": user}


def page(resource: str, document: Any, more: Callable[[], Mapping[str, Any]] | None) -> tuple[bytes, str]:
    extra = dict(more()) if more is not None else {}
    body = render_template(f"ogcapi/{resource}.html", doc=document, resource=resource, **extra)
    return body.encode("utf-8"), f"{MEDIA_TYPE}; charset=utf-8"
