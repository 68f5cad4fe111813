"""The ``[auth]`` section: who a request comes from, declared beside the code that finds out.

The names are the issue's (an operator's files work across versions). ``mode = none`` is today's
behaviour and stays the default: every request is the anonymous user.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from app.auth.tokens import read_jwks_file
from processes.setting_fields import SettingsError, setting

# The operations [auth] anonymous may name. The 1.0.0 status document counts as GetStatus, an output
# download as GetResult: the same information through another door.
OPERATIONS = ("GetCapabilities", "DescribeProcess", "Execute", "GetStatus", "GetResult", "Dismiss")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an HTTP token (RFC 9110)


@dataclass(frozen=True)
class AuthSettings:
    mode: str = setting(
        "none",
        "who a request comes from: none (everyone is the anonymous user), oidc (a Bearer JWT of an OpenID"
        " Connect provider), header (a user name a trusted reverse proxy sets)",
        choices=("none", "oidc", "header"),
    )
    jwks_file: str = setting("", "mode = oidc: the provider's public keys (a JWKS document), read from this file")
    jwks_url: str = setting(
        "", "mode = oidc: or fetched from this URL, cached, fetched again for a key id it does not know"
    )
    jwks_cache: float = setting(3600.0, "seconds keys fetched from jwks_url are used before they are fetched again")
    issuer: str = setting("", "mode = oidc: the iss every token must carry")
    audience: str = setting("", "mode = oidc: the aud every token must carry (this service's client id)")
    user_claim: str = setting("sub", "the claim that names the user (sub, preferred_username, or any claim)")
    roles_claim: str = setting(
        "roles", "the claim that lists the user's roles; a dotted path reaches into objects (realm_access.roles)"
    )
    admin_role: str = setting("", "the role whose users see and dismiss every job and use every process; empty: none")
    anonymous: tuple[str, ...] = setting(
        ("GetCapabilities", "DescribeProcess"),
        f"operations allowed without a token or user header, comma-separated ({', '.join(OPERATIONS)})",
    )
    leeway: float = setting(30.0, "seconds of clock difference allowed when checking a token's exp and nbf")
    header: str = setting("X-Remote-User", "mode = header: the request header that carries the user name")
    trusted_proxies: tuple[str, ...] = setting(
        (), "mode = header: addresses or networks (CIDR) of the reverse proxies whose user header is believed"
    )


def check_auth(auth: AuthSettings, source: str) -> None:
    """Every rule a single key cannot express; messages name the file, section and key."""

    def fail(key: str, text: str) -> SettingsError:
        return SettingsError(f"{source}: [auth] {key}: {text}")

    for operation in auth.anonymous:
        if operation not in OPERATIONS:
            raise fail("anonymous", f"{operation!r} is not one of {', '.join(OPERATIONS)}")
    for key in ("user_claim", "roles_claim"):
        if not getattr(auth, key):
            raise fail(key, "must not be empty")
    if auth.mode == "oidc":
        for key in ("issuer", "audience"):
            if not getattr(auth, key):
                raise fail(key, "required when mode = oidc")
        if bool(auth.jwks_file) == bool(auth.jwks_url):
            raise fail("jwks_file", "give either jwks_file or jwks_url when mode = oidc")
        if auth.jwks_url and not re.match(r"https?://[^/]", auth.jwks_url):
            raise fail("jwks_url", f"must be an http(s) URL, not {auth.jwks_url!r}")
        if auth.jwks_file:
            try:
                read_jwks_file(auth.jwks_file)
            except OSError as exc:
                raise fail("jwks_file", f"cannot read {auth.jwks_file}: {exc.strerror}") from None
            except ValueError as exc:
                raise fail("jwks_file", f"{auth.jwks_file} is not a usable JWKS: {exc}") from None
    if auth.mode == "header":
        if not HEADER_NAME.match(auth.header):
            raise fail("header", f"{auth.header!r} is not an HTTP header name")
        if not auth.trusted_proxies:
            raise fail("trusted_proxies", "required when mode = header: only these addresses may name a user")
        for entry in auth.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise fail("trusted_proxies", f"{entry!r} is not an address or network") from None
