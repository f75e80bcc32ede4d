"""production-api end to end: the whole local stack driven through the gateway. A batch is
planned, walked through every stage, held and released by QA and completed; its events reach
the audit trail (Pub/Sub -> audit-ingest -> Firestore) in order. Roles are enforced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.support import PASSWORD, Api, assert_problem, ok, wait_for

pytestmark = pytest.mark.e2e

STAGES = ["granulation", "compression", "coating", "packaging"]


@pytest.fixture(scope="module")
def tokens(api, admin) -> dict[str, str]:
    """A fresh user per role, logged in: {role: access token}."""
    out = {}
    for role in ("operator", "manager", "viewer"):
        email = f"prod-{role}-{uuid.uuid4().hex[:8]}@example.com"
        resp = api.req(
            "POST",
            "/api/users",
            admin,
            json={
                "email": email,
                "name": f"Production {role}",
                "roles": [role],
                "password": PASSWORD,
            },
        )
        assert resp.status_code == 201, resp.text
        out[role] = api.login(email, PASSWORD)
        assert out[role], f"{role} cannot log in"
    return out


def new_batch(api: Api, token: str, quantity: float = 1000) -> dict:
    return ok(
        api.req(
            "POST",
            "/api/batches",
            token,
            json={
                "batch_number": f"E2E-{uuid.uuid4().hex[:10].upper()}",
                "product": "Paracetamol 500 mg",
                "planned_quantity": quantity,
                "unit": "kg",
            },
        ),
        201,
    )


def move(api: Api, token: str, batch_id: str, **body) -> requests.Response:
    body.setdefault("reason", "e2e")
    return api.req("POST", f"/api/batches/{batch_id}/transitions", token, json=body)


def test_batch_lifecycle_through_the_gateway_reaches_the_audit_trail(api, admin, tokens):
    operator, manager, viewer = tokens["operator"], tokens["manager"], tokens["viewer"]
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    batch = new_batch(api, operator)
    bid = batch["id"]
    ok(move(api, operator, bid, status="in_progress", reason="line cleared"))
    for stage in STAGES:
        ok(move(api, operator, bid, stage=stage, reason=f"{stage} started"))
    ok(move(api, manager, bid, status="qa_hold", reason="batch record review"))
    ok(move(api, manager, bid, status="released", reason="QA release"))
    done = ok(
        move(api, operator, bid, status="completed", reason="to warehouse", actual_quantity=970)
    )
    assert (done["status"], done["stage"], done["actual_quantity"], done["version"]) == (
        "completed",
        "packaging",
        970.0,
        9,
    )
    assert ok(api.req("GET", f"/api/batches/{bid}", viewer)) == done

    history = ok(api.req("GET", f"/api/batches/{bid}/history", viewer))["items"]
    assert [h["to"] for h in history] == [
        "planned",
        "in_progress",
        *STAGES,
        "qa_hold",
        "released",
        "completed",
    ]
    found = ok(
        api.req(
            "GET",
            "/api/batches",
            viewer,
            params={"q": batch["batch_number"], "status": "completed"},
        )
    )
    assert [b["id"] for b in found["items"]] == [bid]
    metrics = ok(api.req("GET", "/api/batches/metrics", viewer))
    assert metrics["completed_total"] >= 1 and metrics["by_status"]["completed"] >= 1

    expected = (
        ["batch.created", "batch.status.changed"]
        + ["batch.stage.changed"] * 4
        + ["batch.status.changed"] * 3
        + ["batch.completed"]
    )

    def in_audit():
        resp = api.req(
            "GET",
            "/api/audit/events",
            admin,
            params={"source": "production-api", "since": since, "limit": 100},
        )
        assert resp.status_code == 200, resp.text
        mine = [e for e in resp.json()["items"] if e["data"].get("batch_id") == bid]
        return mine if len(mine) >= len(expected) else None

    events = sorted(wait_for(in_audit, timeout=60), key=lambda e: e["occurred_at"])
    assert [e["event_type"] for e in events] == expected
    assert all(e["source"] == "production-api" for e in events)
    moves = [(e["data"]["old"], e["data"]["new"]) for e in events[1:-1]]
    assert moves == [
        ("planned", "in_progress"),
        ("dispensing", "granulation"),
        ("granulation", "compression"),
        ("compression", "coating"),
        ("coating", "packaging"),
        ("in_progress", "qa_hold"),
        ("qa_hold", "released"),
        ("released", "completed"),
    ]
    operator_id = events[0]["actor"]
    assert operator_id != "system" and events[1]["data"]["actor"] == operator_id
    assert events[6]["actor"] == events[7]["actor"] != operator_id  # the manager's decisions
    completed = events[-1]["data"]
    assert (completed["batch_number"], completed["actual_quantity"], completed["yield"]) == (
        batch["batch_number"],
        970.0,
        pytest.approx(0.97),
    )


def test_roles_through_the_gateway(api, tokens):
    operator, manager, viewer = tokens["operator"], tokens["manager"], tokens["viewer"]
    assert_problem(
        api.req(
            "POST",
            "/api/batches",
            viewer,
            json={
                "batch_number": f"E2E-{uuid.uuid4().hex[:10].upper()}",
                "product": "P",
                "planned_quantity": 1,
                "unit": "kg",
            },
        ),
        403,
    )
    assert_problem(api.req("GET", "/api/batches"), 401)
    batch = new_batch(api, operator)
    bid = batch["id"]
    assert_problem(move(api, viewer, bid, status="in_progress"), 403)
    ok(move(api, operator, bid, status="in_progress"))
    for stage in STAGES:
        ok(move(api, operator, bid, stage=stage))
    assert_problem(move(api, operator, bid, status="qa_hold"), 403)
    ok(move(api, manager, bid, status="qa_hold"))
    assert_problem(move(api, operator, bid, status="released"), 403)
    assert_problem(move(api, operator, bid, status="rejected"), 403)
    ok(move(api, manager, bid, status="released"))
    body = assert_problem(move(api, operator, bid, stage="coating"), 409)
    assert body["allowed"] == [{"status": "completed"}]
    assert ok(api.req("GET", f"/api/batches/{bid}", viewer))["status"] == "released"


def test_bad_input_through_the_gateway(api, tokens):
    operator = tokens["operator"]
    body = assert_problem(
        api.req(
            "POST",
            "/api/batches",
            operator,
            json={
                "batch_number": "E2E-NEG",
                "product": "P",
                "planned_quantity": -1,
                "unit": "kg",
                "colour": "red",
            },
        ),
        422,
    )
    assert {e["field"] for e in body["errors"]} == {"planned_quantity", "colour"}
    batch = new_batch(api, operator)
    assert_problem(
        api.req(
            "POST",
            "/api/batches",
            operator,
            json={
                "batch_number": batch["batch_number"],
                "product": "P",
                "planned_quantity": 1,
                "unit": "kg",
            },
        ),
        409,
    )
    assert_problem(api.req("GET", "/api/batches/not-an-id", operator), 404)
    assert_problem(
        api.req("PUT", f"/api/batches/{batch['id']}", operator, json={"status": "completed"}), 422
    )


def test_seed_loads_demo_batches_once(api, admin):
    from functions.production import seed

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {admin}"
    seed.run(http, api.base)
    seed.run(http, api.base)  # again: existing batch numbers are skipped
    statuses = {}
    for number, *_, goal in seed.DEMO_BATCHES:
        found = ok(api.req("GET", "/api/batches", admin, params={"q": number}))["items"]
        (batch,) = [b for b in found if b["batch_number"] == number]
        statuses[number] = (batch["status"], batch["stage"])
        assert goal in (batch["status"], batch["stage"])
    assert statuses["PCM500-2611-001"] == ("completed", "packaging")
    assert statuses["IBU200-2611-002"] == ("rejected", "compression")
    assert statuses["MET850-2611-002"] == ("planned", "dispensing")
