"""Audit on the Firestore emulator: ingest (idempotent, retried), query, pages, roles."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import flask
import functions_framework
import pytest

from functions.audit import service, store
from shared import auth, clients
from shared.events import Received, handler, rfc3339
from tests.integration.support import configure, reset_platform

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def env(firestore_emulator, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    configure(
        mp,
        SWITCHYARD_LOCAL_DIR=str(tmp_path_factory.mktemp("audit")),
        SWITCHYARD_DEPLOYMENT="audit-ingest",
    )
    clients.firestore.cache_clear()
    yield
    mp.undo()
    reset_platform()


@pytest.fixture()
def client(env):
    from functions.audit.api import app

    return app.test_client()


def bearer(*roles: str) -> dict[str, str]:
    token, _ = auth.issue_access_token("auditor", list(roles))
    return {"Authorization": f"Bearer {token}"}


def tag() -> str:
    return uuid.uuid4().hex[:10]


def received(
    event_type: str,
    *,
    at: datetime = T0,
    actor: str = "user-1",
    source: str = "users-api",
    attempt: int = 1,
    event_id: str | None = None,
    data: dict | None = None,
) -> Received:
    return Received(
        event_type=event_type,
        event_id=event_id or str(uuid.uuid4()),
        schema_version=1,
        source=source,
        occurred_at=at,
        actor=actor,
        request_id="req-1",
        traceparent=TRACE,
        data=data if data is not None else {"id": "u-9", "email": "a@example.com"},
        delivery_attempt=attempt,
    )


def push_body(event: Received) -> dict:
    return {
        "message": {
            "data": base64.b64encode(json.dumps(event.data).encode()).decode(),
            "attributes": {
                "event_type": event.event_type,
                "event_id": event.event_id,
                "schema_version": str(event.schema_version),
                "source": event.source,
                "occurred_at": rfc3339(event.occurred_at),
                "actor": event.actor,
                "request_id": event.request_id,
                "traceparent": event.traceparent,
            },
            "messageId": uuid.uuid4().hex,
        },
        "subscription": f"projects/test/subscriptions/audit-ingest--{event.event_type}",
    }


def list_all(client, headers, **params) -> list[dict]:
    items, cursor = [], None
    for _ in range(50):
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        r = client.get("/api/audit/events", query_string=query, headers=headers)
        assert r.status_code == 200, r.get_json()
        page = r.get_json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def test_record_stores_the_envelope_and_get_returns_it(client):
    event = received(f"audit{tag()}.created", data={"id": "u-1", "roles": ["viewer"]})
    service.record(event)
    r = client.get(f"/api/audit/events/{event.event_id}", headers=bearer("manager"))
    assert r.status_code == 200
    doc = r.get_json()
    assert doc["event_id"] == event.event_id
    assert doc["event_type"] == event.event_type
    assert doc["schema_version"] == 1
    assert doc["source"] == "users-api"
    assert doc["actor"] == "user-1"
    assert doc["request_id"] == "req-1"
    assert doc["traceparent"] == TRACE
    assert doc["data"] == {"id": "u-1", "roles": ["viewer"]}
    assert doc["delivery_attempt"] == 1
    assert doc["occurred_at"] == "2026-11-01T12:00:00.123456Z"
    received_at = datetime.fromisoformat(doc["received_at"].replace("Z", "+00:00"))
    assert abs(received_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_recording_the_same_event_twice_keeps_one_document(client):
    event_type = f"audit{tag()}.updated"
    event = received(event_type)
    service.record(event)
    service.record(received(event_type, event_id=event.event_id, attempt=2))
    items = list_all(client, bearer("admin"), event_type=event_type)
    assert [i["event_id"] for i in items] == [event.event_id]
    assert items[0]["delivery_attempt"] == 2


def test_ingest_entry_point_stores_and_skips_redeliveries(env):
    app = functions_framework.create_app(
        target="ingest", source=str(ROOT / "functions" / "audit" / "main.py")
    )
    event_type = f"audit{tag()}.deleted"
    event = received(event_type)
    c = app.test_client()
    first = c.post("/", json=push_body(event))
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["status"] == "processed"
    again = c.post("/", json=push_body(event))
    assert again.status_code == 200
    assert again.get_json()["status"] == "duplicate"
    assert [d.event_id for d in store.query(field="event_type", value=event_type)] == [
        event.event_id
    ]


def test_a_failed_first_delivery_is_retried_into_one_document(env):
    calls = {"n": 0}

    def failing_once(event: Received) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("Firestore hiccup on the first delivery")
        service.record(event)

    entry = handler(failing_once)
    app = flask.Flask("failing-once")
    app.add_url_rule("/", "push", lambda: entry(flask.request), methods=["POST"])
    event_type = f"audit{tag()}.retried"
    event = received(event_type)
    c = app.test_client()
    assert c.post("/", json=push_body(event)).status_code == 500
    assert store.query(field="event_type", value=event_type) == []
    retry = push_body(event)
    retry["deliveryAttempt"] = 2
    assert c.post("/", json=retry).status_code == 200
    assert c.post("/", json=retry).get_json()["status"] == "duplicate"
    docs = store.query(field="event_type", value=event_type)
    assert len(docs) == 1 and docs[0].delivery_attempt == 2
    assert calls["n"] == 2


def test_filters_and_time_range(client):
    t = tag()
    etype, actor, source = f"audit{t}.filtered", f"actor-{t}", f"source-{t}"
    events = [
        received(etype, at=T0, actor=actor),
        received(etype, at=T0 + timedelta(minutes=1), source=source),
        received(etype, at=T0 + timedelta(minutes=2), actor=actor, source=source),
        received(f"audit{t}.other", at=T0 + timedelta(minutes=3), actor=actor),
    ]
    for e in events:
        service.record(e)
    h = bearer("manager")

    def ids(**params):
        return [i["event_id"] for i in list_all(client, h, **params)]

    assert ids(event_type=etype) == [events[2].event_id, events[1].event_id, events[0].event_id]
    assert ids(actor=actor) == [events[3].event_id, events[2].event_id, events[0].event_id]
    assert ids(source=source) == [events[2].event_id, events[1].event_id]
    assert ids(
        event_type=etype,
        since=rfc3339(T0 + timedelta(minutes=1)),
        until=rfc3339(T0 + timedelta(minutes=2)),
    ) == [events[1].event_id]
    assert ids(actor=actor, since=rfc3339(T0 + timedelta(seconds=30))) == [
        events[3].event_id,
        events[2].event_id,
    ]


def test_keyset_pages_cover_everything_once_newest_first_with_ties(client):
    etype = f"audit{tag()}.paged"
    events = [received(etype, at=T0 + timedelta(seconds=i // 2)) for i in range(7)]  # pairs tie
    for e in events:
        service.record(e)
    h = bearer("manager")
    r = client.get("/api/audit/events", query_string={"event_type": etype, "limit": 3}, headers=h)
    first = r.get_json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    items = list_all(client, h, event_type=etype, limit=3)
    assert len(items) == 7
    assert len({i["event_id"] for i in items}) == 7
    keys = [(i["occurred_at"], i["event_id"]) for i in items]
    assert keys == sorted(keys, reverse=True)
    assert items[:3] == first["items"]


def test_roles_and_missing_events(client):
    assert client.get("/api/audit/events", headers=bearer("viewer")).status_code == 403
    assert client.get("/api/audit/events", headers=bearer("operator")).status_code == 403
    assert client.get("/api/audit/events?limit=1", headers=bearer("manager")).status_code == 200
    assert client.get("/api/audit/events?limit=1", headers=bearer("admin")).status_code == 200
    r = client.get(f"/api/audit/events/{uuid.uuid4()}", headers=bearer("manager"))
    assert r.status_code == 404
    assert r.mimetype == "application/problem+json"
    assert client.get("/api/audit/events/..", headers=bearer("manager")).status_code == 404


def test_payloads_firestore_cannot_hold_as_maps_are_kept(client):
    event = received(f"audit{tag()}.odd", data={"matrix": [[1, 2], [3, 4]]})
    service.record(event)
    r = client.get(f"/api/audit/events/{event.event_id}", headers=bearer("manager"))
    assert r.get_json()["data"] == {"matrix": [[1, 2], [3, 4]]}
