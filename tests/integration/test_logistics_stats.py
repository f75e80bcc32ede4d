"""GET /api/logistics/stats on a small dataset whose figures are computed by hand below, on a
fresh PostgreSQL database whose sessions run in UTC+14 (a day computed in local time would
land on the wrong date) and on SQLite. Packages and scans are made through the API; the
service clock is set to a chosen "now" for the late packages."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from functions.logistics import service
from functions.logistics.api import app
from shared import db
from shared.migrate import upgrade
from tests.integration.support import Caller, configure, reset_platform

H = 3600.0
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
BE, IDF, LOM = "DE-BE", "FR-IDF", "IT-LOM"


@pytest.fixture(params=["postgresql", "sqlite"])
def fresh_db(request, tmp_path, monkeypatch, pubsub_emulator):
    env = {"SWITCHYARD_LOCAL_DIR": str(tmp_path)}
    drop = None
    if request.param == "postgresql":
        base = make_url(request.getfixturevalue("pg_url"))
        name = f"{base.database}_l{secrets.token_hex(3)}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO 'Pacific/Kiritimati'"))

        def drop():
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

        env["DATABASE_URL"] = base.set(database=name).render_as_string(hide_password=False)
    configure(monkeypatch, **env)
    upgrade("logistics")
    assert db.engine().dialect.name == request.param
    monkeypatch.setattr(service, "_now", lambda: NOW)
    yield request.param
    reset_platform()
    if drop:
        drop()


def t(day, hour=0, minute=0):
    return datetime(2026, 3 if day > 0 else 2, abs(day), hour, minute, tzinfo=UTC)


def iso(value):
    return value.isoformat().replace("+00:00", "Z")


# name: (origin, destination, service level, promised_by, [(kind, time)], cancel?)
DATASET = {
    "P1": (BE, IDF, "express", t(3, 12), [("pickup", t(1, 8)), ("delivery", t(2, 8))]),
    "P2": (BE, IDF, "standard", t(3), [("pickup", t(1, 10)), ("delivery", t(3, 22))]),
    "P3": (BE, LOM, "express", None, [("pickup", t(2)), ("delivery", t(2, 12))]),
    "P4": (
        BE,
        IDF,
        "express",
        t(5),
        [("pickup", t(4)), ("exception", t(4, 6)), ("arrival", t(5))],
    ),
    "P5": (BE, LOM, "standard", datetime(2026, 3, 25, tzinfo=UTC), []),
    "P6": (BE, IDF, "standard", None, [("pickup", t(-20)), ("delivery", t(-27))]),
    "P7": (BE, IDF, "standard", t(1), "cancel"),
    "P8": (
        BE,
        LOM,
        "economy",
        datetime(2026, 3, 30, tzinfo=UTC),
        [
            ("pickup", t(6)),
            ("exception", t(6, 23, 30)),  # 7 March already in UTC+14
            ("arrival", t(7, 1)),
            ("exception", t(7, 2)),
        ],
    ),
    "P9": (BE, LOM, "express", t(10), [("pickup", t(9)), ("delivery", t(10, 23, 59))]),
}


def load(caller):
    ids = {}
    for name, (origin, dest, level, promised, scans) in DATASET.items():
        resp = caller.post(
            "/api/packages",
            json={
                "sender": "S",
                "recipient": name,
                "origin": {"address": "o", "lat": 52.5, "lon": 13.4, "region": origin},
                "destination": {"address": "d", "lat": 48.9, "lon": 2.35, "region": dest},
                "service_level": level,
                "weight_kg": 1,
                "promised_by": iso(promised) if promised else None,
            },
        )
        assert resp.status_code == 201, resp.get_data(as_text=True)
        ids[name] = resp.get_json()["id"]
        if scans == "cancel":
            assert caller.delete(f"/api/packages/{ids[name]}").status_code == 204
            continue
        for kind, when in scans:
            resp = caller.post(
                f"/api/packages/{ids[name]}/events",
                json={
                    "kind": kind,
                    "location": "x",
                    "lat": 50,
                    "lon": 10,
                    "occurred_at": iso(when),
                    "idempotency_key": f"k-{uuid.uuid4().hex}",
                },
            )
            assert resp.status_code == 201, resp.get_data(as_text=True)
    return ids


def test_stats_match_the_hand_computed_figures(fresh_db):
    caller = Caller(app, ("manager",), sub="stats-test")
    load(caller)
    resp = caller.get(
        "/api/logistics/stats", query_string={"from": "2026-03-01", "to": "2026-03-10"}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    s = resp.get_json()
    assert (s["from"], s["to"], s["total"]) == ("2026-03-01", "2026-03-10", 9)
    assert s["by_status"] == {
        "created": 1,  # P5
        "picked_up": 0,
        "in_transit": 1,  # P4
        "out_for_delivery": 0,
        "delivered": 5,  # P1 P2 P3 P6 P9
        "exception": 1,  # P8
        "returned": 0,
        "cancelled": 1,  # P7
    }
    # on its way past its promise at NOW: P4 only (P5, P8 promised later; P7 cancelled)
    assert s["late_open"] == 1
    # delivered 1-10 March: P1 P2 P3 P9 (P6 in February); promised: P1 P2 P9; kept: P1
    assert (s["delivered"], s["delivered_with_promise"], s["delivered_on_time"]) == (4, 3, 1)
    assert s["delivered_late"] == 2
    assert s["on_time_rate"] == pytest.approx(1 / 3)
    p9 = 47 * H + 59 * 60
    assert s["transit_by_lane"] == [
        {
            "origin_region": BE,
            "destination_region": IDF,
            "packages": 2,
            "avg_seconds": pytest.approx(42 * H),  # P1 24 h, P2 60 h
            "min_seconds": pytest.approx(24 * H),
            "max_seconds": pytest.approx(60 * H),
        },
        {
            "origin_region": BE,
            "destination_region": LOM,
            "packages": 2,
            "avg_seconds": pytest.approx((12 * H + p9) / 2),  # P3 12 h, P9 47 h 59 min
            "min_seconds": pytest.approx(12 * H),
            "max_seconds": pytest.approx(p9),
        },
    ]
    assert s["transit_by_service_level"] == [
        {
            "service_level": "express",
            "packages": 3,
            "avg_seconds": pytest.approx((24 * H + 12 * H + p9) / 3),
            "min_seconds": pytest.approx(12 * H),
            "max_seconds": pytest.approx(p9),
        },
        {
            "service_level": "standard",
            "packages": 1,
            "avg_seconds": pytest.approx(60 * H),
            "min_seconds": pytest.approx(60 * H),
            "max_seconds": pytest.approx(60 * H),
        },
    ]
    per_day = {d["day"]: d["exceptions"] for d in s["exceptions_per_day"]}
    assert len(per_day) == 10 and sum(per_day.values()) == s["exceptions_total"] == 3
    assert (per_day["2026-03-04"], per_day["2026-03-06"], per_day["2026-03-07"]) == (1, 1, 1)

    # one day only: the 2nd sees P1 (24 h, on time) and P3 (no promise)
    day = caller.get(
        "/api/logistics/stats", query_string={"from": "2026-03-02", "to": "2026-03-02"}
    )
    d = day.get_json()
    assert (d["delivered"], d["delivered_with_promise"], d["on_time_rate"]) == (2, 1, 1.0)
    assert d["exceptions_per_day"] == [{"day": "2026-03-02", "exceptions": 0}]
    # a range with no deliveries has no rate and no lanes
    empty = caller.get(
        "/api/logistics/stats", query_string={"from": "2026-01-01", "to": "2026-01-31"}
    )
    e = empty.get_json()
    assert (e["delivered"], e["on_time_rate"], e["transit_by_lane"], e["total"]) == (0, None, [], 9)


def test_default_range_and_bad_ranges(fresh_db):
    viewer = Caller(app, ("viewer",))
    s = viewer.get("/api/logistics/stats").get_json()
    assert (s["from"], s["to"], len(s["exceptions_per_day"])) == ("2026-02-19", "2026-03-20", 30)
    assert (
        viewer.get(
            "/api/logistics/stats", query_string={"from": "2026-03-02", "to": "2026-03-01"}
        ).status_code
        == 422
    )
    assert (
        viewer.get(
            "/api/logistics/stats", query_string={"from": "2024-01-01", "to": "2026-01-01"}
        ).status_code
        == 422
    )
    assert viewer.get("/api/logistics/stats", query_string={"days": "3"}).status_code == 422
    assert Caller(app, ("viewer",)).client.get("/api/logistics/stats").status_code == 200
    assert app.test_client().get("/api/logistics/stats").status_code == 401


def test_late_packages_follow_the_clock(fresh_db, monkeypatch):
    caller = Caller(app, ("manager",))
    ids = load(caller)
    late = caller.get("/api/packages", query_string={"late": "true", "limit": 100}).get_json()
    # now = NOW: P4 on its way past its promise; P2 and P9 delivered after theirs
    assert {p["recipient"] for p in late["items"]} == {"P2", "P4", "P9"}
    monkeypatch.setattr(service, "_now", lambda: datetime(2026, 3, 26, tzinfo=UTC))
    later = caller.get("/api/packages", query_string={"late": "true", "limit": 100}).get_json()
    assert {p["recipient"] for p in later["items"]} == {"P2", "P4", "P5", "P9"}
    assert ids["P5"] in [p["id"] for p in later["items"]]
    assert caller.get("/api/logistics/stats").get_json()["late_open"] == 2
