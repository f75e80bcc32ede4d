"""Traces across an event hop, on PostgreSQL, the Pub/Sub and Firestore emulators: the outbox's
publish span is the child of the span that emitted the event and is named by the event's
`traceparent` attribute; the relay's publish continues the stored trace; the consumer's span is
the child of the publish span and its logs name it."""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta
from typing import Any

import flask
import pytest

from shared import db, events, tracing
from shared import logging as slog
from shared.events import emit, relay
from shared.events._outbox import flush
from tests.integration import test_relay as relay_tests
from tests.integration.test_relay import Pinged, fresh_subscription, insert_pending, pull_one
from tests.unit import test_tracing as tracing_tests

# their fixtures, used here under the same names
database, relaytest = relay_tests.database, relay_tests.relaytest
subscriber, spans = relay_tests.subscriber, tracing_tests.spans

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _named(memory: Any, name: str) -> list[Any]:
    tracing.flush()
    return [s for s in memory.get_finished_spans() if s.name == name]


def test_the_publish_span_is_the_emitters_child_and_the_events_parent(
    relaytest: Any, subscriber: Any, spans: Any
) -> None:
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    scope = tracing.server("POST /api/relaytest", f"00-{TRACE}-00f067aa0ba902b7-01")
    try:
        with db.transaction() as s:
            event_id = emit(s, Pinged(n=1))
    finally:
        scope.finish()
    assert flush(timeout=30)
    message = pull_one(subscriber, subscription, event_id)
    (publish,) = _named(spans, "publish relaytest.pinged")
    (request,) = _named(spans, "POST /api/relaytest")
    assert publish.kind.name == "PRODUCER"
    assert publish.parent.span_id == request.context.span_id
    assert publish.attributes["switchyard.event_id"] == event_id
    assert publish.attributes["messaging.message.id"] == message.message_id
    assert message.attributes["traceparent"] == tracing.format_traceparent(publish)
    # the INSERT of the row is a statement span of the same request, without its values
    (insert,) = [s for s in _named(spans, f"INSERT {relaytest.fullname}")]
    assert insert.parent.span_id == request.context.span_id
    assert event_id not in json.dumps(dict(insert.attributes))


def test_a_relayed_publish_continues_the_stored_trace(
    relaytest: Any, subscriber: Any, spans: Any
) -> None:
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    stored = f"00-{TRACE}-a3ce929d0e0e4736-01"
    event_id = insert_pending(relaytest, "relaytest.pinged", {"n": 2}, age=timedelta(minutes=2))
    with db.transaction() as s:  # as emit stored it, in the request that crashed
        t = relaytest
        row = s.execute(t.select().where(t.c.id == event_id)).one()
        attrs = {**json.loads(row.attributes), "traceparent": stored}
        s.execute(t.update().where(t.c.id == event_id).values(attributes=json.dumps(attrs)))
    assert relay() >= 1
    message = pull_one(subscriber, subscription, event_id)
    (publish,) = [
        s
        for s in _named(spans, "publish relaytest.pinged")
        if s.attributes["switchyard.event_id"] == event_id
    ]
    assert publish.attributes["switchyard.relayed"] is True
    assert f"{publish.context.trace_id:032x}" == TRACE
    assert f"{publish.parent.span_id:016x}" == "a3ce929d0e0e4736"
    assert message.attributes["traceparent"] == tracing.format_traceparent(publish)


def test_the_consumer_span_is_the_publish_spans_child(
    relaytest: Any, subscriber: Any, spans: Any, firestore_emulator: Any
) -> None:
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    scope = tracing.server("POST /api/relaytest")
    try:
        with db.transaction() as s:
            event_id = emit(s, Pinged(n=3))
    finally:
        scope.finish()
    assert flush(timeout=30)
    message = pull_one(subscriber, subscription, event_id)
    seen: list[dict[str, Any]] = []

    def consume(event: events.Received) -> None:
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "consuming", None, None)
        seen.append(json.loads(slog.CloudLoggingFormatter().format(record)))

    entry = events.handler(consume)
    app = flask.Flask("consumer")
    app.add_url_rule("/<path:path>", "push", lambda path: entry(flask.request), methods=["POST"])
    body = {
        "message": {
            "attributes": dict(message.attributes),
            "data": base64.b64encode(message.data).decode(),
            "messageId": message.message_id,
        },
        "subscription": "projects/p/subscriptions/relaytest",
    }
    resp = app.test_client().post("/projects/p/topics/relaytest.pinged", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    (publish,) = _named(spans, "publish relaytest.pinged")
    (process,) = _named(spans, "process relaytest.pinged")
    assert process.kind.name == "CONSUMER"
    assert process.parent.span_id == publish.context.span_id
    assert process.context.trace_id == publish.context.trace_id
    assert process.attributes["switchyard.event_id"] == event_id
    assert process.attributes["messaging.gcp_pubsub.message.delivery_attempt"] == 1
    (log,) = seen
    assert log["logging.googleapis.com/spanId"] == f"{process.context.span_id:016x}"
    assert log["logging.googleapis.com/trace"].endswith(f"{process.context.trace_id:032x}")


@pytest.fixture(autouse=True)
def _no_stale_provider() -> Any:
    yield
    tracing.reset()
