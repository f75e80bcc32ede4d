"""GET /api/batches/metrics on a small known dataset, on a fresh PostgreSQL database (whose
sessions run in UTC+14, so a day computed in local time would be visibly wrong) and on
SQLite. The batches are made through the API with the service clock set to chosen times."""

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from functions.production import service
from functions.production.api import app
from shared import db
from shared.migrate import upgrade
from tests.integration.support import Caller, configure, reset_platform

H = 3600.0


@pytest.fixture(params=["postgresql", "sqlite"])
def fresh_db(request, tmp_path, monkeypatch, pubsub_emulator):
    env = {"SWITCHYARD_LOCAL_DIR": str(tmp_path)}
    drop = None
    if request.param == "postgresql":
        base = make_url(request.getfixturevalue("pg_url"))
        name = f"{base.database}_m{secrets.token_hex(3)}"
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
    upgrade("production")
    assert db.engine().dialect.name == request.param
    yield request.param
    reset_platform()
    if drop:
        drop()


class Clock:
    def __init__(self, monkeypatch):
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        monkeypatch.setattr(service, "_now", lambda: self.now)


def client(roles):
    return Caller(app, roles, sub="metrics-test")


START = {"status": "in_progress"}
HOLD, RELEASE, RESUME = {"status": "qa_hold"}, {"status": "released"}, {"status": "in_progress"}
REJECT = {"status": "rejected"}


def stage(name):
    return {"stage": name}


def complete(quantity):
    return {"status": "completed", "actual_quantity": quantity}


# number, product, planned quantity, created at, [(hours after creation, transition), ...]
A1_T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
A2_T0 = datetime(2026, 3, 3, 8, tzinfo=UTC)
DATASET = [
    (
        "ALPHA-1",
        "Alpha",
        1000,
        A1_T0,
        [
            (1, START),
            (3, stage("granulation")),
            (7, stage("compression")),
            (8, stage("coating")),
            (10, stage("packaging")),
            (12, HOLD),
            (13, RELEASE),
            (14, complete(950)),
        ],
    ),  # completed 2026-03-02 22:00 UTC
    (
        "ALPHA-2",
        "Alpha",
        2000,
        A2_T0,
        [
            (1, START),
            (5, stage("granulation")),
            (7, stage("compression")),
            (10, stage("coating")),
            (14, stage("packaging")),
            (15, HOLD),
            (16, RESUME),
            (17, HOLD),
            (19, RELEASE),
            (20, complete(1800)),
        ],
    ),  # 2026-03-04 04:00 UTC
    (
        "BETA-1",
        "Beta",
        500,
        datetime(2026, 3, 2, 9, tzinfo=UTC),
        [
            (0.5, START),
            (1.5, stage("granulation")),
            (2.5, stage("compression")),
            (3, HOLD),
            (4, REJECT),
        ],
    ),
    ("BETA-2", "Beta", 500, datetime(2026, 3, 2, 10, tzinfo=UTC), []),
    (
        "BETA-3",
        "Beta",
        500,
        datetime(2026, 3, 4, 10, tzinfo=UTC),
        [(1, START), (7, stage("granulation"))],
    ),
    (
        "BETA-4",
        "Beta",
        400,
        datetime(2026, 4, 15, 0, tzinfo=UTC),
        [  # outside the range
            (1, START),
            (11, stage("granulation")),
            (21, stage("compression")),
            (31, stage("coating")),
            (41, stage("packaging")),
            (42, HOLD),
            (51, RELEASE),
            (52, complete(500)),
        ],
    ),
]


def load(clock):
    manager = client(["manager"])
    for batch_number, product, quantity, created, steps in DATASET:
        clock.now = created
        resp = manager.post(
            "/api/batches",
            json={
                "batch_number": batch_number,
                "product": product,
                "planned_quantity": quantity,
                "unit": "kg",
            },
        )
        assert resp.status_code == 201, resp.get_data(as_text=True)
        batch_id = resp.get_json()["id"]
        for hours, body in steps:
            clock.now = created + timedelta(hours=hours)
            resp = manager.post(
                f"/api/batches/{batch_id}/transitions", json={**body, "reason": "metrics test"}
            )
            assert resp.status_code == 200, resp.get_data(as_text=True)


def metrics(**params):
    resp = client(["viewer"]).get("/api/batches/metrics", query_string=params)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def cycles(body):
    return {c["stage"]: (c["batches"], c["avg_seconds"]) for c in body["cycle_time_by_stage"]}


def approx_cycles(expected):
    return {
        s: (n, pytest.approx(avg, abs=0.01) if avg is not None else None)
        for s, (n, avg) in expected.items()
    }


def test_metrics_on_a_known_dataset(fresh_db, monkeypatch):
    clock = Clock(monkeypatch)
    load(clock)
    body = metrics(**{"from": "2026-03-01", "to": "2026-03-05"})
    assert (body["from"], body["to"], body["product"], body["total"]) == (
        "2026-03-01",
        "2026-03-05",
        None,
        6,
    )
    assert body["by_status"] == {
        "planned": 1,
        "in_progress": 1,
        "qa_hold": 0,
        "released": 0,
        "rejected": 1,
        "completed": 3,
    }
    assert body["by_stage"] == {
        "dispensing": 1,
        "granulation": 1,
        "compression": 1,
        "coating": 0,
        "packaging": 3,
    }
    assert body["yield_by_product"] == [
        {
            "product": "Alpha",
            "batches": 2,
            "yield_avg": pytest.approx(0.925),
            "yield_min": pytest.approx(0.9),
            "yield_max": pytest.approx(0.95),
        }
    ]
    # entering -> leaving each stage; QA hold time counts toward the stage it happened in
    assert cycles(body) == approx_cycles(
        {
            "dispensing": (4, (2 + 4 + 1 + 6) / 4 * H),
            "granulation": (3, (4 + 2 + 1) / 3 * H),
            "compression": (2, (1 + 3) / 2 * H),
            "coating": (2, (2 + 4) / 2 * H),
            "packaging": (2, (3 + 5) / 2 * H),
        }
    )
    assert body["throughput"] == [
        {"day": "2026-03-01", "completed": 0},
        {"day": "2026-03-02", "completed": 1},
        {"day": "2026-03-03", "completed": 0},
        {"day": "2026-03-04", "completed": 1},
        {"day": "2026-03-05", "completed": 0},
    ]
    assert body["completed_total"] == 2

    alpha = metrics(**{"from": "2026-03-01", "to": "2026-03-05", "product": "Alpha"})
    assert alpha["total"] == 2 and alpha["by_status"]["completed"] == 2
    assert cycles(alpha)["dispensing"] == (2, pytest.approx(3 * H, abs=0.01))
    beta = metrics(**{"from": "2026-03-01", "to": "2026-03-05", "product": "Beta"})
    assert beta["by_status"] == {
        "planned": 1,
        "in_progress": 1,
        "qa_hold": 0,
        "released": 0,
        "rejected": 1,
        "completed": 1,
    }
    assert beta["yield_by_product"] == [] and beta["completed_total"] == 0
    assert cycles(beta) == approx_cycles(
        {
            "dispensing": (2, 3.5 * H),
            "granulation": (1, 1 * H),
            "compression": (0, None),
            "coating": (0, None),
            "packaging": (0, None),
        }
    )

    april = metrics(**{"from": "2026-04-15", "to": "2026-04-17"})
    assert april["yield_by_product"] == [
        {
            "product": "Beta",
            "batches": 1,
            "yield_avg": pytest.approx(1.25),
            "yield_min": pytest.approx(1.25),
            "yield_max": pytest.approx(1.25),
        }
    ]
    assert cycles(april) == approx_cycles(
        {
            "dispensing": (1, 10 * H),
            "granulation": (1, 10 * H),
            "compression": (1, 10 * H),
            "coating": (1, 10 * H),
            "packaging": (1, 10 * H),
        }
    )
    assert [d["completed"] for d in april["throughput"]] == [0, 0, 1]  # 04-17 04:00 UTC

    # one day only: the day boundary is UTC midnight
    day = metrics(**{"from": "2026-03-04", "to": "2026-03-04"})
    assert day["throughput"] == [{"day": "2026-03-04", "completed": 1}]
    assert cycles(day)["packaging"] == (1, pytest.approx(5 * H, abs=0.01))

    # default range: the 30 days up to today (UTC)
    clock.now = datetime(2026, 3, 6, 12, tzinfo=UTC)
    default = metrics()
    assert (default["from"], default["to"]) == ("2026-02-05", "2026-03-06")
    assert len(default["throughput"]) == 30 and default["completed_total"] == 2
    assert [y["product"] for y in default["yield_by_product"]] == ["Alpha"]


def test_metrics_of_an_empty_database(fresh_db):
    body = metrics(**{"from": "2026-03-01", "to": "2026-03-02"})
    assert body["total"] == 0 and set(body["by_status"].values()) == {0}
    assert body["yield_by_product"] == [] and body["completed_total"] == 0
    assert all(c["batches"] == 0 and c["avg_seconds"] is None for c in body["cycle_time_by_stage"])
