"""The gateway in front of real upstream apps over HTTP (werkzeug servers on free ports).

The manifests catalog is one made for these tests (the real gateway manifest plus a context
`alpha` with nested routes, a public route, an event and a schedule deployment), so routing by
longest prefix and platform health can be checked without the other contexts. Revocation is
checked against the Firestore emulator.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import socket
import textwrap
import threading
from pathlib import Path

import flask
import functions_framework
import pytest
import requests
from pydantic import BaseModel
from werkzeug.serving import make_server

from shared import auth, clients, manifests
from shared.config import settings
from shared.events import handler
from shared.http import ApiModel, create_app, describe, json_response, scheduled
from tests.asgi_server import AsgiServer
from tests.integration.support import configure, reset_platform

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "https://console.example.com"
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

ALPHA_MANIFEST = """
context: alpha
description: A context made for the gateway tests.
deployments:
  alpha-api:
    entry_point: api
    trigger: http
    routes: [/api/alpha]
    public_routes: [/api/alpha/public]
  alpha-deep:
    entry_point: deep
    trigger: http
    routes: [/api/alpha/deep]
  alpha-worker:
    entry_point: worker
    trigger: event
    subscribes: "*"
  alpha-tick:
    entry_point: tick
    trigger: schedule
    schedule: "*/5 * * * *"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A WSGI app on a loopback port in a thread; can be stopped and started again."""

    def __init__(self, app) -> None:
        self.app = app
        self.port = free_port()
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


SLOW_RELEASE = threading.Event()


class ThingIn(ApiModel):
    name: str


class ThingOut(BaseModel):
    id: int
    name: str


def alpha_api() -> flask.Flask:
    app = create_app("alpha")

    def echo() -> flask.Response:
        req = flask.request
        claims = getattr(flask.g, "claims", None)
        return json_response(
            {
                "served_by": "alpha-api",
                "method": req.method,
                "raw_uri": req.environ.get("RAW_URI") or req.environ.get("REQUEST_URI"),
                "headers": dict(req.headers),
                "body": req.get_data().decode("latin-1"),
                "user": claims.sub if claims else None,
            }
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app.add_url_rule("/api/alpha/echo", "echo", echo, methods=methods)
    app.add_url_rule("/api/alpha/public/echo", "public_echo", echo, methods=methods)

    @app.post("/api/alpha/things")
    @describe(request=ThingIn, response=ThingOut, status=201)
    def create_thing():
        """Create a thing."""
        return json_response({"id": 1, "name": "x"}, 201)

    @app.get("/api/alpha/slow")
    def slow():
        SLOW_RELEASE.wait(10)  # answers only once the test has seen the gateway give up
        return json_response({"late": True})

    @app.get("/api/alpha/broken")
    def broken():
        def body():
            yield b'{"half": '
            raise RuntimeError("the upstream dies mid-answer")  # the server drops the connection

        return flask.Response(
            body(), headers={"Content-Length": "100"}, mimetype="application/json"
        )

    @app.get("/api/alpha/stalled")
    def stalled():
        def body():
            yield b'{"half": '
            SLOW_RELEASE.wait(10)  # the rest only once the test has seen the gateway give up
            yield b"true}"

        return flask.Response(body(), headers={"Content-Length": "14"}, mimetype="application/json")

    @app.get("/api/alpha/gzip")
    def gzipped():
        resp = flask.Response(gzip.compress(b'{"zipped": true}'), mimetype="application/json")
        resp.headers["Content-Encoding"] = "gzip"
        return resp

    @app.get("/api/alpha/cookies")
    def cookies():
        resp = json_response({})
        resp.headers.add("Set-Cookie", "a=1; Path=/")
        resp.headers.add("Set-Cookie", "b=2; Path=/")
        return resp

    @app.get("/api/alpha/no-content")
    def no_content():
        return flask.Response(status=204)

    return app


def alpha_deep() -> flask.Flask:
    app = create_app("alpha")

    @app.get("/api/alpha/deep/echo")
    def deep_echo():
        """Which deployment answered."""
        return json_response({"served_by": "alpha-deep"})

    return app


def alpha_worker() -> flask.Flask:
    entry = handler(lambda event: None)
    app = flask.Flask("alpha-worker")
    app.add_url_rule("/health", "health", lambda: entry(flask.request), methods=["GET"])
    return app


def alpha_tick() -> flask.Flask:
    entry = scheduled(lambda tick: {"ok": True})
    app = flask.Flask("alpha-tick")
    app.add_url_rule("/health", "health", lambda: entry(flask.request), methods=["GET"])
    return app


class Platform:
    def __init__(self, gateway: AsgiServer, upstreams: dict[str, Server]) -> None:
        self.gateway = gateway
        self.upstreams = upstreams

    @property
    def url(self) -> str:
        return self.gateway.url

    def service_urls(self, **overrides: str | None) -> str:
        urls = {name: s.url for name, s in self.upstreams.items()}
        for name, url in overrides.items():
            name = name.replace("_", "-")
            if url is None:
                urls.pop(name, None)
            else:
                urls[name] = url
        return json.dumps(urls)


def _reset_caches() -> None:
    from functions.gateway import aggregate, ratelimit
    from functions.gateway.api import revocations

    reset_platform()
    ratelimit.reset()
    revocations.clear()
    aggregate.forget_openapi()


@pytest.fixture(scope="module")
def platform(firestore_emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gateway")
    functions_dir = tmp / "functions"
    (functions_dir / "gateway").mkdir(parents=True)
    for name in ("function.yaml", "main.py"):  # the real gateway manifest
        shutil.copy(ROOT / "functions" / "gateway" / name, functions_dir / "gateway" / name)
    (functions_dir / "alpha").mkdir()
    (functions_dir / "alpha" / "function.yaml").write_text(textwrap.dedent(ALPHA_MANIFEST))
    (functions_dir / "alpha" / "main.py").write_text(
        "".join(f"def {e}(request):\n    pass\n" for e in ("api", "deep", "worker", "tick"))
    )
    cat = manifests.load(functions_dir)

    mp = pytest.MonkeyPatch()
    mp.setattr(manifests, "catalog", lambda: cat)
    configure(
        mp,
        SWITCHYARD_LOCAL_DIR=str(tmp / "local"),
        CORS_ORIGINS=ORIGIN,
        MAX_BODY_BYTES="4096",
        RATE_LIMIT_USER_PER_MIN="100000",
        RATE_LIMIT_IP_PER_MIN="100000",
        UPSTREAM_TIMEOUT_S="5",
        HEALTH_TIMEOUT_S="1",
        **dict(cat.deployments["gateway"].env),  # the manifest's environment, as deployed
    )
    _reset_caches()
    clients.firestore.cache_clear()
    upstreams = {
        "alpha-api": Server(alpha_api()),
        "alpha-deep": Server(alpha_deep()),
        "alpha-worker": Server(alpha_worker()),
        "alpha-tick": Server(alpha_tick()),
    }
    gateway_app = functions_framework.create_app(
        target="gateway", source=str(ROOT / "functions" / "gateway" / "main.py")
    )
    gw = Platform(AsgiServer(gateway_app), upstreams)  # functions-framework's ASGI mode
    mp.setenv("SERVICE_URLS", gw.service_urls())
    _reset_caches()
    yield gw
    for server in [gw.gateway, *upstreams.values()]:
        server.stop()
    mp.undo()
    _reset_caches()


@pytest.fixture(autouse=True)
def fresh(platform, monkeypatch):
    """Each test starts with empty buckets and caches, and restores what it changes."""
    _reset_caches()
    yield
    monkeypatch.undo()
    _reset_caches()


def override(monkeypatch, **env: str) -> None:
    """Change some settings of the running platform (support.configure starts a clean one)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()


def token(sub: str = "user-1", roles: tuple[str, ...] = ("viewer",)) -> tuple[str, auth.Claims]:
    return auth.issue_access_token(sub, list(roles))


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


# --- routing ---------------------------------------------------------------------------------


def test_routes_by_longest_prefix(platform):
    tok, _ = token()
    deep = requests.get(f"{platform.url}/api/alpha/deep/echo", headers=bearer(tok), timeout=5)
    assert deep.status_code == 200, deep.text
    assert deep.json()["served_by"] == "alpha-deep"
    top = requests.get(f"{platform.url}/api/alpha/echo", headers=bearer(tok), timeout=5)
    assert top.json()["served_by"] == "alpha-api"
    assert top.json()["user"] == "user-1"  # the upstream verified the forwarded token itself


def test_unknown_route_is_404_problem(platform):
    tok, _ = token()
    r = requests.get(f"{platform.url}/api/nowhere", headers=bearer(tok), timeout=5)
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["status"] == 404


def test_deployment_missing_from_service_urls_is_503(platform, monkeypatch):
    override(monkeypatch, SERVICE_URLS=platform.service_urls(alpha_deep=None))
    tok, _ = token()
    r = requests.get(f"{platform.url}/api/alpha/deep/echo", headers=bearer(tok), timeout=5)
    assert r.status_code == 503
    assert "alpha-deep" in r.json()["detail"]


def test_unreachable_upstream_is_502_and_slow_upstream_is_504(platform, monkeypatch):
    tok, _ = token()
    override(
        monkeypatch,
        SERVICE_URLS=platform.service_urls(alpha_deep=f"http://127.0.0.1:{free_port()}"),
    )
    r = requests.get(f"{platform.url}/api/alpha/deep/echo", headers=bearer(tok), timeout=5)
    assert r.status_code == 502
    assert r.headers["Content-Type"] == "application/problem+json"
    override(monkeypatch, UPSTREAM_TIMEOUT_S="0.3")
    r = _held_back(f"{platform.url}/api/alpha/slow", tok)
    assert r.status_code == 504
    assert r.json()["title"] == "Gateway Timeout"


def _held_back(url: str, tok: str) -> requests.Response:
    """GET `url` while the upstream holds its answer back (SLOW_RELEASE), released after."""
    SLOW_RELEASE.clear()
    try:
        return requests.get(url, headers=bearer(tok), timeout=5)
    finally:
        SLOW_RELEASE.set()


def test_an_answer_broken_off_is_502_and_one_not_finished_in_time_is_504(platform, monkeypatch):
    tok, _ = token()
    r = requests.get(f"{platform.url}/api/alpha/broken", headers=bearer(tok), timeout=5)
    assert r.status_code == 502, r.text
    assert r.json()["detail"] == "alpha-api broke off its answer."
    override(monkeypatch, UPSTREAM_TIMEOUT_S="0.3")
    r = _held_back(f"{platform.url}/api/alpha/stalled", tok)
    assert r.status_code == 504, r.text
    assert r.json()["detail"] == "alpha-api did not finish its answer in time."
    # the gateway is fine afterwards: the broken connections were not pooled
    r = requests.get(f"{platform.url}/api/alpha/echo", headers=bearer(tok), timeout=5)
    assert r.status_code == 200


# --- authentication ----------------------------------------------------------------------------


def test_jwt_is_required_except_on_public_routes(platform):
    r = requests.get(f"{platform.url}/api/alpha/echo", timeout=5)
    assert r.status_code == 401
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = requests.get(f"{platform.url}/api/alpha/echo", headers=bearer("not.a.jwt"), timeout=5)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    public = requests.get(f"{platform.url}/api/alpha/public/echo", timeout=5)
    assert public.status_code == 200
    assert public.json()["served_by"] == "alpha-api"
    for path in (
        "/health",
        "/api/health",
        "/api/openapi.json",
        "/api/docs",
        "/api/alpha/deep/health",
        "/api/alpha/openapi.json",
    ):
        assert requests.get(platform.url + path, timeout=5).status_code != 401, path


def test_client_supplied_forwarded_authorization_is_ignored(platform):
    tok, _ = token()
    # A forged X-Forwarded-Authorization must not stand in for a missing Authorization...
    r = requests.get(
        f"{platform.url}/api/alpha/echo",
        headers={"X-Forwarded-Authorization": f"Bearer {tok}"},
        timeout=5,
    )
    assert r.status_code == 401
    # ...nor reach the upstream (which would prefer it) beside a valid one.
    r = requests.get(
        f"{platform.url}/api/alpha/echo",
        headers={
            **bearer(tok),
            "X-Forwarded-Authorization": "Bearer forged",
            "X-Client-IP": "10.9.9.9",
        },
        timeout=5,
    )
    assert r.status_code == 200
    seen = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert "x-forwarded-authorization" not in seen
    assert seen["x-client-ip"] == "127.0.0.1"


def test_a_revoked_token_is_refused(platform):
    tok, claims = token()
    auth.revoke(claims.jti, claims.exp)
    r = requests.get(f"{platform.url}/api/alpha/echo", headers=bearer(tok), timeout=5)
    assert r.status_code == 401
    assert r.json()["detail"] == "The token has been revoked."
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_logout_takes_effect_within_two_seconds(platform, monkeypatch):
    """The gateway's revocation cache runs on an injected clock: "not revoked" is remembered
    for NOT_REVOKED_TTL_S (2 s, decision 0003) of that clock, then Firestore is asked again."""
    from functions.gateway import api as gateway_api
    from functions.gateway.revocation import NOT_REVOKED_TTL_S, RevocationCache

    now = [1_000.0]
    monkeypatch.setattr(gateway_api, "revocations", RevocationCache(clock=lambda: now[0]))
    tok, claims = token()
    url = f"{platform.url}/api/alpha/echo"
    assert requests.get(url, headers=bearer(tok), timeout=5).status_code == 200
    auth.revoke(claims.jti, claims.exp)
    now[0] += NOT_REVOKED_TTL_S - 0.1
    assert requests.get(url, headers=bearer(tok), timeout=5).status_code == 200  # remembered
    now[0] += 0.2
    assert requests.get(url, headers=bearer(tok), timeout=5).status_code == 401


# --- forwarding ---------------------------------------------------------------------------------


def test_method_path_query_body_and_headers_are_forwarded(platform):
    tok, _ = token()
    r = requests.patch(
        f"{platform.url}/api/alpha/echo?b=2&a=%2F%20x&a=3",
        data=b'{"k": "v"}',
        headers={
            **bearer(tok),
            "Content-Type": "application/json",
            "X-Custom": "yes",
            "Connection": "X-Hop",
            "X-Hop": "drop-me",
        },
        timeout=5,
    )
    assert r.status_code == 200, r.text
    seen = r.json()
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert seen["method"] == "PATCH"
    assert seen["raw_uri"] == "/api/alpha/echo?b=2&a=%2F%20x&a=3"
    assert seen["body"] == '{"k": "v"}'
    assert headers["content-type"] == "application/json"
    assert headers["x-custom"] == "yes"
    assert "x-hop" not in headers
    assert headers["x-client-ip"] == "127.0.0.1"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{platform.gateway.port}"
    assert headers["host"] == f"127.0.0.1:{platform.upstreams['alpha-api'].port}"
    assert headers["accept-encoding"] == r.request.headers["Accept-Encoding"]


def test_the_gateway_adds_no_header_of_its_own_client(platform):
    """Only what the client sent goes upstream: no User-Agent, Accept, Accept-Encoding or
    Content-Type of the gateway's HTTP client (the upstream client's defaults are off)."""
    import http.client

    tok, _ = token()
    conn = http.client.HTTPConnection("127.0.0.1", platform.gateway.port, timeout=5)
    try:
        conn.putrequest("POST", "/api/alpha/echo", skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {tok}")
        conn.putheader("Content-Length", "5")
        conn.endheaders(b"hello")
        resp = conn.getresponse()
        assert resp.status == 200
        seen = json.loads(resp.read())
    finally:
        conn.close()
    headers = {k.lower() for k in seen["headers"]}
    assert seen["body"] == "hello"
    assert not headers & {"user-agent", "accept", "accept-encoding", "content-type"}, headers


def test_forwarding_headers_from_a_local_client_are_not_its_address(platform):
    """Locally the peer is the client: its own X-Forwarded-For/-Proto are passed on as claims,
    never taken as its address or scheme (uvicorn trusts no peer's, the gateway manifest)."""
    tok, _ = token()
    r = requests.get(
        f"{platform.url}/api/alpha/echo",
        headers={**bearer(tok), "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    headers = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert headers["x-client-ip"] == "127.0.0.1"
    assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"


def test_request_id_and_traceparent_are_propagated_or_created(platform):
    tok, _ = token()
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = requests.get(
        f"{platform.url}/api/alpha/echo",
        timeout=5,
        headers={**bearer(tok), "X-Request-ID": "req-123", "traceparent": given},
    )
    headers = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert headers["x-request-id"] == "req-123"
    assert headers["traceparent"][:36] == given[:36]  # the caller's trace
    assert headers["traceparent"][36:52] != given[36:52]  # parent: the gateway's client span
    assert r.headers["X-Request-ID"] == "req-123"

    r = requests.get(f"{platform.url}/api/alpha/echo", headers=bearer(tok), timeout=5)
    headers = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert headers["x-request-id"] == r.headers["X-Request-ID"]
    assert len(headers["x-request-id"]) >= 16
    assert TRACEPARENT.match(headers["traceparent"])


def test_bodies_and_headers_come_back_untouched(platform):
    tok, _ = token()
    r = requests.get(f"{platform.url}/api/alpha/gzip", headers=bearer(tok), stream=True, timeout=5)
    assert r.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(r.raw.read()) == b'{"zipped": true}'
    r = requests.get(f"{platform.url}/api/alpha/cookies", headers=bearer(tok), timeout=5)
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert len(r.raw.headers.getlist("Date")) == 1
    r = requests.get(f"{platform.url}/api/alpha/no-content", headers=bearer(tok), timeout=5)
    assert r.status_code == 204 and r.content == b""
    r = requests.head(f"{platform.url}/api/alpha/echo", headers=bearer(tok), timeout=5)
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["Content-Length"]) > 0


# --- limits -------------------------------------------------------------------------------------


def test_user_rate_limit_answers_429_with_retry_after(platform, monkeypatch):
    override(monkeypatch, RATE_LIMIT_USER_PER_MIN="3")
    tok, _ = token("busy-user")
    url = f"{platform.url}/api/alpha/echo"
    codes = [requests.get(url, headers=bearer(tok), timeout=5).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    r = requests.get(url, headers=bearer(tok), timeout=5)
    assert r.status_code == 429
    assert r.headers["Content-Type"] == "application/problem+json"
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["RateLimit-Limit"] == "3"
    assert r.headers["RateLimit-Remaining"] == "0"
    other, _ = token("calm-user")
    assert requests.get(url, headers=bearer(other), timeout=5).status_code == 200


def test_ip_rate_limit_covers_anonymous_calls_but_not_liveness(platform, monkeypatch):
    override(monkeypatch, RATE_LIMIT_IP_PER_MIN="2")
    url = f"{platform.url}/api/alpha/public/echo"
    assert [requests.get(url, timeout=5).status_code for _ in range(3)] == [200, 200, 429]
    assert all(
        requests.get(f"{platform.url}/health", timeout=5).status_code == 200 for _ in range(3)
    )


def test_bodies_over_the_limit_are_413(platform):
    tok, _ = token()
    url = f"{platform.url}/api/alpha/echo"
    r = requests.post(url, data=b"x" * 4097, headers=bearer(tok), timeout=5)
    assert r.status_code == 413
    assert r.headers["Content-Type"] == "application/problem+json"

    def chunks(total: int):
        for _ in range(total // 1000):
            yield b"y" * 1000

    r = requests.post(url, data=chunks(10_000), headers=bearer(tok), timeout=5)
    assert r.status_code == 413
    r = requests.post(url, data=chunks(3_000), headers=bearer(tok), timeout=5)
    assert r.status_code == 200
    assert r.json()["body"] == "y" * 3000


# --- CORS ---------------------------------------------------------------------------------------


def test_cors_preflight_and_actual_requests(platform):
    url = f"{platform.url}/api/alpha/echo"
    r = requests.options(
        url,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=5,
    )
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert (
        r.headers["Access-Control-Allow-Headers"]
        == "Authorization, Content-Type, X-Request-ID, traceparent, Idempotency-Key"
    )
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert int(r.headers["Access-Control-Max-Age"]) > 0
    r = requests.options(
        url,
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        timeout=5,
    )
    assert r.status_code == 403
    assert "Access-Control-Allow-Origin" not in r.headers

    tok, _ = token()
    r = requests.get(url, headers={**bearer(tok), "Origin": ORIGIN}, timeout=5)
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in r.headers["Vary"]
    assert "X-Request-ID" in r.headers["Access-Control-Expose-Headers"]
    assert "Retry-After" in r.headers["Access-Control-Expose-Headers"]
    r = requests.get(url, headers={**bearer(tok), "Origin": "https://evil.example"}, timeout=5)
    assert "Access-Control-Allow-Origin" not in r.headers


# --- health, OpenAPI, docs ----------------------------------------------------------------------


def test_platform_health_is_200_then_503_when_a_deployment_stops(platform):
    admin = bearer(token(roles=("admin",))[0])  # the details are for admins (decision 0032)
    r = requests.get(f"{platform.url}/api/health", headers=admin, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert set(body["deployments"]) == {
        "gateway",
        "alpha-api",
        "alpha-deep",
        "alpha-worker",
        "alpha-tick",
    }
    for entry in body["deployments"].values():
        assert entry["status"] == "ok" and entry["http_status"] == 200
        assert entry["latency_ms"] >= 0

    worker = platform.upstreams["alpha-worker"]
    worker.stop()
    try:
        r = requests.get(f"{platform.url}/api/health", headers=admin, timeout=10)
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "down"
        assert body["deployments"]["alpha-worker"]["status"] == "unreachable"
        assert body["deployments"]["alpha-api"]["status"] == "ok"
    finally:
        worker.start()
    assert requests.get(f"{platform.url}/api/health", headers=admin, timeout=10).status_code == 200


def test_openapi_documents_are_merged(platform):
    r = requests.get(f"{platform.url}/api/openapi.json", timeout=10)
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"] == "3.1.0"
    assert "x-switchyard-missing" not in spec
    paths = spec["paths"]
    assert {
        "/api/alpha/things",
        "/api/alpha/echo",
        "/api/alpha/deep/echo",
        "/api/health",
        "/api/docs",
        "/api/openapi.json",
    } <= set(paths)
    create = paths["/api/alpha/things"]["post"]
    assert (
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        == "#/components/schemas/ThingIn"
    )
    assert "201" in create["responses"]
    assert {"ThingIn", "ThingOut", "Problem", "PlatformHealth"} <= set(
        spec["components"]["schemas"]
    )
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert paths["/api/alpha/public/echo"]["get"]["security"] == []
    assert paths["/api/health"]["get"]["security"] == []
    assert "security" not in paths["/api/alpha/echo"]["get"]


def test_docs_page_and_script_are_served_with_a_strict_csp(platform):
    r = requests.get(f"{platform.url}/api/docs", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert '<script src="/api/docs/docs.js"></script>' in r.text
    assert "<script>" not in r.text and "style=" not in r.text  # nothing inline
    js = requests.get(f"{platform.url}/api/docs/docs.js", timeout=5)
    assert js.status_code == 200
    assert js.headers["Content-Type"].startswith("text/javascript")
    assert "/api/openapi.json" in js.text
    assert requests.get(f"{platform.url}/api/docs/docs.css", timeout=5).status_code == 200
    assert requests.get(f"{platform.url}/api/docs/secrets.txt", timeout=5).status_code == 404
