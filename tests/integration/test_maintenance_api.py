"""maintenance-api against real PostgreSQL (and the emulators for the outbox and the event
consumer): assets and their hierarchy, the work-order lifecycle and permissions, parts and
stock (concurrent consumption included), PM schedules and the tick (called twice, and
concurrently), stats, the outbox, the users copy, problem responses."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import asdict, fields
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from functions.maintenance import api, model, service, store
from functions.maintenance.api import app
from shared import db
from shared.config import settings
from shared.events import Received
from shared.migrate import upgrade
from tests.integration import support
from tests.integration.support import assert_problem, configure, ok, reset_platform, wait_for

PROBLEM = "application/problem+json"


def today():
    """The date when asked: a module constant goes stale when the suite runs past midnight."""
    return datetime.now(UTC).date()


def _configure(mp, pg_url, local_dir):
    configure(
        mp,
        DATABASE_URL=pg_url,
        SWITCHYARD_LOCAL_DIR=str(local_dir),
        DB_POOL_SIZE="4",
        DB_MAX_OVERFLOW="8",
    )


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("maintenance-local")


@pytest.fixture(scope="module")
def migrated(pg_url, pubsub_emulator, firestore_emulator, local_dir):
    with pytest.MonkeyPatch.context() as mp:
        _configure(mp, pg_url, local_dir)
        upgrade("maintenance")
        upgrade("maintenance")  # idempotent
    reset_platform()


@pytest.fixture(autouse=True)
def env(monkeypatch, migrated, pg_url, local_dir):
    _configure(monkeypatch, pg_url, local_dir)
    yield
    reset_platform()


# --- helpers -----------------------------------------------------------------------------------


class Caller(support.Caller):
    def __init__(self, roles=("viewer",), sub=None):
        super().__init__(app, roles, sub)


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


def user_facts(user_id, version=1, **over):
    return {
        "id": user_id,
        "email": f"{user_id[:8]}@example.com",
        "name": f"User {user_id[:4]}",
        "roles": ["operator"],
        "active": True,
        "version": version,
        **over,
    }


def known_user(roles=("operator",)) -> Caller:
    """A caller that the maintenance users copy knows (as if user.created had arrived)."""
    caller = Caller(roles)
    service.apply_user_event(received("user.created", **user_facts(caller.sub, roles=list(roles))))
    return caller


@pytest.fixture()
def manager():
    return known_user(("manager",))


@pytest.fixture()
def operator():
    return known_user(("operator",))


@pytest.fixture()
def viewer():
    return Caller(("viewer",))


def tag(prefix="A"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_asset(caller, **over):
    return ok(caller.post("/api/assets", json={"tag": tag(), "name": "Pump", **over}), 201)


def new_part(caller, **over):
    return ok(caller.post("/api/parts", json={"sku": tag("P"), "name": "Bearing", **over}), 201)


def new_order(caller, asset_id, **over):
    return ok(
        caller.post("/api/work-orders", json={"title": "Fix it", "asset_id": asset_id, **over}), 201
    )


def move(caller, wo_id, status, reason=None, **extra):
    return caller.post(
        f"/api/work-orders/{wo_id}/transitions", json={"status": status, "reason": reason, **extra}
    )


def events_about(entity_id):
    with db.transaction() as tx:
        rows = tx.execute(select(store.outbox).order_by(store.outbox.c.created_at)).all()
    out = []
    for r in rows:
        payload = json.loads(r.payload)
        if payload.get("id") == entity_id:
            out.append((r.event_type, payload, json.loads(r.attributes)))
    return out


def count(table, *where):
    with db.transaction() as tx:
        return tx.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


# --- users copy --------------------------------------------------------------------------------


def test_user_events_keep_the_copy_and_ignore_older_versions():
    uid = str(uuid.uuid4())
    assert service.apply_user_event(received("user.created", **user_facts(uid, 1)))
    assert service.apply_user_event(
        received("user.updated", changed=["roles"], **user_facts(uid, 3, roles=["manager"]))
    )
    # an older version arriving late changes nothing
    assert not service.apply_user_event(
        received("user.updated", changed=["roles"], **user_facts(uid, 2, roles=["viewer"]))
    )
    with db.transaction() as tx:
        row = store.user(tx, uid)
    assert (list(row.roles), row.version, row.active) == (["manager"], 3, True)
    # the same version again is idempotent
    assert service.apply_user_event(
        received("user.updated", changed=["roles"], **user_facts(uid, 3, roles=["manager"]))
    )
    service.apply_user_event(received("user.deleted", **user_facts(uid, 4, active=False)))
    # a late created event does not resurrect a deleted user
    service.apply_user_event(received("user.created", **user_facts(uid, 1)))
    with db.transaction() as tx:
        row = store.user(tx, uid)
    assert (row.active, row.deleted, row.version) == (False, True, 4)
    assert not service.apply_user_event(received("password.changed", user_id=uid))


def test_on_user_event_entry_point_skips_duplicates():
    import functions_framework

    ff = functions_framework.create_app(
        target="on_user_event", source="functions/maintenance/main.py", signature_type="http"
    ).test_client()
    uid = str(uuid.uuid4())
    push = {
        "subscription": "projects/p/subscriptions/maintenance-on-user-event--user.created",
        "message": {
            "messageId": "1",
            "data": base64.b64encode(json.dumps(user_facts(uid, 1)).encode()).decode(),
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
    with db.transaction() as tx:
        assert store.user(tx, uid).email == user_facts(uid)["email"]
    second = ff.post("/", json=push)
    assert second.status_code == 200 and second.get_json()["status"] == "duplicate"


# --- assets ------------------------------------------------------------------------------------


def test_asset_crud_hierarchy_and_cycles(manager, viewer):
    site = new_asset(manager, name="Plant", category="site", location="North")
    assert (site["status"], site["criticality"], site["parent_id"], site["version"]) == (
        "operational",
        "medium",
        None,
        1,
    )
    assert set(site) == {
        "id",
        "tag",
        "name",
        "category",
        "location",
        "parent_id",
        "status",
        "criticality",
        "version",
        "created_at",
        "updated_at",
        "retired_at",
    }
    line = new_asset(manager, parent_id=site["id"], category="line", criticality="high")
    cell = new_asset(manager, parent_id=line["id"], category="machine")
    assert ok(viewer.get(f"/api/assets/{cell['id']}")) == cell

    # unique tags (case-insensitive), a parent that must exist
    assert_problem(
        manager.post("/api/assets", json={"tag": site["tag"].lower(), "name": "Again"}), 409
    )
    body = assert_problem(
        manager.post(
            "/api/assets", json={"tag": tag(), "name": "Orphan", "parent_id": str(uuid.uuid4())}
        ),
        422,
    )
    assert body["errors"][0]["field"] == "parent_id"

    # no cycles: not below itself, not below a descendant
    assert_problem(manager.put(f"/api/assets/{site['id']}", json={"parent_id": site["id"]}), 409)
    assert_problem(manager.put(f"/api/assets/{site['id']}", json={"parent_id": cell["id"]}), 409)
    assert ok(viewer.get(f"/api/assets/{site['id']}"))["parent_id"] is None

    # moving a subtree is fine; version counts changes
    other = new_asset(manager)
    moved = ok(
        manager.put(f"/api/assets/{line['id']}", json={"parent_id": other["id"], "name": "Line 1"})
    )
    assert (moved["parent_id"], moved["name"], moved["version"]) == (other["id"], "Line 1", 2)
    assert (
        ok(manager.put(f"/api/assets/{line['id']}", json={"parent_id": None}))["parent_id"] is None
    )

    # filters
    children = ok(viewer.get(f"/api/assets?parent_id={line['id']}"))["items"]
    assert [a["id"] for a in children] == [cell["id"]]
    found = ok(viewer.get(f"/api/assets?q={cell['tag'][2:].upper()}"))["items"]
    assert [a["id"] for a in found] == [cell["id"]]
    roots = ok(viewer.get("/api/assets?parent_id=none&category=line&limit=100"))["items"]
    assert line["id"] in [a["id"] for a in roots]
    assert all(a["parent_id"] is None for a in roots)
    high = ok(viewer.get("/api/assets?criticality=high,critical&limit=100"))["items"]
    assert line["id"] in [a["id"] for a in high]
    assert {a["criticality"] for a in high} <= {"high", "critical"}
    assert_problem(viewer.get("/api/assets?status=broken"), 422)
    assert_problem(viewer.get("/api/assets?colour=red"), 422)


def test_asset_pagination_by_tag(manager, viewer):
    prefix = f"PG{uuid.uuid4().hex[:6]}"
    made = [new_asset(manager, tag=f"{prefix}-{i:02d}") for i in range(5)]
    seen, cursor = [], None
    while True:
        url = f"/api/assets?q={prefix}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = ok(viewer.get(url))
        seen += [a["tag"] for a in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [a["tag"] for a in made]
    assert_problem(viewer.get("/api/assets?cursor=!!"), 400)


def test_asset_status_event_and_retirement(manager, viewer):
    parent = new_asset(manager)
    child = new_asset(manager, parent_id=parent["id"])
    down = ok(manager.put(f"/api/assets/{child['id']}", json={"status": "down"}))
    assert down["status"] == "down"
    (event,) = [e for e in events_about(child["id"]) if e[0] == "asset.status.changed"]
    assert event[1] == {
        "id": child["id"],
        "tag": child["tag"],
        "from_status": "operational",
        "to_status": "down",
    }
    assert event[2]["actor"] == manager.sub

    # not retired while it has children or active work orders
    body = assert_problem(manager.delete(f"/api/assets/{parent['id']}"), 409)
    assert "child" in body["detail"]
    wo = new_order(manager, child["id"])
    body = assert_problem(manager.delete(f"/api/assets/{child['id']}"), 409)
    assert "active work order" in body["detail"]
    assert_problem(manager.put(f"/api/assets/{child['id']}", json={"status": "retired"}), 409)
    ok(move(manager, wo["id"], "cancelled", "duplicate"))

    assert manager.delete(f"/api/assets/{child['id']}").status_code == 204
    assert manager.delete(f"/api/assets/{child['id']}").status_code == 204  # idempotent
    retired = ok(viewer.get(f"/api/assets/{child['id']}"))
    assert retired["status"] == "retired" and retired["retired_at"]
    listed = ok(viewer.get(f"/api/assets?parent_id={parent['id']}"))["items"]
    assert listed == []
    listed = ok(viewer.get(f"/api/assets?parent_id={parent['id']}&status=retired"))["items"]
    assert [a["id"] for a in listed] == [child["id"]]
    # retired: no edits, no new work, no new children; restoring works
    assert_problem(manager.put(f"/api/assets/{child['id']}", json={"name": "X"}), 409)
    body = assert_problem(
        manager.post("/api/work-orders", json={"title": "T", "asset_id": child["id"]}), 422
    )
    assert body["errors"][0]["field"] == "asset_id"
    assert_problem(
        manager.post("/api/assets", json={"tag": tag(), "name": "N", "parent_id": child["id"]}), 422
    )
    # the tag stays taken
    assert_problem(manager.post("/api/assets", json={"tag": child["tag"], "name": "N"}), 409)
    assert manager.delete(f"/api/assets/{parent['id']}").status_code == 204
    restored = ok(manager.put(f"/api/assets/{child['id']}", json={"status": "operational"}))
    assert restored["retired_at"] is None
    kinds = [
        (e[1]["from_status"], e[1]["to_status"])
        for e in events_about(child["id"])
        if e[0] == "asset.status.changed"
    ]
    assert kinds == [("operational", "down"), ("down", "retired"), ("retired", "operational")]
    assert_problem(manager.delete(f"/api/assets/{uuid.uuid4()}"), 404)


# --- work orders -------------------------------------------------------------------------------


def test_work_order_lifecycle_events_and_log(manager, operator, viewer):
    asset = new_asset(manager)
    wo = new_order(
        manager,
        asset["id"],
        assignee_id=operator.sub,
        priority="high",
        due_date=str(today() + timedelta(days=3)),
        description="Leaking seal",
    )
    assert (wo["status"], wo["assignee_id"], wo["priority"], wo["type"]) == (
        "assigned",
        operator.sub,
        "high",
        "corrective",
    )
    assert wo["asset_tag"] == asset["tag"] and wo["assignee_name"]
    assert wo["number"] >= 1 and wo["overdue"] is False and wo["version"] == 1
    assert set(wo["allowed_transitions"]) == {"in_progress", "open", "cancelled"}

    wo = ok(move(operator, wo["id"], "in_progress"))
    assert_problem(move(operator, wo["id"], "on_hold"), 422)  # needs a reason
    wo = ok(move(operator, wo["id"], "on_hold", "waiting for a seal"))
    wo = ok(move(operator, wo["id"], "in_progress"))
    wo = ok(
        operator.put(f"/api/work-orders/{wo['id']}", json={"labour_notes": "Replaced seal, 2 h"})
    )
    assert wo["labour_notes"] == "Replaced seal, 2 h"
    wo = ok(move(operator, wo["id"], "completed"))
    assert wo["completed_at"] and wo["status"] == "completed"
    assert_problem(move(operator, wo["id"], "closed"), 403)  # sign-off is for managers
    wo = ok(move(manager, wo["id"], "closed", "checked"))
    assert wo["closed_at"] and wo["allowed_transitions"] == []

    body = assert_problem(move(manager, wo["id"], "in_progress", "again"), 409)
    assert body["allowed"] == [] and body["current_status"] == "closed"
    assert_problem(manager.put(f"/api/work-orders/{wo['id']}", json={"title": "x"}), 409)

    log = ok(viewer.get(f"/api/work-orders/{wo['id']}/transitions"))["items"]
    assert [(t["from_status"], t["to_status"]) for t in log] == [
        (None, "assigned"),
        ("assigned", "in_progress"),
        ("in_progress", "on_hold"),
        ("on_hold", "in_progress"),
        ("in_progress", "completed"),
        ("completed", "closed"),
    ]
    assert log[2]["reason"] == "waiting for a seal" and log[1]["actor_id"] == operator.sub

    events = events_about(wo["id"])
    types = [e[0] for e in events]
    assert types[0] == "workorder.created"
    assert types.count("workorder.status.changed") == 5
    assert types.count("workorder.completed") == 1
    created = events[0][1]
    assert created["number"] == wo["number"] and created["status"] == "assigned"
    completed = next(e for e in events if e[0] == "workorder.completed")[1]
    assert completed["repair_hours"] >= 0 and completed["assignee_id"] == operator.sub
    assert all(e[2]["event_type"] == e[0] for e in events)


def test_invalid_transition_names_the_allowed_moves(manager):
    wo = new_order(manager, new_asset(manager)["id"])
    assert wo["status"] == "open"
    body = assert_problem(move(manager, wo["id"], "completed"), 409)
    assert set(body["allowed"]) == {"assigned", "cancelled"}
    assert "open" in body["detail"]
    # moving to assigned needs someone to assign
    assert_problem(move(manager, wo["id"], "assigned"), 409)
    assert_problem(move(manager, wo["id"], "teleported"), 422)
    assert_problem(move(manager, str(uuid.uuid4()), "assigned"), 404)
    assert ok(manager.get(f"/api/work-orders/{wo['id']}"))["version"] == 1  # untouched


def test_assignment_by_put_and_by_transition(manager, operator):
    asset = new_asset(manager)
    wo = new_order(manager, asset["id"])
    wo = ok(manager.put(f"/api/work-orders/{wo['id']}", json={"assignee_id": operator.sub}))
    assert (wo["status"], wo["assignee_id"]) == ("assigned", operator.sub)
    wo = ok(manager.put(f"/api/work-orders/{wo['id']}", json={"assignee_id": None}))
    assert (wo["status"], wo["assignee_id"]) == ("open", None)
    wo = ok(move(manager, wo["id"], "assigned", assignee_id=operator.sub))
    assert (wo["status"], wo["assignee_id"]) == ("assigned", operator.sub)
    # the operator hands it back
    wo = ok(move(operator, wo["id"], "open"))
    assert (wo["status"], wo["assignee_id"]) == ("open", None)
    assert_problem(move(manager, wo["id"], "cancelled", assignee_id=operator.sub), 422)
    moves = [
        (e[1]["from_status"], e[1]["to_status"])
        for e in events_about(wo["id"])
        if e[0] == "workorder.status.changed"
    ]
    assert moves == [
        ("open", "assigned"),
        ("assigned", "open"),
        ("open", "assigned"),
        ("assigned", "open"),
    ]
    # started orders are reassigned, not unassigned
    wo = ok(move(manager, wo["id"], "assigned", assignee_id=operator.sub))
    ok(move(operator, wo["id"], "in_progress"))
    assert_problem(manager.put(f"/api/work-orders/{wo['id']}", json={"assignee_id": None}), 409)


def test_assignee_must_be_an_active_assignable_user_of_the_copy(manager):
    asset = new_asset(manager)
    body = assert_problem(
        manager.post(
            "/api/work-orders",
            json={"title": "T", "asset_id": asset["id"], "assignee_id": str(uuid.uuid4())},
        ),
        422,
    )
    assert body["errors"][0]["field"] == "assignee_id"
    looker = known_user(("viewer",))
    assert_problem(
        manager.post(
            "/api/work-orders",
            json={"title": "T", "asset_id": asset["id"], "assignee_id": looker.sub},
        ),
        422,
    )
    gone = known_user(("operator",))
    service.apply_user_event(
        received("user.updated", changed=["active"], **user_facts(gone.sub, 2, active=False))
    )
    assert_problem(
        manager.post(
            "/api/work-orders",
            json={"title": "T", "asset_id": asset["id"], "assignee_id": gone.sub},
        ),
        422,
    )
    before = count(store.work_orders, store.work_orders.c.asset_id == asset["id"])
    assert before == 0  # nothing half-written


def test_permissions(manager, operator, viewer):
    asset = new_asset(manager)
    other_operator = known_user(("operator",))
    wo = new_order(manager, asset["id"], assignee_id=other_operator.sub)
    # viewers read everything, change nothing
    assert ok(viewer.get(f"/api/work-orders/{wo['id']}"))["id"] == wo["id"]
    ok(viewer.get("/api/maintenance/stats"))
    assert_problem(viewer.post("/api/assets", json={"tag": tag(), "name": "N"}), 403)
    assert_problem(
        viewer.post("/api/work-orders", json={"title": "T", "asset_id": asset["id"]}), 403
    )
    assert_problem(move(viewer, wo["id"], "in_progress"), 403)
    assert_problem(viewer.put(f"/api/work-orders/{wo['id']}", json={"labour_notes": "x"}), 403)
    # operators: only their own orders, only hands-on changes
    assert_problem(operator.post("/api/assets", json={"tag": tag(), "name": "N"}), 403)
    assert_problem(operator.post("/api/parts", json={"sku": tag(), "name": "N"}), 403)
    assert_problem(
        operator.post("/api/work-orders", json={"title": "T", "asset_id": asset["id"]}), 403
    )
    assert_problem(move(operator, wo["id"], "in_progress"), 403)
    assert_problem(operator.put(f"/api/work-orders/{wo['id']}", json={"labour_notes": "x"}), 403)
    assert_problem(other_operator.put(f"/api/work-orders/{wo['id']}", json={"title": "x"}), 403)
    assert_problem(move(other_operator, wo["id"], "cancelled", "no"), 403)
    ok(move(other_operator, wo["id"], "in_progress"))
    # admins do everything
    admin = Caller(("admin",))
    ok(move(admin, wo["id"], "cancelled", "not needed"))
    # no token at all
    assert_problem(app.test_client().get("/api/work-orders"), 401)
    assert app.test_client().get("/api/assets/health").status_code in (200, 503)


def test_work_order_filters_and_pagination(manager, operator, viewer):
    asset = new_asset(manager)
    a = new_order(manager, asset["id"], title="Replace belt", priority="urgent")
    b = new_order(
        manager, asset["id"], title="Inspect guard", type="inspection", assignee_id=operator.sub
    )
    c = new_order(
        manager,
        asset["id"],
        title="Lubricate",
        priority="low",
        due_date=str(today() - timedelta(days=2)),
    )
    d = new_order(manager, asset["id"], title="Old one", due_date=str(today() - timedelta(days=5)))
    ok(move(manager, d["id"], "cancelled", "obsolete"))

    def ids(url):
        return [w["id"] for w in ok(viewer.get(url))["items"]]

    base = f"/api/work-orders?asset_id={asset['id']}"
    assert ids(base) == [d["id"], c["id"], b["id"], a["id"]]  # newest first
    assert ids(base + "&priority=urgent,low") == [c["id"], a["id"]]
    assert ids(base + "&priority=urgent&priority=low") == [c["id"], a["id"]]
    assert ids(base + "&status=open") == [c["id"], a["id"]]
    assert ids(base + "&type=inspection") == [b["id"]]
    assert ids(base + f"&assignee_id={operator.sub}") == [b["id"]]
    assert [w["id"] for w in ok(operator.get(base + "&assignee_id=me"))["items"]] == [b["id"]]
    assert ids(base + "&overdue=true") == [c["id"]]
    assert ids(base + "&overdue=false") == [d["id"], b["id"], a["id"]]
    listed = ok(viewer.get(base + "&overdue=true"))["items"][0]
    assert listed["overdue"] is True
    assert ids(base + "&q=BELT") == [a["id"]]
    assert ids(base + f"&q=WO-{b['number']}") == [b["id"]]
    history = [w["id"] for w in ok(viewer.get(f"/api/assets/{asset['id']}/history"))["items"]]
    assert history == [d["id"], c["id"], b["id"], a["id"]]
    assert_problem(viewer.get(f"/api/assets/{uuid.uuid4()}/history"), 404)

    seen, cursor = [], None
    while True:
        body = ok(viewer.get(base + "&limit=3" + (f"&cursor={cursor}" if cursor else "")))
        seen += [w["id"] for w in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [d["id"], c["id"], b["id"], a["id"]]
    assert_problem(viewer.get("/api/work-orders?status=done"), 422)
    assert_problem(viewer.get(f"/api/work-orders?cursor={cursor_of('x')}"), 400)


def cursor_of(value):
    from shared.http import encode_cursor

    return encode_cursor([value])


# --- parts -------------------------------------------------------------------------------------


def test_parts_movements_and_ledger(manager, viewer):
    part = new_part(manager, stock=10, reorder_point=4, unit="pcs", location="Store A")
    assert (part["stock"], part["low_stock"], part["version"]) == (10, False, 2)
    assert_problem(
        manager.post("/api/parts", json={"sku": part["sku"].lower(), "name": "Dup"}), 409
    )
    body = assert_problem(manager.put(f"/api/parts/{part['id']}", json={"stock": 99}), 422)
    assert "movements" in json.dumps(body["errors"])
    part = ok(manager.put(f"/api/parts/{part['id']}", json={"name": "Ball bearing 6204"}))
    assert part["name"] == "Ball bearing 6204"

    mv = ok(
        manager.post(
            f"/api/parts/{part['id']}/movements",
            json={"kind": "receive", "quantity": 5, "note": "PO 42"},
        ),
        201,
    )
    assert (mv["delta"], mv["stock_after"], mv["kind"]) == (5, 15, "receive")
    mv = ok(
        manager.post(
            f"/api/parts/{part['id']}/movements",
            json={"kind": "adjust", "quantity": -11, "note": "count"},
        ),
        201,
    )
    assert (mv["delta"], mv["stock_after"]) == (-11, 4)
    # crossed the reorder point (15 -> 4 <= 4): one part.stock.low
    lows = [e for e in events_about(part["id"]) if e[0] == "part.stock.low"]
    assert len(lows) == 1 and lows[0][1]["stock"] == 4
    body = assert_problem(
        manager.post(f"/api/parts/{part['id']}/movements", json={"kind": "adjust", "quantity": -5}),
        409,
    )
    assert body["stock"] == 4
    assert_problem(
        manager.post(
            f"/api/parts/{part['id']}/movements", json={"kind": "consume", "quantity": -1}
        ),
        422,
    )
    assert_problem(
        manager.post(f"/api/parts/{part['id']}/movements", json={"kind": "adjust", "quantity": 0}),
        422,
    )
    assert_problem(
        manager.post(f"/api/parts/{part['id']}/movements", json={"kind": "steal", "quantity": 1}),
        422,
    )
    assert_problem(
        manager.post(
            f"/api/parts/{uuid.uuid4()}/movements", json={"kind": "receive", "quantity": 1}
        ),
        404,
    )
    assert_problem(
        viewer.post(f"/api/parts/{part['id']}/movements", json={"kind": "receive", "quantity": 1}),
        403,
    )
    mv = ok(
        manager.post(f"/api/parts/{part['id']}/movements", json={"kind": "consume", "quantity": 4}),
        201,
    )
    assert mv["stock_after"] == 0
    assert len([e for e in events_about(part["id"]) if e[0] == "part.stock.low"]) == 1

    got = ok(viewer.get(f"/api/parts/{part['id']}"))
    assert (got["stock"], got["low_stock"]) == (0, True)
    ledger, cursor = [], None
    while True:
        body = ok(
            viewer.get(
                f"/api/parts/{part['id']}/movements?limit=2"
                + (f"&cursor={cursor}" if cursor else "")
            )
        )
        ledger += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [m["kind"] for m in ledger] == ["consume", "adjust", "receive", "receive"]
    assert sum(m["delta"] for m in ledger) == 0 == got["stock"]
    assert ledger[-1]["note"] == "initial stock"

    low = ok(viewer.get(f"/api/parts?low_stock=true&q={part['sku']}"))["items"]
    assert [p["id"] for p in low] == [part["id"]]
    assert ok(viewer.get(f"/api/parts?low_stock=false&q={part['sku']}"))["items"] == []


def test_consuming_parts_on_a_work_order(manager, operator):
    part = new_part(manager, stock=10, reorder_point=3)
    asset = new_asset(manager)
    wo = new_order(manager, asset["id"], assignee_id=operator.sub)
    mv = ok(
        operator.post(
            f"/api/work-orders/{wo['id']}/parts", json={"part_id": part["id"], "quantity": 6}
        ),
        201,
    )
    assert (mv["kind"], mv["quantity"], mv["delta"], mv["stock_after"], mv["work_order_id"]) == (
        "consume",
        6,
        -6,
        4,
        wo["id"],
    )
    assert not [e for e in events_about(part["id"]) if e[0] == "part.stock.low"]
    ok(
        operator.post(
            f"/api/work-orders/{wo['id']}/parts", json={"part_id": part["id"], "quantity": 2}
        ),
        201,
    )
    (low,) = [e for e in events_about(part["id"]) if e[0] == "part.stock.low"]
    assert low[1] == {
        "id": part["id"],
        "sku": part["sku"],
        "name": part["name"],
        "stock": 2,
        "reorder_point": 3,
        "work_order_id": wo["id"],
    }

    movements_before = count(store.part_movements, store.part_movements.c.part_id == part["id"])
    body = assert_problem(
        operator.post(
            f"/api/work-orders/{wo['id']}/parts", json={"part_id": part["id"], "quantity": 3}
        ),
        409,
    )
    assert body["stock"] == 2 and "Nothing was written" in body["detail"]
    assert ok(manager.get(f"/api/parts/{part['id']}"))["stock"] == 2
    assert (
        count(store.part_movements, store.part_movements.c.part_id == part["id"])
        == movements_before
    )

    body = assert_problem(
        operator.post(
            f"/api/work-orders/{wo['id']}/parts", json={"part_id": str(uuid.uuid4()), "quantity": 1}
        ),
        422,
    )
    assert body["errors"][0]["field"] == "part_id"
    assert_problem(
        operator.post(
            f"/api/work-orders/{wo['id']}/parts", json={"part_id": part["id"], "quantity": 0}
        ),
        422,
    )
    stranger = known_user(("operator",))
    assert_problem(
        stranger.post(
            f"/api/work-orders/{wo['id']}/parts", json={"part_id": part["id"], "quantity": 1}
        ),
        403,
    )
    used = ok(manager.get(f"/api/work-orders/{wo['id']}/parts"))["items"]
    assert [m["quantity"] for m in used] == [2, 6] and used[0]["sku"] == part["sku"]
    ok(move(manager, wo["id"], "cancelled", "wrong asset"))
    assert_problem(
        manager.post(
            f"/api/work-orders/{wo['id']}/parts", json={"part_id": part["id"], "quantity": 1}
        ),
        409,
    )


def test_concurrent_consumption_never_takes_stock_below_zero(manager):
    part = new_part(manager, stock=10, reorder_point=2)
    asset = new_asset(manager)
    wo = new_order(manager, asset["id"])
    actor = model.Actor(manager.sub, ("manager",))
    workers = 8
    barrier = threading.Barrier(workers)
    results: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        barrier.wait()
        try:
            service.consume_part(actor, wo["id"], part["id"], 3)
            outcome = "ok"
        except model.InsufficientStock:
            outcome = "refused"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=take) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["ok"] * 3 + ["refused"] * 5
    got = ok(manager.get(f"/api/parts/{part['id']}"))
    assert got["stock"] == 1
    with db.transaction() as tx:
        deltas = tx.execute(
            select(store.part_movements.c.delta, store.part_movements.c.stock_after).where(
                store.part_movements.c.part_id == part["id"]
            )
        ).all()
    assert sum(d for d, _ in deltas) == 1
    assert sorted(a for _, a in deltas) == [1, 4, 7, 10]  # every step recorded exactly
    lows = [e for e in events_about(part["id"]) if e[0] == "part.stock.low"]
    assert len(lows) == 1 and lows[0][1]["stock"] == 1


def test_update_part_racing_a_stock_movement_loses_neither(manager):
    """update_part's read must not go stale: a movement committed between its read and its
    write still counts in the version (and the stock), whichever runs first. The movement's
    transaction holds the part's row until the edit is seen waiting on it; then it commits."""
    part = new_part(manager, stock=10)
    actor = model.Actor(manager.sub, ("manager",))
    edited: list[model.Part] = []
    errors: list[BaseException] = []

    def edit() -> None:
        try:
            edited.append(service.update_part(actor, part["id"], {"name": "Renamed"}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def edit_waits_on(pid: int) -> bool:
        with db.engine().connect() as conn:
            return bool(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE :pid = ANY(pg_blocking_pids(pid))"
                    ),
                    {"pid": pid},
                ).scalar_one()
            )

    with db.transaction() as tx:
        moved = store.move_stock(tx, part["id"], 5, datetime.now(UTC))
        assert moved is not None and moved.version == part["version"] + 1
        pid = tx.execute(text("SELECT pg_backend_pid()")).scalar_one()
        worker = threading.Thread(target=edit)
        worker.start()
        wait_for(lambda: edit_waits_on(pid), timeout=10, interval=0.02)
    worker.join(30)
    assert errors == [] and not worker.is_alive()
    got = ok(manager.get(f"/api/parts/{part['id']}"))
    assert (got["name"], got["stock"]) == ("Renamed", 15)
    assert got["version"] == part["version"] + 2  # the movement's bump and the edit's


# --- PM schedules ------------------------------------------------------------------------------


def _tick_client():
    import functions_framework

    return functions_framework.create_app(
        target="pm_tick", source="functions/maintenance/main.py", signature_type="http"
    ).test_client()


def _scheduler_headers(when: datetime) -> dict[str, str]:
    return {
        "X-CloudScheduler": "true",
        "X-CloudScheduler-JobName": "maintenance-pm-tick",
        "X-CloudScheduler-ScheduleTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _orders_of_schedule(schedule_id):
    with db.transaction() as tx:
        rows = tx.execute(
            select(store.work_orders).where(store.work_orders.c.pm_schedule_id == schedule_id)
        ).all()
    return [db.as_dict(r) for r in rows]


def test_pm_schedule_validation_and_crud(manager, viewer):
    asset = new_asset(manager)
    base = {"asset_id": asset["id"], "title": "Grease bearings"}
    for bad in (
        {},
        {"interval_days": 7, "cron": "0 6 * * 1"},
        {"cron": "0 6 * *"},
        {"cron": "61 6 * * 1"},
        {"interval_days": 0},
    ):
        assert_problem(manager.post("/api/pm-schedules", json={**base, **bad}), 422)
    assert_problem(
        manager.post(
            "/api/pm-schedules", json={**base, "interval_days": 7, "asset_id": str(uuid.uuid4())}
        ),
        422,
    )
    assert_problem(
        manager.post("/api/pm-schedules", json={**base, "interval_days": 7, "type": "corrective"}),
        422,
    )
    assert_problem(viewer.post("/api/pm-schedules", json={**base, "interval_days": 7}), 403)

    weekly = ok(manager.post("/api/pm-schedules", json={**base, "cron": "0 6 * * 1"}), 201)
    assert weekly["next_due_at"] > datetime.now(UTC).isoformat()[:19]
    assert (weekly["type"], weekly["active"], weekly["interval_days"]) == ("preventive", True, None)
    monthly = ok(
        manager.post("/api/pm-schedules", json={**base, "interval_days": 30, "priority": "high"}),
        201,
    )
    due = datetime.fromisoformat(monthly["next_due_at"].replace("Z", "+00:00"))
    assert abs((due - datetime.now(UTC)) - timedelta(days=30)) < timedelta(minutes=1)
    # switch recurrence: the new one and null for the other
    switched = ok(
        manager.put(
            f"/api/pm-schedules/{monthly['id']}", json={"cron": "0 7 1 * *", "interval_days": None}
        )
    )
    assert (switched["cron"], switched["interval_days"], switched["version"]) == (
        "0 7 1 * *",
        None,
        2,
    )
    assert_problem(
        manager.put(f"/api/pm-schedules/{monthly['id']}", json={"interval_days": 5}), 422
    )  # both now
    assert_problem(manager.put(f"/api/pm-schedules/{monthly['id']}", json={"title": None}), 422)
    assert ok(viewer.get(f"/api/pm-schedules/{weekly['id']}")) == weekly
    listed = ok(viewer.get(f"/api/pm-schedules?asset_id={asset['id']}"))["items"]
    assert {s["id"] for s in listed} == {weekly["id"], monthly["id"]}
    paused = ok(manager.put(f"/api/pm-schedules/{weekly['id']}", json={"active": False}))
    listed = ok(viewer.get(f"/api/pm-schedules?asset_id={asset['id']}&active=false"))["items"]
    assert [s["id"] for s in listed] == [paused["id"]]
    assert_problem(viewer.get(f"/api/pm-schedules/{uuid.uuid4()}"), 404)


def test_pm_tick_twice_for_the_same_schedule_time_creates_one_order(manager, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_DEPLOYMENT", "maintenance-pm-tick")  # publishes checked
    settings.cache_clear()
    asset = new_asset(manager)
    tick_time = datetime.now(UTC).replace(microsecond=0)
    due = tick_time - timedelta(hours=1)
    sched = ok(
        manager.post(
            "/api/pm-schedules",
            json={
                "asset_id": asset["id"],
                "title": "Weekly check",
                "interval_days": 7,
                "priority": "high",
                "type": "inspection",
                "next_due_at": due.isoformat(),
            },
        ),
        201,
    )
    client = _tick_client()
    first = client.post("/", headers=_scheduler_headers(tick_time))
    assert first.status_code == 200, first.get_data(as_text=True)
    second = client.post("/", headers=_scheduler_headers(tick_time))
    assert second.status_code == 200
    (wo,) = _orders_of_schedule(sched["id"])
    assert wo["id"] in first.get_json()["work_order_ids"]
    assert wo["id"] not in second.get_json()["work_order_ids"]
    assert (wo["type"], wo["priority"], wo["status"], wo["due_date"], wo["title"]) == (
        "inspection",
        "high",
        "open",
        due.date(),
        "Weekly check",
    )
    after = ok(manager.get(f"/api/pm-schedules/{sched['id']}"))
    assert after["next_due_at"].startswith((due + timedelta(days=7)).date().isoformat())
    assert after["last_generated_at"]
    (created,) = [e for e in events_about(wo["id"]) if e[0] == "workorder.created"]
    assert created[1]["pm_schedule_id"] == sched["id"]
    assert (created[2]["source"], created[2]["actor"]) == ("maintenance-pm-tick", "system")
    # the run key is what makes it exactly once
    assert count(store.pm_runs, store.pm_runs.c.schedule_id == sched["id"]) == 1
    # a later tick before the next due time creates nothing either
    client.post("/", headers=_scheduler_headers(tick_time + timedelta(minutes=5)))
    assert len(_orders_of_schedule(sched["id"])) == 1


def test_pm_tick_concurrent_calls_create_one_order_per_due_time(manager):
    asset = new_asset(manager)
    now = datetime.now(UTC)
    scheds = [
        ok(
            manager.post(
                "/api/pm-schedules",
                json={
                    "asset_id": asset["id"],
                    "title": f"PM {i}",
                    "cron": "0 * * * *",
                    "next_due_at": (now - timedelta(minutes=90)).isoformat(),
                },
            ),
            201,
        )
        for i in range(3)
    ]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def tick() -> None:
        barrier.wait()
        try:
            service.run_due_schedules(now)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    for sched in scheds:
        assert len(_orders_of_schedule(sched["id"])) == 1
        nxt = ok(manager.get(f"/api/pm-schedules/{sched['id']}"))["next_due_at"]
        assert datetime.fromisoformat(nxt.replace("Z", "+00:00")) > now


def test_pm_tick_skips_inactive_schedules_and_retired_assets(manager):
    asset = new_asset(manager)
    now = datetime.now(UTC)
    past = (now - timedelta(days=1)).isoformat()
    paused = ok(
        manager.post(
            "/api/pm-schedules",
            json={
                "asset_id": asset["id"],
                "title": "Paused",
                "interval_days": 1,
                "next_due_at": past,
                "active": False,
            },
        ),
        201,
    )
    live = ok(
        manager.post(
            "/api/pm-schedules",
            json={
                "asset_id": asset["id"],
                "title": "Live",
                "interval_days": 1,
                "next_due_at": past,
            },
        ),
        201,
    )
    assert manager.delete(f"/api/assets/{asset['id']}").status_code == 204
    service.run_due_schedules(now)
    assert _orders_of_schedule(paused["id"]) == []
    assert _orders_of_schedule(live["id"]) == []  # retired asset: skipped, schedule advanced
    nxt = ok(manager.get(f"/api/pm-schedules/{live['id']}"))["next_due_at"]
    assert datetime.fromisoformat(nxt.replace("Z", "+00:00")) > now


# --- stats -------------------------------------------------------------------------------------


def test_stats_change_with_the_data(manager, operator, viewer):
    asked = today()
    before = ok(viewer.get("/api/maintenance/stats"))
    assert len(before["trend"]) == 14
    assert before["trend"][-1]["date"] in {asked.isoformat(), today().isoformat()}
    assert set(before["work_orders_by_status"]) == set(model.WORK_ORDER_STATUSES)
    asset = new_asset(manager)
    ok(manager.put(f"/api/assets/{asset['id']}", json={"status": "down"}))
    new_part(manager, stock=1, reorder_point=5)
    late = new_order(
        manager, asset["id"], priority="urgent", due_date=str(today() - timedelta(days=3))
    )
    fixed = new_order(manager, asset["id"], assignee_id=operator.sub)
    ok(move(operator, fixed["id"], "in_progress"))
    ok(move(operator, fixed["id"], "completed"))

    after = ok(viewer.get("/api/maintenance/stats"))
    assert after["work_orders_total"] == before["work_orders_total"] + 2
    assert after["work_orders_by_status"]["open"] == before["work_orders_by_status"]["open"] + 1
    assert (
        after["work_orders_by_status"]["completed"]
        == before["work_orders_by_status"]["completed"] + 1
    )
    assert (
        after["work_orders_by_priority"]["urgent"]
        == before["work_orders_by_priority"]["urgent"] + 1
    )
    assert after["overdue"] == before["overdue"] + 1
    assert after["assets_down"] == before["assets_down"] + 1
    assert after["low_stock_count"] == before["low_stock_count"] + 1
    assert after["mttr_sample"] == before["mttr_sample"] + 1 and after["mttr_hours"] is not None
    assert after["trend"][-1]["created"] == before["trend"][-1]["created"] + 2
    assert after["trend"][-1]["completed"] == before["trend"][-1]["completed"] + 1
    assert after["trend"][-1]["overdue"] == before["trend"][-1]["overdue"] + 1
    # due three days ago: overdue at the end of each of the last two days too
    assert after["trend"][-2]["overdue"] == before["trend"][-2]["overdue"]  # created today
    assert after["low_stock_parts"] and len(after["low_stock_parts"]) <= 10
    ok(move(manager, late["id"], "cancelled", "not needed"))
    again = ok(viewer.get("/api/maintenance/stats"))
    assert again["overdue"] == before["overdue"]
    assert again["trend"][-1]["overdue"] == before["trend"][-1]["overdue"]


def test_stats_trend_counts_past_days_from_the_timestamps(manager):
    """Rows backdated in SQL: overdue at the end of a day = due before it, created by its end,
    not completed or cancelled by its end."""
    asset = new_asset(manager)
    wo = new_order(manager, asset["id"])
    now = datetime.now(UTC)
    day = lambda n: now.date() - timedelta(days=n)  # noqa: E731
    before = service.stats(now).trend
    with db.transaction() as tx:
        tx.execute(
            store.work_orders.update()
            .where(store.work_orders.c.id == wo["id"])
            .values(
                created_at=now - timedelta(days=10),
                due_date=day(8),
                completed_at=now - timedelta(days=2),
                resolved_at=now - timedelta(days=2),
                status="completed",
            )
        )
    trend = service.stats(now).trend
    by_day = {t.date: asdict(t) for t in trend}
    old = {t.date: asdict(t) for t in before}
    for n in range(14):
        d = day(n)
        expected = 1 if 3 <= n <= 7 else 0  # overdue from day-7 to day-3 (completed day-2)
        assert by_day[d]["overdue"] - old[d]["overdue"] == expected, (n, d)
    assert by_day[day(2)]["completed"] - old[day(2)]["completed"] == 1
    assert by_day[day(10)]["created"] - old[day(10)]["created"] == 1
    assert by_day[day(0)]["created"] - old[day(0)]["created"] == -1


# --- problems ----------------------------------------------------------------------------------


def test_bad_input_is_problem_json(manager):
    assert_problem(
        manager.post("/api/assets", json={"tag": tag(), "name": "N", "colour": "red"}), 422
    )
    assert_problem(manager.post("/api/assets", data="{", content_type="application/json"), 400)
    assert_problem(manager.post("/api/assets", data="x", content_type="text/plain"), 415)
    assert_problem(manager.post("/api/assets", json={"tag": "bad tag!", "name": "N"}), 422)
    assert_problem(manager.get("/api/assets/not-a-uuid"), 404)
    assert_problem(manager.get(f"/api/work-orders/{uuid.uuid4()}"), 404)
    assert_problem(manager.get(f"/api/parts/{uuid.uuid4()}"), 404)
    body = assert_problem(
        manager.put(f"/api/work-orders/{uuid.uuid4()}", json={"status": "closed"}), 422
    )
    assert body["errors"][0]["field"] == "status"
    assert_problem(
        manager.post(
            "/api/work-orders",
            json={"title": "T", "asset_id": str(uuid.uuid4()), "due_date": "tomorrow"},
        ),
        422,
    )


def test_openapi_document_lists_the_routes():
    spec = app.test_client().get("/api/assets/openapi.json").get_json()
    paths = set(spec["paths"])
    assert {
        "/api/assets",
        "/api/assets/{asset_id}",
        "/api/work-orders",
        "/api/work-orders/{wo_id}/transitions",
        "/api/work-orders/{wo_id}/parts",
        "/api/parts/{part_id}/movements",
        "/api/pm-schedules",
        "/api/maintenance/stats",
    } <= paths


@pytest.mark.parametrize(
    ("out", "domain"),
    [
        (api.AssetOut, model.Asset),
        (api.WorkOrderOut, model.WorkOrder),
        (api.TransitionOut, model.Transition),
        (api.MovementOut, model.Movement),
        (api.PartOut, model.Part),
        (api.LowStockPart, model.Part),
        (api.ScheduleOut, model.Schedule),
        (api.TrendDay, model.TrendDay),
        (api.StatsOut, model.Stats),
    ],
)
def test_response_models_read_what_the_domain_objects_have(out, domain):
    """Each response model is written beside its domain object: every field it shows is a
    field (or a property) of that object, so a renamed field cannot go missing silently."""
    attributes = {f.name for f in fields(domain)} | {
        name for name, value in vars(domain).items() if isinstance(value, property)
    }
    assert set(out.model_fields) <= attributes


def test_due_dates_are_dates(manager):
    wo = new_order(manager, new_asset(manager)["id"], due_date="2030-01-31")
    assert wo["due_date"] == "2030-01-31"
    with db.transaction() as tx:
        row = store.work_order(tx, wo["id"])
    assert row.due_date == date(2030, 1, 31)
