"""`Idempotency-Key` when the process dies between the effect's commit and the record of its
answer: through the gateway of the whole local stack, maintenance-api is armed (the test-only
fault hook `idempotency-store`, mode `kill`) to SIGKILL its process group right after the work
order and its workorder.created outbox row committed with the key. The client sees no 201; the
stack restarts the deployment; the retry with the same key answers 409 (`answer_lost`), never
a second work order or event, and a new key creates as usual."""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shared.http import IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, arm_idempotency_fault
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
ADMIN = ("admin@switchyard.local", "switchyard-local-admin")
VICTIM = "maintenance-api"


def _healthy(stack) -> bool:
    dep = stack.catalog.deployments[VICTIM]
    try:
        return requests.get(stack.url_of(VICTIM) + dep.health_path, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _restarted(stack, old_pid: int) -> bool:
    pid = stack.pid_of(VICTIM)
    if pid and pid != old_pid:
        return _healthy(stack)
    child = stack.children.get(VICTIM)
    if (child is None or not child.running) and VICTIM in getattr(stack, "gave_up", ()):
        stack.start_deployment(VICTIM, wait=False)
    return False


@pytest.fixture(scope="module")
def gw(stack):
    base = stack.gateway_url
    token = wait_for(
        lambda: (
            r.json()["access_token"]
            if (
                r := requests.post(
                    base + "/api/auth/login",
                    json={"email": ADMIN[0], "password": ADMIN[1]},
                    timeout=30,
                )
            ).status_code
            == 200
            else None
        ),
        timeout=60,
    )
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def req(method: str, path: str, **kw):
        return session.request(method, base + path, timeout=60, **kw)

    return req


def _rows(pg_url: str, title: str) -> tuple[int, int]:
    """(work orders titled `title`, their workorder.created outbox rows)."""
    eng = create_engine(pg_url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    text("SELECT id FROM maintenance.work_orders WHERE title = :t"), {"t": title}
                )
            ]
            payloads = [
                json.loads(r[0])
                for r in conn.execute(
                    text(
                        "SELECT payload FROM maintenance.outbox "
                        "WHERE event_type = 'workorder.created'"
                    )
                )
            ]
    finally:
        eng.dispose()
    return len(ids), sum(1 for p in payloads if p["id"] in ids)


def test_a_kill_after_the_commit_is_answered_honestly_and_done_once(stack, gw, pg_url):
    asset = gw("POST", "/api/assets", json={"tag": f"K-{uuid.uuid4().hex[:10]}", "name": "Pump"})
    assert asset.status_code == 201, asset.text
    title = f"Killed {uuid.uuid4().hex[:8]}"
    body = {"title": title, "asset_id": asset.json()["id"]}
    key = str(uuid.uuid4())
    old = wait_for(lambda: stack.pid_of(VICTIM), timeout=60)
    fault = arm_idempotency_fault(VICTIM, "kill", stack.local_dir)
    resp = gw("POST", "/api/work-orders", json=body, headers={IDEMPOTENCY_KEY: key})
    assert resp.status_code >= 500, resp.text  # never acknowledged
    assert not fault.exists()  # the hook fired
    assert _rows(pg_url, title) == (1, 1)  # committed: the order, its event, the key
    wait_for(lambda: _restarted(stack, old), timeout=120, interval=0.2)

    retry = gw("POST", "/api/work-orders", json=body, headers={IDEMPOTENCY_KEY: key})
    assert retry.status_code == 409, retry.text
    assert retry.headers["Content-Type"].startswith("application/problem+json")
    assert retry.json()["errors"][0]["type"] == "idempotency.answer_lost"
    assert _rows(pg_url, title) == (1, 1)

    # the key still guards its request; a new key is a new action, replayed on its retry
    other = gw(
        "POST", "/api/work-orders", json={**body, "priority": "low"}, headers={IDEMPOTENCY_KEY: key}
    )
    assert other.status_code == 422, other.text
    fresh = str(uuid.uuid4())
    made = gw("POST", "/api/work-orders", json=body, headers={IDEMPOTENCY_KEY: fresh})
    assert made.status_code == 201, made.text
    again = gw("POST", "/api/work-orders", json=body, headers={IDEMPOTENCY_KEY: fresh})
    assert again.status_code == 201 and again.headers[IDEMPOTENT_REPLAYED] == "true"
    assert again.json() == made.json() and again.headers["Location"] == made.headers["Location"]
    assert _rows(pg_url, title) == (2, 2)
