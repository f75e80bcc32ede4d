"""ops-api's dead letters on the Pub/Sub emulator: a message kept in `<topic>.dead-letter--keep`
is listed (and stays kept), redriven to the original topic with the same data and attributes,
and then gone from the dead letters; only admins may look."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from functions.ops.api import app
from shared import clients
from shared.manifests import catalog, dead_letter_subscription, dead_letter_topic
from tests.integration.support import Caller, configure, reset_platform

TOPIC = "user.created"
PROBLEM = "application/problem+json"


@pytest.fixture()
def project(pubsub_emulator, tmp_path, monkeypatch):
    """A fresh project id: the topics and subscriptions are this test's own."""
    pid = f"ops-{uuid.uuid4().hex[:10]}"
    configure(monkeypatch, GOOGLE_CLOUD_PROJECT=pid, SWITCHYARD_LOCAL_DIR=str(tmp_path))
    clients.publisher.cache_clear()
    clients.subscriber.cache_clear()
    pub, sub = clients.publisher(), clients.subscriber()
    for t in (TOPIC, dead_letter_topic(TOPIC)):
        pub.create_topic(name=clients.topic_path(t))
    sub.create_subscription(
        request={
            "name": clients.subscription_path(dead_letter_subscription(TOPIC)),
            "topic": clients.topic_path(dead_letter_topic(TOPIC)),
        }
    )
    yield pid
    clients.publisher.cache_clear()
    clients.subscriber.cache_clear()
    reset_platform()


def caller(*roles: str):
    return Caller(app, roles).client


def dead_letter(payload: dict) -> dict[str, str]:
    """Publish straight into the dead-letter topic, as Pub/Sub does after max attempts."""
    attrs = {
        "event_type": TOPIC,
        "event_id": str(uuid.uuid4()),
        "schema_version": "1",
        "source": "users-api",
        "occurred_at": "2026-11-22T00:00:00.000000Z",
        "request_id": "req-dl",
        "actor": "user-1",
    }
    data = json.dumps(payload).encode()
    clients.publish(clients.topic_path(dead_letter_topic(TOPIC)), [(data, attrs)], 10.0)
    return attrs


def fresh_subscription(topic: str) -> str:
    path = clients.subscription_path(f"test-{uuid.uuid4().hex[:12]}")
    clients.subscriber().create_subscription(name=path, topic=clients.topic_path(topic))
    return path


def pull_until(subscription: str, event_id: str, timeout: float = 15.0):
    sub = clients.subscriber()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = sub.pull(request={"subscription": subscription, "max_messages": 10}, timeout=5)
        if resp.received_messages:
            sub.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [m.ack_id for m in resp.received_messages],
                }
            )
        for m in resp.received_messages:
            if m.message.attributes.get("event_id") == event_id:
                return m.message
    raise AssertionError(f"no message with event_id {event_id} on {subscription}")


def listed(client, query: str = "") -> dict:
    resp = client.get(f"/api/ops/dead-letters{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def test_list_and_redrive_a_dead_letter(project):
    admin = caller("admin")
    payload = {"id": str(uuid.uuid4()), "name": "Ada", "email": "ada@example.com"}
    attrs = dead_letter(payload)

    body = listed(admin)
    assert body["counts"][TOPIC] == 1
    assert set(body["counts"]) == set(catalog().topics)
    (item,) = body["items"]
    assert item["topic"] == TOPIC and item["event_id"] == attrs["event_id"]
    assert item["event_type"] == TOPIC and item["data"] == payload
    assert item["attributes"] == attrs and item["message_id"] and item["publish_time"]

    # Peeking leaves it kept; the topic filter narrows the answer.
    again = listed(admin, f"?topic={TOPIC}")
    assert again["counts"] == {TOPIC: 1}
    assert [i["event_id"] for i in again["items"]] == [attrs["event_id"]]

    original = fresh_subscription(TOPIC)
    resp = admin.post(f"/api/ops/dead-letters/{TOPIC}/redrive")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["redriven"] == 1

    msg = pull_until(original, attrs["event_id"])
    assert dict(msg.attributes) == attrs
    assert json.loads(msg.data) == payload
    assert listed(admin, f"?topic={TOPIC}")["counts"] == {TOPIC: 0}


def test_redrive_only_the_chosen_event_ids(project):
    admin = caller("admin")
    first = dead_letter({"n": 1})
    second = dead_letter({"n": 2})
    original = fresh_subscription(TOPIC)
    resp = admin.post(
        f"/api/ops/dead-letters/{TOPIC}/redrive", json={"event_ids": [second["event_id"]]}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["redriven"] == 1
    assert dict(pull_until(original, second["event_id"]).attributes) == second
    left = listed(admin, f"?topic={TOPIC}")
    assert [i["event_id"] for i in left["items"]] == [first["event_id"]]


def test_only_admins_and_known_topics(project):
    viewer = caller("viewer")
    for resp in (
        viewer.get("/api/ops/dead-letters"),
        viewer.post(f"/api/ops/dead-letters/{TOPIC}/redrive"),
        viewer.get("/api/ops/outbox"),
    ):
        assert resp.status_code == 403 and resp.mimetype == PROBLEM
    assert app.test_client().get("/api/ops/dead-letters").status_code == 401
    admin = caller("admin")
    for resp in (
        admin.post("/api/ops/dead-letters/no.such.topic/redrive"),
        admin.get("/api/ops/dead-letters?topic=no.such"),
    ):
        assert resp.status_code == 404 and resp.mimetype == PROBLEM
    bad = admin.post(f"/api/ops/dead-letters/{TOPIC}/redrive", json={"event_ids": "x"})
    assert bad.status_code == 422
