"""The gateway's event-loop path (decision 0053): which requests it takes, the verified tokens it
remembers, and the revocation answers it may use without Firestore. End to end (guard, headers,
spans, streams, 502/504) it is covered by tests/integration/test_gateway_upstreams.py and
test_realtime_gateway.py, which serve the gateway's real entry point."""

from __future__ import annotations

import pytest

from functions.gateway import fast
from functions.gateway.revocation import RevocationCache
from shared import auth
from shared.config import settings


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    return {"type": "http", "method": method, "path": path, "headers": headers or []}


@pytest.mark.parametrize(
    ("method", "path", "here"),
    [
        ("GET", "/api/users/me", True),
        ("POST", "/api/auth/login", True),
        ("GET", "/", True),  # the console's pages are forwarded too
        ("GET", "/api/health", False),  # the gateway's own routes stay on Flask
        ("GET", "/api/openapi.json", False),
        ("GET", "/api/docs/docs.js", False),
        ("GET", "/health", False),
        ("GET", "/_dev/", False),
        ("PUT", "/api/auth/credentials/x", False),  # internal: Flask's 404
        ("GET", "/api/users/../auth", False),  # dot segments: Flask's 400
        ("GET", "/api/nowhere", False),  # no deployment: Flask's 404
        ("TRACE", "/api/users/me", False),  # not a method the gateway forwards: Flask's 405
        ("GET", "/api/users/a\nb", False),
    ],
)
def test_which_requests_are_served_on_the_loop(method, path, here):
    assert fast.forwarded_here(scope(method, path)) is here


def test_a_preflight_goes_to_flask_but_a_plain_options_is_forwarded():
    preflight = [(b"origin", b"https://x.example"), (b"access-control-request-method", b"GET")]
    assert not fast.forwarded_here(scope("OPTIONS", "/api/users/me", preflight))
    assert fast.forwarded_here(scope("OPTIONS", "/api/users/me", preflight[:1]))


@pytest.fixture()
def keys(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_LOCAL_DIR", str(tmp_path))
    settings.cache_clear()
    auth.reset_keys()
    fast.forget_claims()
    yield
    fast.forget_claims()
    auth.reset_keys()
    settings.cache_clear()


def test_a_verified_token_is_remembered_until_the_keys_change(keys, monkeypatch):
    token, claims = auth.issue_access_token("user-1", ["viewer"])
    s = settings()
    assert fast._known_claims(token, s) is None
    assert fast._verify(token, s).jti == claims.jti
    assert fast._known_claims(token, s).jti == claims.jti
    assert fast._known_claims(token, object()) is None  # other settings: verified again
    fast._verify(token, s)
    auth.reset_keys()  # the keys are re-read (or withdrawn): every entry ends
    assert fast._known_claims(token, s) is None


def test_a_remembered_token_ends_with_its_ttl_and_failures_are_not_remembered(keys, monkeypatch):
    token, _ = auth.issue_access_token("user-1", ["viewer"])
    s = settings()
    fast._verify(token, s)
    now = fast.time.monotonic()
    monkeypatch.setattr(fast.time, "monotonic", lambda: now + fast.CLAIMS_TTL_S + 1)
    assert fast._known_claims(token, s) is None
    with pytest.raises(auth.Unauthorized):
        fast._verify("not.a.jwt", s)
    assert "not.a.jwt" not in fast._claims


def test_revocation_answers_known_without_asking():
    asked: list[str] = []
    now = [100.0]

    def check(jti: str, sub: str, iat: float) -> bool:
        asked.append(jti)
        return jti == "bad"

    cache = RevocationCache(check, clock=lambda: now[0])
    assert cache.known("ok") is None and cache.known("bad") is None
    assert not cache.is_revoked("ok", 0) and cache.is_revoked("bad", 10**10)
    assert cache.known("ok") is False and cache.known("bad") is True
    now[0] += cache.ttl_s
    assert cache.known("ok") is None  # the 2 s are over: Firestore is asked again
    assert cache.known("bad") is True  # revoked stays revoked
    assert asked == ["ok", "bad"]
