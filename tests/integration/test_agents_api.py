"""agents-api and agents-worker on PostgreSQL (outbox) and the Firestore and Pub/Sub emulators.

A request goes in through the API (real tokens), its event is taken from the agents' outbox as
Pub/Sub would push it and delivered to the worker's functions-framework entry point; the
findings land in Firestore and `*.completed` in the outbox. Logistics and source events are
built by hand with their publishers' documented schemas (functions/logistics/events.py,
functions/source/events.py). Redeliveries, a second event for the same work, roles, bad input,
pages and the status are covered too.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import functions_framework
import pytest
from sqlalchemy import select

from functions.agents import service, store
from functions.agents.api import app
from shared import clients, db
from shared.config import settings
from shared.events import rfc3339
from shared.manifests import catalog
from shared.migrate import upgrade
from shared.openapi import spec_for
from tests.integration import support
from tests.integration.support import assert_problem, configure, ok, reset_platform
from tests.vertex import FakeVertex, narrative_env, service_account_key

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"
PARIS = (48.8566, 2.3522)
NEW_YORK = (40.7128, -74.0060)
BRUSSELS = (50.8503, 4.3517)
BERLIN = (52.52, 13.405)
AWS_KEY = "AKIAZ7QW3RTY5UIO2PLK"


@pytest.fixture(scope="module")
def backend(pg_url, firestore_emulator, pubsub_emulator, tmp_path_factory):
    env = {
        "DATABASE_URL": pg_url,
        "SWITCHYARD_LOCAL_DIR": str(tmp_path_factory.mktemp("agents")),
        # a project of this module's own: its Firestore collections start empty
        "GOOGLE_CLOUD_PROJECT": f"agents-it-{uuid.uuid4().hex[:8]}",
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host,
        "PUBSUB_EMULATOR_HOST": pubsub_emulator.host,
    }
    with pytest.MonkeyPatch.context() as mp:
        configure(mp, **env)
        upgrade("agents")
        upgrade("agents")  # idempotent
        # the topics the agents publish, so the publish right after commit succeeds
        from google.cloud import pubsub_v1

        pub = pubsub_v1.PublisherClient()
        for dep in ("agents-api", "agents-worker"):
            for topic in catalog().deployments[dep].publishes:
                pub.create_topic(name=pub.topic_path(env["GOOGLE_CLOUD_PROJECT"], topic))
    reset_platform()
    return env


@pytest.fixture(autouse=True)
def env(monkeypatch, backend):
    configure(monkeypatch, **backend, SWITCHYARD_DEPLOYMENT="agents-api")
    clients.firestore.cache_clear()
    clients.publisher.cache_clear()
    yield
    clients.firestore.cache_clear()
    clients.publisher.cache_clear()
    reset_platform()


@contextlib.contextmanager
def deployment(name):
    """Run as `name` (emit checks the manifest's `publishes`; the handler names subscriptions)."""
    import os

    before = os.environ.get("SWITCHYARD_DEPLOYMENT", "")
    os.environ["SWITCHYARD_DEPLOYMENT"] = name
    settings.cache_clear()
    try:
        yield
    finally:
        os.environ["SWITCHYARD_DEPLOYMENT"] = before
        settings.cache_clear()


class Caller(support.Caller):
    def __init__(self, roles=("viewer",)):
        super().__init__(app, roles)


@pytest.fixture(scope="module")
def worker():
    fapp = functions_framework.create_app(
        target="worker", source=str(ROOT / "functions" / "agents" / "main.py")
    )
    return fapp.test_client()


# --- events as Pub/Sub pushes them -------------------------------------------------------


def push(event_type, data, *, event_id=None, attempt=1, occurred_at=None):
    attrs = {
        "event_type": event_type,
        "event_id": event_id or str(uuid.uuid4()),
        "schema_version": "1",
        "source": "test",
        "occurred_at": rfc3339(occurred_at or datetime.now(UTC)),
        "actor": "tester",
    }
    return {
        "message": {
            "data": base64.b64encode(json.dumps(data).encode()).decode(),
            "attributes": attrs,
            "messageId": uuid.uuid4().hex,
        },
        "subscription": f"projects/test/subscriptions/agents-worker--{event_type}",
        "deliveryAttempt": attempt,
    }


def outbox(event_type, key, value):
    """(payload, attributes) of the agents' outbox rows of `event_type` with payload[key]."""
    with db.transaction() as tx:
        rows = tx.execute(
            select(store.outbox)
            .where(store.outbox.c.event_type == event_type)
            .order_by(store.outbox.c.created_at)
        ).all()
    out = []
    for r in rows:
        payload = json.loads(r.payload)
        if payload.get(key) == value:
            out.append((payload, json.loads(r.attributes), r.payload + r.attributes))
    return out


def deliver(worker, event_type, key, value, *, attempt=1):
    """Push the outbox event (event_type, payload[key] == value) to the worker."""
    [(payload, attrs, _)] = outbox(event_type, key, value)
    body = push(event_type, payload, event_id=attrs["event_id"], attempt=attempt)
    with deployment("agents-worker"):
        return worker.post("/", json=body)


def feed(worker, event_type, data, **kw):
    with deployment("agents-worker"):
        resp = worker.post("/", json=push(event_type, data, **kw))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


# --- logistics events, as functions/logistics/events.py documents them ---------------------


def lane(
    package_id, *, version, status="in_transit", origin=PARIS, destination=BERLIN, promised=None
):
    return {
        "package_id": package_id,
        "tracking_number": f"SY{package_id[:8].upper()}",
        "origin_region": "FR",
        "destination_region": "DE",
        "origin_lat": origin[0],
        "origin_lon": origin[1],
        "destination_lat": destination[0],
        "destination_lon": destination[1],
        "service_level": "standard",
        "weight_kg": 1.5,
        "promised_by": rfc3339(promised) if promised else None,
        "status": status,
        "version": version,
    }


def created(package_id, at, **kw):
    return {**lane(package_id, version=1, status="created", **kw), "created_at": rfc3339(at)}


def scanned(package_id, version, kind, where, at, *, name="hub", status="in_transit", **kw):
    return {
        **lane(package_id, version=version, status=status, **kw),
        "scan_id": str(uuid.uuid4()),
        "kind": kind,
        "location": name,
        "lat": where[0],
        "lon": where[1],
        "occurred_at": rfc3339(at),
        "recorded_at": rfc3339(at + timedelta(minutes=1)),
        "note": None,
        "status_from": "created",
        "status_to": status,
        "out_of_order": False,
    }


def delivered(package_id, version, at, picked_up, **kw):
    return {
        **lane(package_id, version=version, status="delivered", **kw),
        "scan_id": str(uuid.uuid4()),
        "location": "Berlin",
        "lat": BERLIN[0],
        "lon": BERLIN[1],
        "delivered_at": rfc3339(at),
        "picked_up_at": rfc3339(picked_up),
        "transit_seconds": (at - picked_up).total_seconds(),
        "on_time": True,
    }


def commit_recorded(repository, sha, **kw):
    data = {
        "repository": repository,
        "repository_id": str(uuid.uuid4()),
        "sha": sha,
        "author": "Ada",
        "author_email": "ada@example.com",
        "author_login": "ada",
        "message": "feat(auth): rotate signing keys\n\nBREAKING CHANGE: new key format",
        "branch": "main",
        "timestamp": "2026-11-30T10:00:00Z",
        "added": ["migrations/versions/0003_keys.py"],
        "removed": [],
        "modified": ["src/auth/keys.py", ".github/workflows/ci.yml"],
        "files_known": True,
        "additions": 120,
        "deletions": 30,
        "url": None,
        "source": "webhook",
        "conventional_type": "feat",
        "conventional_scope": "auth",
        "breaking": True,
    }
    data.update(kw)
    return data


def new_package(worker, scans, *, at=None, promised=None):
    """A package with `scans` [(kind, where, hours after creation, name)] in the read model."""
    pid = str(uuid.uuid4())
    t0 = at or datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    feed(worker, "package.created", created(pid, t0, promised=promised))
    for i, (kind, where, hours, name) in enumerate(scans, start=2):
        feed(
            worker,
            "tracking.event.recorded",
            scanned(pid, i, kind, where, t0 + timedelta(hours=hours), name=name, promised=promised),
        )
    return pid, t0


# --- investigations ------------------------------------------------------------------------


def test_anomaly_investigation_from_post_to_findings(worker):
    pid, _ = new_package(
        worker, [("pickup", PARIS, 0, "Paris"), ("arrival", NEW_YORK, 0.5, "New York")]
    )
    operator = Caller(("operator",))
    queued = ok(
        operator.post("/api/agents/investigations", json={"kind": "anomaly", "package_id": pid}),
        202,
    )
    assert queued["status"] == "queued" and queued["findings"] == []
    inv_id = queued["id"]
    assert operator.get(f"/api/agents/investigations/{inv_id}").get_json()["status"] == "queued"
    [(requested, attrs, _)] = outbox("investigation.requested", "investigation_id", inv_id)
    assert requested["kind"] == "anomaly" and requested["package_id"] == pid
    assert attrs["actor"] == operator.sub and attrs["source"] == "agents-api"

    resp = deliver(worker, "investigation.requested", "investigation_id", inv_id)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    done = ok(Caller().get(f"/api/agents/investigations/{inv_id}"))
    assert done["status"] == "completed" and done["attempts"] == 1
    speed = [f for f in done["findings"] if f["code"] == "impossible_speed"]
    assert len(speed) == 1 and speed[0]["severity"] == "critical"
    assert "Paris" in speed[0]["message"] and "New York" in speed[0]["message"]
    assert speed[0]["evidence"]["speed_kmh"] > 10_000
    [(completed, _, _)] = outbox("investigation.completed", "investigation_id", inv_id)
    assert completed["status"] == "completed" and completed["top_severity"] == "critical"

    # the same delivery again: the handler skips it
    again = deliver(worker, "investigation.requested", "investigation_id", inv_id)
    assert again.get_json()["status"] == "duplicate"
    # the same request under another event id (a re-publish): the claim says it is finished
    assert feed(worker, "investigation.requested", requested)["status"] == "processed"
    assert len(outbox("investigation.completed", "investigation_id", inv_id)) == 1
    assert ok(Caller().get(f"/api/agents/investigations/{inv_id}"))["attempts"] == 1


def test_only_one_of_two_concurrent_deliveries_claims_the_work(worker):
    doc = service._investigation_doc(
        inv_id=str(uuid.uuid4()),
        kind="anomaly",
        package_id="p",
        stops=[],
        departure_at=None,
        return_to_start=False,
        actor="t",
        now=datetime.now(UTC),
    )
    store.create(store.INVESTIGATIONS, doc)
    results = []
    barrier = threading.Barrier(4)

    def claim(i):
        barrier.wait()
        results.append(
            store.claim(store.INVESTIGATIONS, doc["id"], f"event-{i}", datetime.now(UTC))
        )

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["claimed", "taken", "taken", "taken"]
    holder = store.get(store.INVESTIGATIONS, doc["id"])["claimed_by"]
    assert store.claim(store.INVESTIGATIONS, doc["id"], holder, datetime.now(UTC)) == "claimed"
    assert not store.finish(
        store.INVESTIGATIONS, doc["id"], "someone-else", {"status": "completed"}
    )
    assert store.finish(store.INVESTIGATIONS, doc["id"], holder, {"status": "completed"})
    assert store.claim(store.INVESTIGATIONS, doc["id"], holder, datetime.now(UTC)) == "finished"


def test_unknown_package_is_a_422_naming_package_id():
    operator = Caller(("operator",))
    pid = f"nobody-{uuid.uuid4().hex[:8]}"
    for kind in ("anomaly", "delay", "eta"):
        body = assert_problem(
            operator.post("/api/agents/investigations", json={"kind": kind, "package_id": pid}),
            422,
        )
        assert body["errors"] == [
            {"field": "package_id", "message": "no such package", "type": "reference"}
        ]
        assert pid in body["detail"]
    assert outbox("investigation.requested", "package_id", pid) == []
    assert store.page(store.INVESTIGATIONS, equals={"package_id": pid}, after=None, limit=5) == []
    doc = spec_for(app, "agents")
    for path in ("/api/agents/investigations", "/api/agents/analyze/commit"):
        statuses = doc["paths"][path]["post"]["responses"]
        assert "422" in statuses and "404" not in statuses, (path, sorted(statuses))


def test_a_request_for_a_package_not_known_yet_is_retried_then_fails_with_a_reason(worker):
    # The API refuses an unknown package; a request already queued (its event replayed into a
    # fresh read model, say) still waits for logistics' events, then fails with a reason.
    pid = f"nobody-{uuid.uuid4().hex[:8]}"
    inv_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    data = {
        "investigation_id": inv_id,
        "kind": "eta",
        "package_id": pid,
        "stops": None,
        "departure_at": None,
        "return_to_start": False,
        "requested_by": "tester",
        "requested_at": rfc3339(datetime.now(UTC)),
    }
    with deployment("agents-worker"):
        first = worker.post("/", json=push("investigation.requested", data, event_id=event_id))
    assert first.status_code == 500  # Pub/Sub retries: logistics' events may still be coming
    viewer = Caller()
    assert ok(viewer.get(f"/api/agents/investigations/{inv_id}"))["status"] == "running"
    last = feed(
        worker,
        "investigation.requested",
        data,
        event_id=event_id,
        attempt=service.WAIT_FOR_PACKAGE_ATTEMPTS,
    )
    assert last["status"] == "processed"
    failed = ok(viewer.get(f"/api/agents/investigations/{inv_id}"))
    assert failed["status"] == "failed" and pid in failed["error"]
    [(completed, _, _)] = outbox("investigation.completed", "investigation_id", inv_id)
    assert completed["status"] == "failed" and completed["error"] == failed["error"]


def test_route_investigation_orders_the_stops(worker):
    stops = [
        {"name": "Depot", "lat": 48.85, "lon": 2.35},
        {"name": "Far", "lat": 49.40, "lon": 2.35},
        {"name": "Near", "lat": 48.95, "lon": 2.35},
        {"name": "Middle", "lat": 49.15, "lon": 2.35},
    ]
    operator = Caller(("operator",))
    inv = ok(
        operator.post("/api/agents/investigations", json={"kind": "route", "stops": stops}), 202
    )
    assert inv["package_id"] is None and len(inv["stops"]) == 4
    assert (
        deliver(worker, "investigation.requested", "investigation_id", inv["id"]).status_code == 200
    )
    done = ok(operator.get(f"/api/agents/investigations/{inv['id']}"))
    assert done["status"] == "completed", done
    assert done["result"]["order"] == [0, 2, 3, 1]
    assert [s["name"] for s in done["result"]["stops"]] == ["Depot", "Near", "Middle", "Far"]
    assert done["findings"][0]["code"] == "route_plan"
    assert done["result"]["distance_km"] < done["result"]["given_distance_km"]


def test_delay_and_eta_use_the_lane_history_from_delivered_packages(worker):
    t_hist = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    region = f"R{uuid.uuid4().hex[:6].upper()}"  # a lane of this test's own
    lane_kw = {"origin": PARIS, "destination": BERLIN}

    def regional(data):
        data["origin_region"] = region
        return data

    for i, hours in enumerate((20, 24, 28, 32, 36, 40)):
        pid = str(uuid.uuid4())
        start = t_hist + timedelta(days=i)
        feed(
            worker, "package.created", regional(created(pid, start - timedelta(hours=1), **lane_kw))
        )
        feed(
            worker,
            "tracking.event.recorded",
            regional(scanned(pid, 2, "pickup", PARIS, start, **lane_kw)),
        )
        feed(
            worker,
            "tracking.event.recorded",
            regional(scanned(pid, 3, "arrival", BRUSSELS, start + timedelta(hours=5), **lane_kw)),
        )
        end = start + timedelta(hours=hours)
        feed(worker, "package.delivered", regional(delivered(pid, 4, end, start, **lane_kw)))
    samples = store.lane_samples(f"{region}->DE")
    assert sorted(s.transit_hours for s in samples) == [20, 24, 28, 32, 36, 40]

    now = datetime.now(UTC)
    pid = str(uuid.uuid4())
    promised = now + timedelta(hours=10)
    feed(
        worker,
        "package.created",
        regional(created(pid, now - timedelta(hours=3), promised=promised, **lane_kw)),
    )
    feed(
        worker,
        "tracking.event.recorded",
        regional(
            scanned(pid, 2, "pickup", PARIS, now - timedelta(hours=2), promised=promised, **lane_kw)
        ),
    )
    operator = Caller(("operator",))
    results = {}
    for kind in ("delay", "eta"):
        inv = ok(
            operator.post("/api/agents/investigations", json={"kind": kind, "package_id": pid}), 202
        )
        assert (
            deliver(worker, "investigation.requested", "investigation_id", inv["id"]).status_code
            == 200
        )
        results[kind] = ok(operator.get(f"/api/agents/investigations/{inv['id']}"))
    delay = results["delay"]
    assert delay["status"] == "completed", delay
    head = delay["findings"][0]
    # 12 h budget from pickup: every journey on the lane took longer
    assert head["code"] == "likely_late" and head["evidence"]["late_probability"] == 1.0
    assert head["evidence"]["samples"] == 6
    eta = results["eta"]
    assert eta["findings"][0]["code"] == "eta"
    expected = (now - timedelta(hours=2)) + timedelta(hours=30)  # median of 20..40
    got = datetime.fromisoformat(eta["result"]["eta"].replace("Z", "+00:00"))
    assert abs(got - expected) < timedelta(seconds=2)


def test_package_read_model_keeps_the_newest_facts_whatever_the_order(worker):
    pid = str(uuid.uuid4())
    t0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    later = scanned(pid, 3, "arrival", BRUSSELS, t0 + timedelta(hours=4), status="in_transit")
    feed(worker, "tracking.event.recorded", later)  # version 3 arrives first
    feed(worker, "package.created", created(pid, t0))  # version 1, late
    view = ok(Caller().get(f"/api/agents/packages/{pid}"))
    assert view["status"] == "in_transit" and view["lane"] == "FR->DE"
    assert view["origin"]["region"] == "FR" and len(view["scans"]) == 1
    # a redelivered scan (new event id, same scan) is stored once
    feed(worker, "tracking.event.recorded", later)
    assert len(ok(Caller().get(f"/api/agents/packages/{pid}"))["scans"]) == 1
    assert_problem(Caller().get("/api/agents/packages/unknown-package"), 404)


# --- analyses ------------------------------------------------------------------------------

DIFF = f"""diff --git a/app/settings.py b/app/settings.py
index 1111111..2222222 100644
--- a/app/settings.py
+++ b/app/settings.py
@@ -1,2 +1,3 @@
 import os
+AWS_ACCESS_KEY_ID = "{AWS_KEY}"
 NAME = "app"
"""


def test_code_analysis_finds_the_secret_without_its_value(worker):
    operator = Caller(("operator",))
    queued = ok(
        operator.post(
            "/api/agents/analyze/code",
            json={"diff": DIFF, "message": "fix(config): read the key", "repository": "octo/app"},
        ),
        202,
    )
    aid = queued["id"]
    assert queued["status"] == "queued" and queued["diff_bytes"] == len(DIFF.encode())
    [(_, _, raw)] = outbox("analysis.requested", "analysis_id", aid)
    assert AWS_KEY not in raw  # the diff never travels in an event
    assert deliver(worker, "analysis.requested", "analysis_id", aid).status_code == 200
    resp = operator.get(f"/api/agents/analyses/{aid}")
    done = ok(resp)
    assert done["status"] == "completed", done
    secret = [f for f in done["findings"] if f["code"] == "secret_detected"]
    assert secret and secret[0]["evidence"] == {
        "file": "app/settings.py",
        "line": 2,
        "secret_type": "AWS Access Key",
    }
    assert done["result"]["type"] == "fix" and done["result"]["secrets"] == 1
    assert AWS_KEY not in resp.get_data(as_text=True)
    [(completed, _, raw)] = outbox("analysis.completed", "analysis_id", aid)
    assert AWS_KEY not in raw and completed["secrets"] == 1
    assert store.get_diff(aid) is None  # the waiting diff is gone once analysed
    assert AWS_KEY not in json.dumps(store.get(store.ANALYSES, aid), default=str)


def test_bad_diffs_and_inputs_are_refused(worker):
    operator = Caller(("operator",))
    body = assert_problem(
        operator.post("/api/agents/analyze/code", json={"diff": "not a diff"}), 422
    )
    assert body["errors"][0]["field"] == "diff"
    assert_problem(operator.post("/api/agents/analyze/code", json={"diff": DIFF, "x": 1}), 422)
    assert_problem(
        operator.post("/api/agents/analyze/code", json={"diff": DIFF, "sha": "xyz"}), 422
    )
    unknown = assert_problem(
        operator.post(
            "/api/agents/analyze/commit", json={"repository": "octo/app", "sha": "a" * 40}
        ),
        422,
    )
    assert unknown["errors"] == [
        {"field": "sha", "message": "no recorded commit of octo/app", "type": "reference"}
    ]
    for bad in (
        {"kind": "route"},
        {"kind": "route", "stops": [{"name": "A", "lat": 1, "lon": 1}]},
        {"kind": "anomaly"},
        {"kind": "anomaly", "package_id": "p", "stops": [{"name": "A", "lat": 1, "lon": 1}] * 2},
        {"kind": "teleport", "package_id": "p"},
        {"kind": "route", "stops": [{"name": "A", "lat": 91, "lon": 1}] * 2},
        {
            "kind": "route",
            "stops": [
                {"name": "A", "lat": 1, "lon": 1},
                {
                    "name": "B",
                    "lat": 1,
                    "lon": 2,
                    "window_start": "2026-12-01T10:00:00Z",
                    "window_end": "2026-12-01T09:00:00Z",
                },
            ],
        },
    ):
        assert_problem(operator.post("/api/agents/investigations", json=bad), 422)
    assert_problem(
        operator.post("/api/agents/investigations", data="x", content_type="text/plain"), 415
    )


def test_every_recorded_commit_is_analysed_once_and_can_be_analysed_again(worker):
    repo, sha = f"octo/repo-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex + "abcdef01"
    data = commit_recorded(repo, sha)
    assert feed(worker, "commit.recorded", data)["status"] == "processed"
    auto_id = service.auto_analysis_id(repo, sha)
    auto = ok(Caller().get(f"/api/agents/analyses/{auto_id}"))
    assert auto["status"] == "completed" and auto["origin"] == "commit.recorded"
    assert auto["result"]["type"] == "feat" and auto["result"]["breaking"] is True
    assert auto["result"]["sensitive"] == ["auth", "ci", "migrations"]
    # churn 150 (from the totals), 3 files, auth 20 + ci 10 + migrations 15, breaking 10
    assert auto["result"]["risk_score"] == 18 + 4 + 45 + 10
    assert "secrets_not_scanned" in [f["code"] for f in auto["findings"]]
    feed(worker, "commit.recorded", data)  # recorded again under another event id
    assert len(outbox("analysis.completed", "analysis_id", auto_id)) == 1

    operator = Caller(("operator",))
    again = ok(
        operator.post("/api/agents/analyze/commit", json={"repository": repo, "sha": sha}), 202
    )
    assert again["id"] != auto_id and again["kind"] == "commit"
    assert deliver(worker, "analysis.requested", "analysis_id", again["id"]).status_code == 200
    assert ok(operator.get(f"/api/agents/analyses/{again['id']}"))["result"]["risk_score"] == 77


# --- roles, lists, status ------------------------------------------------------------------


def test_roles_viewers_read_operators_start(worker):
    viewer, operator, admin = Caller(("viewer",)), Caller(("operator",)), Caller(("admin",))
    start = {
        "kind": "route",
        "stops": [{"name": "A", "lat": 1, "lon": 1}, {"name": "B", "lat": 1, "lon": 2}],
    }
    assert_problem(viewer.post("/api/agents/investigations", json=start), 403)
    assert_problem(viewer.post("/api/agents/analyze/code", json={"diff": DIFF}), 403)
    assert_problem(Caller(("manager",)).post("/api/agents/investigations", json=start), 403)
    inv = ok(admin.post("/api/agents/investigations", json=start), 202)
    assert ok(viewer.get(f"/api/agents/investigations/{inv['id']}"))["id"] == inv["id"]
    assert ok(operator.get("/api/agents/status"))["queue_depth"] >= 1
    assert_problem(viewer.get(f"/api/agents/investigations/{uuid.uuid4()}"), 404)
    assert_problem(viewer.get(f"/api/agents/analyses/{uuid.uuid4()}"), 404)
    assert_problem(app.test_client().get("/api/agents/status"), 401)


def pages(caller, path, **params):
    items, cursor = [], None
    for _ in range(50):
        q = dict(params, **({"cursor": cursor} if cursor else {}))
        body = ok(caller.get(path, query_string=q))
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def test_lists_page_through_investigations_and_interactions(worker):
    operator = Caller(("operator",))
    pid = f"pkg-{uuid.uuid4().hex[:8]}"
    feed(worker, "package.created", created(pid, datetime.now(UTC) - timedelta(hours=1)))
    made = [
        ok(operator.post("/api/agents/investigations", json={"kind": k, "package_id": pid}), 202)[
            "id"
        ]
        for k in ("anomaly", "eta", "delay", "anomaly", "eta")
    ]
    listed = pages(operator, "/api/agents/investigations", package_id=pid, limit=2)
    assert [i["id"] for i in listed] == list(reversed(made))
    anomalies = pages(operator, "/api/agents/investigations", package_id=pid, kind="anomaly")
    assert {i["id"] for i in anomalies} == {made[0], made[3]}
    bad = operator.get("/api/agents/investigations", query_string={"cursor": "bm9wZQ"})
    assert_problem(bad, 400)

    repo = f"octo/list-{uuid.uuid4().hex[:6]}"
    analyses = [
        ok(operator.post("/api/agents/analyze/code", json={"diff": DIFF, "repository": repo}), 202)[
            "id"
        ]
        for _ in range(3)
    ]
    by_repo = pages(operator, "/api/agents/interactions", repository=repo, limit=2)
    assert [i["id"] for i in by_repo] == list(reversed(analyses))
    assert {i["type"] for i in by_repo} == {"analysis"}
    by_pkg = pages(operator, "/api/agents/interactions", package_id=pid, limit=3)
    assert [i["id"] for i in by_pkg] == list(reversed(made))
    everything = pages(operator, "/api/agents/interactions", limit=7)
    keys = [(i["created_at"], i["id"]) for i in everything]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
    assert set(made + analyses) <= {i["id"] for i in everything}
    queued_code = pages(operator, "/api/agents/interactions", kind="code", status="queued")
    assert set(analyses) <= {i["id"] for i in queued_code}
    assert all(i["kind"] == "code" and i["status"] == "queued" for i in queued_code)
    assert_problem(
        operator.get(
            "/api/agents/interactions", query_string={"repository": repo, "package_id": pid}
        ),
        422,
    )


def test_status_counts_and_latest_results(worker):
    operator = Caller(("operator",))
    before = ok(operator.get("/api/agents/status"))
    aid = ok(operator.post("/api/agents/analyze/code", json={"diff": DIFF}), 202)["id"]
    mid = ok(operator.get("/api/agents/status"))
    assert mid["analyses"]["queued"] == before["analyses"]["queued"] + 1
    assert mid["queue_depth"] == before["queue_depth"] + 1
    assert deliver(worker, "analysis.requested", "analysis_id", aid).status_code == 200
    after = ok(operator.get("/api/agents/status"))
    assert after["analyses"]["completed"] == before["analyses"]["completed"] + 1
    assert after["last_results"][0]["id"] == aid
    assert after["last_results"][0]["top_severity"] == "critical"


# --- the optional narrative (Vertex AI Gemini through google-genai), faked at HTTP only -----


@pytest.fixture(scope="module")
def service_account(tmp_path_factory):
    """A service-account key file (ADC) whose token_uri the test sets per server."""
    return {**service_account_key(), "path": tmp_path_factory.mktemp("adc") / "key.json"}


@pytest.fixture
def vertex(monkeypatch, service_account):
    """Start a FakeVertex; `on(mode)` configures the narrative against it."""
    servers = []

    def on(mode="ok", **kw):
        fake = FakeVertex(mode, **kw)
        servers.append(fake)
        info = {k: v for k, v in service_account.items() if k != "path"}
        for name, value in narrative_env(fake, info, service_account["path"]).items():
            monkeypatch.setenv(name, value)
        settings.cache_clear()
        return fake

    monkeypatch.delenv("AGENTS_NARRATIVE_MODEL", raising=False)
    settings.cache_clear()
    yield on
    for fake in servers:
        fake.close()


def investigated(worker):
    """An anomaly investigation (an impossible Paris -> New York hop) run by the worker."""
    pid, _ = new_package(
        worker, [("pickup", PARIS, 0, "Paris"), ("arrival", NEW_YORK, 0.5, "New York")]
    )
    queued = ok(
        Caller(("operator",)).post(
            "/api/agents/investigations", json={"kind": "anomaly", "package_id": pid}
        ),
        202,
    )
    resp = deliver(worker, "investigation.requested", "investigation_id", queued["id"])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    done = ok(Caller().get(f"/api/agents/investigations/{queued['id']}"))
    assert done["status"] == "completed", done
    assert "impossible_speed" in {f["code"] for f in done["findings"]}
    return done


def test_the_narrative_is_off_by_default_and_nothing_is_called(worker, vertex):
    fake = FakeVertex()  # listening, but not configured
    try:
        done = investigated(worker)
    finally:
        fake.close()
    assert done["narrative"] is None
    assert fake.requests == []
    assert store.get(store.INVESTIGATIONS, done["id"])["narrative"] is None


def test_a_configured_model_writes_the_narrative_next_to_the_findings(worker, vertex):
    fake = vertex("ok")
    done = investigated(worker)
    assert done["narrative"] == {
        "status": "written",
        "text": fake.text,
        "model": "gemini-test",
        "reason": None,
    }
    [(path, headers, raw)] = fake.generate_calls()
    project = settings().project_id
    assert path == (
        f"/v1/projects/{project}/locations/europe-west1/publishers/google/models/"
        "gemini-test:generateContent"
    )
    assert headers["Authorization"] == "Bearer fake-token"  # the service account's, via ADC
    sent = json.loads(raw)
    told = sent["contents"][0]["parts"][0]["text"]
    assert "impossible_speed" in told and "Paris" in told and "[critical]" in told
    assert "speed_kmh" not in told  # the findings' words, not their evidence
    assert "Use only the findings given" in sent["systemInstruction"]["parts"][0]["text"]
    assert sent["generationConfig"]["maxOutputTokens"] == 512
    stored = store.get(store.INVESTIGATIONS, done["id"])
    assert stored["narrative"]["text"] == fake.text
    assert fake.text not in json.dumps(stored["findings"])
    [(completed, _, _)] = outbox("investigation.completed", "investigation_id", done["id"])
    assert completed["status"] == "completed"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("error", "The model answered 503 UNAVAILABLE."),
        ("empty", "The model returned no text."),
        ("hang", "The model did not answer within 1 s."),
    ],
)
def test_a_failing_model_never_fails_the_investigation(worker, vertex, mode, reason):
    fake = vertex(mode)
    done = investigated(worker)
    assert done["narrative"] == {
        "status": "unavailable",
        "text": None,
        "model": "gemini-test",
        "reason": reason,
    }
    assert len(fake.generate_calls()) == 1  # one attempt: the wait stays bounded
    assert done["error"] is None and done["summary"]
