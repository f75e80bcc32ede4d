"""auth-api against real PostgreSQL and the Firestore and Pub/Sub emulators: login and its
throttling, refresh rotation and reuse detection, logout, verify, password change, credential
upserts, forged tokens, and the consumer of users' events."""

import base64
import dataclasses
import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from functions.auth import model, service, store
from functions.auth.api import app
from shared import auth as sauth
from shared import db
from shared.config import settings
from shared.events import Received
from shared.migrate import upgrade
from tests.integration.support import assert_problem, configure, reset_platform

PASSWORD = "correct horse battery"
PROBLEM = "application/problem+json"


def _configure(mp, pg_url, local_dir):
    configure(
        mp,
        DATABASE_URL=pg_url,
        SWITCHYARD_LOCAL_DIR=str(local_dir),
        LOGIN_MAX_FAILURES="3",
        LOGIN_IP_MAX_FAILURES="6",
        LOGIN_DELAY_S="20",
        LOGIN_WINDOW_S="60",
    )


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("auth-local")


@pytest.fixture(scope="module")
def migrated(pg_url, firestore_emulator, pubsub_emulator, local_dir):
    with pytest.MonkeyPatch.context() as mp:
        _configure(mp, pg_url, local_dir)
        upgrade("auth")
    reset_platform()


@pytest.fixture(autouse=True)
def env(monkeypatch, migrated, pg_url, local_dir):
    _configure(monkeypatch, pg_url, local_dir)
    yield
    reset_platform()


@pytest.fixture()
def client():
    """A test client calling from its own IP, so per-IP throttling never leaks across tests."""
    c = app.test_client()
    c.environ_base["HTTP_X_CLIENT_IP"] = (
        f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(256)}"
    )
    return c


def bearer(sub=None, roles=("viewer",)):
    token, _ = sauth.issue_access_token(sub or str(uuid.uuid4()), list(roles))
    return {"Authorization": f"Bearer {token}"}


def new_user(*, roles=("viewer",), password=PASSWORD, active=True, version=1):
    user_id, email = str(uuid.uuid4()), f"u-{uuid.uuid4().hex[:10]}@example.com"
    service.put_credential(
        user_id, email=email, roles=sorted(roles), active=active, version=version, password=password
    )
    return user_id, email


def login(client, email, password=PASSWORD):
    return client.post("/api/auth/login", json={"email": email, "password": password})


def credential_row(user_id):
    with db.transaction() as tx:
        return store.credential(tx, user_id)


def outbox_payloads(event_type):
    with db.transaction() as tx:
        rows = tx.execute(
            select(store.outbox.c.payload, store.outbox.c.attributes)
            .where(store.outbox.c.event_type == event_type)
            .order_by(store.outbox.c.created_at)
        ).all()
    return [(json.loads(r.payload), json.loads(r.attributes)) for r in rows]


# --- login -------------------------------------------------------------------------------


def test_login_issues_a_verifiable_pair(client):
    user_id, email = new_user(roles=("operator", "viewer"))
    resp = login(client, email.upper())  # emails are case-insensitive
    assert resp.status_code == 200
    body = resp.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == settings().access_ttl_s
    claims = sauth.verify(body["access_token"])
    assert (claims.sub, claims.roles) == (user_id, ("operator", "viewer"))
    with db.transaction() as tx:
        stored = store.refresh_token(tx, store.token_hash(body["refresh_token"]))
    assert stored.user_id == user_id  # stored hashed, never as given
    assert body["refresh_token"] not in json.dumps(dataclasses.asdict(stored), default=str)


def test_wrong_password_unknown_email_and_inactive_look_the_same(client):
    _, email = new_user()
    _, inactive = new_user(active=False)
    details = set()
    for e, p in (
        (email, "wrong password!"),
        (f"nobody-{uuid.uuid4().hex}@example.com", PASSWORD),
        (inactive, PASSWORD),
    ):
        before = service._dummy_hash.cache_info()
        body = assert_problem(login(client, e, p), 401)
        details.add(body["detail"])
        if e.startswith("nobody-"):
            # the unknown email still pays for one argon2 verification, against a hash made
            # with the real parameters (so it costs what a real one costs)
            after = service._dummy_hash.cache_info()
            assert after.hits + after.misses == before.hits + before.misses + 1
            assert not service.hasher.check_needs_rehash(service._dummy_hash())
    assert details == {"The email or password is incorrect."}


def test_user_without_password_cannot_log_in(client):
    _, email = new_user(password=None)
    assert_problem(login(client, email, PASSWORD), 401)


def _other_client(prefix="192.0.2"):
    c = app.test_client()
    c.environ_base["HTTP_X_CLIENT_IP"] = f"{prefix}.{random.randrange(1, 255)}"
    return c


def _pair_key(email, ip):
    return service._pair_key(email, ip)


def test_wrong_passwords_throttle_that_ip_on_that_account_not_the_account(client):
    _, email = new_user()
    for _ in range(3):
        assert_problem(login(client, email, "wrong password!"), 401)
    resp = login(client, email)  # from the guessing IP even the right password waits now
    assert_problem(resp, 429)
    assert 1 <= int(resp.headers["Retry-After"]) <= 20
    # the account is not locked: its owner, from an IP that is not throttled, gets in
    assert login(_other_client(), email).status_code == 200


def test_the_delay_grows_with_each_further_failure(client):
    _, email = new_user()
    for _ in range(3):
        assert_problem(login(client, email, "wrong password!"), 401)
    key = _pair_key(email, client.environ_base["HTTP_X_CLIENT_IP"])
    with db.transaction() as tx:  # the first delay (20 s) has passed
        tx.execute(
            update(store.login_failures)
            .where(store.login_failures.c.key == key)
            .values(window_start=datetime.now(UTC) - timedelta(seconds=21))
        )
    assert_problem(login(client, email, "wrong password!"), 401)  # a 4th try is allowed
    resp = login(client, email)  # the 5th waits 2 x longer: until the window ends (60 s)
    assert_problem(resp, 429)
    assert 30 <= int(resp.headers["Retry-After"]) <= 39
    with db.transaction() as tx:  # a throttled attempt is not counted as a try
        failures = tx.execute(
            select(store.login_failures.c.failures).where(store.login_failures.c.key == key)
        ).scalar_one()
    assert failures == 4


def test_failed_logins_are_capped_per_ip_across_accounts(client):
    emails = [new_user()[1] for _ in range(7)]
    for e in emails[:6]:
        assert_problem(login(client, e, "wrong password!"), 401)
    resp = login(client, emails[6])  # the right password, but this IP guessed too much
    assert_problem(resp, 429)
    assert int(resp.headers["Retry-After"]) > 0
    assert login(_other_client("198.51.100"), emails[6]).status_code == 200


def test_success_resets_the_pair_counter(client):
    _, email = new_user()
    for _ in range(2):
        assert_problem(login(client, email, "wrong password!"), 401)
    assert login(client, email).status_code == 200
    for _ in range(3):  # three fresh tries: the two earlier failures were forgotten
        assert_problem(login(client, email, "wrong password!"), 401)
    assert_problem(login(client, email), 429)


def test_concurrent_failures_cannot_exceed_the_limit(client):
    _, email = new_user()
    statuses = []
    barrier = threading.Barrier(8)
    ip = f"203.0.113.{random.randrange(1, 255)}"

    def attempt(i):
        c = app.test_client()
        c.environ_base["HTTP_X_CLIENT_IP"] = ip  # one guessing IP, eight parallel tries
        barrier.wait()
        statuses.append(login(c, email, "wrong password!").status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [401] * 3 + [429] * 5


def test_login_upgrades_an_outdated_hash(client):
    user_id, email = new_user()
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=2)
    with db.transaction() as tx:
        tx.execute(
            update(store.credentials)
            .where(store.credentials.c.user_id == user_id)
            .values(password_hash=weak.hash(PASSWORD))
        )
    assert login(client, email).status_code == 200
    upgraded = credential_row(user_id).password_hash
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not service.hasher.check_needs_rehash(upgraded)


# --- refresh -----------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_family(client):
    _, email = new_user()
    first = login(client, email).get_json()
    second = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    pair = second.get_json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert sauth.verify(pair["access_token"]).jti != sauth.verify(first["access_token"]).jti
    # the used token again: theft assumed, every token of the login is revoked
    assert_problem(
        client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]}), 401
    )
    assert_problem(
        client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401
    )
    with db.transaction() as tx:
        family = store.refresh_token(tx, store.token_hash(pair["refresh_token"])).family_id
        rows = tx.execute(
            select(store.refresh_tokens).where(store.refresh_tokens.c.family_id == family)
        ).all()
    assert len(rows) == 2 and all(r.revoked_at is not None for r in rows)
    # another login of the same user is untouched
    assert (
        client.post(
            "/api/auth/refresh",
            json={"refresh_token": login(client, email).get_json()["refresh_token"]},
        ).status_code
        == 200
    )


def test_refresh_takes_roles_from_the_credential_and_refuses_inactive(client):
    user_id, email = new_user(roles=("viewer",))
    tokens = login(client, email).get_json()
    service.put_credential(
        user_id, email=email, roles=["manager"], active=True, version=2, password=None
    )
    pair = client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert sauth.verify(pair.get_json()["access_token"]).roles == ("manager",)
    service.put_credential(
        user_id, email=email, roles=["manager"], active=False, version=3, password=None
    )
    assert_problem(
        client.post("/api/auth/refresh", json={"refresh_token": pair.get_json()["refresh_token"]}),
        401,
    )


def test_expired_unknown_and_malformed_refresh_tokens(client):
    _, email = new_user()
    token = login(client, email).get_json()["refresh_token"]
    with db.transaction() as tx:
        tx.execute(
            update(store.refresh_tokens)
            .where(store.refresh_tokens.c.token_hash == store.token_hash(token))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert_problem(client.post("/api/auth/refresh", json={"refresh_token": token}), 401)
    assert_problem(client.post("/api/auth/refresh", json={"refresh_token": "nope"}), 401)
    assert_problem(client.post("/api/auth/refresh", json={}), 422)
    assert_problem(client.post("/api/auth/refresh", data="{", content_type="application/json"), 400)


def test_concurrent_refreshes_of_one_token_succeed_once(client):
    _, email = new_user()
    token = login(client, email).get_json()["refresh_token"]
    barrier = threading.Barrier(2)
    results = []

    def use():
        barrier.wait()
        try:
            results.append(service.refresh(token))
        except Exception as exc:  # the loser
            results.append(exc)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if isinstance(r, model.TokenPair)]
    lost = [r for r in results if not isinstance(r, model.TokenPair)]
    assert len(won) == 1 and len(lost) == 1 and lost[0].status == 401
    # strict reuse detection: the second presentation revoked the family, winner included
    with pytest.raises(Exception) as info:
        service.refresh(won[0].refresh_token)
    assert info.value.status == 401


# --- logout and verify ---------------------------------------------------------------------


def test_verify_answers_the_claims(client):
    headers = bearer(roles=("manager",))
    for method in (client.get, client.post):
        resp = method("/api/auth/verify", headers=headers)
        assert resp.status_code == 200
        body = resp.get_json()
        assert body["active"] is True and body["roles"] == ["manager"]
        assert set(body) == {"active", "sub", "roles", "exp", "jti"}
    assert_problem(client.get("/api/auth/verify"), 401)


def test_logout_revokes_the_access_token_and_the_refresh_family(client):
    _, email = new_user()
    tokens = login(client, email).get_json()
    rotated = client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    pair = rotated.get_json()
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert client.get("/api/auth/verify", headers=headers).status_code == 200
    resp = client.post(
        "/api/auth/logout", headers=headers, json={"refresh_token": pair["refresh_token"]}
    )
    assert resp.status_code == 204
    assert_problem(client.get("/api/auth/verify", headers=headers), 401)
    assert_problem(
        client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401
    )


def test_logout_cannot_revoke_someone_elses_refresh_token(client):
    _, email = new_user()
    victim = login(client, email).get_json()["refresh_token"]
    resp = client.post("/api/auth/logout", headers=bearer(), json={"refresh_token": victim})
    assert resp.status_code == 204
    assert client.post("/api/auth/refresh", json={"refresh_token": victim}).status_code == 200


# --- password change ---------------------------------------------------------------------


def test_password_change(client):
    user_id, email = new_user()
    tokens = login(client, email).get_json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    url = "/api/auth/password"
    body = assert_problem(
        client.post(
            url,
            headers=headers,
            json={"old_password": "not the password", "new_password": "a brand new secret"},
        ),
        403,
    )
    assert body["detail"] == "The current password is incorrect."
    body = assert_problem(
        client.post(url, headers=headers, json={"old_password": PASSWORD, "new_password": email}),
        422,
    )
    assert body["errors"][0]["field"] == "new_password"
    resp = client.post(
        url, headers=headers, json={"old_password": PASSWORD, "new_password": "a brand new secret"}
    )
    assert resp.status_code == 204
    assert_problem(login(client, email), 401)
    assert login(client, email, "a brand new secret").status_code == 200
    # sessions of the old password are over
    assert_problem(
        client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401
    )
    events = [(p, a) for p, a in outbox_payloads("password.changed") if p["user_id"] == user_id]
    assert events[-1][0] == {"user_id": user_id}
    assert events[-1][1]["actor"] == user_id
    assert "a brand new secret" not in json.dumps(events)


def test_password_change_needs_a_token(client):
    assert_problem(
        client.post(
            "/api/auth/password",
            json={"old_password": PASSWORD, "new_password": "a brand new secret"},
        ),
        401,
    )


# --- credentials (users-api) ----------------------------------------------------------------


def test_credentials_upsert_is_for_admins(client):
    user_id = str(uuid.uuid4())
    url = f"/api/auth/credentials/{user_id}"
    data = {
        "email": f"C-{user_id[:8]}@Example.com",
        "roles": ["viewer"],
        "active": True,
        "version": 1,
        "password": PASSWORD,
    }
    assert_problem(client.put(url, json=data), 401)
    assert_problem(client.put(url, json=data, headers=bearer(roles=("viewer",))), 403)
    assert_problem(client.put(url, json=data, headers=bearer(roles=("manager",))), 403)
    resp = client.put(url, json=data, headers=bearer(roles=("admin",)))
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["email"] == data["email"].lower() and body["has_password"] is True
    assert "password" not in body and "password_hash" not in body
    assert PASSWORD not in resp.get_data(as_text=True)
    again = client.put(
        url,
        json={**data, "roles": ["manager"], "version": 2, "password": None},
        headers=bearer(roles=("admin",)),
    )
    assert again.status_code == 200 and again.get_json()["roles"] == ["manager"]
    assert login(client, data["email"]).status_code == 200


def test_credentials_refuse_weak_passwords_and_bad_input(client):
    url = f"/api/auth/credentials/{uuid.uuid4()}"
    admin = bearer(roles=("admin",))
    email = f"w-{uuid.uuid4().hex[:8]}@example.com"
    body = assert_problem(
        client.put(
            url,
            headers=admin,
            json={
                "email": email,
                "roles": ["viewer"],
                "active": True,
                "version": 1,
                "password": "too short",
            },
        ),
        422,
    )
    assert body["errors"] == [
        {
            "field": "password",
            "type": "password_policy",
            "message": "must be at least 12 characters",
        }
    ]
    body = assert_problem(
        client.put(
            url,
            headers=admin,
            json={
                "email": "not-an-email",
                "roles": ["root"],
                "active": True,
                "version": 1,
                "extra": 1,
            },
        ),
        422,
    )
    assert {e["field"] for e in body["errors"]} == {"email", "roles", "extra"}
    assert_problem(client.put("/api/auth/credentials/not-a-uuid", headers=admin, json={}), 404)


def test_credentials_keep_newer_facts_but_take_the_password(client):
    user_id, email = new_user(roles=("manager",), version=5)
    resp = client.put(
        f"/api/auth/credentials/{user_id}",
        headers=bearer(roles=("admin",)),
        json={
            "email": email,
            "roles": ["viewer"],
            "active": True,
            "version": 4,
            "password": "stale but new password",
        },
    )
    assert resp.status_code == 200
    assert resp.get_json()["roles"] == ["manager"] and resp.get_json()["version"] == 5
    assert login(client, email, "stale but new password").status_code == 200


def test_credentials_take_over_an_email_a_stale_credential_still_holds(client):
    old_id, email = new_user()
    new_id = str(uuid.uuid4())
    service.put_credential(
        new_id,
        email=email,
        roles=["viewer"],
        active=True,
        version=1,
        password="the newcomer password",
    )
    assert credential_row(old_id).email is None
    tokens = login(client, email, "the newcomer password").get_json()
    assert sauth.verify(tokens["access_token"]).sub == new_id


def test_jwks_is_public_and_holds_the_signing_key(client):
    resp = client.get("/api/auth/jwks.json")
    assert resp.status_code == 200 and "max-age" in resp.headers["Cache-Control"]
    token, _ = sauth.issue_access_token("someone", ["viewer"])
    kids = {k["kid"] for k in resp.get_json()["keys"]}
    assert jwt.get_unverified_header(token)["kid"] in kids


# --- forged tokens -----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _claims(**over):
    now = int(time.time())
    s = settings()
    base = {
        "iss": s.jwt_issuer,
        "aud": s.jwt_audience,
        "sub": "mallory",
        "roles": ["admin"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    return {**base, **over}


def _private_pem():
    return (sauth.ensure_local_keys() / "signing.pem").read_text()


def _kid():
    token, _ = sauth.issue_access_token("x", [])
    return jwt.get_unverified_header(token)["kid"]


def _forged(kind):
    kid = _kid()
    pem = _private_pem()
    good = {"kid": kid, "typ": "at+jwt"}
    if kind == "alg-none":
        head = _b64(json.dumps({"alg": "none", **good}).encode())
        return f"{head}.{_b64(json.dumps(_claims()).encode())}."
    if kind == "tampered-payload":
        token, _ = sauth.issue_access_token("mallory", ["viewer"])
        head, _payload, sig = token.split(".")
        return f"{head}.{_b64(json.dumps(_claims()).encode())}.{sig}"
    if kind == "hs256-with-public-key":
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(pem.encode(), None).public_key()
        public_pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = (
            _b64(json.dumps({"alg": "HS256", **good}).encode())
            + "."
            + _b64(json.dumps(_claims()).encode())
        )
        sig = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(sig)}"
    if kind == "wrong-aud":
        return jwt.encode(_claims(aud="another-api"), pem, "RS256", headers=good)
    if kind == "wrong-iss":
        return jwt.encode(_claims(iss="evil"), pem, "RS256", headers=good)
    if kind == "expired":
        now = int(time.time())
        return jwt.encode(
            _claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600), pem, "RS256", headers=good
        )
    if kind == "missing-typ":
        return jwt.encode(_claims(), pem, "RS256", headers={"kid": kid})
    if kind == "unknown-key":
        other_pem, _ = sauth.new_key_pair()
        return jwt.encode(_claims(), other_pem, "RS256", headers={"kid": "other", "typ": "at+jwt"})
    if kind == "missing-jti":
        claims = _claims()
        del claims["jti"]
        return jwt.encode(claims, pem, "RS256", headers=good)
    if kind == "garbage":
        return "not.a.jwt"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "alg-none",
        "tampered-payload",
        "hs256-with-public-key",
        "wrong-aud",
        "wrong-iss",
        "expired",
        "missing-typ",
        "unknown-key",
        "missing-jti",
        "garbage",
    ],
)
def test_forged_tokens_are_refused(client, kind):
    token = _forged(kind)
    resp = client.get("/api/auth/verify", headers={"Authorization": f"Bearer {token}"})
    assert_problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = client.put(
        f"/api/auth/credentials/{uuid.uuid4()}",
        headers={"Authorization": f"Bearer {token}"},
        json={},
    )
    assert_problem(resp, 401)


def test_the_forging_helper_makes_valid_tokens_when_nothing_is_wrong(client):
    token = jwt.encode(_claims(), _private_pem(), "RS256", headers={"kid": _kid(), "typ": "at+jwt"})
    assert (
        client.get("/api/auth/verify", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )


# --- users' events -----------------------------------------------------------------------------


def received(event_type, **data):
    return Received(
        event_type=event_type,
        event_id=uuid.uuid4().hex,
        schema_version=1,
        source="users-api",
        occurred_at=datetime.now(UTC),
        actor="system",
        request_id="",
        traceparent="",
        data=data,
    )


def facts(user_id, email, version, **over):
    return {
        "id": user_id,
        "email": email,
        "name": "N",
        "roles": ["viewer"],
        "active": True,
        "version": version,
        **over,
    }


def test_user_events_keep_the_credential_and_ignore_older_versions(client):
    user_id, email = str(uuid.uuid4()), f"e-{uuid.uuid4().hex[:8]}@example.com"
    service.apply_user_event(received("user.created", **facts(user_id, email, 1)))
    row = credential_row(user_id)
    assert (row.email, row.roles, row.active, row.version, row.password_hash) == (
        email,
        ["viewer"],
        True,
        1,
        None,
    )
    service.apply_user_event(
        received("user.updated", changed=["roles"], **facts(user_id, email, 3, roles=["manager"]))
    )
    service.apply_user_event(
        received("user.updated", changed=["roles"], **facts(user_id, email, 2, roles=["operator"]))
    )
    row = credential_row(user_id)
    assert (row.roles, row.version) == (["manager"], 3)
    # the same event twice changes nothing
    same = received(
        "user.updated", changed=["roles"], **facts(user_id, email, 3, roles=["manager"])
    )
    service.apply_user_event(same)
    service.apply_user_event(same)
    assert credential_row(user_id).version == 3


def test_user_deleted_deactivates_frees_the_email_and_ends_sessions(client):
    user_id, email = new_user()
    token = login(client, email).get_json()["refresh_token"]
    service.apply_user_event(received("user.deleted", **facts(user_id, email, 2, active=False)))
    row = credential_row(user_id)
    assert (row.active, row.email, row.version) == (False, None, 2)
    assert_problem(client.post("/api/auth/refresh", json={"refresh_token": token}), 401)
    assert_problem(login(client, email), 401)
    # the email is free for a new user
    newcomer = str(uuid.uuid4())
    service.apply_user_event(received("user.created", **facts(newcomer, email, 1)))
    assert credential_row(newcomer).email == email


def test_a_late_created_event_does_not_resurrect_a_deleted_user(client):
    user_id, email = str(uuid.uuid4()), f"l-{uuid.uuid4().hex[:8]}@example.com"
    service.apply_user_event(received("user.deleted", **facts(user_id, email, 2, active=False)))
    service.apply_user_event(received("user.created", **facts(user_id, email, 1)))
    row = credential_row(user_id)
    assert (row.active, row.email, row.version) == (False, None, 2)


def test_an_email_still_held_by_an_active_user_is_retried(client):
    holder_id, email = new_user()
    other = str(uuid.uuid4())
    with pytest.raises(service.EmailStillHeld):
        service.apply_user_event(received("user.created", **facts(other, email, 1)))
    assert credential_row(other) is None  # rolled back entirely
    service.apply_user_event(
        received("user.updated", changed=["email"], **facts(holder_id, f"moved-{email}", 2))
    )
    service.apply_user_event(received("user.created", **facts(other, email, 1)))
    assert credential_row(other).email == email


def test_on_user_event_entry_point_skips_duplicates(client):
    import functions_framework

    ff = functions_framework.create_app(
        target="on_user_event", source="functions/auth/main.py", signature_type="http"
    ).test_client()
    user_id, email = str(uuid.uuid4()), f"p-{uuid.uuid4().hex[:8]}@example.com"
    push = {
        "subscription": "projects/p/subscriptions/auth-on-user-event--user.created",
        "message": {
            "messageId": "1",
            "data": base64.b64encode(json.dumps(facts(user_id, email, 1)).encode()).decode(),
            "attributes": {
                "event_type": "user.created",
                "event_id": uuid.uuid4().hex,
                "schema_version": "1",
                "source": "users-api",
                "occurred_at": "2026-11-22T00:00:00Z",
                "actor": "system",
            },
        },
    }
    first = ff.post("/", json=push)
    assert first.status_code == 200 and first.get_json()["status"] == "processed"
    assert credential_row(user_id).email == email
    second = ff.post("/", json=push)
    assert second.status_code == 200 and second.get_json()["status"] == "duplicate"


# --- bootstrap ---------------------------------------------------------------------------------


def test_bootstrap_creates_the_admin_credential_once(client, monkeypatch):
    from functions.auth import bootstrap

    email = f"Boot-{uuid.uuid4().hex[:8]}@switchyard.local"
    monkeypatch.setenv("BOOTSTRAP_ADMIN_EMAIL", email)
    monkeypatch.setenv("BOOTSTRAP_ADMIN_PASSWORD", "the bootstrap secret")
    settings.cache_clear()
    bootstrap.run()
    user_id = sauth.bootstrap_admin_id(email)
    row = credential_row(user_id)
    assert (row.email, row.roles, row.active, row.version) == (
        email.lower(),
        ["admin"],
        True,
        0,
    )
    first_hash = row.password_hash
    monkeypatch.setenv("BOOTSTRAP_ADMIN_PASSWORD", "a different secret")
    settings.cache_clear()
    bootstrap.run()
    assert credential_row(user_id).password_hash == first_hash  # never overwritten
    tokens = login(client, email, "the bootstrap secret").get_json()
    assert sauth.verify(tokens["access_token"]).roles == ("admin",)


def test_bootstrap_completes_a_credential_the_users_event_created_first(client, monkeypatch):
    from functions.auth import bootstrap

    email = f"boot-{uuid.uuid4().hex[:8]}@switchyard.local"
    user_id = sauth.bootstrap_admin_id(email)
    service.apply_user_event(received("user.created", **facts(user_id, email, 1, roles=["admin"])))
    monkeypatch.setenv("BOOTSTRAP_ADMIN_EMAIL", email)
    monkeypatch.setenv("BOOTSTRAP_ADMIN_PASSWORD", "the bootstrap secret")
    settings.cache_clear()
    bootstrap.run()
    row = credential_row(user_id)
    assert row.version == 1 and row.password_hash is not None
    assert login(client, email, "the bootstrap secret").status_code == 200


def test_attempt_windows_restart_once_they_pass():
    key, now = f"pair:window-{uuid.uuid4().hex}", datetime.now(UTC)
    with db.transaction() as tx:
        assert store.count_attempt(tx, key, now, 60) == (1, now)
        assert store.count_attempt(tx, key, now + timedelta(seconds=30), 60) == (2, now)
        later = now + timedelta(seconds=61)
        assert store.count_attempt(tx, key, later, 60) == (1, later)
        store.uncount_attempt(tx, key)
        assert store.count_attempt(tx, key, later, 60) == (1, later)


def test_a_very_long_email_is_just_a_wrong_login(client):
    long_email = "x" * 300 + "@example.com"
    assert_problem(login(client, long_email), 401)


def test_guessing_the_current_password_is_throttled(client):
    _, email = new_user()
    headers = {"Authorization": f"Bearer {login(client, email).get_json()['access_token']}"}
    guess = {"old_password": "a wrong guess!", "new_password": "a brand new secret"}
    for _ in range(3):
        assert_problem(client.post("/api/auth/password", headers=headers, json=guess), 403)
    resp = client.post(
        "/api/auth/password", headers=headers, json={**guess, "old_password": PASSWORD}
    )
    assert_problem(resp, 429)
    assert int(resp.headers["Retry-After"]) > 0


# --- "not before": changes that end every earlier access token ----------------------------------


def _token_of(client, email, password=PASSWORD):
    return login(client, email, password).get_json()["access_token"]


def _alive(client, token):
    return client.get("/api/auth/verify", headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_password_change_ends_earlier_access_tokens(client):
    _, email = new_user()
    old = _token_of(client, email)
    other = _token_of(client, email)  # another session of the same user
    assert _alive(client, old) == 200
    resp = client.post(
        "/api/auth/password",
        headers={"Authorization": f"Bearer {old}"},
        json={"old_password": PASSWORD, "new_password": "a brand new secret"},
    )
    assert resp.status_code == 204
    assert _alive(client, old) == 401 and _alive(client, other) == 401
    assert sauth.revoked_or_stale(sauth.verify(other)) is True
    fresh = _token_of(client, email, "a brand new secret")
    assert _alive(client, fresh) == 200
    assert sauth.revoked_or_stale(sauth.verify(fresh)) is False


def test_deactivation_and_demotion_end_earlier_access_tokens(client):
    user_id, email = new_user(roles=("admin",))
    admin_token = _token_of(client, email)
    service.put_credential(
        user_id, email=email, roles=["viewer"], active=True, version=2, password=None
    )
    assert _alive(client, admin_token) == 401  # demoted: the admin token is over
    viewer_token = _token_of(client, email)
    service.put_credential(
        user_id, email=email, roles=["viewer", "operator"], active=True, version=3, password=None
    )
    assert _alive(client, viewer_token) == 200  # a promotion takes nothing away
    service.apply_user_event(
        received("user.updated", changed=["active"], **facts(user_id, email, 4, active=False))
    )
    assert _alive(client, viewer_token) == 401  # deactivated (through users' event)


def test_a_demotion_through_users_event_ends_earlier_access_tokens(client):
    user_id, email = new_user(roles=("manager",))
    token = _token_of(client, email)
    service.apply_user_event(
        received("user.updated", changed=["roles"], **facts(user_id, email, 2, roles=["viewer"]))
    )
    assert _alive(client, token) == 401
    assert _alive(client, _token_of(client, email)) == 200


# --- refresh-token families: absolute lifetime, reuse detection while the family lives ----------


def _family_of(refresh_token):
    with db.transaction() as tx:
        return store.refresh_token(tx, store.token_hash(refresh_token))


def test_a_refresh_family_has_an_absolute_lifetime(client):
    _, email = new_user()
    first = login(client, email).get_json()
    token = _family_of(first["refresh_token"])
    family_end = token.family_expires_at
    assert family_end - token.issued_at == timedelta(seconds=settings().refresh_family_ttl_s)
    rotated = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    head = _family_of(rotated.get_json()["refresh_token"])
    assert head.family_expires_at == family_end  # rotation never extends the family
    assert head.expires_at <= family_end
    with db.transaction() as tx:  # the family's absolute end has come
        tx.execute(
            update(store.refresh_tokens)
            .where(store.refresh_tokens.c.family_id == head.family_id)
            .values(family_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    resp = client.post(
        "/api/auth/refresh", json={"refresh_token": rotated.get_json()["refresh_token"]}
    )
    assert_problem(resp, 401)


def test_reuse_is_recognised_as_long_as_the_family_lives(client):
    _, email = new_user()
    first = login(client, email).get_json()
    second = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    current = second.get_json()
    # the daily cleanup, three days later: the used token is kept while its family lives
    service.cleanup(datetime.now(UTC) + timedelta(days=3))
    assert _family_of(first["refresh_token"]) is not None
    reuse = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_problem(reuse, 401)
    again = client.post("/api/auth/refresh", json={"refresh_token": current["refresh_token"]})
    assert_problem(again, 401)  # the family was revoked by the reuse
    # once the family is over (and the grace has passed) its tokens go
    end = _family_of(first["refresh_token"]).family_expires_at
    service.cleanup(end + timedelta(days=2))
    assert _family_of(first["refresh_token"]) is None


def test_reuse_also_revokes_the_familys_access_tokens(client):
    _, email = new_user()
    first = login(client, email).get_json()
    second = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    current = second.get_json()
    assert _alive(client, current["access_token"]) == 200
    # the thief (or the victim) presents the used token again
    reuse = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_problem(reuse, 401)
    assert _alive(client, current["access_token"]) == 401
    assert _alive(client, first["access_token"]) == 401
    # another login of the same user is not touched
    assert _alive(client, _token_of(client, email)) == 200
