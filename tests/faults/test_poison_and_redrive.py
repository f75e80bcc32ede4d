"""A poison message ends in the dead-letter topic after max_attempts and is redriven once fixed.

A user.created event that maintenance-on-user-event always fails on (fault suite's `poison`):
that subscription answers 500 exactly `max_delivery_attempts` times and the message is kept in
`user.created.dead-letter`; the other consumers processed it once. After the fix (`cure`),
ops-api's redrive publishes it again: the failed consumer processes it once, the others skip it.
"""

from __future__ import annotations

import json
import uuid

import pytest

from emulators._wiring import clients
from shared.events._faults import cure, poison
from shared.events._schema import rfc3339, utcnow
from tests.faults.support import subscriptions_of
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e
VICTIM = "maintenance-on-user-event"
TOPIC = "user.created"


def test_poison_message_is_dead_lettered_then_redriven_once(stack, gw, ledger):
    victim_sub = f"{VICTIM}--{TOPIC}"
    attempts = stack.plan.push[0].max_delivery_attempts
    event_id = _publish_poisoned(stack)
    others = [s for s in subscriptions_of(stack, TOPIC) if s != victim_sub]
    keys = [f"{s}:{event_id}" for s in subscriptions_of(stack, TOPIC)]

    def dead_lettered() -> bool:
        r = gw.req("GET", "/api/ops/dead-letters", params={"topic": TOPIC})
        return r.status_code == 200 and event_id in json.dumps(r.json())

    wait_for(dead_lettered, timeout=120, interval=1.0)
    assert stack.bridge.answers(victim_sub, event_id) == [500] * attempts
    first = ledger.markers(keys)
    assert f"{victim_sub}:{event_id}" not in first  # released after each failure
    assert all(first[f"{s}:{event_id}"]["completions"] == 1 for s in others), first

    cure(VICTIM, event_id, stack.local_dir)  # the fix is deployed
    resp = gw.req("POST", f"/api/ops/dead-letters/{TOPIC}/redrive", json={"event_ids": [event_id]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["redriven"] == 1, resp.text

    def processed() -> dict | None:
        doc = ledger.markers([f"{victim_sub}:{event_id}"]).get(f"{victim_sub}:{event_id}")
        return doc if doc and doc.get("state") == "done" else None

    assert wait_for(processed, timeout=60)["completions"] == 1
    # the others saw the redriven copy and skipped it: still exactly one completion each
    wait_for(lambda: all(200 in stack.bridge.answers(s, event_id)[1:] for s in others), timeout=60)
    after = ledger.markers(keys)
    assert all(after[k]["completions"] == 1 for k in keys), after
    assert not dead_lettered()


def _publish_poisoned(stack) -> str:
    """Arm the poison before the event exists, then publish it (the id is ours)."""
    event_id = str(uuid.uuid4())
    poison(VICTIM, event_id, stack.local_dir)
    return _publish_with_id(stack, event_id)


def _publish_with_id(stack, event_id: str) -> str:
    uid = str(uuid.uuid4())
    payload = {
        "id": uid,
        "email": f"poison-{uid[:8]}@example.com",
        "name": "Poison",
        "roles": ["viewer"],
        "active": True,
        "version": 1,
    }
    attrs = {
        "event_type": TOPIC,
        "event_id": event_id,
        "schema_version": "1",
        "source": "users-api",
        "occurred_at": rfc3339(utcnow()),
        "actor": "system",
    }
    pub, _ = clients(stack.pubsub.host)
    try:
        pub.publish(
            request={
                "topic": f"projects/{stack.project}/topics/{TOPIC}",
                "messages": [{"data": json.dumps(payload).encode(), "attributes": attrs}],
            }
        )
    finally:
        pub.transport.close()
    return event_id
