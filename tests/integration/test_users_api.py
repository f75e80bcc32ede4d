"""users-api against real PostgreSQL and the emulators, with a real auth-api served on a free
port (passwords go to auth synchronously): CRUD, search, pagination, permissions, problems,
the outbox, and password hand-over to auth."""

import json
import threading
import uuid

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from functions.auth.api import app as auth_app
from functions.users import store
from functions.users.api import app
from shared import auth as sauth
from shared import db
from shared.config import settings
from shared.migrate import upgrade
from tests.integration import support
from tests.integration.support import assert_problem, configure, reset_platform

PASSWORD = "correct horse battery"
PROBLEM = "application/problem+json"


def _configure(mp, pg_url, local_dir, auth_url):
    configure(
        mp,
        DATABASE_URL=pg_url,
        SWITCHYARD_LOCAL_DIR=str(local_dir),
        SERVICE_URLS=json.dumps({"auth-api": auth_url}),
    )


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("users-local")


@pytest.fixture(scope="module")
def auth_url():
    """auth-api served for real on a free port (the users app calls it over HTTP)."""
    server = make_server("127.0.0.1", 0, auth_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def migrated(pg_url, firestore_emulator, pubsub_emulator, local_dir, auth_url):
    with pytest.MonkeyPatch.context() as mp:
        _configure(mp, pg_url, local_dir, auth_url)
        upgrade("users")
        upgrade("auth")
    reset_platform()


@pytest.fixture(autouse=True)
def env(monkeypatch, migrated, pg_url, local_dir, auth_url):
    _configure(monkeypatch, pg_url, local_dir, auth_url)
    yield
    reset_platform()


class Caller(support.Caller):
    def __init__(self, roles=("viewer",), sub=None):
        super().__init__(app, roles, sub)


@pytest.fixture()
def admin():
    return Caller(("admin",))


@pytest.fixture()
def viewer():
    return Caller(("viewer",))


def unique_email(tag="u"):
    return f"{tag}-{uuid.uuid4().hex[:10]}@Example.com"


def create(admin, **over):
    data = {"email": unique_email(), "name": "Test User", **over}
    resp = admin.post("/api/users", json=data)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def outbox(user_id):
    with db.transaction() as tx:
        rows = tx.execute(select(store.outbox).order_by(store.outbox.c.created_at)).all()
    out = []
    for r in rows:
        payload = json.loads(r.payload)
        if payload.get("id") == user_id:
            out.append((r.event_type, payload, json.loads(r.attributes)))
    return out


def auth_login(email, password):
    c = auth_app.test_client()
    c.environ_base["HTTP_X_CLIENT_IP"] = f"10.9.{uuid.uuid4().int % 256}.{uuid.uuid4().int % 256}"
    return c.post("/api/auth/login", json={"email": email, "password": password})


# --- CRUD --------------------------------------------------------------------------------


def test_create_read_update_delete(admin, viewer):
    resp = admin.post(
        "/api/users",
        json={
            "email": "  " + (email := unique_email()) + " ",
            "name": " Ann Example ",
            "roles": ["operator"],
        },
    )
    assert resp.status_code == 201
    user = resp.get_json()
    assert resp.headers["Location"] == f"/api/users/{user['id']}"
    assert user["email"] == email.lower() and user["name"] == "Ann Example"
    assert (user["roles"], user["active"], user["version"]) == (["operator"], True, 1)
    assert set(user) == {
        "id",
        "email",
        "name",
        "roles",
        "active",
        "version",
        "created_at",
        "updated_at",
    }
    got = viewer.get(f"/api/users/{user['id']}")
    assert got.status_code == 200 and got.get_json() == user

    resp = admin.put(
        f"/api/users/{user['id']}", json={"roles": ["manager", "operator"], "name": "Ann Example"}
    )
    changed = resp.get_json()
    assert resp.status_code == 200
    assert (changed["roles"], changed["name"], changed["version"]) == (
        ["manager", "operator"],
        "Ann Example",
        2,
    )
    # nothing changes: no new version, no event
    same = admin.put(f"/api/users/{user['id']}", json={"roles": ["operator", "manager"]})
    assert same.get_json()["version"] == 2

    assert admin.delete(f"/api/users/{user['id']}").status_code == 204
    assert_problem(viewer.get(f"/api/users/{user['id']}"), 404)
    assert_problem(admin.delete(f"/api/users/{user['id']}"), 404)
    assert_problem(admin.put(f"/api/users/{user['id']}", json={"name": "x"}), 404)

    events = outbox(user["id"])
    assert [e[0] for e in events] == ["user.created", "user.updated", "user.deleted"]
    created, updated, deleted = (e[1] for e in events)
    assert created == {
        "id": user["id"],
        "email": email.lower(),
        "name": "Ann Example",
        "roles": ["operator"],
        "active": True,
        "version": 1,
    }
    assert updated["changed"] == ["roles"] and updated["version"] == 2
    assert deleted["active"] is False and deleted["version"] == 3
    assert all(e[2]["actor"] == admin.sub for e in events)


def test_duplicate_emails_conflict_case_insensitively_until_deleted(admin):
    email = unique_email()
    first = create(admin, email=email)
    body = assert_problem(admin.post("/api/users", json={"email": email.upper(), "name": "B"}), 409)
    assert body["detail"] == "A user with this email already exists."
    other = create(admin)
    assert_problem(admin.put(f"/api/users/{other['id']}", json={"email": email.upper()}), 409)
    assert admin.delete(f"/api/users/{first['id']}").status_code == 204
    assert create(admin, email=email)["email"] == email.lower()


def test_viewers_read_but_do_not_write(admin, viewer):
    user = create(admin)
    assert viewer.get("/api/users").status_code == 200
    assert_problem(viewer.post("/api/users", json={"email": unique_email(), "name": "V"}), 403)
    assert_problem(viewer.put(f"/api/users/{user['id']}", json={"name": "V"}), 403)
    assert_problem(viewer.delete(f"/api/users/{user['id']}"), 403)
    manager = Caller(("manager",))
    assert_problem(manager.delete(f"/api/users/{user['id']}"), 403)
    assert_problem(app.test_client().get("/api/users"), 401)


def test_me_is_the_caller(admin):
    user = create(admin, roles=["viewer"])
    me = Caller(("viewer",), sub=user["id"])
    resp = me.get("/api/users/me")
    assert resp.status_code == 200 and resp.get_json()["id"] == user["id"]
    assert_problem(Caller().get("/api/users/me"), 404)  # a token for no user


def test_admins_cannot_lock_themselves_out(admin):
    me = create(admin, roles=["admin"])
    caller = Caller(("admin",), sub=me["id"])
    assert_problem(caller.delete(f"/api/users/{me['id']}"), 409)
    assert_problem(caller.put(f"/api/users/{me['id']}", json={"active": False}), 409)
    assert_problem(caller.put(f"/api/users/{me['id']}", json={"roles": ["viewer"]}), 409)
    assert caller.put(f"/api/users/{me['id']}", json={"name": "Me"}).status_code == 200


def test_bad_requests_are_problems(admin):
    body = assert_problem(
        admin.post("/api/users", json={"email": unique_email(), "name": "A", "is_admin": True}), 422
    )
    assert body["errors"][0]["field"] == "is_admin"
    body = assert_problem(admin.post("/api/users", json={"email": "nope", "roles": ["root"]}), 422)
    assert {e["field"] for e in body["errors"]} == {"email", "name", "roles.0"}
    assert_problem(admin.post("/api/users", data="{not json", content_type="application/json"), 400)
    assert_problem(admin.post("/api/users", data="a=b"), 415)
    assert_problem(admin.get("/api/users/not-a-uuid"), 404)
    assert_problem(admin.get(f"/api/users/{uuid.uuid4()}"), 404)
    assert_problem(admin.get("/api/users?colour=red"), 422)
    assert_problem(admin.get("/api/users?cursor=%%%"), 400)
    body = assert_problem(admin.put(f"/api/users/{uuid.uuid4()}", json={"name": None}), 422)
    assert "null" in body["errors"][0]["message"]


def test_forged_token_is_refused(admin):
    token, _ = sauth.issue_access_token("mallory", ["viewer"])
    head, payload, sig = token.split(".")
    forged = f"{head}.{payload[:-4]}AAAA.{sig}"
    c = app.test_client()
    assert_problem(c.get("/api/users", headers={"Authorization": f"Bearer {forged}"}), 401)


# --- search and pagination -------------------------------------------------------------------


def test_search_filters(admin, viewer):
    tag = uuid.uuid4().hex[:8]
    a = create(admin, name=f"Zed {tag.upper()} Alpha", roles=["operator"])
    b = create(admin, email=f"{tag}-b@example.com", name="Beta", roles=["manager", "viewer"])
    c = create(admin, name=f"Gamma {tag}", roles=["viewer"])
    admin.put(f"/api/users/{c['id']}", json={"active": False})

    def ids(**params):
        resp = viewer.get("/api/users", query_string=params)
        assert resp.status_code == 200
        return {u["id"] for u in resp.get_json()["items"]}

    assert ids(q=tag) == {a["id"], b["id"], c["id"]}  # name or email, any case
    assert ids(q=tag.upper(), role="viewer") == {b["id"], c["id"]}
    assert ids(q=tag, role="operator") == {a["id"]}
    assert ids(q=tag, active="false") == {c["id"]}
    assert ids(q=tag, active="true") == {a["id"], b["id"]}
    # LIKE wildcards in q are literal characters
    assert ids(q=f"{tag}%") == set() and ids(q=f"{tag[:3]}_{tag[4:]}") == set()
    pct = create(admin, name=f"100% {tag}")
    assert ids(q=f"0% {tag}") == {pct["id"]}


@pytest.mark.parametrize("sort", ["created_at", "email"])
def test_cursor_walks_every_page_once(admin, viewer, sort):
    tag = uuid.uuid4().hex[:8]
    made = {create(admin, name=f"Page {tag} {i}")["id"] for i in range(11)}
    seen, pages, cursor = [], 0, None
    while True:
        params = {"q": tag, "limit": 3, "sort": sort}
        if cursor:
            params["cursor"] = cursor
        body = viewer.get("/api/users", query_string=params).get_json()
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages == 4 and len(seen) == 11
    assert {u["id"] for u in seen} == made
    keys = [(u[sort], u["id"]) for u in seen]
    assert keys == sorted(keys)
    other = "email" if sort == "created_at" else "created_at"
    first = viewer.get("/api/users", query_string={"q": tag, "limit": 3, "sort": sort})
    assert_problem(
        viewer.get(
            "/api/users",
            query_string={"q": tag, "sort": other, "cursor": first.get_json()["next_cursor"]},
        ),
        400,
    )


def test_limit_is_capped(viewer):
    resp = viewer.get("/api/users", query_string={"limit": 10_000})
    assert resp.status_code == 200 and len(resp.get_json()["items"]) <= 100


# --- passwords go to auth ----------------------------------------------------------------------


def test_a_password_on_create_lets_the_user_log_in(admin):
    email = unique_email("pw")
    user = create(admin, email=email, password=PASSWORD, roles=["manager"])
    assert PASSWORD not in json.dumps(user)
    tokens = auth_login(email, PASSWORD)
    assert tokens.status_code == 200
    claims = sauth.verify(tokens.get_json()["access_token"])
    assert (claims.sub, claims.roles) == (user["id"], ("manager",))
    assert all(PASSWORD not in json.dumps(e[1]) for e in outbox(user["id"]))


def test_a_password_on_update_is_changed_in_auth(admin):
    email = unique_email("pw")
    user = create(admin, email=email, password=PASSWORD)
    resp = admin.put(f"/api/users/{user['id']}", json={"password": "another fine secret"})
    assert resp.status_code == 200 and resp.get_json()["version"] == 1  # the row is unchanged
    assert auth_login(email, PASSWORD).status_code == 401
    assert auth_login(email, "another fine secret").status_code == 200
    assert [e[0] for e in outbox(user["id"])] == ["user.created"]


def test_a_password_auth_refuses_rolls_the_user_back(admin):
    email = unique_email("weak")
    body = assert_problem(
        admin.post("/api/users", json={"email": email, "name": "Weak", "password": email.lower()}),
        422,
    )
    assert body["errors"] == [
        {"field": "password", "type": "password_policy", "message": "must not be the email address"}
    ]
    listed = admin.get("/api/users", query_string={"q": email.split("@")[0]}).get_json()
    assert listed["items"] == []
    assert create(admin, email=email)["email"] == email.lower()  # nothing was left behind


def test_a_create_that_fails_after_auth_stored_the_password_withdraws_it(admin, monkeypatch):
    # users' emit() fails after auth has stored the credential (a hand-written stand-in for
    # our own function: the transaction then rolls back, as on any failure before commit).
    from functions.users import service as users_service
    from shared.events import EventError

    def failing_emit(tx, event):
        raise EventError(f"{event.event_type} cannot be emitted")

    email = unique_email("late")
    with monkeypatch.context() as mp:
        mp.setattr(users_service, "emit", failing_emit)
        assert_problem(
            admin.post("/api/users", json={"email": email, "name": "Late", "password": PASSWORD}),
            500,
        )
    assert (
        admin.get("/api/users", query_string={"q": email.split("@")[0]}).get_json()["items"] == []
    )
    assert auth_login(email, PASSWORD).status_code == 401
    from functions.auth import store as auth_store

    with db.transaction() as tx:
        row = tx.execute(
            select(auth_store.credentials).where(auth_store.credentials.c.email == email.lower())
        ).one()
    assert row.active is False


def test_duplicate_email_fails_before_auth_is_called(admin, monkeypatch):
    email = unique_email()
    create(admin, email=email)
    monkeypatch.setenv("SERVICE_URLS", json.dumps({"auth-api": "http://127.0.0.1:9"}))
    settings.cache_clear()
    assert_problem(
        admin.post("/api/users", json={"email": email, "name": "Dup", "password": PASSWORD}), 409
    )


def test_auth_unreachable_is_a_502_and_nothing_is_created(admin, monkeypatch):
    monkeypatch.setenv("SERVICE_URLS", json.dumps({"auth-api": "http://127.0.0.1:9"}))
    settings.cache_clear()
    email = unique_email("down")
    body = assert_problem(
        admin.post("/api/users", json={"email": email, "name": "Down", "password": PASSWORD}), 502
    )
    assert "nothing was changed" in body["detail"]
    listed = admin.get("/api/users", query_string={"q": email.split("@")[0]}).get_json()
    assert listed["items"] == []


# --- bootstrap ---------------------------------------------------------------------------------


def test_bootstrap_creates_the_admin_user_once(monkeypatch):
    from functions.users import bootstrap

    email = f"Boot-{uuid.uuid4().hex[:8]}@switchyard.local"
    monkeypatch.setenv("BOOTSTRAP_ADMIN_EMAIL", email)
    settings.cache_clear()
    bootstrap.run()
    bootstrap.run()
    user_id = sauth.bootstrap_admin_id(email)
    resp = Caller(("viewer",)).get(f"/api/users/{user_id}")
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["email"], body["name"], body["roles"], body["version"]) == (
        email.lower(),
        "Administrator",
        ["admin"],
        1,
    )
    assert [e[0] for e in outbox(user_id)] == ["user.created"]
