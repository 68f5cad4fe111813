"""Bearer tokens verified against keys of the tests' own: every way a token can be wrong, the keys
read from a file and from a real HTTP server on 127.0.0.1, and who the token makes the caller."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.auth import Authenticator, Refusal
from app.auth import tokens as token_module
from app.auth.settings import AuthSettings
from app.auth.tokens import KeySet, KeysUnavailable, TokenError, TokenVerifier, claim, parse_jwks, read_jwks_file
from scheduler.access import ANONYMOUS_CALLER, Caller
from tests.tokens import ADMIN_ROLE, AUDIENCE, ISSUER, Provider, bearer, unsigned


@pytest.fixture(scope="module")
def provider() -> Provider:
    return Provider()


@pytest.fixture
def jwks_file(tmp_path: Path, provider: Provider) -> Path:
    return provider.write_jwks(tmp_path / "jwks.json")


def verifier(path: Path) -> TokenVerifier:
    return TokenVerifier(KeySet(lambda: read_jwks_file(str(path)), float("inf"), str(path)), ISSUER, AUDIENCE, 30.0)


def oidc(jwks_file: Path, **values: object) -> Authenticator:
    settings = AuthSettings(
        mode="oidc", jwks_file=str(jwks_file), issuer=ISSUER, audience=AUDIENCE, roles_claim="realm_access.roles"
    )
    return Authenticator(settings.__class__(**settings.__dict__ | values))


def hs256_with_public_key(provider: Provider) -> str:
    """The classic confusion: HS256 with the provider's public key (PEM) as the HMAC secret."""

    def part(value: object) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    header = {"alg": "HS256", "typ": "JWT", "kid": provider.kids["RS256"]}
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 300}
    signing_input = part(header) + b"." + part(body)
    signature = hmac.new(provider.public_pem(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_valid_token_gives_its_claims(jwks_file: Path, provider: Provider, algorithm: str):
    claims = verifier(jwks_file).claims(provider.token("alice", algorithm=algorithm))
    assert (claims["sub"], claims["iss"], claims["aud"]) == ("alice", ISSUER, AUDIENCE)


def test_every_bad_token_is_refused_with_its_reason(jwks_file: Path, provider: Provider):
    now = int(time.time())
    other = Provider("test")  # the same key ids, other keys: a forger who guessed the kid
    cases = {
        "expired": (provider.token(exp=now - 120, iat=now - 600, nbf=now - 600), "has expired"),
        "not yet valid": (provider.token(nbf=now + 600, iat=now), "not valid yet"),
        "wrong audience": (provider.token(aud="another-service"), "not meant for this service"),
        "wrong issuer": (provider.token(iss="https://evil.example.org/"), "not issued by the identity provider"),
        "wrong key (RSA)": (other.token(), "signature does not verify"),
        "wrong key (EC)": (other.token(algorithm="ES256"), "signature does not verify"),
        "alg none": (unsigned(), "algorithm is not accepted"),
        "HS256 with the public key": (hs256_with_public_key(provider), "algorithm is not accepted"),
        "no exp": (provider.token(exp=None), "lacks the exp claim"),
        "no aud": (provider.token(aud=None), "lacks the aud claim"),
        "garbage": ("not.a.token", "not a JWT"),
        "one word": ("garbage", "not a JWT"),
        "unknown kid": (Provider("elsewhere").token(), "key the identity provider does not list"),
        "too long": ("a" * 20000, "too long"),
    }
    check = verifier(jwks_file)
    for name, (token, reason) in cases.items():
        with pytest.raises(TokenError, match=reason):
            check.claims(token)
            pytest.fail(name)


def test_leeway_accepts_a_token_just_expired(jwks_file: Path, provider: Provider):
    now = int(time.time())
    assert verifier(jwks_file).claims(provider.token(exp=now - 5, iat=now - 60, nbf=now - 60))["sub"] == "alice"


def test_a_jwks_without_usable_keys_is_refused(provider: Provider):
    secret = {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"}
    for document in ({"keys": [secret]}, {"keys": []}, {}, [], {"keys": [{"kty": "RSA", "kid": "broken"}]}):
        with pytest.raises(ValueError):
            parse_jwks(document)
    rsa_only = [k for k in provider.jwks()["keys"] if k["kty"] == "RSA"]
    assert [k.key_id for k in parse_jwks({"keys": [secret, *rsa_only]})] == [provider.kids["RS256"]]


def test_claims_by_dotted_path():
    claims = {"sub": "a", "realm_access": {"roles": ["x"]}, "https://example.org/roles": ["y"]}
    assert claim(claims, "realm_access.roles") == ["x"]
    assert claim(claims, "https://example.org/roles") == ["y"]
    assert claim(claims, "realm_access.nothing") is None
    assert claim(claims, "sub.deeper") is None


# -- who the token makes the caller -------------------------------------------------------------------


def test_the_caller_of_a_token(jwks_file: Path, provider: Provider):
    auth = oidc(jwks_file, admin_role=ADMIN_ROLE)
    assert auth.caller("Execute", bearer(provider.token("bob", ("users",))), None) == Caller(
        "bob", frozenset({"users"})
    )
    admin = auth.caller("GetStatus", bearer(provider.token("root", (ADMIN_ROLE,))), None)
    assert admin.is_admin
    named = oidc(jwks_file, user_claim="preferred_username", roles_claim="groups")
    token = provider.token("id-123", preferred_username="carol", groups="a b")
    assert named.caller("Execute", bearer(token), None) == Caller("carol", frozenset({"a", "b"}))


def test_missing_and_bad_tokens(jwks_file: Path, provider: Provider):
    auth = oidc(jwks_file)
    assert auth.caller("GetCapabilities", {}, None) == ANONYMOUS_CALLER
    assert auth.caller("DescribeProcess", {"Authorization": "Basic YTpi"}, None) == ANONYMOUS_CALLER
    with pytest.raises(Refusal) as missing:
        auth.caller("Execute", {}, None)
    assert (missing.value.status, missing.value.headers) == (401, {"WWW-Authenticate": 'Bearer realm="hpc-wps"'})
    for token in (unsigned(), "garbage", provider.token("anonymous"), provider.token(sub=None), provider.token(" x")):
        with pytest.raises(Refusal) as bad:
            auth.caller("GetCapabilities", bearer(token), None)  # a bad token is refused even where none is needed
        assert bad.value.status == 401
        assert bad.value.headers["WWW-Authenticate"].startswith('Bearer realm="hpc-wps", error="invalid_token"')


def test_header_mode_believes_only_its_proxies():
    auth = Authenticator(AuthSettings(mode="header", trusted_proxies=("10.0.0.0/8", "::1")))
    assert auth.caller("Execute", {"X-Remote-User": "dave"}, "10.1.2.3") == Caller("dave")
    assert auth.caller("Execute", {"X-Remote-User": "dave"}, "::ffff:10.1.2.3") == Caller("dave")
    assert auth.caller("Execute", {"X-Remote-User": "dave"}, "::1") == Caller("dave")
    assert auth.caller("GetCapabilities", {}, "192.0.2.1") == ANONYMOUS_CALLER
    for headers, address in (
        ({"X-Remote-User": "dave"}, "192.0.2.1"),
        ({"X-Remote-User": "dave"}, None),
        ({"X-Remote-User": "dave"}, "not an address"),
        ({}, "10.1.2.3"),
        ({"X-Remote-User": "anonymous"}, "10.1.2.3"),
        ({"X-Remote-User": "a\x01b"}, "10.1.2.3"),
    ):
        with pytest.raises(Refusal) as refused:
            auth.caller("Execute", headers, address)
        assert refused.value.status == 403, (headers, address)


# -- keys from a URL: a real HTTP server on 127.0.0.1 ---------------------------------------------------


class JWKSServer:
    def __init__(self, document: dict[str, object]) -> None:
        self.document = document
        self.requests = 0


@contextlib.contextmanager
def serve_jwks(document: dict[str, object]) -> Iterator[tuple[str, JWKSServer]]:
    state = JWKSServer(document)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            body = json.dumps(state.document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/certs", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def url_auth(url: str) -> Authenticator:
    return Authenticator(AuthSettings(mode="oidc", jwks_url=url, issuer=ISSUER, audience=AUDIENCE))


def test_keys_from_a_url_are_fetched_once_and_again_for_a_new_kid(provider: Provider, monkeypatch):
    with serve_jwks(provider.jwks()) as (url, server):
        auth = url_auth(url)
        for _ in range(3):
            assert auth.caller("Execute", bearer(provider.token("erin")), None).name == "erin"
        assert server.requests == 1  # cached
        rotated = Provider("rotated")
        server.document = rotated.jwks()
        with pytest.raises(Refusal):  # within the cooldown the keys are not read again...
            auth.caller("Execute", bearer(rotated.token("erin")), None)
        assert server.requests == 1
        monkeypatch.setattr(token_module, "REFRESH_COOLDOWN", 0.0)  # ...after it, an unknown kid reads them again
        assert auth.caller("Execute", bearer(rotated.token("erin")), None).name == "erin"
        assert server.requests == 2


def test_a_stream_of_made_up_key_ids_reads_the_keys_at_most_once_per_cooldown(provider: Provider):
    with serve_jwks(provider.jwks()) as (url, server):
        auth = url_auth(url)
        auth.caller("Execute", bearer(provider.token()), None)
        for index in range(20):
            with pytest.raises(Refusal):
                auth.caller("Execute", bearer(Provider(f"made-up-{index % 2}").token()), None)
        assert server.requests == 1


def test_keys_out_of_reach_answer_503_not_a_bad_token(provider: Provider):
    with serve_jwks(provider.jwks()) as (url, _server):
        pass  # the server is gone: its port refuses connections
    keys = KeySet(lambda: token_module.fetch_jwks(url), 3600.0, url)
    with pytest.raises(KeysUnavailable):
        keys.find(provider.kids["RS256"], "RS256")
    with pytest.raises(Refusal) as refused:
        url_auth(url).caller("Execute", bearer(provider.token()), None)
    assert refused.value.status == 503


def test_a_remembered_token_still_ends_at_its_expiry(jwks_file: Path, provider: Provider):
    check = TokenVerifier(verifier(jwks_file).keys, ISSUER, AUDIENCE, 0.0)
    token = provider.token(exp=int(time.time()) + 2)
    assert check.claims(token)["sub"] == check.claims(token)["sub"] == "alice"  # the second from memory
    time.sleep(3.1)
    with pytest.raises(TokenError, match="has expired"):
        check.claims(token)


def test_the_memory_of_verified_tokens_is_bounded(jwks_file: Path, provider: Provider, monkeypatch):
    monkeypatch.setattr(token_module, "CACHE_SIZE", 3)
    check = verifier(jwks_file)
    for index in range(10):
        check.claims(provider.token(f"user{index}"))
    assert len(check._verified) == 3
