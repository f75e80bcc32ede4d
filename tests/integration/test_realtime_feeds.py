"""realtime against the Firestore emulator: the fan-out (idempotent under redelivery) and the
SSE stream served by a real HTTP server (events from the feed, Last-Event-ID resume, tickets)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import flask
import functions_framework
import pytest
import requests

from functions.realtime import service, store
from shared import auth, clients
from shared.events import envelope
from tests.asgi_server import AsgiServer
from tests.integration.support import configure, reset_platform

FANOUT = "functions/realtime/main.py"


@pytest.fixture(scope="module")
def backend(firestore_emulator, tmp_path_factory):
    return {
        "SWITCHYARD_LOCAL_DIR": str(tmp_path_factory.mktemp("realtime")),
        "GOOGLE_CLOUD_PROJECT": f"realtime-it-{uuid.uuid4().hex[:8]}",
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host,
        "REALTIME_HEARTBEAT_S": "0.3",
        "THREADS": "2",  # realtime-stream's worker threads (shared.asgi)
    }


@pytest.fixture(autouse=True)
def env(monkeypatch, backend):
    configure(monkeypatch, **backend, SWITCHYARD_DEPLOYMENT="realtime-fanout")
    clients.firestore.cache_clear()
    yield
    clients.firestore.cache_clear()
    reset_platform()


def lane(pid: str, status: str, version: int) -> dict[str, Any]:
    return {
        "package_id": pid,
        "tracking_number": f"SY{pid[:8]}",
        "origin_region": "DE-BE",
        "destination_region": "FR-75",
        "origin_lat": 52.5,
        "origin_lon": 13.4,
        "destination_lat": 48.8,
        "destination_lon": 2.35,
        "service_level": "express",
        "weight_kg": 1.5,
        "promised_by": None,
        "status": status,
        "version": version,
    }


def push(event_type: str, data: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "subscription": f"projects/p/subscriptions/realtime-fanout--{event_type}",
        "message": {
            "messageId": "1",
            "data": base64.b64encode(json.dumps(data).encode()).decode(),
            "attributes": {
                "event_type": event_type,
                "event_id": event_id or uuid.uuid4().hex,
                "schema_version": "1",
                "source": "logistics-api",
                "occurred_at": "2026-12-01T10:00:00Z",
                "actor": "system",
            },
        },
    }


def created(pid: str) -> dict[str, Any]:
    return {**lane(pid, "created", 1), "created_at": "2026-12-01T10:00:00Z"}


def moved(pid: str, old: str, new: str, version: int) -> dict[str, Any]:
    return {
        **lane(pid, new, version),
        "old": old,
        "new": new,
        "reason": "scan",
        "occurred_at": "2026-12-01T11:00:00Z",
        "scan_id": "s1",
        "scan_kind": "pickup",
        "lat": 52.5,
        "lon": 13.4,
        "actor": "u1",
    }


def scan(pid: str, lat: float, at: str, *, out_of_order: bool = False) -> dict[str, Any]:
    return {
        **lane(pid, "picked_up", 2),
        "scan_id": uuid.uuid4().hex,
        "kind": "pickup",
        "location": "Berlin hub",
        "lat": lat,
        "lon": 13.4,
        "occurred_at": at,
        "recorded_at": at,
        "note": None,
        "status_from": "created",
        "status_to": None,
        "out_of_order": out_of_order,
    }


def counters() -> dict[str, Any]:
    return store.snapshot("dashboard")


def feed(key: str) -> list[dict[str, Any]]:
    return store.entries_after(key, 0)


def fanout_client() -> Any:
    return functions_framework.create_app(
        target="fanout", source=FANOUT, signature_type="http"
    ).test_client()


# --- fan-out ------------------------------------------------------------------------------------


def test_fanout_is_idempotent_under_redelivery():
    ff = fanout_client()
    pid = uuid.uuid4().hex
    before = counters()
    first = push("package.created", created(pid))
    assert ff.post("/", json=first).get_json()["status"] == "processed"
    # Pub/Sub redelivers the same message: the handler's marker skips it
    assert ff.post("/", json=first).get_json()["status"] == "duplicate"
    # a delivery past the handler's marker (crash after commit, redrive): the feed's own marker
    again = envelope(first["message"], first["subscription"])
    assert service.fan_out(again) is False

    after = counters()
    got = after["by_status"].get("created", 0) - before["by_status"].get("created", 0)
    assert got == 1
    assert after["packages"] - before.get("packages", 0) == 1
    entries = feed(f"package:{pid}")
    assert [(e["seq"], e["type"]) for e in entries] == [(1, "package")]
    assert store.snapshot(f"package:{pid}")["status"] == "created"


def test_status_moves_counts_and_stale_versions_do_not_overwrite():
    ff = fanout_client()
    pid = uuid.uuid4().hex
    before = counters()["by_status"]
    ff.post("/", json=push("package.created", created(pid)))
    ff.post("/", json=push("package.status.changed", moved(pid, "created", "picked_up", 2)))
    ff.post("/", json=push("package.status.changed", moved(pid, "picked_up", "in_transit", 3)))
    # an older update arriving late must not roll the live document back
    ff.post("/", json=push("package.created", created(pid)))
    after = counters()["by_status"]
    delta = {s: after.get(s, 0) - before.get(s, 0) for s in ("created", "picked_up", "in_transit")}
    assert delta == {"created": 1, "picked_up": 0, "in_transit": 1}  # a re-sent create counts
    doc = store.snapshot(f"package:{pid}")
    assert (doc["status"], doc["version"]) == ("in_transit", 3)
    assert [e["seq"] for e in feed(f"package:{pid}")] == [1, 2, 3, 4]


def test_map_keeps_the_newest_position():
    ff = fanout_client()
    pid = uuid.uuid4().hex
    ff.post("/", json=push("tracking.event.recorded", scan(pid, 50.0, "2026-12-01T12:00:00Z")))
    ff.post("/", json=push("tracking.event.recorded", scan(pid, 51.0, "2026-12-01T11:00:00Z")))
    late = scan(pid, 40.0, "2026-12-01T09:00:00Z", out_of_order=True)
    ff.post("/", json=push("tracking.event.recorded", late))
    (pos,) = [p for p in store.snapshot("map") if p["package_id"] == pid]
    assert (pos["lat"], pos["at"]) == (50.0, "2026-12-01T12:00:00Z")
    assert len(feed(f"package:{pid}")) == 3


# --- the stream ---------------------------------------------------------------------------------


@pytest.fixture
def server(env) -> Iterator[str]:
    # functions-framework picks its ASGI mode by itself (the entry point is `aio.http`)
    app = functions_framework.create_app(target="stream", source=FANOUT, signature_type="http")
    assert not isinstance(app, flask.Flask)
    srv = AsgiServer(app)
    try:
        yield srv.url
    finally:
        srv.stop()


def sse_events(resp: requests.Response) -> Iterator[dict[str, str]]:
    """Parse a text/event-stream (comments become {"comment": ...})."""
    event: dict[str, str] = {}
    for raw in resp.iter_lines(decode_unicode=True):
        if raw == "":
            if event:
                yield event
            event = {}
        elif raw.startswith(":"):
            yield {"comment": raw[1:].strip()}
        else:
            name, _, value = raw.partition(":")
            value = value.removeprefix(" ")
            event[name] = f"{event[name]}\n{value}" if name in event else value


def next_event(events: Iterator[dict[str, str]], kind: str, limit: int = 200) -> dict[str, str]:
    for _, e in zip(range(limit), events, strict=False):
        if e.get("event") == kind:
            return e
    raise AssertionError(f"no {kind} event")


def token(roles: tuple[str, ...] = ("viewer",), ttl_s: int | None = None) -> str:
    return auth.issue_access_token(uuid.uuid4().hex, list(roles), ttl_s=ttl_s)[0]


def test_stream_sends_snapshot_then_new_feed_entries_then_resumes(server):
    ff = fanout_client()
    pid = uuid.uuid4().hex
    ff.post("/", json=push("package.created", created(pid)))
    url = f"{server}/api/realtime/packages/{pid}"
    hdrs = {"Authorization": f"Bearer {token()}"}
    with requests.get(url, headers=hdrs, stream=True, timeout=10) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = sse_events(resp)
        snap = next_event(events, "snapshot")
        assert snap["id"] == "1" and json.loads(snap["data"])["status"] == "created"
        assert any("comment" in e for _, e in zip(range(5), events, strict=False))  # heartbeat
        ff.post("/", json=push("package.status.changed", moved(pid, "created", "picked_up", 2)))
        status = next_event(events, "status")
        assert status["id"] == "2" and json.loads(status["data"])["new"] == "picked_up"
    ff.post("/", json=push("tracking.event.recorded", scan(pid, 50.0, "2026-12-01T12:00:00Z")))
    with requests.get(url, headers={**hdrs, "Last-Event-ID": "1"}, stream=True, timeout=10) as resp:
        events = sse_events(resp)
        got = [next_event(events, "status")["id"], next_event(events, "scan")["id"]]
        assert got == ["2", "3"]


def _ticket(server: str, bearer: dict[str, str], pid: str) -> str:
    r = requests.post(
        f"{server}/api/realtime/tickets",
        json={"stream": "package", "package_id": pid},
        headers=bearer,
        timeout=5,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["ticket"])


def _until_quiet(events: Iterator[dict[str, str]], n: int) -> list[dict[str, str]]:
    """The next `n` events (comments skipped)."""
    out: list[dict[str, str]] = []
    for e in events:
        if "comment" in e or "event" not in e:
            continue
        out.append(e)
        if len(out) == n:
            break
    return out


def test_a_new_ticket_resumes_exactly_where_the_old_stream_ended(server):
    """What the console's live helper does when a ticket is spent: a new EventSource with a
    new ticket and `?last_event_id=` (it cannot send the header) gets every entry after the
    last one it saw, once, in order, and then the live ones: no snapshot, no gap, no
    duplicate. The header (EventSource's own reconnect) wins over the query."""
    ff = fanout_client()
    pid = uuid.uuid4().hex
    bearer = {"Authorization": f"Bearer {token()}"}
    ff.post("/", json=push("package.created", created(pid)))
    url = f"{server}/api/realtime/packages/{pid}"
    with requests.get(
        url, params={"ticket": _ticket(server, bearer, pid)}, stream=True, timeout=10
    ) as resp:
        events = sse_events(resp)
        assert next_event(events, "snapshot")["id"] == "1"
        ff.post("/", json=push("package.status.changed", moved(pid, "created", "picked_up", 2)))
        last = next_event(events, "status")["id"]
    assert last == "2"
    # between the old stream's end and the new one's start
    ff.post("/", json=push("tracking.event.recorded", scan(pid, 50.0, "2026-12-01T12:00:00Z")))
    ff.post("/", json=push("package.status.changed", moved(pid, "picked_up", "in_transit", 3)))
    params = {"ticket": _ticket(server, bearer, pid), "last_event_id": last}
    with requests.get(url, params=params, stream=True, timeout=10) as resp:
        assert resp.status_code == 200
        events = sse_events(resp)
        first = _until_quiet(events, 2)
        ff.post("/", json=push("tracking.event.recorded", scan(pid, 51.0, "2026-12-01T13:00:00Z")))
        live = _until_quiet(events, 1)
    got = [(e["event"], e["id"]) for e in first + live]
    assert got == [("scan", "3"), ("status", "4"), ("scan", "5")]
    # the header wins over the query (EventSource's own reconnect sends the newest id)
    params = {"ticket": _ticket(server, bearer, pid), "last_event_id": "1"}
    with requests.get(
        url, params=params, headers={"Last-Event-ID": "4"}, stream=True, timeout=10
    ) as resp:
        assert [(e["event"], e["id"]) for e in _until_quiet(sse_events(resp), 1)] == [("scan", "5")]


@pytest.mark.parametrize("case", ["expired-entries", "ahead-of-the-feed", "garbled"])
def test_a_resume_point_the_feed_cannot_serve_opens_with_a_snapshot(server, case):
    ff = fanout_client()
    pid = uuid.uuid4().hex
    bearer = {"Authorization": f"Bearer {token()}"}
    ff.post("/", json=push("package.created", created(pid)))
    ff.post("/", json=push("package.status.changed", moved(pid, "created", "picked_up", 2)))
    ff.post("/", json=push("tracking.event.recorded", scan(pid, 50.0, "2026-12-01T12:00:00Z")))
    after = {"expired-entries": "1", "ahead-of-the-feed": "99", "garbled": "x"}[case]
    if case == "expired-entries":  # what the feed's TTL does to old entries
        db = clients.firestore()
        key = f"package:{pid}"
        db.collection(store.FEED).document(store.entry_id(key, 2)).delete()
    params = {"ticket": _ticket(server, bearer, pid), "last_event_id": after}
    with requests.get(
        f"{server}/api/realtime/packages/{pid}", params=params, stream=True, timeout=10
    ) as resp:
        (snap,) = _until_quiet(sse_events(resp), 1)
    assert (snap["event"], snap["id"]) == ("snapshot", "3")


def test_open_streams_hold_no_thread(server):
    """Three times as many open streams as the server has worker threads: each gets its
    snapshot and then the same new entry (a thread per stream would leave all but two
    waiting), and tickets are still issued meanwhile."""
    ff = fanout_client()
    pid = uuid.uuid4().hex
    ff.post("/", json=push("package.created", created(pid)))
    url = f"{server}/api/realtime/packages/{pid}"
    hdrs = {"Authorization": f"Bearer {token()}"}
    streams = []
    try:
        for _ in range(6):
            resp = requests.get(url, headers=hdrs, stream=True, timeout=10)
            assert resp.status_code == 200
            events = sse_events(resp)
            assert next_event(events, "snapshot")["id"] == "1"
            streams.append((resp, events))
        r = requests.post(
            f"{server}/api/realtime/tickets", json={"stream": "map"}, headers=hdrs, timeout=5
        )
        assert r.status_code == 201
        ff.post("/", json=push("package.status.changed", moved(pid, "created", "picked_up", 2)))
        for _, events in streams:
            assert next_event(events, "status")["id"] == "2"
    finally:
        for resp, _ in streams:
            resp.close()


def test_ticket_opens_one_stream_for_a_browser(server):
    bearer = {"Authorization": f"Bearer {token()}"}
    r = requests.post(
        f"{server}/api/realtime/tickets", json={"stream": "dashboard"}, headers=bearer, timeout=5
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["url"] == "/api/realtime/dashboard" and body["stream"] == "dashboard"
    with requests.get(
        f"{server}{body['url']}", params={"ticket": body["ticket"]}, stream=True, timeout=10
    ) as resp:
        assert resp.status_code == 200
        snap = next_event(sse_events(resp), "snapshot")
        assert "by_status" in json.loads(snap["data"])
    # the ticket is for the dashboard only
    wrong = requests.get(f"{server}/api/realtime/map", params={"ticket": body["ticket"]}, timeout=5)
    assert wrong.status_code == 401


@pytest.mark.parametrize("case", ["missing", "unknown", "expired", "no-credential"])
def test_stream_refuses_without_a_valid_ticket(server, case):
    params = {}
    if case == "unknown":
        params = {"ticket": "not-a-ticket"}
    elif case == "expired":
        ticket, _ = service.issue_ticket("u1", int(time.time()) - 1, "map")
        params = {"ticket": ticket}
    elif case == "missing":
        params = {"ticket": ""}
    r = requests.get(f"{server}/api/realtime/map", params=params, timeout=5)
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert r.json()["status"] == 401


def test_ticket_needs_a_bearer_and_a_valid_request(server):
    r = requests.post(f"{server}/api/realtime/tickets", json={"stream": "map"}, timeout=5)
    assert r.status_code == 401
    bearer = {"Authorization": f"Bearer {token()}"}
    for bad in ({"stream": "package"}, {"stream": "map", "package_id": "x"}, {"stream": "all"}):
        r = requests.post(f"{server}/api/realtime/tickets", json=bad, headers=bearer, timeout=5)
        assert r.status_code == 422, (bad, r.text)


def test_stream_closes_when_the_token_expires(server):
    # a token that expires in 2 s (the verifier's leeway is 30 s: the stream ends at exp)
    short = token(ttl_s=2)
    with requests.get(
        f"{server}/api/realtime/agents",
        headers={"Authorization": f"Bearer {short}"},
        stream=True,
        timeout=10,
    ) as resp:
        events = list(sse_events(resp))  # ends: the server closed the stream
    assert events[-1]["event"] == "expired"
    assert any(e.get("event") == "snapshot" for e in events)


def test_stream_refuses_a_token_its_user_outlived(server):
    # a password change, deactivation or demotion sets the user's "not before" (shared.auth):
    # a stream opened with an older token is refused like a revoked one
    sub = uuid.uuid4().hex
    old = auth.issue_access_token(sub, ["viewer"])[0]
    time.sleep(0.01)  # iat has millisecond resolution: "not before" must come after it
    auth.set_not_before(sub)
    with requests.get(
        f"{server}/api/realtime/map",
        headers={"Authorization": f"Bearer {old}"},
        stream=True,
        timeout=5,
    ) as r:
        assert r.status_code == 401
        assert r.headers["Content-Type"].startswith("application/problem+json")
    new = auth.issue_access_token(sub, ["viewer"])[0]
    with requests.get(
        f"{server}/api/realtime/map",
        headers={"Authorization": f"Bearer {new}"},
        stream=True,
        timeout=5,
    ) as resp:
        assert resp.status_code == 200
