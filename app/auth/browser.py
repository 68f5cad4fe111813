"""How a browser carries its token: the job monitor's sign-in cookie, and when that cookie counts.

A page navigation cannot add ``Authorization: Bearer``, so the monitor's sign-in
(``app/ogcapi/signin.py``) keeps a token, verified as any Bearer token is, in an HttpOnly cookie.
A browser sends that cookie with whatever request a page makes it send, a page of another site
included (SameSite=Strict stops most, not a sibling site of the same domain): so the cookie counts on
its own only for reading (a safe method and an operation that changes nothing). A change (Execute,
Dismiss, or any request by another method) counts it only beside :data:`MONITOR_HEADER`, which the
monitor's script sends: a form of another site cannot set a header, and another origin's script
cannot send one without a CORS preflight this service never grants (CSRF).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from werkzeug.http import parse_cookie

COOKIE = "hpc-wps-token"
MONITOR_HEADER = "X-Requested-With"
MONITOR_VALUE = "hpc-wps-monitor"
# Browsers keep a cookie of at most 4096 bytes, name and attributes included: a longer token would
# be dropped without a word, so the sign-in refuses it instead.
MAX_COOKIE_TOKEN = 3800
# A JWT in its compact form and nothing else: PyJWT's base64 decoding skips stray characters, which a
# cookie (and its Set-Cookie header) is better off never holding.
COMPACT_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
SAFE_METHODS = frozenset({"GET", "HEAD"})
READING = frozenset({"GetCapabilities", "DescribeProcess", "GetStatus", "GetResult"})


def cookie_token(headers: Mapping[str, str]) -> str | None:
    """The token in the sign-in cookie of this request, if it carries one."""
    return parse_cookie(headers.get("Cookie", "")).get(COOKIE) or None


def from_monitor(headers: Mapping[str, str]) -> bool:
    """Whether the monitor's own script sent this request (the header no other site can set)."""
    return headers.get(MONITOR_HEADER) == MONITOR_VALUE


def cookie_counts(operation: str, method: str, headers: Mapping[str, str]) -> bool:
    """Whether the sign-in cookie may stand for the caller of ``operation`` by ``method``."""
    return (method in SAFE_METHODS and operation in READING) or from_monitor(headers)
