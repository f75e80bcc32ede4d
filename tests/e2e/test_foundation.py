"""The foundation, end to end: the whole local stack driven over HTTP through the gateway.

Every deployment runs as its own functions-framework process on the real Pub/Sub and
Firestore emulators and PostgreSQL, wired from the manifests by the same runner as `make dev`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.e2e.support import ADMIN, Api, assert_problem, wait_for

pytestmark = pytest.mark.e2e


def new_user(api: Api, admin: str, roles=("viewer",), password="a-long-password-1") -> dict:
    email = f"u-{uuid.uuid4().hex[:10]}@example.com"
    resp = api.req(
        "POST",
        "/api/users",
        admin,
        json={"email": email, "name": "Test User", "roles": list(roles), "password": password},
    )
    assert resp.status_code == 201, resp.text
    return {**resp.json(), "password": password}


AUDIT_SUB = "audit-ingest--user.created"


def processed_once(stack, subscription: str, event_id: str) -> bool:
    """The positive signal of "exactly once": the subscription's marker is done with one
    completion and the bridge acked one push of the event (decision 0031)."""
    from google.cloud import firestore

    from shared.events import PROCESSED

    os.environ["FIRESTORE_EMULATOR_HOST"] = stack.firestore.host
    client = firestore.Client(project=stack.project)
    try:
        doc = wait_for(
            lambda: (
                (
                    d := client.collection(PROCESSED).document(f"{subscription}:{event_id}").get()
                ).exists
                and d.to_dict().get("state") == "done"
                and d.to_dict()
            ),
            timeout=30,
        )
    finally:
        client.close()
    acked = wait_for(lambda: stack.bridge.acked(subscription, event_id), timeout=30)
    return doc["completions"] == 1 and acked == 1


def audit_events(api: Api, admin: str, **filters) -> list[dict]:
    resp = api.req("GET", "/api/audit/events", admin, params={**filters, "limit": 100})
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def test_health_of_every_deployment_is_green(api, stack, admin):
    resp = wait_for(  # the details are for admins (decision 0032)
        lambda: (r := api.req("GET", "/api/health", admin)).status_code == 200 and r, timeout=30
    )
    body = resp.json()
    assert set(body["deployments"]) == set(stack.deployments)
    assert all(d["status"] == "ok" for d in body["deployments"].values())
    assert api.req("GET", "/health").status_code == 200


def test_login_create_user_and_see_user_created_in_audit_exactly_once(api, admin, stack):
    user = new_user(api, admin, roles=("operator",))
    # the new user can log in at once and sees themself
    token = api.pair(user["email"], user["password"])["access_token"]
    me = api.req("GET", "/api/users/me", token).json()
    assert me["email"] == user["email"] and "password" not in json.dumps(me)

    def created():
        return [
            e
            for e in audit_events(api, admin, event_type="user.created")
            if e["data"]["id"] == user["id"]
        ]

    (event,) = wait_for(created, timeout=30)
    assert event["source"] == "users-api"
    assert event["actor"] != "system"
    # exactly once: its delivery was acked once and its marker completed once
    assert processed_once(stack, AUDIT_SUB, event["event_id"])
    assert len(created()) == 1


def test_consumer_down_on_first_delivery_still_records_exactly_once(api, admin, stack):
    stack.stop_deployment("audit-ingest")
    try:
        refused = stack.bridge.counts["refused tries"]
        user = new_user(api, admin)
        # the push finds nobody listening; the bridge keeps the message and tries again
        wait_for(lambda: stack.bridge.counts["refused tries"] > refused + 1, timeout=30)
    finally:
        stack.start_deployment("audit-ingest")

    def created():
        return [
            e
            for e in audit_events(api, admin, event_type="user.created")
            if e["data"]["id"] == user["id"]
        ]

    (event,) = wait_for(created, timeout=60)
    assert processed_once(stack, AUDIT_SUB, event["event_id"])
    assert "refused" not in stack.bridge.answers(AUDIT_SUB, event["event_id"])
    assert len(created()) == 1


def test_refresh_rotates_and_reuse_revokes_the_family(api, admin):
    user = new_user(api, admin)
    first = api.pair(user["email"], user["password"])
    resp = api.req("POST", "/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert resp.status_code == 200, resp.text
    second = resp.json()
    assert second["refresh_token"] != first["refresh_token"]
    # reusing the first (already rotated) token is theft: the whole family dies
    assert_problem(
        api.req("POST", "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}), 401
    )
    assert_problem(
        api.req("POST", "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}), 401
    )


def test_logout_revokes_access_and_refresh_tokens(api, admin):
    user = new_user(api, admin)
    pair = api.pair(user["email"], user["password"])
    token = pair["access_token"]
    assert api.req("GET", "/api/users/me", token).status_code == 200
    resp = api.req("POST", "/api/auth/logout", token, json={"refresh_token": pair["refresh_token"]})
    assert resp.status_code == 204, resp.text
    wait_for(lambda: api.req("GET", "/api/users/me", token).status_code == 401, timeout=5)
    assert_problem(
        api.req("POST", "/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401
    )


def test_viewer_gets_403_on_admin_routes(api, admin):
    user = new_user(api, admin, roles=("viewer",))
    token = api.pair(user["email"], user["password"])["access_token"]
    assert_problem(
        api.req(
            "POST",
            "/api/users",
            token,
            json={"email": "x@example.com", "name": "X", "roles": ["viewer"]},
        ),
        403,
    )
    assert_problem(api.req("DELETE", f"/api/users/{user['id']}", token), 403)
    assert_problem(api.req("GET", "/api/audit/events", token), 403)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _segment(obj: dict) -> str:
    return _b64(json.dumps(obj).encode())


def forged_tokens(real_token: str, public_jwk: dict) -> dict[str, str]:
    """Tokens an attacker could make from a real one and the published public key."""
    claims = jwt.decode(real_token, options={"verify_signature": False})
    header = jwt.get_unverified_header(real_token)
    now = int(time.time())
    public_pem = RSAAlgorithm.from_jwk(json.dumps(public_jwk)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    h, p, s = real_token.split(".")
    hs_header = _segment({**header, "alg": "HS256"})
    hs_sig = _b64(hmac.new(public_pem, f"{hs_header}.{p}".encode(), hashlib.sha256).digest())

    def signed(c: dict, hdr: dict = header) -> str:  # signed by a key that is not ours
        return jwt.encode(c, other_key, algorithm="RS256", headers=hdr)

    return {
        "alg none": f"{_segment({'alg': 'none', 'typ': 'at+jwt'})}.{p}.",
        "tampered claims": f"{h}.{_segment({**claims, 'roles': ['admin'], 'sub': 'x'})}.{s}",
        "HS256 signed with the public key": f"{hs_header}.{p}.{hs_sig}",
        "wrong audience": signed({**claims, "aud": "someone-else"}),
        "wrong issuer": signed({**claims, "iss": "evil"}),
        "other signing key, same kid": signed(claims),
        "expired": signed({**claims, "exp": now - 3600, "iat": now - 7200}),
        "no typ": signed(claims, {"kid": header["kid"]}),
    }


def test_forged_tokens_get_401(api, admin, stack):
    jwk = api.req("GET", "/api/auth/jwks.json").json()["keys"][0]
    tokens = forged_tokens(admin, jwk)
    for name, token in tokens.items():
        resp = api.req("GET", "/api/users/me", token)
        assert resp.status_code == 401, f"{name}: {resp.status_code} {resp.text}"
        assert resp.headers["Content-Type"].startswith("application/problem+json"), name
    # and directly at the function, past the gateway (defence in depth)
    direct = stack.url_of("users-api")
    for name, token in tokens.items():
        resp = requests.get(
            f"{direct}/api/users/me", timeout=10, headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status_code == 401, f"direct {name}: {resp.status_code}"


def _exchange(sock: socket.socket, request: bytes) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request on a kept-alive socket; its status and body."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), body[:length]


def test_a_deployment_after_its_first_request_serves_its_app_directly(stack, admin):
    """After the first request functions-framework's app hands over to the context's app
    (decision 0060): on one kept-alive connection to users-api, under gunicorn, a POST answered
    401 without its body read is followed by requests that still parse and answer right, and
    the paths functions-framework itself answered are the context's problem+json 404s."""
    host, port = stack.url_of("users-api").removeprefix("http://").split(":")
    body = json.dumps({"email": "x@example.com", "padding": "p" * 50_000}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        for _ in range(3):
            status, _ = _exchange(
                sock,
                b"POST /api/users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body,
            )
            assert status == 401
            status, answer = _exchange(
                sock,
                b"GET /api/users/me HTTP/1.1\r\nHost: t\r\n"
                + f"Authorization: Bearer {admin}\r\n\r\n".encode(),
            )
            assert status == 200 and json.loads(answer)["email"] == ADMIN[0]
        status, answer = _exchange(sock, b"GET /favicon.ico HTTP/1.1\r\nHost: t\r\n\r\n")
        assert status == 404 and json.loads(answer)["status"] == 404


def test_bad_input_gets_problem_json(api, admin):
    assert_problem(
        api.req(
            "POST",
            "/api/users",
            admin,
            data="{not json",
            headers={"Content-Type": "application/json"},
        ),
        400,
    )
    body = assert_problem(
        api.req(
            "POST",
            "/api/users",
            admin,
            json={"email": "y@example.com", "name": "Y", "roles": ["viewer"], "shoe_size": 44},
        ),
        422,
    )
    assert any(e["field"] == "shoe_size" for e in body["errors"])
    assert_problem(api.req("GET", "/api/users"), 401)
    assert_problem(api.req("GET", "/api/nothing-here", admin), 404)
    assert_problem(
        api.req(
            "POST",
            "/api/users",
            admin,
            data="x" * 2_000_000,
            headers={"Content-Type": "application/json"},
        ),
        413,
    )


def test_request_id_is_propagated(api, admin):
    rid = f"e2e-{uuid.uuid4().hex}"
    resp = api.req("GET", "/api/users/me", admin, headers={"X-Request-ID": rid})
    assert resp.headers["X-Request-ID"] == rid


def test_pending_outbox_row_is_published_by_the_relay(api, admin, stack, pg_url):
    """A crash between commit and publish leaves a pending row; ops-outbox-relay sends it."""
    from sqlalchemy import create_engine

    from shared.db import metadata
    from shared.events import outbox_table

    event_id = str(uuid.uuid4())
    uid = str(uuid.uuid4())
    old = datetime.now(UTC) - timedelta(minutes=5)
    payload = {
        "id": uid,
        "email": f"{uid}@example.com",
        "name": "Crash",
        "roles": ["viewer"],
        "active": True,
        "version": 1,
    }
    attrs = {
        "event_type": "user.created",
        "event_id": event_id,
        "schema_version": "1",
        "source": "users-api",
        "occurred_at": old.isoformat().replace("+00:00", "Z"),
        "request_id": "",
        "traceparent": "",
        "actor": "system",
    }
    table = outbox_table(metadata("users"))
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            table.insert().values(
                id=event_id,
                event_type="user.created",
                schema_version=1,
                payload=json.dumps(payload),
                attributes=json.dumps(attrs),
                created_at=old,
                attempts=0,
            )
        )
    resp = requests.post(
        stack.url_of("ops-outbox-relay") + "/",
        timeout=30,
        headers={
            "X-CloudScheduler": "true",
            "X-CloudScheduler-JobName": "ops-outbox-relay",
            "X-CloudScheduler-ScheduleTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["published"] >= 1
    with engine.connect() as conn:
        row = conn.execute(table.select().where(table.c.id == event_id)).one()
    assert row.published_at is not None
    wait_for(
        lambda: [
            e
            for e in audit_events(api, admin, event_type="user.created")
            if e["event_id"] == event_id
        ],
        timeout=30,
    )
    engine.dispose()


def test_api_health_turns_503_when_a_deployment_is_down(api, stack, admin):
    stack.stop_deployment("users-api")
    try:
        resp = api.req("GET", "/api/health", admin)  # fresh and detailed for an admin
        assert resp.status_code == 503
        body = resp.json()
        assert body["deployments"]["users-api"]["status"] != "ok"
        assert body["deployments"]["auth-api"]["status"] == "ok"
    finally:
        stack.start_deployment("users-api")
    wait_for(lambda: api.req("GET", "/api/health").status_code == 200, timeout=30)


def test_bootstrap_admin_is_announced_to_every_consumer(api, admin):
    """The first admin's user.created is emitted once consumers run (not dead-lettered)."""

    def announced():
        return [
            e
            for e in audit_events(api, admin, event_type="user.created")
            if e["data"]["email"] == ADMIN[0]
        ]

    (event,) = wait_for(announced, timeout=30)
    assert event["actor"] == "system"
