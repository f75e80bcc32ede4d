"""A consumer SIGKILLed while it holds deliveries loses nothing and does nothing twice.

Through the whole local stack: admins create users through the gateway while a consumer is
killed, (a) by the fault hook with a delivery surely in flight: auth-on-user-event holding its
claim (taken before the work), audit-ingest before its one atomic commit of the audit entry
and the marker (decision 0041); (b) audit-ingest from outside, as `kill -9` during a burst.
The end state is read from the processed markers of every user.created subscription: each
acknowledged write's event is done exactly once in each of them, and the crashed deliveries
were waited out, not answered 'busy'.
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


@pytest.mark.parametrize("victim", ["auth-on-user-event", CONSUMER])
def test_consumer_killed_mid_delivery_processes_every_event_once(stack, gw, ledger, victim):
    subscription = f"{victim}--user.created"
    for _ in range(3):
        old = stack.pid_of(victim)
        arm("consume", victim, stack.local_dir)
        with ThreadPoolExecutor(4) as pool:
            for uid in pool.map(lambda _: gw.create_user("claim-kill"), range(8)):
                ledger.add(uid)
        wait_for(lambda: not armed("consume", victim, stack.local_dir), timeout=60)
        recover(stack, victim, old)
    verdict = ledger.settle()
    assert verdict.expected == 24, verdict
    assert not verdict.duplicated and not verdict.extra_events, verdict
    # the killed deliveries: no answer (reset), then processed on redelivery, never 'busy'
    # (`runs` > 1: a claim taken over, or an atomic marker written by a later attempt)
    killed = [
        key
        for key, doc in ledger.markers(
            [
                f"{subscription}:{e}"
                for evs in ledger.events(ledger.user_ids).values()
                for e, _ in evs
            ]
        ).items()
        if int(doc.get("runs") or 1) > 1
    ]
    assert killed, "no delivery was killed in flight"
    for key in killed:
        answers = stack.bridge.answers(subscription, key.split(":", 1)[1])
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
