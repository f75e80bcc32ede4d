"""Gateway CORS decisions and the guard's answers that need no upstream and no Firestore."""

import pytest

from functions.gateway import cors, ratelimit

ORIGIN = "https://console.example.com"


def test_preflight_needs_origin_and_requested_method():
    assert cors.is_preflight("OPTIONS", {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert not cors.is_preflight("OPTIONS", {"Origin": ORIGIN})
    assert not cors.is_preflight("OPTIONS", {"Access-Control-Request-Method": "GET"})
    assert not cors.is_preflight("GET", {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})


def test_only_configured_origins_are_allowed_exactly():
    origins = (ORIGIN,)
    assert cors.allowed(ORIGIN, origins)
    assert not cors.allowed("https://console.example.com.evil.io", origins)
    assert not cors.allowed("http://console.example.com", origins)
    assert not cors.allowed(None, origins)
    assert not cors.allowed("", origins)


def test_preflight_headers():
    h = cors.preflight_headers(ORIGIN)
    assert h["Access-Control-Allow-Origin"] == ORIGIN
    assert (
        h["Access-Control-Allow-Headers"]
        == "Authorization, Content-Type, X-Request-ID, traceparent, Idempotency-Key"
    )
    assert "PATCH" in h["Access-Control-Allow-Methods"]
    assert int(h["Access-Control-Max-Age"]) > 0
    assert "Origin" in h["Vary"]


@pytest.fixture()
def gateway(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("CORS_ORIGINS", f"{ORIGIN}, https://other.example.com")
    monkeypatch.setenv("MAX_BODY_BYTES", "100")
    monkeypatch.setenv("RATE_LIMIT_IP_PER_MIN", "1000")
    from shared.config import settings

    settings.cache_clear()
    ratelimit.reset()
    from functions.gateway.api import app

    yield app.test_client()
    settings.cache_clear()
    ratelimit.reset()


def test_allowed_preflight_is_answered_by_the_gateway(gateway):
    r = gateway.options(
        "/api/users/1",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "traceparent" in r.headers["Access-Control-Allow-Headers"]
    assert "Idempotency-Key" in r.headers["Access-Control-Allow-Headers"]  # 0045
    assert r.headers["Access-Control-Max-Age"]


def test_other_origins_get_403_and_no_cors_headers(gateway):
    r = gateway.options(
        "/api/users/1",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert r.status_code == 403
    assert r.mimetype == "application/problem+json"
    assert "Access-Control-Allow-Origin" not in r.headers
    r = gateway.get("/api/docs", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "Origin" in r.headers["Vary"]


def test_allowed_origin_is_echoed_on_answers_including_errors(gateway):
    r = gateway.get("/api/users/1", headers={"Origin": ORIGIN})
    assert r.status_code == 401
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Request-ID" in r.headers["Access-Control-Expose-Headers"]
    assert "Retry-After" in r.headers["Access-Control-Expose-Headers"]
    assert "Idempotent-Replayed" in r.headers["Access-Control-Expose-Headers"]
    assert "Origin" in r.headers["Vary"]


def test_missing_token_is_401_problem_with_challenge(gateway):
    r = gateway.get("/api/users/1")
    assert r.status_code == 401
    assert r.mimetype == "application/problem+json"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.get_json()["request_id"] == r.headers["X-Request-ID"]


def test_declared_content_length_over_the_limit_is_413_before_anything_else(gateway):
    r = gateway.post("/api/users", data=b"x" * 101, content_type="application/json")
    assert r.status_code == 413
    assert r.get_json()["status"] == 413


def test_ip_limit_answers_429_with_retry_after(gateway, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_IP_PER_MIN", "2")
    from shared.config import settings

    settings.cache_clear()
    assert gateway.get("/api/docs").status_code == 200
    assert gateway.get("/api/docs").status_code == 200
    r = gateway.get("/api/docs")
    assert r.status_code == 429
    assert r.mimetype == "application/problem+json"
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["RateLimit-Remaining"] == "0"
    assert r.headers["RateLimit-Limit"] == "2"
