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
    # The outbox row is marked published right after commit (dev runs with SERVICE_URLS etc.).
    consumer = Consumer(fail_times=1)
    try:
        wire(project, consumer.port)
        event_id = emit_user_created()
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
        from shared.clients import publisher, topic_path

        attrs = {k: v for k, v in json.loads(row.attributes).items() if v}
        dup = publisher().publish(topic_path(TOPIC), row.payload.encode(), **attrs).result(10)

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
