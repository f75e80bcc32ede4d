"""The gateway's side of the security findings (issue 12, item 4; docs/decisions/0032): routes
for other deployments only are never forwarded nor documented, against a real upstream that
counts what reaches it."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from functions.gateway import aggregate
from functions.gateway import api as gateway_api
from functions.gateway.revocation import RevocationCache
from shared import auth, manifests
from tests.integration.support import configure, reset_platform


class Upstream:
    """A plain HTTP server standing in for every deployment: records each request's path."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.not_ready: set[str] = set()  # Cloud Run services whose Ready condition failed
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                upstream.paths.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = json.dumps({"status": "ok"}).encode()
                if self.path.startswith("/v2/projects/"):  # the Cloud Run Admin API's services.get
                    name = self.path.rsplit("/", 1)[-1]
                    state = (
                        "CONDITION_FAILED" if name in upstream.not_ready else "CONDITION_SUCCEEDED"
                    )
                    body = json.dumps({"terminalCondition": {"type": "Ready", "state": state}})
                    body = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


@pytest.fixture()
def gateway(monkeypatch, tmp_path, upstream):
    urls = {name: upstream.url for name in manifests.catalog().deployments}
    configure(
        monkeypatch,
        SWITCHYARD_LOCAL_DIR=str(tmp_path),
        SERVICE_URLS=json.dumps(urls),
        # 27 probes of one local server at once: under a loaded CI the 2 s default is too short
        # and a slow answer would read as "down" (no test here is about the timeout)
        HEALTH_TIMEOUT_S="20",
    )
    # revocation is the gateway's Firestore read; a fake of our own interface that revokes nothing
    monkeypatch.setattr(gateway_api, "revocations", RevocationCache(lambda *_: False))
    yield gateway_api.app.test_client()
    reset_platform()


def _bearer(roles: list[str]) -> dict[str, str]:
    token, _ = auth.issue_access_token(str(uuid.uuid4()), roles)
    return {"Authorization": f"Bearer {token}"}


def test_the_credentials_route_is_for_users_api_only():
    cat = manifests.catalog()
    assert cat.is_internal(f"/api/auth/credentials/{uuid.uuid4()}")
    assert not cat.is_internal("/api/auth/login")
    # shared.clients.call still routes it (users-api declares `calls: [auth-api]`)
    assert cat.route(f"/api/auth/credentials/{uuid.uuid4()}").name == "auth-api"


def test_the_gateway_never_forwards_the_credentials_route(gateway, upstream):
    data = {"email": "x@example.com", "roles": ["admin"], "active": True, "version": 1}
    for path in (f"/api/auth/credentials/{uuid.uuid4()}", "/api/auth/credentials"):
        resp = gateway.put(path, json=data, headers=_bearer(["admin"]))
        assert resp.status_code == 404, resp.get_data(as_text=True)
        assert resp.mimetype == "application/problem+json"
        assert resp.get_json()["detail"] == "No API serves this path."  # as for unknown paths
    assert upstream.paths == []


def test_the_merged_openapi_document_leaves_internal_routes_out():
    op = {"put": {"summary": "Upsert", "responses": {"200": {"description": "ok"}}}}
    spec = {
        "paths": {
            "/api/auth/credentials/{user_id}": op,
            "/api/auth/login": {"post": op["put"]},
        }
    }
    merged = aggregate.merge([("auth", spec)])
    assert "/api/auth/login" in merged["paths"]
    assert not any(p.startswith("/api/auth/credentials") for p in merged["paths"])


def test_the_gateway_refuses_a_token_older_than_its_users_not_before(
    gateway, upstream, firestore_emulator, monkeypatch
):
    """With the real Firestore read behind the cache (injected clock, decision 0003's bound)."""
    now = [5_000.0]
    monkeypatch.setattr(gateway_api, "revocations", RevocationCache(clock=lambda: now[0]))
    sub = str(uuid.uuid4())
    token, _ = auth.issue_access_token(sub, ["viewer"])
    headers = {"Authorization": f"Bearer {token}"}
    first = gateway.get("/api/alpha/anything", headers=headers)
    assert first.status_code != 401, first.get_data(as_text=True)
    auth.set_not_before(sub)  # e.g. the user's password changed
    now[0] += 2.1
    resp = gateway.get("/api/alpha/anything", headers=headers)
    assert resp.status_code == 401
    assert resp.get_json()["detail"] == "The token has been revoked."


# --- /api/health: up/down for anyone, details for admins, cached against amplification ---------


def _health_probes(upstream):
    return [p for p in upstream.paths if p.endswith("/health")]


def test_health_without_a_token_says_only_up_or_down(gateway, upstream, firestore_emulator):
    aggregate.forget_health()
    resp = gateway.get("/api/health")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"status": "ok"}
    viewer = gateway.get("/api/health", headers=_bearer(["viewer"]))
    assert viewer.get_json() == {"status": "ok"}
    admin = gateway.get("/api/health", headers=_bearer(["admin"]))
    body = admin.get_json()
    assert body["status"] == "ok"
    assert set(body["deployments"]) == set(manifests.catalog().deployments)
    forged = gateway.get("/api/health", headers={"Authorization": "Bearer not.a.jwt"})
    assert forged.get_json() == {"status": "ok"}  # a bad token is just no token here


def test_anonymous_health_is_cached_so_it_cannot_amplify_load(
    gateway, upstream, monkeypatch, firestore_emulator
):
    now = [100.0]
    monkeypatch.setattr(aggregate, "_monotonic", lambda: now[0])
    aggregate.forget_health()
    gateway.get("/api/health")
    probes = len(_health_probes(upstream))
    assert probes > 0
    for _ in range(5):
        assert gateway.get("/api/health").status_code == 200
    assert len(_health_probes(upstream)) == probes  # answered from the cache
    now[0] += aggregate.HEALTH_CACHE_S + 0.1
    gateway.get("/api/health")
    assert len(_health_probes(upstream)) == 2 * probes
    # an admin asking for details gets a fresh check
    gateway.get("/api/health", headers=_bearer(["admin"]))
    assert len(_health_probes(upstream)) == 3 * probes


def test_in_the_cloud_event_and_schedule_deployments_are_judged_by_their_service_state(
    gateway, upstream, monkeypatch, firestore_emulator
):
    # the gateway may invoke only the http deployments in the cloud (decision 0033): the others'
    # health is their Cloud Run service's Ready condition, read with roles/run.viewer
    monkeypatch.setenv("RUN_ENDPOINT", upstream.url)
    monkeypatch.setenv("GOOGLE_CLOUD_REGION", "europe-west1")
    reset_platform()
    cloud = dataclasses.replace(aggregate.settings(), in_cloud=True)
    monkeypatch.setattr(aggregate, "settings", lambda: cloud)
    deployments = manifests.catalog().deployments.values()
    background = sorted(d.name for d in deployments if d.trigger != "http")
    upstream.not_ready = {background[0]}
    aggregate.forget_health()
    status, body = aggregate.health({})
    assert status == 503 and body["status"] == "down"
    down = {n for n, r in body["deployments"].items() if r["status"] != "ok"}
    assert down == {background[0]}
    asked = {p.rsplit("/", 1)[-1] for p in upstream.paths if p.startswith("/v2/")}
    assert asked == set(background)
    assert all(
        p
        == f"/v2/projects/{cloud.project_id}/locations/europe-west1/services/{p.rsplit('/', 1)[-1]}"
        for p in upstream.paths
        if p.startswith("/v2/")
    )
    # the http deployments are still called, the others never (each answers a bare /health)
    http = [d for d in deployments if d.trigger == "http" and d.context != "gateway"]
    probes = sorted(p for p in upstream.paths if p.endswith("/health"))
    assert probes == sorted(d.health_path for d in http)
    upstream.not_ready = set()
    aggregate.forget_health()
    assert aggregate.health({})[0] == 200
