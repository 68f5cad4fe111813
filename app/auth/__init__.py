"""Who a request comes from, for every protocol binding: ``[auth] mode`` none, oidc or header.

A binding asks :meth:`Authenticator.caller` once per operation, in one place, and hands the
:class:`~scheduler.access.Caller` it gets to the job service, which applies ownership and process
roles. A refusal is a :class:`Refusal` with the HTTP status and headers the binding answers with, in
its own exception format.

- oidc: ``Authorization: Bearer <JWT>`` (``tokens.py``). No token: 401 with ``WWW-Authenticate:
  Bearer``; a bad one: 401 with ``error="invalid_token"``, on every operation, even one allowed
  anonymously, so a client learns at once that its token expired. A browser's token is the job
  monitor's sign-in cookie instead (``browser.py``: when it counts, and why a change needs a header
  beside it); :meth:`Authenticator.sign_in` verifies the token it keeps, as any Bearer token.
- header: the user name a reverse proxy sets in ``[auth] header``, believed only from
  ``trusted_proxies``; the header from any other address is a 403 (someone tries to name a user), as is
  a request without a user for an operation that needs one (the proxy authenticates, not this service,
  so there is no challenge to offer).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.auth.browser import COMPACT_JWT, MAX_COOKIE_TOKEN, MONITOR_HEADER, cookie_counts, cookie_token
from app.auth.settings import AuthSettings
from app.auth.tokens import KeySet, KeysUnavailable, TokenError, TokenVerifier, claim, fetch_jwks, read_jwks_file
from scheduler.access import ANONYMOUS_CALLER, Caller
from scheduler.models import ANONYMOUS

REALM = "hpc-wps"
USER_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,255}$")  # fits the owner column, prints on one line
BEARER = re.compile(r"^Bearer +(\S+) *$", re.IGNORECASE)


class Asking(Protocol):
    """What of a web request decides who it comes from."""

    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def remote_addr(self) -> str | None: ...
    @property
    def method(self) -> str: ...


@dataclass
class Refusal(Exception):
    """A request refused for who it comes from (or for not saying)."""

    status: int
    text: str
    locator: str
    headers: dict[str, str] = field(default_factory=dict)


class Authenticator:
    def __init__(self, auth: AuthSettings) -> None:
        self.auth = auth
        self.anonymous = frozenset(auth.anonymous)
        self.verifier: TokenVerifier | None = None
        if auth.mode == "oidc":
            if auth.jwks_file:
                keys = KeySet(lambda: read_jwks_file(auth.jwks_file), float("inf"), auth.jwks_file)
            else:
                keys = KeySet(lambda: fetch_jwks(auth.jwks_url), auth.jwks_cache, auth.jwks_url)
            self.verifier = TokenVerifier(keys, auth.issuer, auth.audience, auth.leeway)
        self.proxies = [ipaddress.ip_network(entry, strict=False) for entry in auth.trusted_proxies]

    def caller_of(self, operation: str, request: Asking) -> Caller:
        """As :meth:`caller`, of a web request (Flask's ``request``). Without users (``mode = none``)
        every caller is the anonymous one and the request is not read: each of its attributes costs a
        context lookup through Flask's proxy, a tenth of a cheap request's time."""
        if self.auth.mode == "none":
            return ANONYMOUS_CALLER
        return self.caller(operation, request.headers, request.remote_addr, request.method)

    def caller(self, operation: str, headers: Mapping[str, str], remote_addr: str | None, method: str = "") -> Caller:
        """The caller of ``operation`` (a name of ``app.auth.settings.OPERATIONS``), or a :class:`Refusal`.
        ``method`` is the request's HTTP method: without it the sign-in cookie never counts on its own."""
        if self.auth.mode == "oidc":
            return self._from_token(operation, self._token(operation, headers, method))
        if self.auth.mode == "header":
            return self._from_proxy(operation, headers.get(self.auth.header), remote_addr)
        return ANONYMOUS_CALLER

    def _anonymous(self, operation: str, refusal: Refusal) -> Caller:
        if operation in self.anonymous:
            return ANONYMOUS_CALLER
        raise refusal

    def _token(self, operation: str, headers: Mapping[str, str], method: str) -> str | None:
        """The Bearer token of the Authorization header, else of the sign-in cookie where it counts."""
        match = BEARER.match(headers.get("Authorization") or "")
        if match is not None:
            return match.group(1)
        token = cookie_token(headers)  # another scheme is no token either
        if token is not None and not cookie_counts(operation, method, headers):
            text = f"{operation} with the sign-in cookie is accepted from the job monitor's own pages only"
            raise Refusal(403, text, MONITOR_HEADER)
        return token

    def _from_token(self, operation: str, token: str | None) -> Caller:
        if token is None:
            challenge = {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
            return self._anonymous(
                operation, Refusal(401, f"{operation} needs a Bearer token", "Authorization", challenge)
            )
        return self._verified(token)[0]

    def sign_in(self, token: str) -> tuple[Caller, int]:
        """The caller a token names, verified as a Bearer token, and the seconds it stays valid: how
        long the monitor's cookie may keep it. Only with ``mode = oidc``."""
        if len(token) > MAX_COOKIE_TOKEN:
            text = f"the token is longer than a browser keeps in a cookie ({MAX_COOKIE_TOKEN} bytes)"
            raise Refusal(400, text, "token")
        if not COMPACT_JWT.match(token):
            raise Refusal(400, "the token is not a JWT (header.payload.signature in base64url)", "token")
        caller, claims = self._verified(token)
        lifetime = int(float(claims["exp"]) - time.time())
        if lifetime <= 0:  # accepted within the leeway, but a cookie of no lifetime keeps nothing
            raise Refusal(401, "the token has expired", "token")
        return caller, lifetime

    def _verified(self, token: str) -> tuple[Caller, Mapping[str, Any]]:
        assert self.verifier is not None
        try:
            claims = self.verifier.claims(token)
            return self._caller(claims), claims
        except TokenError as exc:
            challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{exc}"'
            raise Refusal(401, str(exc), "Authorization", {"WWW-Authenticate": challenge}) from None
        except KeysUnavailable:
            text = "the identity provider's keys cannot be read now; try again later"
            raise Refusal(503, text, "Authorization", {"Retry-After": "30"}) from None

    def _caller(self, claims: Mapping[str, Any]) -> Caller:
        name = _user_name(claim(claims, self.auth.user_claim))
        if name is None:
            raise TokenError(f"the token's {self.auth.user_claim} claim does not name a user")
        found = claim(claims, self.auth.roles_claim)
        if isinstance(found, str):  # a space-separated list, as OAuth scopes are
            found = found.split()
        roles = frozenset(r for r in found if isinstance(r, str)) if isinstance(found, list) else frozenset()
        return Caller(name, roles, bool(self.auth.admin_role) and self.auth.admin_role in roles)

    def _from_proxy(self, operation: str, user: str | None, remote_addr: str | None) -> Caller:
        header = self.auth.header
        if user is None:
            text = f"{operation} needs a user; sign in through the service's proxy"
            return self._anonymous(operation, Refusal(403, text, header))
        if not self._trusted(remote_addr):
            raise Refusal(403, f"the {header} header is accepted from the service's proxies only", header)
        name = _user_name(user)
        if name is None:
            raise Refusal(403, f"the {header} header does not name a user", header)
        return Caller(name)

    def _trusted(self, remote_addr: str | None) -> bool:
        try:
            address = ipaddress.ip_address(remote_addr or "")
        except ValueError:
            return False  # a Unix socket, or nothing: not a proxy this service was told of
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.proxies)


def _user_name(value: object) -> str | None:
    """A user name fit to own jobs; never the anonymous owner's, which would open the jobs of no one."""
    if not isinstance(value, str) or value == ANONYMOUS or not USER_NAME.match(value) or value != value.strip():
        return None
    return value
