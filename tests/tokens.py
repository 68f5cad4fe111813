"""Keys and tokens of a pretend identity provider, minted by the tests themselves (PyJWT + cryptography).

Each :class:`Provider` has an RSA and an EC (P-256) key; ``jwks()`` is what the provider would publish
and ``token()`` a signed JWT with sensible claims, any of which a test overrides or removes.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.example.org/realms/test"
AUDIENCE = "hpc-wps"
ADMIN_ROLE = "wps-admin"


class Provider:
    def __init__(self, prefix: str = "test") -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.kids = {"RS256": f"{prefix}-rsa", "ES256": f"{prefix}-ec"}

    def jwks(self) -> dict[str, Any]:
        keys = []
        for algorithm, private in (("RS256", self.rsa), ("ES256", self.ec)):
            entry = json.loads(jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(private.public_key()))
            keys.append(entry | {"kid": self.kids[algorithm], "use": "sig", "alg": algorithm})
        return {"keys": keys}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()), encoding="utf-8")
        return path

    def public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, user: str = "alice", roles: tuple[str, ...] = (), algorithm: str = "RS256", **claims: Any) -> str:
        """A token of ``user``; a claim given as None is left out."""
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": user, "iat": now, "nbf": now, "exp": now + 300}
        body["realm_access"] = {"roles": list(roles)}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        key = self.rsa if algorithm == "RS256" else self.ec
        return jwt.encode(body, key, algorithm=algorithm, headers={"kid": self.kids[algorithm]})


def unsigned(**claims: Any) -> str:
    """An ``alg: none`` token: a header, the claims, and no signature."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300} | claims

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(body)}."


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
