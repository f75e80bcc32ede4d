"""A consumer SIGKILLed while it holds deliveries loses nothing and does nothing twice.

Through the whole local stack: admins create users through the gateway while audit-ingest is
killed, (a) by the fault hook at the moment it has claimed an event (so a delivery is surely in
flight), (b) from outside, as `kill -9` during a burst. The end state is read from the
processed markers of every user.created subscription: each acknowledged write's event is done
exactly once in each of them, and the crashed deliveries were waited out, not answered 'busy'.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.events._faults import arm, armed
from tests.faults.support import kill, recover
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e
CONSUMER = "audit-ingest"
SUBSCRIPTION = "audit-ingest--user.created"


def test_consumer_killed_holding_a_claim_processes_every_event_once(stack, gw, ledger):
    for _ in range(3):
        old = stack.pid_of(CONSUMER)
        arm("consume", CONSUMER, stack.local_dir)
        with ThreadPoolExecutor(4) as pool:
            for uid in pool.map(lambda _: gw.create_user("claim-kill"), range(8)):
                ledger.add(uid)
        wait_for(lambda: not armed("consume", CONSUMER, stack.local_dir), timeout=60)
        recover(stack, CONSUMER, old)
    verdict = ledger.settle()
    assert verdict.expected == 24, verdict
    assert not verdict.duplicated and not verdict.extra_events, verdict
    # the killed deliveries: no answer (reset), then processed on redelivery, never 'busy'
    killed = [
        key
        for key, doc in ledger.markers(
            [
                f"{SUBSCRIPTION}:{e}"
                for evs in ledger.events(ledger.user_ids).values()
                for e, _ in evs
            ]
        ).items()
        if int(doc.get("runs") or 1) > 1
    ]
    assert killed, "no delivery was killed holding its claim"
    for key in killed:
        answers = stack.bridge.answers(SUBSCRIPTION, key.split(":", 1)[1])
        assert "reset" in answers and 409 not in answers, answers


def test_consumer_killed_from_outside_during_a_burst_loses_nothing(stack, gw, ledger):
    done = threading.Event()

    def burst() -> None:
        with ThreadPoolExecutor(4) as pool:
            for uid in pool.map(lambda _: gw.create_user("burst-kill"), range(40)):
                ledger.add(uid)
        done.set()

    writer = threading.Thread(target=burst)
    writer.start()
    kills = 0
    for n in (8, 18, 28):
        wait_for(lambda n=n: len(ledger.user_ids) >= n or done.is_set(), timeout=120)
        recover(stack, CONSUMER, kill(stack, CONSUMER))
        kills += 1
    writer.join()
    verdict = ledger.settle()
    assert kills == 3 and verdict.expected == 40, verdict
    assert not verdict.duplicated and not verdict.extra_events, verdict
