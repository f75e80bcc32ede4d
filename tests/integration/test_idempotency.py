"""`Idempotency-Key` through real creating endpoints: maintenance-api's work orders against
real PostgreSQL (the key recorded in the effect's own transaction) and realtime-stream's
tickets against the Firestore emulator (deployments without a schema). Replays, 422 on
another body, 409 while in flight, refusals not kept, and the crash window between the
effect's commit and the record of its answer, armed through the test-only fault hook."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from functions.maintenance import store as mstore
from functions.maintenance.api import app as maintenance_app
from shared import db
from shared.clients import firestore
from shared.http import IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, SimulatedCrash, arm_idempotency_fault
from shared.http import _idempotency as idem
from shared.migrate import upgrade
from tests.integration import support
from tests.integration.support import assert_problem, configure, ok, reset_platform

DEPLOYMENT = "maintenance-api"
ROUTE = "POST /api/work-orders"


def _configure(mp, pg_url, local_dir):
    configure(mp, DATABASE_URL=pg_url, SWITCHYARD_LOCAL_DIR=str(local_dir))


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("idempotency-local")


@pytest.fixture(scope="module")
def migrated(pg_url, pubsub_emulator, firestore_emulator, local_dir):
    with pytest.MonkeyPatch.context() as mp:
        _configure(mp, pg_url, local_dir)
        upgrade("maintenance")
    reset_platform()


@pytest.fixture(autouse=True)
def env(monkeypatch, migrated, pg_url, local_dir):
    _configure(monkeypatch, pg_url, local_dir)
    yield
    reset_platform()


@pytest.fixture()
def manager():
    return support.Caller(maintenance_app, ("manager",))


@pytest.fixture()
def asset(manager):
    made = manager.post("/api/assets", json={"tag": f"I-{uuid.uuid4().hex[:10]}", "name": "Pump"})
    return ok(made, 201)


def _orders(title: str) -> int:
    with db.engine().connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(mstore.work_orders)
            .where(mstore.work_orders.c.title == title)
        ).scalar_one()


def _events(order_id: str) -> int:
    """workorder.created outbox rows of one order."""
    with db.engine().connect() as conn:
        rows = conn.execute(
            select(mstore.outbox.c.payload).where(mstore.outbox.c.event_type == "workorder.created")
        ).all()
    return sum(1 for (payload,) in rows if json.loads(payload)["id"] == order_id)


def _record(sub: str, key: str, route: str = ROUTE) -> dict | None:
    scope = idem.Scope(DEPLOYMENT, sub, route, key)
    table = db.idempotency_table(db.metadata("maintenance"))
    with db.engine().connect() as conn:
        row = conn.execute(select(table).where(table.c.id == scope.id)).first()
    return dict(row._mapping) if row else None


def _post(caller, body, key, **headers):
    return caller.post("/api/work-orders", json=body, headers={IDEMPOTENCY_KEY: key, **headers})


def _order(asset, title=None):
    return {"title": title or f"Leak {uuid.uuid4().hex[:8]}", "asset_id": asset["id"]}


# --- replay, another body, no second effect -------------------------------------------------


def test_the_same_key_and_body_replays_the_first_answer_and_creates_once(manager, asset):
    body = _order(asset)
    key = str(uuid.uuid4())
    first = _post(manager, body, key)
    created = ok(first, 201)
    assert IDEMPOTENT_REPLAYED not in first.headers
    # the same document, other key order and whitespace: the same request
    again = manager.post(
        "/api/work-orders",
        data=json.dumps(dict(reversed(list(body.items()))), indent=2),
        content_type="application/json",
        headers={IDEMPOTENCY_KEY: key},
    )
    assert again.status_code == 201
    assert again.headers[IDEMPOTENT_REPLAYED] == "true"
    assert again.get_json() == created
    assert (
        again.headers["Location"]
        == first.headers["Location"]
        == (f"/api/work-orders/{created['id']}")
    )
    assert again.mimetype == "application/json"
    assert again.headers["X-Request-ID"] != first.headers["X-Request-ID"]  # a request of its own
    assert _orders(body["title"]) == 1
    assert _events(created["id"]) == 1
    rec = _record(manager.sub, key)
    assert rec["state"] == "done" and rec["status"] == 201
    assert rec["expires_at"] - rec["created_at"] == timedelta(hours=24)


def test_the_same_key_with_another_body_is_422_and_changes_nothing(manager, asset):
    body = _order(asset)
    key = str(uuid.uuid4())
    ok(_post(manager, body, key), 201)
    other = {**body, "priority": "high"}
    problem = assert_problem(_post(manager, other, key), 422)
    assert problem["errors"][0]["field"] == IDEMPOTENCY_KEY
    assert problem["errors"][0]["type"] == "idempotency.key_reused"
    assert _orders(body["title"]) == 1


def test_a_key_belongs_to_its_user_and_route(manager, asset):
    body = _order(asset)
    key = str(uuid.uuid4())
    ok(_post(manager, body, key), 201)
    colleague = support.Caller(maintenance_app, ("manager",))
    second = _post(colleague, body, key)
    assert second.status_code == 201 and IDEMPOTENT_REPLAYED not in second.headers
    assert _orders(body["title"]) == 2
    # the same key on another creating route of the deployment is another key
    made = manager.post(
        "/api/assets",
        json={"tag": f"I-{uuid.uuid4().hex[:10]}", "name": "Valve"},
        headers={IDEMPOTENCY_KEY: key},
    )
    assert made.status_code == 201 and IDEMPOTENT_REPLAYED not in made.headers


def test_without_the_header_every_post_creates(manager, asset):
    body = _order(asset)
    ok(manager.post("/api/work-orders", json=body), 201)
    ok(manager.post("/api/work-orders", json=body), 201)
    assert _orders(body["title"]) == 2


@pytest.mark.parametrize("bad", ["", "a b", "x" * 256, "caf\u00e9"])
def test_a_key_that_is_not_one_is_400(manager, asset, bad):
    body = _order(asset)
    resp = manager.post(
        "/api/work-orders",
        json=body,
        environ_overrides={"HTTP_IDEMPOTENCY_KEY": bad},
    )
    problem = assert_problem(resp, 400)
    assert problem["errors"][0]["type"] == "idempotency.key_syntax"
    assert _orders(body["title"]) == 0


def test_a_refused_request_is_not_kept_so_the_key_can_carry_the_fix(manager, asset):
    key = str(uuid.uuid4())
    body = _order(asset)
    assert_problem(_post(manager, {**body, "priority": "urgent!"}, key), 422)
    assert _record(manager.sub, key) is None
    viewer = support.Caller(maintenance_app, ("viewer",))
    assert_problem(_post(viewer, body, key), 403)
    ok(_post(manager, body, key), 201)
    assert _orders(body["title"]) == 1


def test_a_second_request_while_the_first_runs_is_409_with_retry_after(manager, asset):
    body = _order(asset)
    key = str(uuid.uuid4())
    # the first request holds the claim (its view is still running)
    scope = idem.Scope(DEPLOYMENT, manager.sub, ROUTE, key)
    store = idem.store_for(DEPLOYMENT)
    now = datetime.now(UTC)
    fp = idem.fingerprint("POST", "/api/work-orders", b"", json.dumps(body).encode())
    lease = now + timedelta(seconds=60)
    running = idem.Record("running", fp, uuid.uuid4().hex, lease, now + idem.KEY_TTL)
    assert store.claim(scope, running, now) == (None, None)
    resp = _post(manager, body, key)
    problem = assert_problem(resp, 409)
    assert resp.headers["Retry-After"] == "1"
    assert problem["errors"][0]["type"] == "idempotency.in_flight"
    assert _orders(body["title"]) == 0


# --- crashes ------------------------------------------------------------------------------


def test_a_crash_between_the_commit_and_the_answer_is_never_a_second_effect(
    manager, asset, local_dir
):
    body = _order(asset)
    key = str(uuid.uuid4())
    arm_idempotency_fault(DEPLOYMENT, "raise", local_dir)
    with pytest.raises(SimulatedCrash):
        _post(manager, body, key)
    # the effect and its event are committed, with the key
    assert _orders(body["title"]) == 1
    assert _record(manager.sub, key)["state"] == "committed"
    retry = _post(manager, body, key)
    problem = assert_problem(retry, 409)
    assert problem["errors"][0]["type"] == "idempotency.answer_lost"
    assert "Retry-After" not in retry.headers
    assert _orders(body["title"]) == 1
    # and another body with that key is still another request
    assert_problem(_post(manager, {**body, "priority": "low"}, key), 422)


def test_a_crash_before_the_commit_lets_the_retry_run_once_its_lease_lapsed(manager, asset):
    body = _order(asset)
    key = str(uuid.uuid4())
    scope = idem.Scope(DEPLOYMENT, manager.sub, ROUTE, key)
    store = idem.store_for(DEPLOYMENT)
    now = datetime.now(UTC)
    fp = idem.fingerprint("POST", "/api/work-orders", b"", json.dumps(body).encode())
    # a request that claimed the key and died before its transaction committed
    lapsed = now - timedelta(seconds=1)
    dead = idem.Record("running", fp, uuid.uuid4().hex, lapsed, now + idem.KEY_TTL)
    store.claim(scope, dead, now)
    created = ok(_post(manager, body, key), 201)
    assert _orders(body["title"]) == 1
    again = _post(manager, body, key)
    assert again.headers[IDEMPOTENT_REPLAYED] == "true" and again.get_json() == created


def test_a_request_whose_claim_was_taken_over_cannot_commit(manager, asset):
    """The fence: the effect's transaction commits only while its request holds the claim."""
    key = str(uuid.uuid4())
    scope = idem.Scope(DEPLOYMENT, manager.sub, ROUTE, key)
    store = idem.store_for(DEPLOYMENT)
    now = datetime.now(UTC)
    lapsed = now - timedelta(seconds=1)
    slow = idem.Record("running", "f" * 64, uuid.uuid4().hex, lapsed, now + idem.KEY_TTL)
    store.claim(scope, slow, now)
    assert store.take_over(scope, slow, uuid.uuid4().hex, now + timedelta(seconds=60))
    claim = idem.Claim(store, scope, slow.owner, slow.fingerprint)
    token = idem._PENDING.set(claim)
    marker = f"fenced-{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(idem.Conflict), db.transaction() as s:
            s.execute(
                mstore.outbox.insert().values(
                    id=str(uuid.uuid4()),
                    event_type=marker,
                    schema_version=1,
                    payload="{}",
                    attributes="{}",
                    created_at=now,
                    attempts=0,
                )
            )
    finally:
        idem._PENDING.reset(token)
    assert not claim.fenced
    with db.engine().connect() as conn:
        left = conn.execute(
            select(func.count())
            .select_from(mstore.outbox)
            .where(mstore.outbox.c.event_type == marker)
        ).scalar_one()
    assert left == 0


def test_expired_records_are_answered_as_none_and_removed(manager, asset):
    body = _order(asset)
    key = str(uuid.uuid4())
    ok(_post(manager, body, key), 201)
    table = db.idempotency_table(db.metadata("maintenance"))
    scope = idem.Scope(DEPLOYMENT, manager.sub, ROUTE, key)
    old = datetime.now(UTC) - timedelta(hours=25)
    stale = uuid.uuid4().hex
    with db.engine().begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.id == scope.id)
            .values(created_at=old, expires_at=old + idem.KEY_TTL)
        )
        conn.execute(
            table.insert().values(
                id=stale,
                deployment=DEPLOYMENT,
                subject="someone",
                route=ROUTE,
                fingerprint="0" * 64,
                state="done",
                owner="0" * 32,
                lease_until=old,
                created_at=old,
                expires_at=old + idem.KEY_TTL,
            )
        )
    # a day later the key is a new key: the request runs again
    second = _post(manager, body, key)
    assert second.status_code == 201 and IDEMPOTENT_REPLAYED not in second.headers
    assert _orders(body["title"]) == 2
    with db.engine().connect() as conn:
        assert conn.execute(select(table.c.id).where(table.c.id == stale)).first() is None


# --- Firestore: a deployment without a schema (realtime-stream) --------------------------------


@pytest.fixture()
def realtime():
    """A create of realtime-stream, which has no schema: its keys live in Firestore. (Its real
    create, the stream ticket, opts out: a retry may as well get a new ticket, and a kept answer
    would keep the bearer ticket.)"""
    from typing import Literal

    from shared.http import ApiModel, Unprocessable, body, create_app, describe, json_response

    app = create_app("realtime")

    class ProbeIn(ApiModel):
        stream: Literal["dashboard", "map", "package"]
        package_id: str | None = None

    @app.post("/api/realtime/_probe")
    @describe(status=201)
    def _probe():
        req = body(ProbeIn)
        if req.stream == "package" and not req.package_id:
            raise Unprocessable("A package stream needs its package_id.")
        return json_response({"id": uuid.uuid4().hex, "stream": req.stream}, status=201)

    return support.Caller(app, ("viewer",))


def _ticket(caller, body, key):
    return caller.post("/api/realtime/_probe", json=body, headers={IDEMPOTENCY_KEY: key})


def _doc(sub, key):
    scope = idem.Scope("realtime-stream", sub, "POST /api/realtime/_probe", key)
    return firestore().collection(idem.COLLECTION).document(scope.id)


def test_a_stream_ticket_is_not_kept_and_a_retry_gets_a_new_one():
    from functions.realtime.api import app

    caller = support.Caller(app, ("viewer",))
    key = str(uuid.uuid4())
    first = caller.post(
        "/api/realtime/tickets", json={"stream": "dashboard"}, headers={IDEMPOTENCY_KEY: key}
    )
    again = caller.post(
        "/api/realtime/tickets", json={"stream": "dashboard"}, headers={IDEMPOTENCY_KEY: key}
    )
    assert first.status_code == again.status_code == 201
    assert first.headers["Cache-Control"] == "no-store"
    assert IDEMPOTENT_REPLAYED not in again.headers
    assert first.get_json()["ticket"] != again.get_json()["ticket"]
    scope = idem.Scope("realtime-stream", caller.sub, "POST /api/realtime/tickets", key)
    assert not firestore().collection(idem.COLLECTION).document(scope.id).get().exists


def test_firestore_keys_replay_and_refuse_another_body(realtime):
    key = str(uuid.uuid4())
    first = ok(_ticket(realtime, {"stream": "dashboard"}, key), 201)
    again = _ticket(realtime, {"stream": "dashboard"}, key)
    assert again.status_code == 201 and again.headers[IDEMPOTENT_REPLAYED] == "true"
    assert again.get_json() == first
    problem = assert_problem(_ticket(realtime, {"stream": "map"}, key), 422)
    assert problem["errors"][0]["type"] == "idempotency.key_reused"
    snap = _doc(realtime.sub, key).get().to_dict()
    assert snap["state"] == "done" and snap["expires_at"] > snap["created_at"]
    assert snap["deployment"] == "realtime-stream"


def test_firestore_crash_window_answers_honestly_never_twice(realtime, local_dir):
    key = str(uuid.uuid4())
    arm_idempotency_fault("realtime-stream", "raise", local_dir)
    with pytest.raises(SimulatedCrash):
        _ticket(realtime, {"stream": "map"}, key)
    # the claim is still within its lease: the first request might still be running
    resp = _ticket(realtime, {"stream": "map"}, key)
    assert assert_problem(resp, 409)["errors"][0]["type"] == "idempotency.in_flight"
    # past its lease nothing can say whether it took effect: no second effect, an honest 409
    doc = _doc(realtime.sub, key)
    doc.update({"lease_until": datetime.now(UTC) - timedelta(seconds=1)})
    problem = assert_problem(_ticket(realtime, {"stream": "map"}, key), 409)
    assert problem["errors"][0]["type"] == "idempotency.outcome_unknown"
    assert "Retry-After" not in resp.headers or resp.headers["Retry-After"] == "1"


def test_firestore_refusals_release_the_key(realtime):
    key = str(uuid.uuid4())
    assert_problem(_ticket(realtime, {"stream": "package"}, key), 422)  # package_id missing
    assert not _doc(realtime.sub, key).get().exists
    ok(_ticket(realtime, {"stream": "dashboard"}, key), 201)


def test_an_answer_marked_no_store_is_not_kept(monkeypatch):
    """A secret shown once (Cache-Control: no-store) is not replayed from storage."""
    import flask

    from shared.http import create_app, describe

    app = create_app("maintenance")

    @app.post("/api/assets/_secret_probe")
    @describe(status=201)
    def _probe() -> flask.Response:
        return flask.Response(
            json.dumps({"secret": uuid.uuid4().hex}),
            status=201,
            mimetype="application/json",
            headers={"Cache-Control": "no-store"},
        )

    caller = support.Caller(app, ("manager",))
    key = str(uuid.uuid4())
    first = caller.post("/api/assets/_secret_probe", json={}, headers={IDEMPOTENCY_KEY: key})
    assert first.status_code == 201 and first.get_json()["secret"]
    rec = _record(caller.sub, key, "POST /api/assets/_secret_probe")
    assert rec["state"] == "withheld" and rec["body"] is None
    retry = caller.post("/api/assets/_secret_probe", json={}, headers={IDEMPOTENCY_KEY: key})
    problem = assert_problem(retry, 409)
    assert problem["errors"][0]["type"] == "idempotency.answer_withheld"
