"""Demo data of the maintenance context for `make seed`, through the public API: a plant with a
hierarchy of assets, spare parts (some at or below their reorder point), work orders in every
state assigned to the demo operator (olga.operator@example.com, from the users seed), and PM
schedules. Idempotent: existing tags/SKUs (409) are looked up instead, work orders and
schedules that exist (same title on the same asset) are skipped.

The operator is found with `GET /api/users?q=operator`; when the users seed has not run yet, or
the maintenance copy of users has not caught up with its events, orders stay unassigned.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

# (tag, name, category, location, parent tag, status, criticality)
ASSETS = [
    ("PLANT-01", "Riverside plant", "site", "Riverside", None, "operational", "critical"),
    ("LINE-01", "Packing line 1", "line", "Hall A", "PLANT-01", "operational", "high"),
    ("CNV-101", "Infeed conveyor", "conveyor", "Hall A", "LINE-01", "operational", "high"),
    ("FIL-102", "Bottle filler", "filler", "Hall A", "LINE-01", "degraded", "critical"),
    ("LBL-103", "Labeller", "labeller", "Hall A", "LINE-01", "operational", "medium"),
    ("LINE-02", "Mixing line 2", "line", "Hall B", "PLANT-01", "operational", "high"),
    ("MIX-201", "Mixer", "mixer", "Hall B", "LINE-02", "operational", "high"),
    ("UTIL-01", "Utilities", "area", "Basement", "PLANT-01", "operational", "high"),
    ("CMP-301", "Air compressor", "compressor", "Basement", "UTIL-01", "degraded", "high"),
    ("BLR-302", "Steam boiler", "boiler", "Basement", "UTIL-01", "down", "critical"),
]

# (sku, name, unit, stock, reorder point, location)
PARTS = [
    ("BRG-6204", "Ball bearing 6204", "pcs", 24, 10, "Store A1"),
    ("BLT-5M", "Conveyor belt 5 m", "pcs", 1, 2, "Store A2"),
    ("FLT-AIR-10", "Compressor air filter", "pcs", 3, 4, "Store B1"),
    ("GSK-DN50", "Gasket DN50", "pcs", 40, 15, "Store B2"),
    ("OIL-ISO68", "Hydraulic oil ISO 68", "l", 60, 20, "Store C1"),
    ("NOZ-FIL", "Filler nozzle", "pcs", 0, 2, "Store A3"),
]

# (title, asset tag, priority, type, due in days, assign?, status path, reason, parts)
WORK_ORDERS: list[
    tuple[str, str, str, str, int | None, bool, list[str], str | None, list[tuple[str, int]]]
] = [
    (
        "Boiler does not ignite",
        "BLR-302",
        "urgent",
        "corrective",
        -1,
        True,
        ["in_progress"],
        None,
        [],
    ),
    (
        "Filler nozzle drips",
        "FIL-102",
        "high",
        "corrective",
        2,
        True,
        ["in_progress", "on_hold"],
        "waiting for a nozzle",
        [],
    ),
    (
        "Replace infeed belt",
        "CNV-101",
        "high",
        "corrective",
        -3,
        True,
        ["in_progress", "completed", "closed"],
        "done",
        [("BLT-5M", 1)],
    ),
    (
        "Compressor pressure drops",
        "CMP-301",
        "medium",
        "corrective",
        5,
        True,
        ["in_progress", "completed"],
        None,
        [("FLT-AIR-10", 1), ("GSK-DN50", 2)],
    ),
    ("Inspect labeller guards", "LBL-103", "low", "inspection", 7, True, [], None, []),
    ("Mixer makes noise", "MIX-201", "medium", "corrective", -5, False, [], None, []),
    (
        "Paint the railings",
        "LINE-02",
        "low",
        "corrective",
        30,
        False,
        ["cancelled"],
        "out of scope",
        [],
    ),
]

# (asset tag, title, interval days or cron, priority, type)
SCHEDULES = [
    ("CNV-101", "Grease conveyor bearings", 14, "medium", "preventive"),
    ("CMP-301", "Replace compressor air filter", "0 6 1 * *", "high", "preventive"),
    ("BLR-302", "Boiler safety inspection", 90, "high", "inspection"),
]

OPERATOR_EMAIL = "olga.operator@example.com"


def _ok(resp: requests.Response, *statuses: int) -> Any:
    if resp.status_code not in (statuses or (200, 201)):
        raise RuntimeError(
            f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:300]}"
        )
    return resp.json() if resp.content else None


def _find(http: requests.Session, url: str, key: str, value: str) -> dict[str, Any]:
    items = _ok(http.get(url, params={"q": value, "limit": "100"}, timeout=30))["items"]
    for item in items:
        if item[key].lower() == value.lower():
            return item
    raise RuntimeError(f"{value} exists (409) but was not found at {url}")


def _operator(http: requests.Session, base: str) -> str | None:
    users = _ok(
        http.get(f"{base}/api/users", params={"q": "operator", "limit": "100"}, timeout=30)
    )["items"]
    for user in users:
        if user["email"] == OPERATOR_EMAIL:
            return user["id"]
    return next((u["id"] for u in users if "operator" in u["roles"]), None)


def _asset_ids(http: requests.Session, base: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    for tag, name, category, location, parent, status, criticality in ASSETS:
        resp = http.post(
            f"{base}/api/assets",
            timeout=30,
            json={
                "tag": tag,
                "name": name,
                "category": category,
                "location": location,
                "parent_id": ids.get(parent) if parent else None,
                "status": status,
                "criticality": criticality,
            },
        )
        if resp.status_code == 409:
            ids[tag] = _find(http, f"{base}/api/assets", "tag", tag)["id"]
        else:
            ids[tag] = _ok(resp, 201)["id"]
    return ids


def _part_ids(http: requests.Session, base: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    for sku, name, unit, stock, reorder_point, location in PARTS:
        resp = http.post(
            f"{base}/api/parts",
            timeout=30,
            json={
                "sku": sku,
                "name": name,
                "unit": unit,
                "stock": stock,
                "reorder_point": reorder_point,
                "location": location,
            },
        )
        if resp.status_code == 409:
            ids[sku] = _find(http, f"{base}/api/parts", "sku", sku)["id"]
        else:
            ids[sku] = _ok(resp, 201)["id"]
    return ids


class _Orders:
    """Creates work orders; while the assignee is unknown to maintenance's users copy (422:
    the users events are still on their way) it retries for a while, then gives up on
    assigning for the rest of the run."""

    def __init__(self, http: requests.Session, base: str, wait_s: float = 20.0) -> None:
        self.http, self.base = http, base
        self.deadline = time.monotonic() + wait_s
        self.assignable = True

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        while True:
            if not self.assignable:
                body = {k: v for k, v in body.items() if k != "assignee_id"}
            resp = self.http.post(f"{self.base}/api/work-orders", json=body, timeout=30)
            if resp.status_code != 422 or "assignee_id" not in body:
                return _ok(resp, 201)
            if time.monotonic() > self.deadline:
                self.assignable = False
            else:
                time.sleep(0.5)


def run(http: requests.Session, base_url: str) -> None:
    assets = _asset_ids(http, base_url)
    parts = _part_ids(http, base_url)
    operator = _operator(http, base_url)
    today = datetime.now(UTC).date()
    orders = _Orders(http, base_url)
    for title, tag, priority, kind, due_in, assign, path, reason, used in WORK_ORDERS:
        existing = _ok(
            http.get(
                f"{base_url}/api/work-orders",
                timeout=30,
                params={"asset_id": assets[tag], "q": title, "limit": "100"},
            )
        )["items"]
        if any(w["title"] == title for w in existing):
            continue
        body: dict[str, Any] = {
            "title": title,
            "asset_id": assets[tag],
            "priority": priority,
            "type": kind,
        }
        if due_in is not None:
            body["due_date"] = (today + timedelta(days=due_in)).isoformat()
        if assign and operator:
            body["assignee_id"] = operator
        wo = orders.create(body)
        for status in path:
            if status in ("in_progress",) and wo["status"] == "open":
                continue  # unassigned (no operator yet): it cannot start
            needs_reason = status in ("on_hold", "cancelled")
            wo = _ok(
                http.post(
                    f"{base_url}/api/work-orders/{wo['id']}/transitions",
                    timeout=30,
                    json={"status": status, "reason": reason if needs_reason else None},
                ),
                200,
                409,
            )
            if wo.get("status") != status:
                break
            if status == "in_progress":
                for sku, quantity in used:
                    _ok(
                        http.post(
                            f"{base_url}/api/work-orders/{wo['id']}/parts",
                            timeout=30,
                            json={"part_id": parts[sku], "quantity": quantity},
                        ),
                        201,
                        409,
                    )
    for tag, title, recurrence, priority, kind in SCHEDULES:
        existing = _ok(
            http.get(
                f"{base_url}/api/pm-schedules",
                timeout=30,
                params={"asset_id": assets[tag], "limit": "100"},
            )
        )["items"]
        if any(s["title"] == title for s in existing):
            continue
        body = {"asset_id": assets[tag], "title": title, "priority": priority, "type": kind}
        body["cron" if isinstance(recurrence, str) else "interval_days"] = recurrence
        _ok(http.post(f"{base_url}/api/pm-schedules", json=body, timeout=30), 201)
