"""logistics-api end to end: the whole local stack driven through the gateway. A package is
created, scanned along its journey (one scan re-sent, one arriving late), listed, exported and
counted in the stats; its events reach the audit trail (Pub/Sub -> audit-ingest -> Firestore)
with the lane facts other contexts read. Roles are enforced; the demo seed loads once."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.support import PASSWORD, Api, assert_problem, ok, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tokens(api, admin) -> dict[str, str]:
    """A fresh user per role, logged in: {role: access token}."""
    out = {}
    for role in ("operator", "manager", "viewer"):
        email = f"logi-{role}-{uuid.uuid4().hex[:8]}@example.com"
        resp = api.req(
            "POST",
            "/api/users",
            admin,
            json={
                "email": email,
                "name": f"Logistics {role}",
                "roles": [role],
                "password": PASSWORD,
            },
        )
        assert resp.status_code == 201, resp.text
        out[role] = api.login(email, PASSWORD)
        assert out[role], f"{role} cannot log in"
    return out


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def new_package(api: Api, token: str, region: str) -> dict:
    return ok(
        api.req(
            "POST",
            "/api/packages",
            token,
            json={
                "sender": "Acme GmbH",
                "recipient": f"E2E {region}",
                "origin": {
                    "address": "Alexanderplatz 1",
                    "lat": 52.52,
                    "lon": 13.40,
                    "region": region,
                },
                "destination": {
                    "address": "Rue de Rivoli 1",
                    "lat": 48.86,
                    "lon": 2.35,
                    "region": "FR-IDF",
                },
                "service_level": "express",
                "weight_kg": 1.5,
                "promised_by": iso(datetime.now(UTC) + timedelta(days=2)),
            },
        ),
        201,
    )


def scan(api: Api, token: str, package_id: str, kind: str, when: datetime, key: str | None = None):
    return api.req(
        "POST",
        f"/api/packages/{package_id}/events",
        token,
        json={
            "kind": kind,
            "location": f"{kind} e2e",
            "lat": 50.1,
            "lon": 8.68,
            "occurred_at": iso(when),
            "idempotency_key": key or f"e2e-{uuid.uuid4().hex}",
        },
    )


def test_a_journey_through_the_gateway_reaches_the_audit_trail(api, admin, tokens):
    operator, viewer = tokens["operator"], tokens["viewer"]
    since = iso(datetime.now(UTC) - timedelta(seconds=5))
    region = f"E2E-{uuid.uuid4().hex[:8].upper()}"
    pkg = new_package(api, operator, region)
    pid = pkg["id"]
    start = datetime.now(UTC) - timedelta(hours=10)
    key = f"e2e-{uuid.uuid4().hex}"
    first = ok(scan(api, operator, pid, "pickup", start, key), 201)
    resent = scan(api, operator, pid, "pickup", start, key)
    assert resent.status_code == 201 and resent.headers["Idempotent-Replayed"] == "true"
    assert resent.json() == first
    ok(scan(api, operator, pid, "departure", start + timedelta(hours=1)), 201)
    ok(scan(api, operator, pid, "out_for_delivery", start + timedelta(hours=8)), 201)
    late = ok(scan(api, operator, pid, "arrival", start + timedelta(hours=5)), 201)
    assert (late["out_of_order"], late["moved"]) == (True, False)
    done = ok(scan(api, operator, pid, "delivery", start + timedelta(hours=9)), 201)
    assert done["package_status"] == "delivered"

    got = ok(api.req("GET", f"/api/packages/{pid}", viewer))
    assert (got["status"], got["transit_seconds"], got["late"]) == ("delivered", 9 * 3600.0, False)
    timeline = ok(api.req("GET", f"/api/packages/{pid}/events", viewer))["items"]
    assert [s["kind"] for s in timeline] == [
        "pickup",
        "departure",
        "arrival",
        "out_for_delivery",
        "delivery",
    ]
    found = ok(api.req("GET", "/api/packages", viewer, params={"q": pkg["tracking_number"]}))
    assert [p["id"] for p in found["items"]] == [pid]
    listed = ok(api.req("GET", "/api/packages", viewer, params={"origin_region": region}))
    assert [p["id"] for p in listed["items"]] == [pid]
    stats = ok(api.req("GET", "/api/logistics/stats", viewer))
    assert stats["by_status"]["delivered"] >= 1 and stats["delivered"] >= 1
    lanes = {
        (lane["origin_region"], lane["destination_region"]) for lane in stats["transit_by_lane"]
    }
    assert (region, "FR-IDF") in lanes

    export = api.req("GET", "/api/packages/export", viewer, params={"origin_region": region})
    assert export.status_code == 200, export.text
    assert export.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in export.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(r["id"], r["status"]) for r in rows] == [(pid, "delivered")]

    expected = {
        "package.created": 1,
        "tracking.event.recorded": 5,
        "package.status.changed": 4,
        "package.delivered": 1,
    }

    def in_audit():
        resp = api.req(
            "GET",
            "/api/audit/events",
            admin,
            params={"source": "logistics-api", "since": since, "limit": 100},
        )
        assert resp.status_code == 200, resp.text
        mine = [e for e in resp.json()["items"] if e["data"].get("package_id") == pid]
        counts = {t: sum(1 for e in mine if e["event_type"] == t) for t in expected}
        return mine if counts == expected else None

    events = wait_for(in_audit, timeout=60)
    delivered = next(e for e in events if e["event_type"] == "package.delivered")["data"]
    assert (delivered["origin_region"], delivered["destination_region"]) == (region, "FR-IDF")
    assert (delivered["transit_seconds"], delivered["on_time"]) == (9 * 3600.0, True)
    assert all(e["source"] == "logistics-api" for e in events)
    assert {e["actor"] for e in events} == {events[0]["actor"]} != {"system"}


def test_roles_and_bad_input_through_the_gateway(api, tokens):
    operator, manager, viewer = tokens["operator"], tokens["manager"], tokens["viewer"]
    region = f"E2E-{uuid.uuid4().hex[:8].upper()}"
    assert_problem(api.req("GET", "/api/packages"), 401)
    assert_problem(api.req("POST", "/api/packages", viewer, json={}), 403)
    pkg = new_package(api, operator, region)
    assert_problem(scan(api, viewer, pkg["id"], "pickup", datetime.now(UTC)), 403)
    assert_problem(api.req("DELETE", f"/api/packages/{pkg['id']}", operator), 403)
    assert_problem(
        api.req("PUT", f"/api/packages/{pkg['id']}", operator, json={"weight_kg": 2}), 403
    )
    changed = ok(api.req("PUT", f"/api/packages/{pkg['id']}", manager, json={"weight_kg": 2}))
    assert changed["version"] == 2
    resp = api.req("DELETE", f"/api/packages/{pkg['id']}", manager)
    assert resp.status_code == 204, resp.text
    body = assert_problem(scan(api, operator, pkg["id"], "delivery", datetime.now(UTC)), 409)
    assert body["allowed_kinds"] == []
    body = assert_problem(
        api.req(
            "POST",
            "/api/packages",
            operator,
            json={"sender": "S", "recipient": "R", "weight_kg": -1, "colour": "red"},
        ),
        422,
    )
    assert {"weight_kg", "colour", "origin", "destination"} <= {e["field"] for e in body["errors"]}
    assert_problem(api.req("GET", "/api/packages/not-an-id", viewer), 404)
    assert_problem(api.req("GET", "/api/packages/export", viewer, params={"format": "xml"}), 422)


def test_seed_loads_demo_packages_once(api, admin):
    from functions.logistics import seed
    from functions.logistics.model import new_tracking_number

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {admin}"
    seed.run(http, api.base)
    seed.run(http, api.base)  # again: existing tracking numbers are skipped

    def status(serial: int) -> dict:
        number = new_tracking_number(serial)
        (pkg,) = ok(api.req("GET", "/api/packages", admin, params={"q": number}))["items"]
        return pkg

    assert status(10000001)["status"] == "delivered" and status(10000001)["late"] is False
    assert status(10000002)["status"] == "delivered" and status(10000002)["late"] is True
    assert status(10000005)["status"] == "exception"
    assert status(10000007)["late"] is True and status(10000007)["status"] == "in_transit"
    assert status(10000008)["status"] == "created"
    assert status(10000009)["status"] == "cancelled"
    assert status(10000010)["status"] == "returned"
    odd = status(10000011)
    scans = ok(api.req("GET", f"/api/packages/{odd['id']}/events", admin))["items"]
    assert [s["kind"] for s in scans][2] == "arrival" and scans[2]["out_of_order"] is True
    assert len(scans) == 5  # the second run stored nothing twice


def test_batch_intake_through_the_gateway(api, tokens):
    operator, viewer = tokens["operator"], tokens["viewer"]
    region = f"E2E-{uuid.uuid4().hex[:8].upper()}"
    a = new_package(api, operator, region)
    start = datetime.now(UTC) - timedelta(hours=3)

    def item(ref: dict, kind: str, hours: float, key: str | None = None) -> dict:
        return {
            **ref,
            "kind": kind,
            "location": "batch e2e",
            "lat": 50.1,
            "lon": 8.68,
            "occurred_at": iso(start + timedelta(hours=hours)),
            "idempotency_key": key or f"e2e-{uuid.uuid4().hex}",
        }

    scans = [
        item({"tracking_number": a["tracking_number"]}, "departure", 1),
        item({"package_id": a["id"]}, "pickup", 0),
        item({"package_id": str(uuid.uuid4())}, "pickup", 0),
        item({"package_id": a["id"]}, "teleport", 2),
    ]
    batch = "/api/tracking-events:batch"
    assert_problem(api.req("POST", batch, viewer, json={"scans": scans}), 403)
    out = ok(api.req("POST", batch, operator, json={"scans": scans}))
    assert (out["accepted"], out["duplicates"], out["refused"]) == (2, 0, 2)
    assert [r["outcome"] for r in out["results"]] == ["accepted", "accepted", "refused", "refused"]
    assert ok(api.req("GET", f"/api/packages/{a['id']}", viewer))["status"] == "in_transit"
    again = ok(api.req("POST", "/api/tracking-events:batch", operator, json={"scans": scans[:2]}))
    assert again["duplicates"] == 2
    too_many = {"scans": [item({"package_id": a["id"]}, "arrival", 2)] * 1001}
    assert_problem(api.req("POST", "/api/tracking-events:batch", operator, json=too_many), 422)
    spec = ok(api.req("GET", "/api/openapi.json"))
    assert "post" in spec["paths"]["/api/tracking-events:batch"]
