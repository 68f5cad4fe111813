"""Bearer tokens (JWTs of an OpenID Connect provider), verified with PyJWT against the provider's keys.

PyJWT checks the signature and the ``exp``, ``nbf``, ``iss`` and ``aud`` claims. This module decides
what PyJWT must not be left to infer from the token: only RS256 and ES256 are accepted, and the key is
chosen by the token's ``kid`` among the provider's RSA and EC keys, never a symmetric one, so neither
``alg: none`` nor an HS256 token "signed" with the public key can pass.

The keys come from ``[auth] jwks_file`` or ``jwks_url``: the administrator's configuration, not a
client's input, so they are fetched with a plain request with timeouts (not through the guards of
remote inputs). A token whose ``kid`` is unknown makes the keys be read again (the provider rotated
them), at most once per :data:`REFRESH_COOLDOWN`, so a stream of made-up key ids cannot turn the
service into a load on the provider.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import requests

log = logging.getLogger(__name__)

ALGORITHMS = {"RS256": "RSA", "ES256": "EC"}  # the only ones accepted, with the key type each needs
MAX_TOKEN_BYTES = 16 * 1024  # far above any real token; refused before anything is decoded
MAX_JWKS_BYTES = 1024 * 1024
FETCH_TIMEOUT = (3.0, 5.0)  # connect, read: a request waiting for keys must not hold its worker long
REFRESH_COOLDOWN = 10.0  # seconds between two readings of the keys for an unknown kid
# Verified tokens are remembered: a client sends the same token with every request, and checking it
# again (PyJWT's decoding more than the signature) is most of what authentication costs. A remembered
# token still ends at its exp, and a key withdrawn from the JWKS stops opening it within CACHE_SECONDS.
CACHE_SIZE = 1024  # tokens per worker
CACHE_SECONDS = 60.0


class TokenError(Exception):
    """A token that is not accepted; the message says why, in words safe to show the client."""


class KeysUnavailable(Exception):
    """No key is known and the provider's keys cannot be fetched: the service's problem, not the token's."""


def parse_jwks(document: Any) -> list[jwt.PyJWK]:
    """The signing keys of a JWKS document that can verify RS256 or ES256; ValueError when there is none."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS is an object with a list of keys")
    keys = []
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in ALGORITHMS.values() or entry.get("alg", "RS256") not in ALGORITHMS:
            continue  # symmetric keys (oct) above all: a public document must never hold a usable secret
        try:
            key = jwt.PyJWK(dict(entry))
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        if ALGORITHMS.get(key.algorithm_name) == entry["kty"]:
            keys.append(key)
    if not keys:
        raise ValueError("it holds no RSA or EC (P-256) signing key")
    return keys


def read_jwks_file(path: str) -> list[jwt.PyJWK]:
    with open(path, encoding="utf-8") as handle:
        return parse_jwks(json.load(handle))


def fetch_jwks(url: str) -> list[jwt.PyJWK]:
    """The keys at ``url``, with timeouts and a size limit; OSError or ValueError when they cannot be had."""
    with requests.get(url, timeout=FETCH_TIMEOUT, stream=True, headers={"Accept": "application/json"}) as response:
        response.raise_for_status()
        body = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
    return parse_jwks(json.loads(body))


class KeySet:
    """The provider's keys, read when first needed and again when they are older than ``max_age``
    (``jwks_url`` only) or a token names a key id they lack. Shared by the threads of a worker."""

    def __init__(self, load: Callable[[], list[jwt.PyJWK]], max_age: float, source: str) -> None:
        self._load = load
        self._max_age = max_age
        self._source = source
        self._keys: list[jwt.PyJWK] = []
        self._loaded_at = -float("inf")  # when the keys were read
        self._tried_at = -float("inf")  # when a reading was last attempted, successful or not
        self._lock = threading.Lock()

    def _reload(self) -> None:
        self._tried_at = time.monotonic()
        try:
            self._keys = self._load()
        except (OSError, ValueError) as exc:  # requests' errors are OSErrors
            log.warning("cannot read the identity provider's keys from %s: %s", self._source, exc)
            return
        self._loaded_at = self._tried_at

    def find(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        with self._lock:
            now = time.monotonic()
            stale = now - self._loaded_at > self._max_age
            if (not self._keys or stale) and now - self._tried_at >= REFRESH_COOLDOWN:
                self._reload()
            if not self._keys:
                raise KeysUnavailable(f"no key of the identity provider could be read from {self._source}")
            found = _pick(self._keys, kid, algorithm)
            if found is None and kid is not None and time.monotonic() - self._tried_at >= REFRESH_COOLDOWN:
                self._reload()  # the provider may have rotated its keys
                found = _pick(self._keys, kid, algorithm)
            return found


def _pick(keys: list[jwt.PyJWK], kid: str | None, algorithm: str) -> jwt.PyJWK | None:
    """The key named ``kid`` for ``algorithm``; without a kid, the only key for it, if there is one."""
    candidates = [k for k in keys if k.algorithm_name == algorithm and (kid is None or k.key_id == kid)]
    return candidates[0] if len(candidates) == 1 else None


class TokenVerifier:
    """Turns a Bearer token into its verified claims, or raises :class:`TokenError` saying why not."""

    def __init__(self, keys: KeySet, issuer: str, audience: str, leeway: float) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._verified: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()  # token -> (until, claims)
        self._lock = threading.Lock()

    def claims(self, token: str) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            remembered = self._verified.get(token)
            if remembered is not None and now < remembered[0]:
                self._verified.move_to_end(token)
                return remembered[1]
        claims = self._verify(token)
        until = min(float(claims["exp"]) + self.leeway, now + CACHE_SECONDS)
        with self._lock:
            self._verified[token] = (until, claims)
            if len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError("the token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("the token is not a JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise TokenError("the token's algorithm is not accepted (RS256 or ES256 only)")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("the token's key id is not a string")
        key = self.keys.find(kid, algorithm)
        if key is None:
            raise TokenError("the token is signed with a key the identity provider does not list")
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenError("the token is not meant for this service (aud)") from None
        except jwt.InvalidIssuerError:
            raise TokenError("the token is not issued by the identity provider this service trusts (iss)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"the token lacks the {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenError("the token's signature does not verify") from None
        except jwt.PyJWTError:
            raise TokenError("the token is not valid") from None


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into objects (``realm_access.roles``); None when absent.
    A claim whose own name has dots (some providers use URLs as names) is found as it is first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
