"""maintenance end to end: the whole local stack driven through the gateway, as the console
drives it. Users created through /api/users reach the maintenance users copy by their events
(Pub/Sub -> maintenance-on-user-event); a work order is assigned to one of them, worked through
to completion with parts consumed, the dashboard stats move, and every event reaches the audit
trail. The PM tick is fired twice for the same schedule time, as Cloud Scheduler may do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from emulators._scheduler import scheduler_headers
from tests.e2e.support import PASSWORD, Api, assert_problem, ok, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def people(api, admin) -> dict[str, dict]:
    """A fresh user per role, created through /api/users and logged in."""
    out = {}
    for role in ("operator", "manager", "viewer"):
        email = f"cmms-{role}-{uuid.uuid4().hex[:8]}@example.com"
        user = ok(
            api.req(
                "POST",
                "/api/users",
                admin,
                json={
                    "email": email,
                    "name": f"CMMS {role}",
                    "roles": [role],
                    "password": PASSWORD,
                },
            ),
            201,
        )
        token = api.login(email, PASSWORD)
        assert token, f"{role} cannot log in"
        out[role] = {**user, "token": token}
    return out


def audit(api: Api, admin: str, event_type: str, entity_id: str) -> list[dict]:
    resp = api.req(
        "GET", "/api/audit/events", admin, params={"event_type": event_type, "limit": 100}
    )
    assert resp.status_code == 200, resp.text
    return [e for e in resp.json()["items"] if e["data"].get("id") == entity_id]


def create_assigned_order(api: Api, token: str, asset_id: str, assignee_id: str) -> dict:
    """Create a work order for `assignee_id`, waiting until the maintenance users copy has the
    user (422 until user.created has arrived through Pub/Sub)."""

    def attempt():
        resp = api.req(
            "POST",
            "/api/work-orders",
            token,
            json={
                "title": "Replace conveyor belt",
                "asset_id": asset_id,
                "priority": "high",
                "type": "corrective",
                "assignee_id": assignee_id,
                "due_date": (datetime.now(UTC) + timedelta(days=2)).date().isoformat(),
            },
        )
        if resp.status_code == 422:
            return None
        return ok(resp, 201)

    return wait_for(attempt, timeout=30, interval=0.3)


def test_maintenance_deployments_are_healthy(api, stack, admin):
    body = wait_for(  # the details are for admins (decision 0032)
        lambda: (r := api.req("GET", "/api/health", admin)).status_code == 200 and r.json(),
        timeout=30,
    )
    for name in ("maintenance-api", "maintenance-on-user-event", "maintenance-pm-tick"):
        assert body["deployments"][name]["status"] == "ok", body["deployments"][name]
    assert api.req("GET", "/api/assets/health").status_code == 200
    spec = ok(api.req("GET", "/api/openapi.json"))
    assert "/api/work-orders/{wo_id}/transitions" in spec["paths"]


def test_work_order_from_creation_to_closure_through_the_gateway(api, admin, people):
    manager, operator, viewer = (people[r] for r in ("manager", "operator", "viewer"))
    mt, ot, vt = manager["token"], operator["token"], viewer["token"]
    before = ok(api.req("GET", "/api/maintenance/stats", vt))

    # assets (with a hierarchy) and a part
    run = uuid.uuid4().hex[:6].upper()
    line = ok(
        api.req(
            "POST",
            "/api/assets",
            mt,
            json={
                "tag": f"LINE-{run}",
                "name": "Packing line",
                "category": "line",
                "location": "Hall 2",
                "criticality": "high",
            },
        ),
        201,
    )
    conveyor = ok(
        api.req(
            "POST",
            "/api/assets",
            mt,
            json={
                "tag": f"CNV-{run}",
                "name": "Conveyor",
                "category": "conveyor",
                "location": "Hall 2",
                "parent_id": line["id"],
            },
        ),
        201,
    )
    assert_problem(
        api.req("PUT", f"/api/assets/{line['id']}", mt, json={"parent_id": conveyor["id"]}), 409
    )
    children = ok(api.req("GET", f"/api/assets?parent_id={line['id']}", vt))["items"]
    assert [a["id"] for a in children] == [conveyor["id"]]
    part = ok(
        api.req(
            "POST",
            "/api/parts",
            mt,
            json={
                "sku": f"BELT-{run}",
                "name": "Conveyor belt 5 m",
                "unit": "pcs",
                "stock": 10,
                "reorder_point": 3,
                "location": "Store 1",
            },
        ),
        201,
    )

    # a work order for the operator created through /api/users (the copy catches up)
    wo = create_assigned_order(api, mt, conveyor["id"], operator["id"])
    assert (wo["status"], wo["assignee_id"], wo["assignee_name"]) == (
        "assigned",
        operator["id"],
        "CMMS operator",
    )
    mine = ok(api.req("GET", "/api/work-orders?assignee_id=me", ot))["items"]
    assert wo["id"] in [w["id"] for w in mine]

    # viewers read but do not plan; operators do not plan either
    assert ok(api.req("GET", f"/api/work-orders/{wo['id']}", vt))["id"] == wo["id"]
    assert_problem(
        api.req("POST", "/api/work-orders", vt, json={"title": "x", "asset_id": conveyor["id"]}),
        403,
    )
    assert_problem(api.req("POST", "/api/assets", ot, json={"tag": f"X-{run}", "name": "x"}), 403)

    # the operator works it: start, consume parts, note the labour, complete
    wo = ok(
        api.req(
            "POST", f"/api/work-orders/{wo['id']}/transitions", ot, json={"status": "in_progress"}
        )
    )
    body = assert_problem(
        api.req("POST", f"/api/work-orders/{wo['id']}/transitions", ot, json={"status": "closed"}),
        409,
    )
    assert set(body["allowed"]) == {"on_hold", "completed", "cancelled"}
    used = ok(
        api.req(
            "POST",
            f"/api/work-orders/{wo['id']}/parts",
            ot,
            json={"part_id": part["id"], "quantity": 8},
        ),
        201,
    )
    assert used["stock_after"] == 2
    body = assert_problem(
        api.req(
            "POST",
            f"/api/work-orders/{wo['id']}/parts",
            ot,
            json={"part_id": part["id"], "quantity": 5},
        ),
        409,
    )
    assert body["stock"] == 2
    assert ok(api.req("GET", f"/api/parts/{part['id']}", vt))["stock"] == 2
    ok(
        api.req(
            "PUT",
            f"/api/work-orders/{wo['id']}",
            ot,
            json={"labour_notes": "Belt replaced, tension adjusted. 1.5 h"},
        )
    )
    wo = ok(
        api.req(
            "POST",
            f"/api/work-orders/{wo['id']}/transitions",
            ot,
            json={"status": "completed", "reason": "done"},
        )
    )
    assert wo["status"] == "completed" and wo["completed_at"]
    wo = ok(
        api.req(
            "POST",
            f"/api/work-orders/{wo['id']}/transitions",
            mt,
            json={"status": "closed", "reason": "signed off"},
        )
    )
    assert wo["status"] == "closed" and wo["allowed_transitions"] == []
    log = ok(api.req("GET", f"/api/work-orders/{wo['id']}/transitions", vt))["items"]
    assert [t["to_status"] for t in log] == ["assigned", "in_progress", "completed", "closed"]
    consumed = ok(api.req("GET", f"/api/work-orders/{wo['id']}/parts", vt))["items"]
    assert [m["quantity"] for m in consumed] == [8]
    history = ok(api.req("GET", f"/api/assets/{conveyor['id']}/history", vt))["items"]
    assert [w["id"] for w in history] == [wo["id"]]

    # the conveyor goes down; a new order keeps it from retiring until it is cancelled
    ok(api.req("PUT", f"/api/assets/{conveyor['id']}", mt, json={"status": "down"}))
    extra = ok(
        api.req(
            "POST",
            "/api/work-orders",
            mt,
            json={"title": "Inspect drive", "asset_id": conveyor["id"], "type": "inspection"},
        ),
        201,
    )
    assert_problem(api.req("DELETE", f"/api/assets/{conveyor['id']}", mt), 409)

    # the dashboard moved
    after = ok(api.req("GET", "/api/maintenance/stats", vt))
    assert after["work_orders_total"] == before["work_orders_total"] + 2
    assert after["work_orders_by_status"]["closed"] == before["work_orders_by_status"]["closed"] + 1
    assert after["assets_down"] == before["assets_down"] + 1
    assert after["low_stock_count"] == before["low_stock_count"] + 1
    assert part["id"] in [p["id"] for p in after["low_stock_parts"]]
    assert after["mttr_sample"] == before["mttr_sample"] + 1
    assert after["trend"][-1]["created"] == before["trend"][-1]["created"] + 2
    assert after["trend"][-1]["completed"] == before["trend"][-1]["completed"] + 1

    ok(
        api.req(
            "POST",
            f"/api/work-orders/{extra['id']}/transitions",
            mt,
            json={"status": "cancelled", "reason": "covered by the belt job"},
        )
    )
    assert api.req("DELETE", f"/api/assets/{conveyor['id']}", mt).status_code == 204
    assert ok(api.req("GET", f"/api/assets/{conveyor['id']}", vt))["status"] == "retired"

    # every event reached the audit trail, from maintenance-api, once
    wait_for(lambda: len(audit(api, admin, "workorder.status.changed", wo["id"])) >= 3, timeout=30)
    (created,) = wait_for(lambda: audit(api, admin, "workorder.created", wo["id"]))
    assert created["source"] == "maintenance-api" and created["actor"] == manager["id"]
    (completed,) = wait_for(lambda: audit(api, admin, "workorder.completed", wo["id"]))
    assert completed["actor"] == operator["id"]
    (low,) = wait_for(lambda: audit(api, admin, "part.stock.low", part["id"]))
    assert (low["data"]["stock"], low["data"]["work_order_id"]) == (2, wo["id"])
    moves = wait_for(
        lambda: (
            (m := audit(api, admin, "asset.status.changed", conveyor["id"])) and len(m) == 2 and m
        )
    )
    assert {(m["data"]["from_status"], m["data"]["to_status"]) for m in moves} == {
        ("operational", "down"),
        ("down", "retired"),
    }
    changes = audit(api, admin, "workorder.status.changed", wo["id"])
    assert sorted(c["data"]["to_status"] for c in changes) == ["closed", "completed", "in_progress"]


def test_pm_tick_fired_twice_for_one_schedule_time_creates_one_order(api, admin, people, stack):
    mt, vt = people["manager"]["token"], people["viewer"]["token"]
    run = uuid.uuid4().hex[:6].upper()
    pump = ok(api.req("POST", "/api/assets", mt, json={"tag": f"PMP-{run}", "name": "Pump"}), 201)
    when = datetime.now(UTC).replace(microsecond=0)
    sched = ok(
        api.req(
            "POST",
            "/api/pm-schedules",
            mt,
            json={
                "asset_id": pump["id"],
                "title": "Grease pump bearings",
                "interval_days": 30,
                "priority": "low",
                "next_due_at": (when - timedelta(hours=1)).isoformat(),
            },
        ),
        201,
    )
    url = stack.url_of("maintenance-pm-tick") + "/"
    for _ in range(2):  # Cloud Scheduler may deliver one firing twice
        r = requests.post(
            url, data=b"", timeout=30, headers=scheduler_headers("maintenance-pm-tick", when)
        )
        assert r.status_code == 200, r.text
    orders = ok(api.req("GET", f"/api/work-orders?asset_id={pump['id']}", vt))["items"]
    assert len(orders) == 1
    (wo,) = orders
    assert (wo["type"], wo["status"], wo["pm_schedule_id"], wo["title"]) == (
        "preventive",
        "open",
        sched["id"],
        "Grease pump bearings",
    )
    nxt = ok(api.req("GET", f"/api/pm-schedules/{sched['id']}", vt))["next_due_at"]
    assert datetime.fromisoformat(nxt.replace("Z", "+00:00")) > when
    (event,) = wait_for(lambda: audit(api, admin, "workorder.created", wo["id"]))
    assert (event["source"], event["actor"]) == ("maintenance-pm-tick", "system")


def test_a_deactivated_user_can_no_longer_be_assigned(api, admin, people):
    mt = people["manager"]["token"]
    email = f"cmms-leaver-{uuid.uuid4().hex[:8]}@example.com"
    leaver = ok(
        api.req(
            "POST",
            "/api/users",
            admin,
            json={"email": email, "name": "Leaver", "roles": ["operator"]},
        ),
        201,
    )
    asset = ok(
        api.req(
            "POST",
            "/api/assets",
            mt,
            json={"tag": f"CMP-{uuid.uuid4().hex[:6]}", "name": "Compressor"},
        ),
        201,
    )
    create_assigned_order(api, mt, asset["id"], leaver["id"])
    ok(api.req("PUT", f"/api/users/{leaver['id']}", admin, json={"active": False}))

    def refused():
        resp = api.req(
            "POST",
            "/api/work-orders",
            mt,
            json={"title": "Check oil", "asset_id": asset["id"], "assignee_id": leaver["id"]},
        )
        if resp.status_code == 201:  # the copy has not caught up yet: tidy up and retry
            ok(
                api.req(
                    "POST",
                    f"/api/work-orders/{resp.json()['id']}/transitions",
                    mt,
                    json={"status": "cancelled", "reason": "test retry"},
                )
            )
            return None
        return [resp]  # a list: a 4xx Response is falsy

    (resp,) = wait_for(refused, timeout=30)
    body = assert_problem(resp, 422)
    assert body["errors"][0]["field"] == "assignee_id"


def test_seed_is_idempotent_and_assigns_the_demo_operator(api, admin):
    from functions.maintenance import seed
    from functions.users import seed as users_seed

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {admin}"
    users_seed.run(http, api.base)
    seed.run(http, api.base)

    def snapshot():
        assets = ok(
            api.req(
                "GET", "/api/assets?q=-&limit=100&status=operational,degraded,down,retired", admin
            )
        )["items"]
        tags = {a["tag"]: a for a in assets if a["tag"] in {t[0] for t in seed.ASSETS}}
        orders = [
            w
            for w in ok(api.req("GET", "/api/work-orders?limit=100", admin))["items"]
            if w["title"] in {t[0] for t in seed.WORK_ORDERS}
        ]
        schedules = ok(api.req("GET", "/api/pm-schedules?limit=100", admin))["items"]
        return tags, orders, [s for s in schedules if s["title"] in {t[1] for t in seed.SCHEDULES}]

    tags, orders, schedules = snapshot()
    assert set(tags) == {t[0] for t in seed.ASSETS}
    assert tags["CNV-101"]["parent_id"] == tags["LINE-01"]["id"]
    assert tags["LINE-01"]["parent_id"] == tags["PLANT-01"]["id"]
    assert len(orders) == len(seed.WORK_ORDERS) and len(schedules) == len(seed.SCHEDULES)
    statuses = {w["title"]: w["status"] for w in orders}
    assert statuses["Replace infeed belt"] == "closed"
    assert statuses["Filler nozzle drips"] == "on_hold"
    assert statuses["Paint the railings"] == "cancelled"
    olga = [
        u
        for u in ok(api.req("GET", "/api/users?q=olga", admin))["items"]
        if u["email"] == seed.OPERATOR_EMAIL
    ]
    assert olga and any(w["assignee_id"] == olga[0]["id"] for w in orders)
    low = ok(api.req("GET", "/api/parts?low_stock=true&limit=100", admin))["items"]
    assert {"BLT-5M", "NOZ-FIL"} <= {p["sku"] for p in low}

    seed.run(http, api.base)  # again: nothing new
    tags2, orders2, schedules2 = snapshot()
    assert (len(tags2), len(orders2), len(schedules2)) == (len(tags), len(orders), len(schedules))
