"""The outbox on PostgreSQL and the Pub/Sub emulator: immediate publish after commit, the
relay of rows left pending, and the ops-outbox-relay deployment that runs it every minute."""

from __future__ import annotations

import contextlib
import json
import textwrap
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import functions_framework
import pytest
from sqlalchemy import MetaData, select, text

from shared import clients, db, events, manifests
from shared.config import settings
from shared.events import Event, emit, outbox_table, relay
from shared.events._outbox import flush
from tests.e2e.support import wait_for
from tests.integration.support import configure, reset_platform

ROOT = Path(__file__).resolve().parents[2]


class Pinged(Event):
    """An event type of the test context below (no real context publishes it)."""

    event_type: ClassVar[str] = "relaytest.pinged"
    schema_version: ClassVar[int] = 1

    n: int


@pytest.fixture(scope="module")
def database(pg_url, pubsub_emulator):
    mp = pytest.MonkeyPatch()
    configure(mp, DATABASE_URL=pg_url)
    clients.publisher.cache_clear()
    yield
    mp.undo()
    reset_platform()
    clients.publisher.cache_clear()


@pytest.fixture(scope="module")
def subscriber(database):
    from google.cloud import pubsub_v1

    sub = pubsub_v1.SubscriberClient()
    yield sub
    sub.close()


def fresh_subscription(subscriber, topic: str) -> str:
    """A new pull subscription on `topic` (created with the topic if needed)."""
    from google.api_core.exceptions import AlreadyExists

    with contextlib.suppress(AlreadyExists):
        clients.publisher().create_topic(name=clients.topic_path(topic))
    path = subscriber.subscription_path(settings().project_id, f"test-{uuid.uuid4().hex[:12]}")
    subscriber.create_subscription(name=path, topic=clients.topic_path(topic))
    return path


def pull_one(subscriber, subscription: str, event_id: str, timeout: float = 15.0):
    """The message carrying `event_id` (acknowledged), waiting up to `timeout`."""

    def pulled():
        resp = subscriber.pull(
            request={"subscription": subscription, "max_messages": 50}, timeout=5
        )
        if resp.received_messages:
            subscriber.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [m.ack_id for m in resp.received_messages],
                }
            )
        wanted = (m.message for m in resp.received_messages)
        return next((m for m in wanted if m.attributes.get("event_id") == event_id), None)

    return wait_for(pulled, timeout=timeout, interval=0.1)


@pytest.fixture()
def relaytest(database, tmp_path, monkeypatch):
    """A catalog with one context `relaytest` (its own schema and outbox) instead of the real
    contexts, so the relay sees only this test's rows."""
    schema = f"relaytest_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "relaytest"
    folder.mkdir()
    (folder / "function.yaml").write_text(
        textwrap.dedent(f"""
        context: relaytest
        owns_schema: {schema}
        deployments:
          relaytest-api:
            entry_point: api
            trigger: http
            routes: [/api/relaytest]
            publishes: [relaytest.pinged]
    """)
    )
    (folder / "main.py").write_text("def api(request):\n    pass\n")
    cat = manifests.load(tmp_path)
    monkeypatch.setattr(manifests, "catalog", lambda: cat)
    events._outbox._publisher_schema.cache_clear()
    with db.engine().begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    table = outbox_table(MetaData(schema=schema))
    table.metadata.create_all(db.engine())
    yield table
    events._outbox._publisher_schema.cache_clear()


def insert_pending(table, event_type: str, payload: dict, *, age: timedelta) -> str:
    event_id = str(uuid.uuid4())
    created = datetime.now(UTC) - age
    attributes = {
        "event_type": event_type,
        "event_id": event_id,
        "schema_version": "1",
        "source": "relaytest-api",
        "occurred_at": events.rfc3339(created),
        "request_id": "req-relay",
        "traceparent": "",
        "actor": "user-7",
    }
    with db.transaction() as s:
        s.execute(
            table.insert().values(
                id=event_id,
                event_type=event_type,
                schema_version=1,
                payload=json.dumps(payload),
                attributes=json.dumps(attributes),
                created_at=created,
                attempts=0,
            )
        )
    return event_id


def published_at(table, event_id: str):
    with db.transaction() as s:
        return s.execute(select(table.c.published_at).where(table.c.id == event_id)).scalar_one()


def test_relay_publishes_rows_left_pending(relaytest, subscriber):
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    old = insert_pending(relaytest, "relaytest.pinged", {"n": 1}, age=timedelta(minutes=2))
    young = insert_pending(relaytest, "relaytest.pinged", {"n": 2}, age=timedelta(seconds=0))

    assert relay() == 1  # the young row may still be published by its own request
    message = pull_one(subscriber, subscription, old)
    assert json.loads(message.data) == {"n": 1}
    attrs = dict(message.attributes)
    assert attrs["event_type"] == "relaytest.pinged"
    assert attrs["schema_version"] == "1"
    assert attrs["source"] == "relaytest-api"
    assert attrs["actor"] == "user-7"
    assert attrs["request_id"] == "req-relay"
    assert "traceparent" not in attrs  # empty attributes are not sent
    assert published_at(relaytest, old) is not None
    assert published_at(relaytest, young) is None
    assert relay() == 0  # nothing left past the grace


def test_emit_publishes_right_after_commit(relaytest, subscriber):
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    before = datetime.now(UTC).replace(microsecond=0)
    with db.transaction() as s:
        event_id = emit(s, Pinged(n=7), actor="user-8")
    after = datetime.now(UTC)
    # the commit only handed the row over: the request does not wait on Pub/Sub (0041)
    assert flush(timeout=30)
    assert published_at(relaytest, event_id) is not None  # published before the relay ran
    message = pull_one(subscriber, subscription, event_id)
    assert json.loads(message.data) == {"n": 7}
    attrs = dict(message.attributes)
    assert attrs["event_type"] == "relaytest.pinged"
    assert attrs["actor"] == "user-8"
    occurred = datetime.fromisoformat(attrs["occurred_at"].replace("Z", "+00:00"))
    assert before <= occurred <= after  # stamped when emitted


def test_every_event_of_one_transaction_is_published(relaytest, subscriber):
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    with db.transaction() as s:
        ids = [emit(s, Pinged(n=n)) for n in range(3)]
    assert flush(timeout=30)
    assert all(published_at(relaytest, event_id) is not None for event_id in ids)
    assert pull_all(subscriber, subscription, ids) == [0, 1, 2]


def pull_all(subscriber, subscription: str, ids: list[str]) -> list[int]:
    """The `n` of the messages carrying `ids` (acknowledged), in the order of `ids`."""
    seen: dict[str, int] = {}

    def all_of_them() -> bool:
        resp = subscriber.pull(
            request={"subscription": subscription, "max_messages": 50}, timeout=5
        )
        for m in resp.received_messages:
            seen[m.message.attributes["event_id"]] = json.loads(m.message.data)["n"]
        if resp.received_messages:
            ack_ids = [m.ack_id for m in resp.received_messages]
            subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ack_ids})
        return all(i in seen for i in ids)

    wait_for(all_of_them, timeout=15, interval=0.1)
    return [seen[i] for i in ids]


def test_rows_committed_during_a_publish_go_out_together_in_one_call(
    relaytest, subscriber, monkeypatch
):
    """The sender publishes what is queued when it looks, one `Publish` call per topic: rows
    committed while a call is in flight go out in the next one (decision 0061), each with its
    own message and mark."""
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    calls: list[int] = []
    first_sent = threading.Event()
    release = threading.Event()
    real = clients._publish_call

    def counted(topic, messages, timeout):
        calls.append(len(messages))
        if len(calls) == 1:
            first_sent.set()
            release.wait(30)  # this call is in flight while the next rows commit
        return real(topic, messages, timeout)

    monkeypatch.setattr(clients, "_publish_call", counted)
    with db.transaction() as s:
        ids = [emit(s, Pinged(n=0))]
    assert first_sent.wait(30)
    for n in range(1, 21):  # twenty commits, one row each, while the first publish waits
        with db.transaction() as s:
            ids.append(emit(s, Pinged(n=n)))
    release.set()
    assert flush(timeout=30)
    assert calls == [1, 20]
    assert all(published_at(relaytest, event_id) is not None for event_id in ids)
    assert pull_all(subscriber, subscription, ids) == list(range(21))


def test_the_sender_outlives_a_failure_of_its_own_and_leaves_the_rows_pending(
    relaytest, subscriber, monkeypatch
):
    """An answer the sender cannot use (here: no message ids) leaves the rows pending for the
    relay, with the error, and the sender thread goes on publishing the next commits."""
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    real = clients._publish_call
    monkeypatch.setattr(clients, "_publish_call", lambda topic, messages, timeout: [])
    with db.transaction() as s:
        lost = emit(s, Pinged(n=1))
    assert flush(timeout=30)
    with db.transaction() as s:
        row = s.execute(select(relaytest).where(relaytest.c.id == lost)).one()
    assert row.published_at is None and row.attempts == 1 and row.last_error
    monkeypatch.setattr(clients, "_publish_call", real)
    with db.transaction() as s:
        later = emit(s, Pinged(n=2))
    assert flush(timeout=30)
    assert published_at(relaytest, later) is not None
    assert pull_one(subscriber, subscription, later) is not None


def test_with_outbox_wait_the_commit_returns_once_its_rows_are_published(
    relaytest, subscriber, monkeypatch
):
    """Cloud Run throttles CPU after the response: there the request waits for its own rows
    (OUTBOX_WAIT_S), so they are published and marked when the commit returns."""
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    monkeypatch.setenv("OUTBOX_WAIT_S", "10")
    settings.cache_clear()
    try:
        with db.transaction() as s:
            ids = [emit(s, Pinged(n=n)) for n in range(3)]
        # no flush(): the commit itself waited
        assert all(published_at(relaytest, event_id) is not None for event_id in ids)
    finally:
        monkeypatch.delenv("OUTBOX_WAIT_S")
        settings.cache_clear()
    assert pull_all(subscriber, subscription, ids) == [0, 1, 2]


def test_a_rolled_back_transaction_leaves_nothing_to_publish(relaytest):
    with pytest.raises(RuntimeError), db.transaction() as s:
        emit(s, Pinged(n=9))
        raise RuntimeError("use case failed")
    with db.transaction() as s:
        assert s.execute(select(relaytest.c.id)).all() == []


def test_ops_outbox_relay_deployment_on_the_real_contexts(database, subscriber, monkeypatch):
    from shared import migrate

    migrate.upgrade_all(with_bootstrap=False)
    schema = manifests.catalog().context("users").owns_schema
    table = outbox_table(MetaData(schema=schema))
    subscription = fresh_subscription(subscriber, "user.created")
    payload = {
        "id": str(uuid.uuid4()),
        "email": "relay@example.com",
        "name": "Relay",
        "roles": ["viewer"],
        "active": True,
        "version": 1,
    }
    event_id = insert_pending(table, "user.created", payload, age=timedelta(minutes=5))

    monkeypatch.setenv("SWITCHYARD_DEPLOYMENT", "ops-outbox-relay")
    settings.cache_clear()
    app = functions_framework.create_app(
        target="outbox_relay", source=str(ROOT / "functions" / "ops" / "main.py")
    )
    c = app.test_client()
    health = c.get("/health")
    assert health.status_code == 200, health.get_json()
    assert health.get_json()["checks"]["database"]["status"] == "ok"
    r = c.post(
        "/",
        headers={
            "X-CloudScheduler": "true",
            "X-CloudScheduler-JobName": "ops-outbox-relay",
            "X-CloudScheduler-ScheduleTime": events.rfc3339(datetime.now(UTC)),
        },
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["published"] >= 1
    assert json.loads(pull_one(subscriber, subscription, event_id).data) == payload
    assert published_at(table, event_id) is not None
