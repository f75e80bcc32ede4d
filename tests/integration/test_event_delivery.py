"""Outbox -> Pub/Sub emulator push -> shared.events.handler -> audit trail, for real.

A consumer that fails its first delivery is retried by Pub/Sub and records the event exactly
once; a duplicate delivery of the same event id is skipped; a consumer that always fails ends
in the dead-letter topic; CloudEvents (binary and structured) and raw push bodies decode alike.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections import Counter, defaultdict

import flask
import pytest
from werkzeug.serving import make_server

from shared import clients, db, events
from shared.events._outbox import flush
from shared.manifests import dead_letter_subscription, dead_letter_topic, subscription_name
from tests.e2e.support import wait_for
from tests.integration.support import configure, reset_platform

TOPIC = "user.created"
DEPLOYMENT = "audit-ingest"


@pytest.fixture()
def project(pubsub_emulator, firestore_emulator, pg_url, tmp_path, monkeypatch):
    """A fresh project id (so topics and documents are this test's own) and a migrated DB."""
    pid = f"it-{uuid.uuid4().hex[:10]}"
    dir_ = str(tmp_path)
    configure(monkeypatch, GOOGLE_CLOUD_PROJECT=pid, DATABASE_URL=pg_url, SWITCHYARD_LOCAL_DIR=dir_)
    clients.firestore.cache_clear()  # the Google clients are bound to the project
    clients.publisher.cache_clear()
    from shared.migrate import upgrade

    upgrade("users")
    yield pid
    reset_platform()
    clients.firestore.cache_clear()
    clients.publisher.cache_clear()


class Consumer:
    """A real HTTP server running `shared.events.handler` around a recording function."""

    def __init__(self, fail_times: int | None) -> None:
        from functions.audit import service

        self.calls: Counter[str] = Counter()
        # (Pub/Sub message id, HTTP status) of every push delivery of an event id, in order,
        # once answered: the positive signal that Pub/Sub got its answer (2xx acks it).
        self.answers: defaultdict[str, list[tuple[str, int]]] = defaultdict(list)
        self.fail_times = fail_times

        def consume(event: events.Received) -> None:
            self.calls[event.event_id] += 1
            if self.fail_times is None or self.calls[event.event_id] <= self.fail_times:
                raise RuntimeError("simulated consumer failure")
            service.record(event)

        entry = events.handler(consume)
        app = flask.Flask("consumer")

        @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
        @app.route("/<path:path>", methods=["GET", "POST"])
        def serve(path: str):
            message = (flask.request.get_json(silent=True) or {}).get("message") or {}
            event_id = message.get("attributes", {}).get("event_id", "")
            response = flask.make_response(entry(flask.request))
            if flask.request.method == "POST":
                self.answers[event_id].append((message.get("messageId", ""), response.status_code))
            return response

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


def wire(project: str, port: int) -> None:
    """The same wiring as the local stack and Terraform, with a short backoff."""
    from google.cloud import pubsub_v1
    from google.protobuf import duration_pb2

    pub = pubsub_v1.PublisherClient()
    sub = pubsub_v1.SubscriberClient()
    for t in (TOPIC, dead_letter_topic(TOPIC)):
        pub.create_topic(name=pub.topic_path(project, t))
    sub.create_subscription(
        request={
            "name": sub.subscription_path(project, dead_letter_subscription(TOPIC)),
            "topic": pub.topic_path(project, dead_letter_topic(TOPIC)),
        }
    )
    sub.create_subscription(
        request={
            "name": sub.subscription_path(project, subscription_name(DEPLOYMENT, TOPIC)),
            "topic": pub.topic_path(project, TOPIC),
            "push_config": {
                "push_endpoint": f"http://127.0.0.1:{port}/projects/{project}/topics/{TOPIC}"
            },
            "ack_deadline_seconds": 10,
            "retry_policy": {
                "minimum_backoff": duration_pb2.Duration(seconds=1),
                "maximum_backoff": duration_pb2.Duration(seconds=2),
            },
            "dead_letter_policy": {
                "dead_letter_topic": pub.topic_path(project, dead_letter_topic(TOPIC)),
                "max_delivery_attempts": 5,
            },
        }
    )


def emit_user_created() -> str:
    from functions.users.events import UserCreated

    uid = str(uuid.uuid4())
    with db.transaction() as s:
        event_id = events.emit(
            s,
            UserCreated(
                id=uid,
                email=f"{uid}@example.com",
                name="Ada",
                roles=["viewer"],
                active=True,
                version=1,
            ),
            actor="tester",
        )
    return event_id


def audit_docs(event_id: str) -> list[dict]:
    from shared.clients import firestore

    q = firestore().collection("audit_events").where("event_id", "==", event_id)
    return [d.to_dict() for d in q.stream()]


def outbox_row(event_id: str):
    table = events.outbox_table(db.metadata("users"))
    with db.engine().connect() as conn:
        return conn.execute(table.select().where(table.c.id == event_id)).one()


def test_failed_first_delivery_is_retried_and_recorded_exactly_once(project):
    # The outbox row is published and marked right after commit, off the emitting thread.
    consumer = Consumer(fail_times=1)
    try:
        wire(project, consumer.port)
        event_id = emit_user_created()
        assert flush(timeout=30)  # published off the emitting thread (decision 0041)
        assert outbox_row(event_id).published_at is not None

        # the first delivery fails (nack); a redelivery succeeds (ack); a redelivery while the
        # failed attempt's lease lasts may be answered 409 (retry later), decision 0001
        def acked() -> list[tuple[str, int]]:
            return [a for a in consumer.answers[event_id] if 200 <= a[1] < 300]

        ((original, _),) = wait_for(acked, timeout=30)
        statuses = [status for _, status in consumer.answers[event_id]]
        assert statuses[0] >= 500 and set(statuses[1:-1]) <= {409}, statuses
        docs = audit_docs(event_id)
        assert len(docs) == 1
        assert consumer.calls[event_id] == 2  # failed once, then succeeded
        doc = docs[0]
        assert doc["event_type"] == TOPIC and doc["actor"] == "tester"
        assert doc["data"]["name"] == "Ada"

        # A duplicate delivery of the same event id (e.g. a relay re-publish) is skipped.
        row = outbox_row(event_id)
        from shared.clients import publish, topic_path

        attrs = {k: v for k, v in json.loads(row.attributes).items() if v}
        [dup] = publish(topic_path(TOPIC), [(row.payload.encode(), attrs)], 10.0)

        # positive signal: the duplicate arrived and was answered (acked) by the handler
        def answered(message_id: str) -> list[int]:
            return [s for i, s in consumer.answers[event_id] if i == message_id]

        assert wait_for(lambda: answered(dup), timeout=30) == [200]
        assert [s for s in answered(original) if 200 <= s < 300] == [200]  # acked once
        assert {i for i, _ in consumer.answers[event_id]} == {original, dup}
        assert consumer.calls[event_id] == 2  # skipped before reaching the consumer
        assert len(audit_docs(event_id)) == 1
    finally:
        consumer.close()


def test_always_failing_consumer_ends_in_dead_letter_topic(project):
    from google.cloud import pubsub_v1

    consumer = Consumer(fail_times=None)
    try:
        wire(project, consumer.port)
        event_id = emit_user_created()
        sub = pubsub_v1.SubscriberClient()
        path = sub.subscription_path(project, dead_letter_subscription(TOPIC))

        def dead_letters():
            resp = sub.pull(request={"subscription": path, "max_messages": 10}, timeout=5)
            return [
                m
                for m in resp.received_messages
                if m.message.attributes.get("event_id") == event_id
            ]

        (letter,) = wait_for(dead_letters, timeout=60, interval=0.5)
        assert json.loads(letter.message.data)["name"] == "Ada"
        assert consumer.calls[event_id] == 5  # exactly max_delivery_attempts tries
        assert audit_docs(event_id) == []
    finally:
        consumer.close()


def _push_body(event_id: str, project: str) -> dict:
    attrs = {
        "event_type": TOPIC,
        "event_id": event_id,
        "schema_version": "1",
        "source": "users-api",
        "occurred_at": "2026-11-22T00:00:00.000000Z",
        "actor": "u1",
        "request_id": "r1",
    }
    data = base64.b64encode(json.dumps({"id": "x", "name": "Bo"}).encode()).decode()
    return {
        "message": {"data": data, "attributes": attrs, "messageId": "1"},
        "subscription": f"projects/{project}/subscriptions/s",
    }


@pytest.mark.parametrize("shape", ["push", "binary", "structured"])
def test_handler_accepts_push_and_cloudevents(project, shape):
    seen: list[events.Received] = []
    entry = events.handler(seen.append)
    app = flask.Flask("t")
    app.add_url_rule("/", "e", lambda: entry(flask.request), methods=["GET", "POST"])
    app.add_url_rule("/health", "h", lambda: entry(flask.request), methods=["GET"])
    client = app.test_client()
    event_id = str(uuid.uuid4())
    body = _push_body(event_id, project)
    if shape == "push":
        resp = client.post("/", json=body)
    elif shape == "binary":
        resp = client.post(
            "/",
            json=body,
            headers={
                "ce-specversion": "1.0",
                "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
                "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/{TOPIC}",
                "ce-id": "1",
            },
        )
    else:
        resp = client.post(
            "/",
            data=json.dumps(
                {
                    "specversion": "1.0",
                    "type": "google.cloud.pubsub.topic.v1.messagePublished",
                    "source": f"//pubsub.googleapis.com/projects/{project}/topics/{TOPIC}",
                    "id": "1",
                    "datacontenttype": "application/json",
                    "data": body,
                }
            ),
            content_type="application/cloudevents+json",
        )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    (got,) = seen
    assert (got.event_id, got.actor, got.data["name"]) == (event_id, "u1", "Bo")
    assert client.post("/", json=body).get_json()["status"] == "duplicate"
    assert len(seen) == 1
    assert client.get("/health").status_code == 200


def test_undecodable_delivery_is_a_problem_not_a_crash(project):
    entry = events.handler(lambda e: None)
    app = flask.Flask("t")
    app.add_url_rule("/", "e", lambda: entry(flask.request), methods=["POST"])
    resp = app.test_client().post("/", data="nonsense", content_type="application/json")
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"


def _app_of(entry) -> flask.testing.FlaskClient:
    app = flask.Flask("t")
    app.add_url_rule("/", "e", lambda: entry(flask.request), methods=["POST"])
    return app.test_client()


def _as_deployment(monkeypatch, name: str) -> None:
    from shared.config import settings

    monkeypatch.setenv("SWITCHYARD_DEPLOYMENT", name)
    settings.cache_clear()


def _marker(project: str, event_id: str) -> dict | None:
    from shared.clients import firestore

    key = f"{subscription_name('t', TOPIC)}:{event_id}"
    snap = firestore().collection(events.PROCESSED).document(key).get()
    return snap.to_dict() if snap.exists else None


@pytest.mark.parametrize("atomic", [True, False])
def test_batched_writes_land_with_the_marker_once(project, monkeypatch, atomic):
    """A consumer's writes in `event.firestore_batch()` are committed with the processed
    marker: an atomic consumer's in one commit (no claim first), a claimed one's when it
    finishes; a redelivery is a duplicate and writes nothing again (decision 0041)."""
    from shared.clients import firestore

    _as_deployment(monkeypatch, "t")
    events_seen: list[str] = []
    coll = firestore().collection(f"t_{uuid.uuid4().hex[:8]}")

    def consume(event: events.Received) -> None:
        batch = event.firestore_batch()
        assert batch is not None  # delivered by the handler
        events_seen.append(event.event_id)
        batch.set(coll.document(event.event_id), {"n": len(events_seen)})

    client = _app_of(events.handler(consume, atomic=True) if atomic else events.handler(consume))
    event_id = str(uuid.uuid4())
    body = _push_body(event_id, project)
    first = client.post("/", json=body)
    assert first.status_code == 200 and first.get_json()["status"] == "processed", first.data
    marker = _marker(project, event_id)
    assert marker is not None and marker["state"] == "done" and marker["completions"] == 1
    assert coll.document(event_id).get().to_dict() == {"n": 1}
    again = client.post("/", json=body)
    assert again.get_json()["status"] == "duplicate"
    # a claimed consumer is not run again; an atomic one may be (it cannot know before its
    # commit), but its writes are refused with the marker's create: nothing written twice
    assert events_seen == ([event_id] * 2 if atomic else [event_id])
    assert coll.document(event_id).get().to_dict() == {"n": 1}
    assert _marker(project, event_id)["completions"] == 1


@pytest.mark.parametrize("atomic", [True, False])
def test_a_failing_consumer_leaves_neither_writes_nor_a_marker(project, monkeypatch, atomic):
    from shared.clients import firestore

    _as_deployment(monkeypatch, "t")
    coll = firestore().collection(f"t_{uuid.uuid4().hex[:8]}")

    def consume(event: events.Received) -> None:
        event.firestore_batch().set(coll.document(event.event_id), {"half": True})
        raise RuntimeError("failed after adding a write")

    client = _app_of(events.handler(consume, atomic=atomic))
    event_id = str(uuid.uuid4())
    resp = client.post("/", json=_push_body(event_id, project))
    assert resp.status_code == 500
    assert _marker(project, event_id) is None  # the next delivery runs again
    assert not coll.document(event_id).get().exists


def test_an_atomic_delivery_meeting_a_claim_waits_for_it(project, monkeypatch):
    """A marker already there (another delivery holds its claim) fails the atomic commit;
    the delivery then goes the claimed way and, once the claim is done, is a duplicate."""
    from shared.clients import firestore
    from shared.events._consumer import _Claim

    _as_deployment(monkeypatch, "t")
    event_id = str(uuid.uuid4())
    body = _push_body(event_id, project)
    holder = _Claim(f"{subscription_name('t', TOPIC)}:{event_id}")
    received = events.envelope(body["message"], body["subscription"])
    assert holder.acquire(received) == "new"
    ran: list[str] = []
    client = _app_of(events.handler(lambda e: ran.append(e.event_id), atomic=True))
    finisher = threading.Timer(1.0, holder.finish)
    finisher.start()
    try:
        resp = client.post("/", json=body)
    finally:
        finisher.join()
    assert resp.get_json()["status"] == "duplicate", resp.data
    assert ran == [event_id]  # ran once, its commit refused: the claim's owner did the work
    doc = firestore().collection(events.PROCESSED).document(holder.key).get().to_dict()
    assert doc["completions"] == 1
