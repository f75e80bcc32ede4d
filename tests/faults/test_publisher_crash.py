"""A publisher SIGKILLed between commit and publish: the outbox row waits, the relay sends it.

users-api is armed (fault hook `after-commit`) to kill its process group right after the
transaction that created a user and its user.created outbox row committed, before the publish.
The client sees no 201 (the gateway answers 502 for the dead upstream) although the user exists;
the relay publishes the pending row later and every consumer processes it once.
"""

from __future__ import annotations

import pytest

from shared.events._faults import arm, armed
from tests.faults.support import recover
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e
PUBLISHER = "users-api"


def test_publisher_killed_after_commit_loses_no_event(stack, gw, ledger):
    email = "committed-then-killed"
    old = stack.pid_of(PUBLISHER)
    arm("after-commit", PUBLISHER, stack.local_dir)
    resp = gw.req(
        "POST",
        "/api/users",
        json={"email": f"{email}-{old}@example.com", "name": "Killed", "roles": ["viewer"]},
    )
    assert resp.status_code >= 500, resp.text  # never acknowledged to the client
    assert not armed("after-commit", PUBLISHER, stack.local_dir)  # the hook fired
    recover(stack, PUBLISHER, old)
    # the write committed anyway: the user exists and its event is pending in the outbox
    users = gw.req("GET", "/api/users", params={"q": f"{email}-{old}"}).json()["items"]
    (user,) = [u for u in users if u["email"] == f"{email}-{old}@example.com"]
    ledger.add(user["id"])
    (pending,) = ledger.events([user["id"]])[user["id"]]
    assert pending[1] is False  # not published by the dead process
    # acknowledged writes around it are unaffected
    for _ in range(5):
        ledger.add(gw.create_user("around-kill"))
    verdict = ledger.settle()  # fires the relay while rows are pending
    assert verdict.expected == 6 and not verdict.duplicated and not verdict.extra_events, verdict
    wait_for(lambda: all(p for evs in ledger.events(ledger.user_ids).values() for _, p in evs))
