"""Cloud Scheduler fires the same ScheduleTime twice (it may): the work happens once.

maintenance-pm-tick is fired twice at once with one `X-CloudScheduler-ScheduleTime` for a PM
schedule that is due: one work order is created, one workorder.created event is published,
and audit-ingest records it once.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from emulators._scheduler import fire
from shared.manifests import subscription_name
from tests.faults.support import engine_of
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e
TICK = "maintenance-pm-tick"


def test_the_same_schedule_time_twice_creates_one_work_order(stack, gw, ledger):
    tag = f"FLT-{uuid.uuid4().hex[:8]}"
    asset = gw.req("POST", "/api/assets", json={"tag": tag, "name": "Fault pump"})
    assert asset.status_code == 201, asset.text
    due = datetime.now(UTC) - timedelta(minutes=5)
    schedule = gw.req(
        "POST",
        "/api/pm-schedules",
        json={
            "asset_id": asset.json()["id"],
            "interval_days": 30,
            "title": f"Inspect {tag}",
            "next_due_at": due.isoformat(),
        },
    )
    assert schedule.status_code == 201, schedule.text
    when = datetime.now(UTC).replace(second=0, microsecond=0)
    url = stack.url_of(TICK) + "/"
    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda _: fire(url, TICK, when, timeout_s=60), range(2)))
    assert statuses == [200, 200]
    orders = gw.req("GET", "/api/work-orders", params={"asset_id": asset.json()["id"]})
    assert orders.status_code == 200, orders.text
    (order,) = orders.json()["items"]
    engine = engine_of(stack)
    try:
        with engine.connect() as conn:
            events = (
                conn.execute(
                    text(
                        "SELECT id FROM maintenance.outbox WHERE event_type = 'workorder.created' "
                        "AND payload LIKE :id"
                    ),
                    {"id": f"%{order['id']}%"},
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    (event_id,) = events
    key = f"{subscription_name('audit-ingest', 'workorder.created')}:{event_id}"

    def recorded() -> dict | None:
        doc = ledger.markers([key]).get(key)
        return doc if doc and doc.get("state") == "done" else None

    assert wait_for(recorded, timeout=60)["completions"] == 1
