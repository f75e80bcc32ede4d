"""The Pub/Sub and the Firestore emulators restarted while users are being created.

Pub/Sub, under load: writes go on while the emulator stops, while it is down and while the
stack wires it again. The emulator keeps topics, subscriptions and messages in memory, so it
comes back empty: what it held when it stopped (published, not yet acked by every
subscription) is gone, and a message published to a topic whose last subscription the wiring
has not created yet reaches only the subscriptions already there (Cloud Pub/Sub does neither:
decision 0049). The stack's monitor sees the new emulator, wires it, and publishes again the
outbox rows some subscription has not processed; writes made while it is down or unwired keep
their rows pending and the relay publishes them. Every acknowledged write is processed once by
every consumer.
Firestore: consumers meet it down (their claims cannot be written; the gateway cannot check
revocations either, so no write is acknowledged meanwhile) and carry on once it is back with its
data (exported and imported around the restart), nothing lost or done twice.
"""

from __future__ import annotations

import pytest

from tests.faults.support import Writer, rewire
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(600)  # two emulator starts and a replay, on a busy machine
def test_pubsub_restarted_under_load_loses_no_acknowledged_write(stack, gw, ledger):
    for _ in range(5):
        ledger.add(gw.create_user("before-pubsub"))
    writer = Writer(gw, ledger, "pubsub-load").start()
    try:
        writer.more(10)  # the emulator stops with these in flight
        stack.pubsub.restart(timeout=180, while_down=lambda: writer.more(3))
        recovery = rewire(stack)  # writes go on during the wiring
        writer.more(5)
    finally:
        writer.stop()
    assert recovery.done.wait(300), "the replay did not finish"
    assert recovery.error is None and recovery.result is not None, recovery
    assert recovery.result["failed"] == 0, recovery.result
    verdict = ledger.settle(timeout=240)
    assert verdict.expected >= 23, verdict
    assert not verdict.duplicated and not verdict.extra_events, verdict


@pytest.mark.timeout(600)  # an export and an import of the session's data, on a busy machine
def test_firestore_restarted_under_load_loses_nothing(stack, gw, ledger):
    for _ in range(5):
        ledger.add(gw.create_user("before-firestore"))
    writer = Writer(gw, ledger, "firestore-down").start()
    bridge = stack.bridge
    try:
        bridge.pause()  # no consumer writes between the export and the stop
        writer.more(3)  # their events wait in the subscriptions
        wait_for(lambda: bridge.busy == 0, timeout=120)
        before = sum(bridge.counts.values())

        def down() -> None:
            bridge.resume()  # consumers now meet Firestore down (the gateway too)
            wait_for(lambda: bridge.busy > 0 or sum(bridge.counts.values()) > before, 60, 0.01)

        try:
            stack.firestore.restart(timeout=180, while_down=down)
        finally:
            bridge.resume()
        writer.more(3)
    finally:
        writer.stop()
    verdict = ledger.settle(timeout=240)
    assert verdict.expected >= 11, verdict
    assert not verdict.duplicated and not verdict.extra_events, verdict
