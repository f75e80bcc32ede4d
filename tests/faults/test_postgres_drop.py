"""PostgreSQL connections dropped mid-transaction (pg_terminate_backend) while users are created.

Backends of the stack's database caught inside a transaction (`active` or `idle in
transaction`) are terminated, three times, while a writer creates users through the gateway.
A request whose transaction died is not acknowledged (no 201); every acknowledged write has its
user, exactly one user.created event, processed once by every consumer; and no event exists
without its user (the outbox row commits with the state change or not at all).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.faults.support import IN_TRANSACTION, Writer, engine_of
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


def test_connections_dropped_mid_transaction_lose_no_acknowledged_write(stack, gw, ledger):
    killer = engine_of(stack)
    writer = Writer(gw, ledger, "pg-drop").start()
    terminated = 0
    try:
        for _ in range(3):
            writer.more(2)

            def drop() -> int:
                with killer.connect() as conn:
                    hit = [r[0] for r in conn.execute(text(IN_TRANSACTION)).all()]
                    conn.commit()
                return sum(1 for ok in hit if ok)

            terminated += wait_for(drop, timeout=60, interval=0.01)
        writer.more(3)
    finally:
        writer.stop()
    assert terminated >= 3
    verdict = ledger.settle(timeout=240)
    assert verdict.expected >= 9, verdict
    assert not verdict.duplicated and not verdict.extra_events, verdict
    with killer.connect() as conn:
        orphans = conn.execute(
            text(
                # this test's users only (others' users may have been deleted since)
                "SELECT o.id FROM users.outbox o WHERE o.event_type = 'user.created' "
                "AND o.payload::json->>'email' LIKE 'pg-drop-%' AND NOT EXISTS "
                "(SELECT 1 FROM users.users u WHERE u.id::text = o.payload::json->>'id')"
            )
        ).all()
    killer.dispose()
    assert orphans == []
