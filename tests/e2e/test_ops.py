"""ops-api end to end: a dead letter kept on the stack's emulator is listed through the
gateway, redriven to its topic, and then reaches the audit trail; the outbox report and the
cleanup jobs answer; database statistics, a pg_dump backup and a cleanup dry run; only admins
get in."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.support import PASSWORD, Api, assert_problem, wait_for

pytestmark = pytest.mark.e2e

TOPIC = "part.stock.low"  # audit-ingest is its only subscriber


def publish_dead_letter(stack, payload: dict, attributes: dict[str, str]) -> None:
    """Put a message in `<topic>.dead-letter`, as Pub/Sub does after the last attempt."""
    from google.cloud import pubsub_v1

    from shared.manifests import dead_letter_topic

    host = stack.env()["PUBSUB_EMULATOR_HOST"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PUBSUB_EMULATOR_HOST", host)
        pub = pubsub_v1.PublisherClient()
        path = pub.topic_path(stack.project, dead_letter_topic(TOPIC))
        pub.publish(path, json.dumps(payload).encode(), **attributes).result(10)


def test_dead_letter_listed_redriven_and_audited(api: Api, admin: str, stack):
    actor = f"ops-e2e-{uuid.uuid4().hex[:8]}"
    event_id = str(uuid.uuid4())
    payload = {
        "id": str(uuid.uuid4()),
        "sku": "SKU-OPS-1",
        "name": "Bearing",
        "stock": 1,
        "reorder_point": 5,
        "work_order_id": None,
    }
    attributes = {
        "event_type": TOPIC,
        "event_id": event_id,
        "schema_version": "1",
        "source": "maintenance-api",
        "occurred_at": "2026-11-22T10:00:00.000000Z",
        "request_id": f"req-{actor}",
        "actor": actor,
    }
    publish_dead_letter(stack, payload, attributes)

    def listed():
        resp = api.req("GET", "/api/ops/dead-letters", admin, params={"topic": TOPIC})
        assert resp.status_code == 200, resp.text
        return [i for i in resp.json()["items"] if i["event_id"] == event_id]

    (item,) = wait_for(listed, timeout=15)
    assert item["data"] == payload and item["attributes"] == attributes
    assert listed(), "listing must leave the dead letter kept"

    every = api.req("GET", "/api/ops/dead-letters", admin)
    assert every.status_code == 200 and TOPIC in every.json()["counts"]

    resp = api.req(
        "POST", f"/api/ops/dead-letters/{TOPIC}/redrive", admin, json={"event_ids": [event_id]}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["redriven"] == 1

    def audited():
        r = api.req("GET", "/api/audit/events", admin, params={"actor": actor, "limit": 10})
        assert r.status_code == 200, r.text
        return [e for e in r.json()["items"] if e["event_id"] == event_id]

    (event,) = wait_for(audited, timeout=30)
    assert event["event_type"] == TOPIC and event["data"]["sku"] == "SKU-OPS-1"
    assert listed() == []


def test_outbox_report_and_permissions(api: Api, admin: str, stack):
    resp = api.req("GET", "/api/ops/outbox", admin)
    assert resp.status_code == 200, resp.text
    schemas = {i["schema"] for i in resp.json()["items"]}
    assert {"users", "auth"} <= schemas
    assert_problem(api.req("GET", "/api/ops/dead-letters"), 401)
    assert_problem(api.req("POST", "/api/ops/dead-letters/no.such/redrive", admin, json={}), 404)
    health = api.req("GET", "/api/ops/health")
    assert health.status_code == 200, health.text


def test_cleanup_jobs_run_on_the_local_scheduler(stack):
    for job in ("ops-cleanup", "auth-cleanup"):
        assert stack.scheduler.run(job).last_status == "200", job


DATABASE_ROUTES = [
    ("GET", "/api/ops/database/statistics"),
    ("GET", "/api/ops/database/tables"),
    ("POST", "/api/ops/database/backup"),
    ("GET", "/api/ops/database/backups"),
    ("POST", "/api/ops/database/cleanup"),
]


def test_database_operations_through_the_gateway(api: Api, admin: str, stack):
    email = f"ops-viewer-{uuid.uuid4().hex[:8]}@example.com"
    made = api.req(
        "POST",
        "/api/users",
        admin,
        json={"email": email, "name": "Ops viewer", "roles": ["viewer"], "password": PASSWORD},
    )
    assert made.status_code == 201, made.text
    viewer = api.login(email, PASSWORD)
    assert viewer
    for method, path in DATABASE_ROUTES:
        assert_problem(api.req(method, path, viewer, json={}), 403)
        assert_problem(api.req(method, path, json={}), 401)

    def users_counted():
        r = api.req("GET", "/api/ops/database/statistics", admin)
        assert r.status_code == 200, r.text
        users = next(s for s in r.json()["schemas"] if s["schema"] == "users")
        return r.json() if users["rows"] >= 2 else None  # the admin and the viewer at least

    stats = wait_for(users_counted, timeout=30)
    assert stats["dialect"] == "postgresql"
    assert stats["connections"]["in_use"] >= 1 and stats["connections"]["budget"] > 0
    tables = api.req("GET", "/api/ops/database/tables", admin, params={"schema": "users"})
    assert tables.status_code == 200, tables.text
    assert "users" in {t["name"] for t in tables.json()["items"]}

    backup = api.req("POST", "/api/ops/database/backup", admin)
    assert backup.status_code == 201, backup.text
    record = backup.json()
    assert (record["method"], record["status"]) == ("pg_dump", "done")
    assert record["size_bytes"] > 0
    listed = api.req("GET", "/api/ops/database/backups", admin).json()["items"]
    assert listed[0]["id"] == record["id"]

    dry = api.req("POST", "/api/ops/database/cleanup", admin, json={})
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert {"outbox", "processed"} <= {r["kind"] for r in dry.json()["results"]}
    assert all(r["removed"] == 0 for r in dry.json()["results"])
