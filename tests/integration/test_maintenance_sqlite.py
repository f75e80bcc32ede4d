"""maintenance on SQLite (`make dev` with no database configured): the migration applies (and
downgrades), and the main paths work the same: work-order numbers, the lifecycle, stock
consumption, the users copy upsert, the PM tick run twice, stats (dialect-specific time
arithmetic) and keyset pagination over timestamps."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect

from functions.maintenance import model, service
from functions.maintenance.api import app
from shared import db
from shared.events import Received
from shared.migrate import _config, upgrade
from tests.integration.support import Caller, configure, ok, reset_platform

MANAGER = model.Actor("m-" + uuid.uuid4().hex[:8], ("manager",))


@pytest.fixture()
def sqlite_env(tmp_path, monkeypatch, pubsub_emulator):
    configure(monkeypatch, SWITCHYARD_LOCAL_DIR=str(tmp_path))
    upgrade("maintenance")
    yield tmp_path
    reset_platform()


def client(roles, sub=None):
    return Caller(app, roles, sub)


def test_migration_applies_and_downgrades(sqlite_env):
    assert db.is_sqlite()
    tables = set(inspect(db.engine()).get_table_names(schema="maintenance"))
    assert {
        "assets",
        "work_orders",
        "work_order_log",
        "parts",
        "part_movements",
        "pm_schedules",
        "pm_runs",
        "users",
        "counters",
        "outbox",
    } <= tables
    upgrade("maintenance")  # idempotent
    command.downgrade(_config("maintenance"), "base")
    assert set(inspect(db.engine()).get_table_names(schema="maintenance")) <= {"alembic_version"}
    upgrade("maintenance")


def test_main_paths_on_sqlite(sqlite_env):
    operator_id = str(uuid.uuid4())
    service.apply_user_event(
        Received(
            event_type="user.created",
            event_id=uuid.uuid4().hex,
            schema_version=1,
            source="users-api",
            occurred_at=datetime.now(UTC),
            actor="system",
            request_id="",
            traceparent="",
            data={
                "id": operator_id,
                "email": "o@example.com",
                "name": "Olga",
                "roles": ["operator"],
                "active": True,
                "version": 2,
            },
        )
    )
    assert not service.apply_user_event(
        Received(
            event_type="user.updated",
            event_id=uuid.uuid4().hex,
            schema_version=1,
            source="users-api",
            occurred_at=datetime.now(UTC),
            actor="system",
            request_id="",
            traceparent="",
            data={
                "id": operator_id,
                "email": "o@example.com",
                "name": "Olga",
                "roles": ["viewer"],
                "active": False,
                "version": 1,
            },
        )
    )
    manager = client(("manager",), MANAGER.id)
    operator = client(("operator",), operator_id)

    site = ok(manager.post("/api/assets", json={"tag": "SITE", "name": "Plant"}), 201)
    line = ok(
        manager.post("/api/assets", json={"tag": "LINE", "name": "Line", "parent_id": site["id"]}),
        201,
    )
    assert (
        manager.put(f"/api/assets/{site['id']}", json={"parent_id": line["id"]}).status_code == 409
    )
    part = ok(
        manager.post(
            "/api/parts", json={"sku": "BRG", "name": "Bearing", "stock": 5, "reorder_point": 2}
        ),
        201,
    )

    numbers = []
    for i in range(5):
        wo = ok(
            manager.post(
                "/api/work-orders",
                json={
                    "title": f"Job {i}",
                    "asset_id": line["id"],
                    "assignee_id": operator_id,
                    "due_date": str((datetime.now(UTC) - timedelta(days=1)).date()),
                },
            ),
            201,
        )
        numbers.append(wo["number"])
    assert numbers == list(range(numbers[0], numbers[0] + 5))
    assert wo["overdue"] is True and wo["status"] == "assigned"

    ok(operator.post(f"/api/work-orders/{wo['id']}/transitions", json={"status": "in_progress"}))
    mv = ok(
        operator.post(
            f"/api/work-orders/{wo['id']}/parts", json={"part_id": part["id"], "quantity": 4}
        ),
        201,
    )
    assert mv["stock_after"] == 1
    assert (
        operator.post(
            f"/api/work-orders/{wo['id']}/parts", json={"part_id": part["id"], "quantity": 2}
        ).status_code
        == 409
    )
    done = ok(
        operator.post(f"/api/work-orders/{wo['id']}/transitions", json={"status": "completed"})
    )
    assert done["overdue"] is False and done["completed_at"]

    seen, cursor = [], None
    while True:
        body = ok(
            manager.get(
                f"/api/work-orders?asset_id={line['id']}&limit=2"
                + (f"&cursor={cursor}" if cursor else "")
            )
        )
        seen += [w["number"] for w in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(numbers, reverse=True)
    overdue = ok(manager.get(f"/api/work-orders?overdue=true&asset_id={line['id']}"))["items"]
    assert len(overdue) == 4

    ledger = ok(manager.get(f"/api/parts/{part['id']}/movements?limit=1"))
    assert ledger["next_cursor"]
    rest = ok(manager.get(f"/api/parts/{part['id']}/movements?cursor={ledger['next_cursor']}"))
    assert [m["kind"] for m in ledger["items"] + rest["items"]] == ["consume", "receive"]

    stats = ok(manager.get("/api/maintenance/stats"))
    assert stats["work_orders_total"] == 5 and stats["overdue"] == 4
    assert stats["mttr_sample"] == 1 and stats["mttr_hours"] is not None
    assert stats["low_stock_count"] == 1 and stats["trend"][-1]["created"] == 5
    assert stats["trend"][-1]["overdue"] == 4


def test_pm_tick_twice_on_sqlite(sqlite_env):
    asset = service.create_asset(
        MANAGER,
        tag="PUMP",
        name="Pump",
        category=None,
        location=None,
        parent_id=None,
        status="operational",
        criticality="high",
    )
    now = datetime.now(UTC)
    sched = service.create_schedule(
        MANAGER,
        asset_id=asset.id,
        title="Grease",
        interval_days=7,
        cron=None,
        description=None,
        priority="medium",
        type="preventive",
        active=True,
        next_due_at=now - timedelta(hours=2),
    )
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(service.run_due_schedules(now)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    results.append(service.run_due_schedules(now))
    assert sum(r.created for r in results) == 1
    orders = service.asset_history(asset.id, after=None, limit=10)
    assert [(o.pm_schedule_id, o.type) for o in orders] == [(sched.id, "preventive")]
    nxt = service.get_schedule(sched.id).next_due_at
    assert nxt == sched.next_due_at + timedelta(days=7)
