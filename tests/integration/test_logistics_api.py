"""logistics-api through the Flask test client with real tokens on PostgreSQL and the Pub/Sub
emulator: packages (create, read, edit, cancel, roles, bad input), scans (lifecycle moves,
out-of-order history, idempotency keys, impossible scans), the batch intake with partial
acceptance, list filters and keyset pagination, the streamed export, and the events each
change leaves in the outbox. Every test works in its own random region, so filters isolate it."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from functions.logistics import model, store
from functions.logistics.api import app
from shared import db
from shared.migrate import upgrade
from tests.integration import support
from tests.integration.support import assert_problem, configure, ok, reset_platform

PROBLEM = "application/problem+json"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def backend_env(pg_url, pubsub_emulator, tmp_path_factory):
    env = {
        "SWITCHYARD_LOCAL_DIR": str(tmp_path_factory.mktemp("logistics")),
        "DATABASE_URL": pg_url,
    }
    with pytest.MonkeyPatch.context() as mp:
        configure(mp, **env)
        upgrade("logistics")
        upgrade("logistics")  # idempotent
    reset_platform()
    return env


@pytest.fixture(autouse=True)
def env(monkeypatch, backend_env):
    configure(monkeypatch, **backend_env)
    yield
    reset_platform()


class Caller(support.Caller):
    def __init__(self, roles=("viewer",), sub=None):
        super().__init__(app, roles, sub)

    def scan(self, package_id, kind, hours, **over):
        body = {
            "kind": kind,
            "location": over.pop("location", f"{kind} point"),
            "lat": over.pop("lat", 50.0),
            "lon": over.pop("lon", 10.0),
            "occurred_at": iso(T0 + timedelta(hours=hours)),
            "idempotency_key": over.pop("key", f"k-{uuid.uuid4().hex}"),
            **over,
        }
        return self.client.post(f"/api/packages/{package_id}/events", json=body)


@pytest.fixture()
def operator():
    return Caller(("operator",))


@pytest.fixture()
def manager():
    return Caller(("manager",))


@pytest.fixture()
def viewer():
    return Caller(("viewer",))


@pytest.fixture()
def region():
    """A region of this test alone: filtering by it isolates the test's packages."""
    return f"T-{uuid.uuid4().hex[:10].upper()}"


def iso(value):
    return value.isoformat().replace("+00:00", "Z")


def place(region, lat=52.52, lon=13.40, address="Alexanderplatz 1, Berlin"):
    return {"address": address, "lat": lat, "lon": lon, "region": region}


def create(caller, region, **over):
    data = {
        "sender": "Acme GmbH",
        "recipient": "Ada Lovelace",
        "origin": place(region),
        "destination": place("FR-IDF", 48.86, 2.35, "1 Rue de Rivoli, Paris"),
        "service_level": "express",
        "weight_kg": 2.5,
        "promised_by": iso(T0 + timedelta(hours=48)),
        **over,
    }
    return ok(caller.post("/api/packages", json=data), 201)


def outbox(package_id):
    with db.transaction() as tx:
        rows = tx.execute(select(store.outbox).order_by(store.outbox.c.created_at)).all()
    out = []
    for r in rows:
        payload = json.loads(r.payload)
        if payload.get("package_id") == package_id:
            out.append((r.event_type, payload, json.loads(r.attributes)))
    return out


def timeline(caller, package_id):
    return ok(caller.get(f"/api/packages/{package_id}/events", query_string={"limit": 100}))[
        "items"
    ]


# --- packages --------------------------------------------------------------------------------


def test_create_with_a_generated_tracking_number_and_read(operator, viewer, region):
    resp = operator.post(
        "/api/packages",
        json={
            "sender": " Acme GmbH ",
            "recipient": "Ada Lovelace",
            "origin": place(region.lower()),
            "destination": place("fr-idf", 48.86, 2.35, "1 Rue de Rivoli, Paris"),
            "weight_kg": 2.5,
            "promised_by": "2026-11-04T19:00:00+01:00",
        },
    )
    pkg = ok(resp, 201)
    assert resp.headers["Location"] == f"/api/packages/{pkg['id']}"
    assert model.S10.match(pkg["tracking_number"]) and pkg["tracking_number"].startswith("SY")
    model.check_tracking_number(pkg["tracking_number"])
    assert (pkg["sender"], pkg["service_level"], pkg["status"], pkg["version"]) == (
        "Acme GmbH",
        "standard",
        "created",
        1,
    )
    assert pkg["origin"] == place(region) and pkg["destination"]["region"] == "FR-IDF"
    assert pkg["promised_by"] == "2026-11-04T18:00:00Z"
    assert pkg["late"] is True  # promised for 2026-11-04, still not picked up
    assert pkg["picked_up_at"] is pkg["delivered_at"] is pkg["transit_seconds"] is None
    assert ok(viewer.get(f"/api/packages/{pkg['id']}")) == pkg
    ((etype, payload, attrs),) = outbox(pkg["id"])
    assert etype == "package.created" and attrs["actor"] == operator.sub
    assert payload == {
        "package_id": pkg["id"],
        "tracking_number": pkg["tracking_number"],
        "origin_region": region,
        "destination_region": "FR-IDF",
        "origin_lat": 52.52,
        "origin_lon": 13.40,
        "destination_lat": 48.86,
        "destination_lon": 2.35,
        "service_level": "standard",
        "weight_kg": 2.5,
        "promised_by": "2026-11-04T18:00:00.000000Z",
        "status": "created",
        "version": 1,
        "created_at": payload["created_at"],
    }


def test_given_tracking_numbers_roles_and_bad_input(operator, manager, viewer, region):
    number = f"RR{uuid.uuid4().int % 10**8:08d}"
    number += str(model.s10_check_digit(number[2:])) + "GB"
    pkg = create(operator, region, tracking_number=number.lower())
    assert pkg["tracking_number"] == number
    body = assert_problem(operator.post("/api/packages", json=_body(region, number)), 409)
    assert number in body["detail"]
    wrong = number[:10] + str((int(number[10]) + 1) % 10) + number[11:]
    body = assert_problem(operator.post("/api/packages", json=_body(region, wrong)), 422)
    assert body["errors"][0]["field"] == "tracking_number"
    assert_problem(viewer.post("/api/packages", json=_body(region)), 403)
    ok(manager.post("/api/packages", json=_body(region)), 201)
    body = assert_problem(
        operator.post("/api/packages", json={**_body(region), "weight_kg": -1, "colour": "red"}),
        422,
    )
    assert {e["field"] for e in body["errors"]} == {"weight_kg", "colour"}
    assert_problem(viewer.get(f"/api/packages/{uuid.uuid4()}"), 404)
    assert_problem(viewer.get("/api/packages/not-an-id"), 404)
    assert_problem(app.test_client().get("/api/packages"), 401)


def _body(region, tracking_number=None):
    out = {
        "sender": "S",
        "recipient": "R",
        "origin": place(region),
        "destination": place("FR-IDF"),
        "weight_kg": 1,
    }
    if tracking_number:
        out["tracking_number"] = tracking_number
    return out


def test_edit_with_versions_locks_and_manual_moves(operator, manager, region):
    pkg = create(operator, region)
    pid = pkg["id"]
    assert_problem(operator.put(f"/api/packages/{pid}", json={"recipient": "X"}), 403)
    changed = ok(
        manager.put(
            f"/api/packages/{pid}",
            json={
                "recipient": "Grace Hopper",
                "destination": place("FR-ARA", 45.76, 4.83, "Lyon"),
                "version": 1,
            },
        )
    )
    assert (changed["recipient"], changed["destination"]["region"], changed["version"]) == (
        "Grace Hopper",
        "FR-ARA",
        2,
    )
    same = ok(manager.put(f"/api/packages/{pid}", json={"recipient": "Grace Hopper"}))
    assert same["version"] == 2  # nothing changed: no new version, no event
    assert_problem(manager.put(f"/api/packages/{pid}", json={"weight_kg": 3, "version": 1}), 409)
    ok(operator.scan(pid, "pickup", 0), 201)
    body = assert_problem(
        manager.put(f"/api/packages/{pid}", json={"origin": place(region, 1, 1)}), 409
    )
    assert "origin_lat, origin_lon cannot change" in body["detail"]
    body = assert_problem(manager.put(f"/api/packages/{pid}", json={"status": "cancelled"}), 409)
    assert body["allowed"] == ["in_transit", "exception"]  # the moves a person may make
    body = assert_problem(manager.put(f"/api/packages/{pid}", json={"status": "delivered"}), 409)
    assert "only a scan records it" in body["detail"]
    ok(operator.scan(pid, "departure", 1), 201)
    returned = ok(manager.put(f"/api/packages/{pid}", json={"status": "returned"}))
    assert returned["status"] == "returned"
    assert_problem(manager.put(f"/api/packages/{pid}", json={"recipient": "Z"}), 409)
    events = outbox(pid)
    assert [e[0] for e in events] == [
        "package.created",
        "package.updated",
        "tracking.event.recorded",
        "package.status.changed",
        "tracking.event.recorded",
        "package.status.changed",
        "package.status.changed",
    ]
    assert events[1][1]["changed"] == [
        "recipient",
        "destination_address",
        "destination_lat",
        "destination_lon",
        "destination_region",
    ]
    manual = events[-1][1]
    assert (manual["old"], manual["new"], manual["reason"], manual["scan_id"]) == (
        "in_transit",
        "returned",
        "manual",
        None,
    )


def test_cancel_before_pickup_only_and_no_scan_after(operator, manager, region):
    pkg = create(operator, region)
    assert_problem(operator.delete(f"/api/packages/{pkg['id']}"), 403)
    resp = manager.delete(f"/api/packages/{pkg['id']}")
    assert resp.status_code == 204 and resp.get_data() == b""
    assert ok(manager.get(f"/api/packages/{pkg['id']}"))["status"] == "cancelled"
    body = assert_problem(operator.scan(pkg["id"], "delivery", 5), 409)
    assert body["allowed_kinds"] == [] and "cancelled" in body["detail"]
    assert timeline(operator, pkg["id"]) == []
    body = assert_problem(manager.delete(f"/api/packages/{pkg['id']}"), 409)
    assert body["allowed"] == []
    picked = create(operator, region)
    ok(operator.scan(picked["id"], "pickup", 0), 201)
    body = assert_problem(manager.delete(f"/api/packages/{picked['id']}"), 409)
    assert "cancelled" not in body["allowed"] and "in_transit" in body["allowed"]
    (etype, payload, _) = outbox(pkg["id"])[-1]
    assert (etype, payload["old"], payload["new"], payload["reason"]) == (
        "package.status.changed",
        "created",
        "cancelled",
        "cancelled",
    )
    assert_problem(manager.delete(f"/api/packages/{uuid.uuid4()}"), 404)


# --- scans -----------------------------------------------------------------------------------


def test_a_journey_moves_the_status_and_the_timeline_is_in_time_order(operator, viewer, region):
    pkg = create(operator, region)
    pid = pkg["id"]
    moves = []
    for kind, hours in [("pickup", 0), ("departure", 2), ("out_for_delivery", 30)]:
        moves.append(ok(operator.scan(pid, kind, hours), 201))
    assert [(m["status_from"], m["status_to"], m["moved"]) for m in moves] == [
        ("created", "picked_up", True),
        ("picked_up", "in_transit", True),
        ("in_transit", "out_for_delivery", True),
    ]
    # the hub arrival scan reaches us late: kept, the status does not go back
    late = ok(operator.scan(pid, "arrival", 20, location="Frankfurt hub"), 201)
    assert (late["moved"], late["out_of_order"], late["package_status"]) == (
        False,
        True,
        "out_for_delivery",
    )
    assert ok(viewer.get(f"/api/packages/{pid}"))["status"] == "out_for_delivery"
    done = ok(operator.scan(pid, "delivery", 33.5, lat=48.86, lon=2.35), 201)
    assert (done["status_to"], done["package_status"]) == ("delivered", "delivered")
    final = ok(viewer.get(f"/api/packages/{pid}"))
    assert final["status"] == "delivered" and final["late"] is False
    assert (final["picked_up_at"], final["delivered_at"], final["transit_seconds"]) == (
        iso(T0),
        iso(T0 + timedelta(hours=33.5)),
        33.5 * 3600,
    )
    assert final["last_scan_at"] == iso(T0 + timedelta(hours=33.5))
    assert final["version"] == 6
    scans = timeline(viewer, pid)
    assert [s["kind"] for s in scans] == [
        "pickup",
        "departure",
        "arrival",
        "out_for_delivery",
        "delivery",
    ]
    assert scans[2]["location"] == "Frankfurt hub" and scans[2]["actor"] == operator.sub
    # paging the timeline
    first = ok(viewer.get(f"/api/packages/{pid}/events", query_string={"limit": 2}))
    second = ok(
        viewer.get(
            f"/api/packages/{pid}/events",
            query_string={"limit": 2, "cursor": first["next_cursor"]},
        )
    )
    assert [s["id"] for s in first["items"] + second["items"]] == [s["id"] for s in scans[:4]]
    assert_problem(viewer.get(f"/api/packages/{uuid.uuid4()}/events"), 404)

    events = outbox(pid)
    kinds = [e[0] for e in events]
    assert kinds.count("tracking.event.recorded") == 5
    assert kinds.count("package.status.changed") == 4
    (delivered,) = [e[1] for e in events if e[0] == "package.delivered"]
    assert delivered == {
        **{k: delivered[k] for k in ("package_id", "tracking_number", "version")},
        "origin_region": region,
        "destination_region": "FR-IDF",
        "origin_lat": 52.52,
        "origin_lon": 13.40,
        "destination_lat": 48.86,
        "destination_lon": 2.35,
        "service_level": "express",
        "weight_kg": 2.5,
        "promised_by": "2026-11-04T08:00:00.000000Z",
        "status": "delivered",
        "scan_id": done["id"],
        "location": "delivery point",
        "lat": 48.86,
        "lon": 2.35,
        "delivered_at": "2026-11-03T17:30:00.000000Z",
        "picked_up_at": "2026-11-02T08:00:00.000000Z",
        "transit_seconds": 33.5 * 3600,
        "on_time": True,
    }
    (recorded_late,) = [
        e[1] for e in events if e[0] == "tracking.event.recorded" and e[1]["scan_id"] == late["id"]
    ]
    assert (recorded_late["out_of_order"], recorded_late["status_to"], recorded_late["kind"]) == (
        True,
        None,
        "arrival",
    )
    assert [e[1]["version"] for e in events if e[0] == "tracking.event.recorded"] == [2, 3, 4, 5, 6]


def test_an_exception_is_raised_and_recovered(operator, region):
    pkg = create(operator, region)
    pid = pkg["id"]
    ok(operator.scan(pid, "pickup", 0), 201)
    raised = ok(operator.scan(pid, "exception", 3, note="label damaged"), 201)
    assert raised["status_to"] == "exception" and raised["note"] == "label damaged"
    ok(operator.scan(pid, "arrival", 6), 201)
    (exc,) = [e[1] for e in outbox(pid) if e[0] == "package.exception.raised"]
    assert (exc["scan_id"], exc["note"], exc["status"], exc["occurred_at"]) == (
        raised["id"],
        "label damaged",
        "exception",
        "2026-11-02T11:00:00.000000Z",
    )
    body = assert_problem(operator.scan(pid, "pickup", 7), 409)
    assert "pickup" not in body["allowed_kinds"] and "delivery" in body["allowed_kinds"]


def test_a_resent_scan_is_stored_once_and_answers_the_first_result(operator, viewer, region):
    pkg = create(operator, region)
    pid = pkg["id"]
    key = f"scanner-9:{uuid.uuid4().hex}"
    first = operator.scan(pid, "pickup", 0, key=key)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    ok(operator.scan(pid, "departure", 1), 201)
    again = operator.scan(pid, "pickup", 0, key=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()  # the first result, though the package moved on
    assert again.get_json()["package_status"] == "picked_up"
    assert len(timeline(viewer, pid)) == 2
    body = assert_problem(operator.scan(pid, "pickup", 0.5, key=key), 422)
    assert body["errors"][0]["field"] == "idempotency_key"
    other = create(operator, region)
    assert_problem(operator.scan(other["id"], "pickup", 0, key=key), 422)
    assert [e[0] for e in outbox(pid)].count("tracking.event.recorded") == 2


def test_concurrent_resends_store_one_scan(operator, viewer, region):
    pkg = create(operator, region)
    key = f"race-{uuid.uuid4().hex}"
    answers = []

    def send():
        answers.append(Caller(("operator",)).scan(pkg["id"], "pickup", 0, key=key))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in answers] == [201] * 6
    assert len({r.get_json()["id"] for r in answers}) == 1
    assert sum(1 for r in answers if "Idempotent-Replayed" not in r.headers) == 1
    assert len(timeline(viewer, pkg["id"])) == 1
    with db.transaction() as tx:
        n = tx.execute(
            select(func.count())
            .select_from(store.tracking_events)
            .where(store.tracking_events.c.idempotency_key == key)
        ).scalar()
    assert n == 1


def test_scan_bad_input(operator, viewer, region):
    pkg = create(operator, region)
    assert_problem(viewer.scan(pkg["id"], "pickup", 0), 403)
    future = datetime.now(UTC) + timedelta(hours=2)
    body = assert_problem(
        operator.post(
            f"/api/packages/{pkg['id']}/events",
            json={
                "kind": "pickup",
                "location": "x",
                "lat": 1,
                "lon": 1,
                "occurred_at": iso(future),
                "idempotency_key": f"k-{uuid.uuid4().hex}",
            },
        ),
        422,
    )
    assert body["errors"][0]["field"] == "occurred_at"
    body = assert_problem(operator.scan(pkg["id"], "teleport", 0, colour="red"), 422)
    assert {e["field"] for e in body["errors"]} == {"kind", "colour"}
    assert_problem(operator.scan(str(uuid.uuid4()), "pickup", 0), 404)


# --- batch intake ----------------------------------------------------------------------------


def _batch_scan(ref, kind, hours, key=None, **over):
    return {
        **ref,
        "kind": kind,
        "location": f"{kind} point",
        "lat": 50.0,
        "lon": 10.0,
        "occurred_at": iso(T0 + timedelta(hours=hours)),
        "idempotency_key": key or f"b-{uuid.uuid4().hex}",
        **over,
    }


def test_batch_accepts_and_refuses_each_scan_on_its_own(operator, manager, viewer, region):
    a = create(operator, region)
    b = create(operator, region)
    cancelled = create(operator, region)
    manager.delete(f"/api/packages/{cancelled['id']}")
    stored_key = f"stored-{uuid.uuid4().hex}"
    ok(operator.scan(b["id"], "pickup", 0, key=stored_key), 201)
    dup_key = f"dup-{uuid.uuid4().hex}"
    scans = [
        # a: given out of order, applied in occurred_at order: every one moves the status
        _batch_scan({"package_id": a["id"]}, "out_for_delivery", 5, key=dup_key),
        _batch_scan({"tracking_number": a["tracking_number"].lower()}, "pickup", 0),
        _batch_scan({"package_id": a["id"]}, "departure", 1),
        _batch_scan({"package_id": a["id"]}, "out_for_delivery", 5, key=dup_key),  # 3: echo
        _batch_scan({"package_id": b["id"]}, "pickup", 0, key=stored_key),  # 4: stored
        _batch_scan({"package_id": cancelled["id"]}, "delivery", 3),  # 5: impossible
        _batch_scan({"package_id": str(uuid.uuid4())}, "pickup", 0),  # 6: unknown
        _batch_scan({"package_id": b["id"]}, "teleport", 1),  # 7: invalid
        _batch_scan({"tracking_number": "NOSUCH123456"}, "pickup", 0),  # 8: unknown number
        _batch_scan({"package_id": b["id"]}, "arrival", 2),
        _batch_scan({"package_id": b["id"]}, "pickup", 0.5, key=stored_key),  # 10: key reused
    ]
    assert_problem(viewer.post("/api/tracking-events:batch", json={"scans": scans}), 403)
    out = ok(operator.post("/api/tracking-events:batch", json={"scans": scans}))
    assert (out["accepted"], out["duplicates"], out["refused"]) == (4, 2, 5)
    results = out["results"]
    assert [r["index"] for r in results] == list(range(len(scans)))
    assert [r["outcome"] for r in results] == [
        "accepted",
        "accepted",
        "accepted",
        "duplicate",
        "duplicate",
        "refused",
        "refused",
        "refused",
        "refused",
        "accepted",
        "refused",
    ]
    assert [results[i]["scan"]["status_to"] for i in (1, 2, 0)] == [
        "picked_up",
        "in_transit",
        "out_for_delivery",
    ]
    assert results[3]["scan"] == results[0]["scan"]
    assert results[4]["scan"]["idempotency_key"] == stored_key
    assert results[5]["problem"]["status"] == 409 and results[5]["problem"]["allowed_kinds"] == []
    assert results[6]["problem"]["status"] == 404
    assert results[7]["problem"]["status"] == 422
    assert results[7]["problem"]["errors"][0]["field"] == "kind"
    assert (
        results[8]["problem"]["status"] == 404 and "NOSUCH123456" in results[8]["problem"]["detail"]
    )
    assert results[10]["problem"]["status"] == 422
    assert ok(viewer.get(f"/api/packages/{a['id']}"))["status"] == "out_for_delivery"
    assert ok(viewer.get(f"/api/packages/{b['id']}"))["status"] == "in_transit"
    assert [s["kind"] for s in timeline(viewer, a["id"])] == [
        "pickup",
        "departure",
        "out_for_delivery",
    ]
    assert [s["kind"] for s in timeline(viewer, b["id"])] == ["pickup", "arrival"]
    again = ok(operator.post("/api/tracking-events:batch", json={"scans": scans}))
    assert (again["accepted"], again["duplicates"]) == (0, 6)
    assert len(timeline(viewer, a["id"])) == 3


def test_batch_limits(operator, region):
    pkg = create(operator, region)
    scans = [_batch_scan({"package_id": pkg["id"]}, "arrival", i / 100) for i in range(1001)]
    body = assert_problem(operator.post("/api/tracking-events:batch", json={"scans": scans}), 422)
    assert body["errors"][0]["field"] == "scans"
    assert_problem(operator.post("/api/tracking-events:batch", json={"scans": []}), 422)
    big = {"scans": [_batch_scan({"package_id": pkg["id"]}, "arrival", 1)], "pad": "x" * 1_100_000}
    assert_problem(operator.post("/api/tracking-events:batch", json=big), 413)
    # an item that is not an object is not a scan at all: the whole batch is refused
    body = assert_problem(
        operator.post("/api/tracking-events:batch", json={"scans": [scans[0], 7]}), 422
    )
    assert [e["field"] for e in body["errors"]] == ["scans.1"]
    # an object that is not a valid scan is refused alone (docs/decisions/0047)
    bad = {**scans[1], "lat": 123, "colour": "red"}
    del bad["kind"]
    out = ok(operator.post("/api/tracking-events:batch", json={"scans": [scans[0], bad]}))
    assert [r["outcome"] for r in out["results"]] == ["accepted", "refused"]
    problem = out["results"][1]["problem"]
    assert problem["status"] == 422
    assert {e["field"] for e in problem["errors"]} == {"kind", "lat", "colour"}
    out = ok(operator.post("/api/tracking-events:batch", json={"scans": scans[:1000]}))
    assert out["accepted"] == 999 and out["duplicates"] == 1
    # 1000 scans of one package in time order: the first moved it, the others kept it
    assert sum(1 for r in out["results"] if r["scan"]["moved"]) == 1


def test_a_batch_over_many_packages_leaves_one_event_per_scan_and_move(operator, viewer, region):
    """The batch's set-based writes (one UPDATE of every package, one INSERT of every scan,
    one of every outbox row): each accepted scan has its tracking event, each move its status
    event (and delivered / exception events), with the version each step gave the package;
    the package rows, their versions and the rollups end where scan-by-scan intake leaves
    them."""
    pkgs = [create(operator, region) for _ in range(6)]
    scans = []
    for n, p in enumerate(pkgs):
        ref = {"package_id": p["id"]}
        scans += [
            _batch_scan(ref, "departure", 1),  # sent before the pickup it follows
            _batch_scan(ref, "pickup", 0),
            _batch_scan(ref, "arrival", 2),
            _batch_scan(ref, "delivery" if n % 2 else "exception", 3, note="late truck"),
        ]
    out = ok(operator.post("/api/tracking-events:batch", json={"scans": scans}))
    assert (out["accepted"], out["refused"]) == (24, 0)
    for n, p in enumerate(pkgs):
        final = "delivered" if n % 2 else "exception"
        now = ok(viewer.get(f"/api/packages/{p['id']}"))
        # created -> picked_up -> in_transit (departure) -> arrival (no move) -> final
        assert (now["status"], now["version"]) == (final, p["version"] + 4)
        events = outbox(p["id"])
        kinds = [e[0] for e in events]
        assert kinds.count("tracking.event.recorded") == 4
        assert kinds.count("package.status.changed") == 3
        assert kinds.count("package.delivered" if n % 2 else "package.exception.raised") == 1
        recorded = [e[1] for e in events if e[0] == "tracking.event.recorded"]
        assert sorted(e["version"] for e in recorded) == [2, 3, 4, 5]
        assert {e[2]["actor"] for e in events if e[0] != "package.created"} == {operator.sub}
    with db.transaction() as s:
        assert store.count_by_status(s) == store.live_count_by_status(s)


def test_concurrent_batches_with_one_key_store_it_once(operator, viewer, region):
    """Two batches racing with the same idempotency key on different packages: the key is
    stored once; the other batch answers it refused (key reused) and commits the rest."""
    a, b = create(operator, region), create(operator, region)
    key = f"race-{uuid.uuid4().hex}"
    answers: list = []

    def send(pkg):
        batch = [
            _batch_scan({"package_id": pkg["id"]}, "pickup", 0, key=key),
            _batch_scan({"package_id": pkg["id"]}, "departure", 1),
        ]
        resp = Caller(("operator",)).post("/api/tracking-events:batch", json={"scans": batch})
        answers.append((pkg, resp))

    threads = [threading.Thread(target=send, args=(p,)) for p in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outs = [(p, ok(r)) for p, r in answers]
    firsts = sorted(o["results"][0]["outcome"] for _, o in outs)
    assert firsts == ["accepted", "refused"]
    with db.transaction() as tx:
        n = tx.execute(
            select(func.count())
            .select_from(store.tracking_events)
            .where(store.tracking_events.c.idempotency_key == key)
        ).scalar()
    assert n == 1
    for p, o in outs:
        stored = len(timeline(viewer, p["id"]))
        assert stored == o["accepted"]
        assert [e[0] for e in outbox(p["id"])].count("tracking.event.recorded") == stored
    # the path a race takes: the key stored after this batch read the known keys is skipped
    # by ON CONFLICT, and the batch is rolled back and evaluated again
    with db.transaction() as tx:
        (first,) = store.scans_by_key(tx, [key]).values()
    with pytest.raises(store.KeyRace), db.transaction() as tx:
        store.insert_scans(tx, [dataclasses.replace(first, id=str(uuid.uuid4()))])


# --- lists -----------------------------------------------------------------------------------


def test_filters_search_and_pagination(operator, manager, viewer, region):
    made = []
    for i, (level, promised_h) in enumerate(
        [("express", 10), ("standard", 100), ("overnight", 20), ("express", 200), ("economy", 5)]
    ):
        made.append(
            create(
                operator,
                region,
                service_level=level,
                recipient=f"Recipient {i} {region}",
                promised_by=iso(
                    T0 + timedelta(minutes=30)
                    if i == 0
                    else datetime.now(UTC) + timedelta(hours=promised_h - 50)
                ),
                destination=place(f"{region}-D{i % 2}"),
            )
        )
    # made[0] delivered 30 min after its promise; made[2] and made[4] on their way past theirs
    ok(operator.scan(made[0]["id"], "pickup", 0), 201)
    ok(operator.scan(made[0]["id"], "delivery", 1), 201)
    ok(operator.scan(made[2]["id"], "pickup", 0), 201)
    ok(operator.scan(made[4]["id"], "pickup", 0), 201)
    manager.delete(f"/api/packages/{made[1]['id']}")

    def ids(**params):
        params.setdefault("origin_region", region)
        params.setdefault("limit", 100)
        return [p["id"] for p in ok(viewer.get("/api/packages", query_string=params))["items"]]

    newest_first = [p["id"] for p in reversed(made)]
    assert ids() == newest_first
    assert ids(status="picked_up") == [made[4]["id"], made[2]["id"]]
    assert ids(status=["delivered", "cancelled"]) == [made[1]["id"], made[0]["id"]]
    assert ids(service_level="express") == [made[3]["id"], made[0]["id"]]
    assert ids(destination_region=f"{region}-D1") == [made[3]["id"], made[1]["id"]]
    assert ids(destination_region=f"{region.lower()}-d1", origin_region=region.lower()) == [
        made[3]["id"],
        made[1]["id"],
    ]
    now = datetime.now(UTC)
    assert ids(promised_before=iso(now)) == [made[4]["id"], made[2]["id"], made[0]["id"]]
    assert ids(promised_after=iso(now), promised_before=iso(now + timedelta(hours=100))) == [
        made[1]["id"]
    ]
    assert ids(late="true") == [made[4]["id"], made[2]["id"], made[0]["id"]]
    assert ids(late="false") == [made[3]["id"], made[1]["id"]]
    assert ids(q=made[3]["tracking_number"].lower(), origin_region=None) == [made[3]["id"]]
    assert ids(q=f"recipient 2 {region.lower()}", origin_region=None) == [made[2]["id"]]
    listed = ok(viewer.get("/api/packages", query_string={"q": made[0]["tracking_number"]}))
    assert listed["items"][0]["late"] is True and listed["items"][0]["status"] == "delivered"

    seen, cursor = [], None
    while True:
        params = {"origin_region": region, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = ok(viewer.get("/api/packages", query_string=params))
        assert len(page["items"]) <= 2
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == newest_first
    assert_problem(viewer.get("/api/packages", query_string={"cursor": "bm9wZQ"}), 400)
    body = assert_problem(viewer.get("/api/packages", query_string={"status": "lost"}), 422)
    assert body["errors"][0]["field"].startswith("status")
    assert_problem(viewer.get("/api/packages", query_string={"colour": "red"}), 422)


def test_search_matches_part_of_a_word_of_the_recipient(operator, viewer, region):
    """`q` is a case-insensitive contains match on the recipient (any part of any word, LIKE's
    wildcards taken literally), or an exact tracking number; the sender is not searched.
    Many matches come a page at a time, newest first."""
    tag = region.lower()
    made = [
        create(operator, region, recipient=f"Maria Steinberg {region}"),
        create(operator, region, recipient=f"Anna Holsteiner {region}"),
        create(operator, region, recipient=f"Maria Kowalski {region}", sender=f"Stein {region}"),
        create(operator, region, recipient=f"Ewa 100% Nowak {region}"),
    ]

    def ids(q, **params):
        body = ok(viewer.get("/api/packages", query_string={"q": q, **params}))
        return [p["id"] for p in body["items"]], body["next_cursor"]

    assert ids(f"STEIN% {tag}")[0] == []  # a literal %, not a wildcard
    stein = "stein"  # in made[0] and made[1]'s recipients, made[2]'s sender
    both = [made[1]["id"], made[0]["id"]]
    assert ids(f"{stein}er {tag}")[0] == [made[1]["id"]]  # the end of a word
    assert ids(f"ia kowalski {tag}")[0] == [made[2]["id"]]  # across words
    assert ids(f"0% nowak {tag}")[0] == [made[3]["id"]]
    assert ids(f"_ {tag}")[0] == []  # nor is _ a wildcard
    page, cursor = ids(stein, origin_region=region, limit=1)
    assert page == both[:1] and cursor
    assert ids(stein, origin_region=region, limit=1, cursor=cursor)[0] == both[1:]
    assert ids(made[2]["tracking_number"].lower())[0] == [made[2]["id"]]


# --- export ----------------------------------------------------------------------------------


def test_export_streams_csv_and_ndjson_with_the_filters(operator, viewer, region):
    made = [create(operator, region, recipient=f'R{i}, "quoted"') for i in range(3)]
    ok(operator.scan(made[1]["id"], "pickup", 0), 201)
    resp = viewer.get("/api/packages/export", query_string={"origin_region": region})
    assert resp.status_code == 200 and resp.is_streamed
    assert resp.mimetype == "text/csv"
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="packages-') and disposition.endswith(
        '.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["id"] for r in rows] == [p["id"] for p in reversed(made)]
    assert rows[2]["recipient"] == 'R0, "quoted"' and rows[1]["status"] == "picked_up"
    assert rows[1]["picked_up_at"] == iso(T0) and rows[0]["picked_up_at"] == ""
    assert rows[0]["tracking_number"] == made[2]["tracking_number"]

    resp = viewer.get(
        "/api/packages/export",
        query_string={"origin_region": region, "format": "ndjson", "status": "picked_up"},
    )
    assert resp.mimetype == "application/x-ndjson" and resp.is_streamed
    assert resp.headers["Content-Disposition"].endswith('.ndjson"')
    lines = resp.get_data(as_text=True).splitlines()
    assert [json.loads(line) for line in lines] == [
        ok(viewer.get(f"/api/packages/{made[1]['id']}"))
    ]
    empty = viewer.get("/api/packages/export", query_string={"origin_region": region + "-NONE"})
    assert empty.get_data(as_text=True).splitlines() == [",".join(api_columns())]
    assert_problem(viewer.get("/api/packages/export", query_string={"format": "xml"}), 422)
    assert_problem(app.test_client().get("/api/packages/export"), 401)


def api_columns():
    from functions.logistics.api import EXPORT_COLUMNS

    return EXPORT_COLUMNS


def test_export_of_many_rows_goes_through_the_cursor_in_batches(operator, viewer, region):
    """More rows than one cursor batch: the stream still holds every row, once, in order."""
    n = store.EXPORT_BATCH + 7
    now = datetime.now(UTC)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "tracking_number": f"EXP-{region}-{i:06d}",
            "sender": "S",
            "recipient": "R",
            "origin_address": "a",
            "origin_lat": 1.0,
            "origin_lon": 1.0,
            "origin_region": region,
            "destination_address": "b",
            "destination_lat": 2.0,
            "destination_lon": 2.0,
            "destination_region": "X",
            "service_level": "standard",
            "weight_kg": 1.0,
            "promised_by": None,
            "status": "created",
            "picked_up_at": None,
            "delivered_at": None,
            "last_scan_at": None,
            "created_at": now - timedelta(seconds=i),
            "updated_at": now,
            "version": 1,
        }
        for i in range(n)
    ]
    with db.transaction() as tx:
        tx.execute(store.packages.insert(), rows)
    resp = viewer.get(
        "/api/packages/export", query_string={"origin_region": region, "format": "ndjson"}
    )
    got = [json.loads(line)["tracking_number"] for line in resp.get_data(as_text=True).splitlines()]
    assert got == [r["tracking_number"] for r in rows]
