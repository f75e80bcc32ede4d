"""Fault injection at scale for `make bench` (tools/bench.py calls `run(stack, token)` and
appends the returned markdown section); `python tools/bench_faults.py` runs it alone.

The cases of tests/faults, bigger: users are created through the gateway (8 clients) while
(1) audit-ingest is SIGKILLed 20 times, half from outside and half by the fault hook holding a
claim, over 1,000 writes (`BENCH_FAULTS_EVENTS`); (2) users-api is killed 20 times between
commit and publish; (3) 20 rounds of PostgreSQL backends terminated mid-transaction; (4) the
Pub/Sub emulator and (5) the Firestore emulator restarted twice each under writes; (6) 20
poison messages dead-lettered then redriven after the fix; (7) Cloud Scheduler firing one
ScheduleTime 20 times over 20 due PM schedules (`BENCH_FAULTS_CASES=consumer,poison,...` runs
some of them: consumer, publisher, postgres, pubsub, firestore, poison, scheduler). Each case
counts, for every committed write (acknowledged or not) and every subscription of its event:
lost (never processed) and duplicated (processed more than once). Targets: 0 / 0. The stack
keeps the manifests' retry backoff (10..600 s), so redeliveries after a kill take 10 s or more.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import emulators  # noqa: E402
from emulators._scheduler import fire  # noqa: E402
from shared.events._faults import arm, armed, cure, poison  # noqa: E402
from shared.manifests import subscription_name  # noqa: E402
from tests.faults.support import (  # noqa: E402
    Gateway,
    Ledger,
    committed_users,
    kill,
    recover,
    rewire,
    subscriptions_of,
)
from tests.waiting import wait_for  # noqa: E402

EVENTS = int(os.environ.get("BENCH_FAULTS_EVENTS", "1000"))
KILLS = int(os.environ.get("BENCH_FAULTS_KILLS", "20"))
CLIENTS = 8
SETTLE_S = 900.0


class Load:
    """`total` user creations with tag `tag` by CLIENTS threads; `acked` counts the 201s."""

    def __init__(self, gw: Gateway, tag: str, total: int) -> None:
        self.gw, self.tag, self.total = gw, tag, total
        self.acked = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _one(self, _: int) -> None:
        if self.gw.create_user(self.tag):
            with self._lock:
                self.acked += 1

    def _run(self) -> None:
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(self._one, range(self.total)))

    def start(self) -> Load:
        self._thread.start()
        return self

    def at(self, n: int) -> None:
        """Wait until `n` writes were acknowledged (or the load is over)."""
        wait_for(lambda: self.acked >= n or not self._thread.is_alive(), timeout=600)

    def join(self) -> None:
        self._thread.join()

    def running(self) -> bool:
        return self._thread.is_alive()


def _verdict(stack: emulators.Stack, tag: str) -> tuple[int, int, int, float]:
    """(committed writes, lost, duplicated, seconds to settle) over every committed write."""
    ledger = Ledger(stack)
    t = time.monotonic()
    try:
        for uid in committed_users(stack, tag):
            ledger.add(uid)
        try:
            v = ledger.settle(timeout=SETTLE_S)
        except AssertionError:
            v = ledger.verdict()
        lost = len(v.lost) + len(v.missing_events)
        dup = len(v.duplicated) + len(v.extra_events)
        return v.expected, lost, dup, time.monotonic() - t
    finally:
        ledger.close()


def _spread(load: Load, faults: int, fault: Callable[[int], None]) -> int:
    """Inject `fault(i)` up to `faults` times, evenly over the load's acknowledged writes;
    stops when the load is over (a fault armed for the next request would wait for one that
    never comes). Returns how many were injected, which the section reports."""
    step = max(1, load.total // (faults + 1))
    done = 0
    for i in range(faults):
        load.at(step * (i + 1))
        if not load.running():
            break
        fault(i)
        done += 1
    return done


def consumer_kills(stack: emulators.Stack, gw: Gateway) -> tuple[str, tuple]:
    name, tag = "audit-ingest", f"bf-consumer-{uuid.uuid4().hex[:6]}"
    load = Load(gw, tag, EVENTS).start()

    def fault(i: int) -> None:
        old = wait_for(lambda: stack.pid_of(name), timeout=120)
        if i % 2:
            kill(stack, name)
        else:
            arm("consume", name, stack.local_dir)
            wait_for(lambda: not armed("consume", name, stack.local_dir), timeout=120)
        recover(stack, name, old, timeout=300)

    kills = _spread(load, KILLS, fault)
    load.join()
    return f"audit-ingest SIGKILLed {kills} times during deliveries", _verdict(stack, tag)


def publisher_kills(stack: emulators.Stack, gw: Gateway) -> tuple[str, tuple]:
    name, tag = "users-api", f"bf-publisher-{uuid.uuid4().hex[:6]}"
    load = Load(gw, tag, EVENTS).start()

    def fault(i: int) -> None:
        old = wait_for(lambda: stack.pid_of(name), timeout=120)
        arm("after-commit", name, stack.local_dir)
        wait_for(lambda: not armed("after-commit", name, stack.local_dir), timeout=120)
        recover(stack, name, old, timeout=300)

    kills = _spread(load, KILLS, fault)
    load.join()
    return f"users-api SIGKILLed {kills} times between commit and publish", _verdict(stack, tag)


def postgres_drops(stack: emulators.Stack, gw: Gateway) -> tuple[str, tuple]:
    from sqlalchemy import text

    from tests.faults.support import IN_TRANSACTION, engine_of

    tag = f"bf-pg-{uuid.uuid4().hex[:6]}"
    killer = engine_of(stack)
    load = Load(gw, tag, EVENTS).start()

    def fault(i: int) -> None:
        def drop() -> int:
            with killer.connect() as conn:
                hit = [r[0] for r in conn.execute(text(IN_TRANSACTION)).all()]
                conn.commit()
            return sum(1 for ok in hit if ok)

        wait_for(drop, timeout=120, interval=0.01)

    try:
        rounds = _spread(load, KILLS, fault)
        load.join()
    finally:
        killer.dispose()
    return f"{rounds} rounds of backends terminated mid-transaction", _verdict(stack, tag)


def emulator_restarts(stack: emulators.Stack, gw: Gateway, kind: str) -> tuple[str, tuple]:
    tag = f"bf-{kind}-{uuid.uuid4().hex[:6]}"
    total = max(100, EVENTS // 5)
    bridge = stack.bridge
    assert bridge is not None
    load = Load(gw, tag, total)
    if kind == "pubsub":
        # what the emulator held when it stopped is gone (memory); the writes before it settle
        load.start()
        for i in range(2):
            load.at(total * (2 * i + 1) // 5)
            stack.pubsub.restart(timeout=180, while_down=lambda: load.at(load.acked + 5))
            rewire(stack)
    else:
        load.start()
        for i in range(2):
            load.at(total * (2 * i + 1) // 5)
            bridge.pause()
            wait_for(lambda: bridge.busy == 0, timeout=300)

            def down() -> None:
                bridge.resume()
                load.at(load.acked + 5)

            try:
                stack.firestore.restart(timeout=180, while_down=down)
            finally:
                bridge.resume()
    load.join()
    return f"{kind} emulator restarted twice during {total} writes", _verdict(stack, tag)


def poison_redrive(stack: emulators.Stack, gw: Gateway) -> tuple[str, tuple]:
    from emulators._wiring import clients
    from shared.events._schema import rfc3339, utcnow

    victim, topic = "maintenance-on-user-event", "user.created"
    ids = [str(uuid.uuid4()) for _ in range(KILLS)]
    for eid in ids:
        poison(victim, eid, stack.local_dir)
    pub, _ = clients(stack.pubsub.host)
    for eid in ids:
        uid = str(uuid.uuid4())
        payload: dict[str, object] = {"id": uid, "email": f"bf-poison-{uid[:8]}@example.com"}
        payload |= {"name": "P", "roles": ["viewer"], "active": True, "version": 1}
        attrs = {"event_type": topic, "event_id": eid, "schema_version": "1"}
        attrs |= {"source": "users-api", "occurred_at": rfc3339(utcnow()), "actor": "system"}
        pub.publish(
            request={
                "topic": f"projects/{stack.project}/topics/{topic}",
                "messages": [{"data": json.dumps(payload).encode(), "attributes": attrs}],
            }
        )
    pub.transport.close()

    def dead() -> set[str]:
        r = gw.req("GET", "/api/ops/dead-letters", params={"topic": topic})
        text = json.dumps(r.json()) if r.status_code == 200 else ""
        return {e for e in ids if e in text}

    wait_for(lambda: dead() == set(ids), timeout=SETTLE_S, interval=5)
    for eid in ids:
        cure(victim, eid, stack.local_dir)
    r = gw.req("POST", f"/api/ops/dead-letters/{topic}/redrive", json={"event_ids": ids})
    r.raise_for_status()
    ledger = Ledger(stack)
    try:
        keys = [f"{s}:{e}" for s in subscriptions_of(stack, topic) for e in ids]

        def settled() -> dict | None:
            found = ledger.markers(keys)
            ok = all(found.get(k, {}).get("state") == "done" for k in keys)
            return found if ok else None

        try:
            found = wait_for(settled, timeout=SETTLE_S, interval=2)
        except AssertionError:
            found = ledger.markers(keys)
    finally:
        ledger.close()
    lost = sum(1 for k in keys if found.get(k, {}).get("state") != "done")
    dup = sum(1 for k in keys if int(found.get(k, {}).get("completions") or 0) > 1)
    return f"{KILLS} poison messages dead-lettered, fixed, redriven", (len(ids), lost, dup, 0.0)


def scheduler_twice(stack: emulators.Stack, gw: Gateway) -> tuple[str, tuple]:
    from sqlalchemy import text

    from tests.faults.support import engine_of

    tag = f"BF-{uuid.uuid4().hex[:6]}"
    assets = []
    for i in range(KILLS):
        a = gw.req("POST", "/api/assets", json={"tag": f"{tag}-{i}", "name": "Bench pump"})
        a.raise_for_status()
        assets.append(a.json()["id"])
        s = gw.req(
            "POST",
            "/api/pm-schedules",
            json={
                "asset_id": a.json()["id"],
                "interval_days": 30,
                "title": f"Inspect {tag}-{i}",
                "next_due_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
            },
        )
        s.raise_for_status()
    when = datetime.now(UTC).replace(second=0, microsecond=0)
    url = stack.url_of("maintenance-pm-tick") + "/"
    with ThreadPoolExecutor(KILLS) as pool:
        list(
            pool.map(lambda _: fire(url, "maintenance-pm-tick", when, timeout_s=120), range(KILLS))
        )
    engine = engine_of(stack)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, payload FROM maintenance.outbox "
                    "WHERE event_type = 'workorder.created' "
                    "AND created_at > now() - interval '1 hour'"
                )
            ).all()
    finally:
        engine.dispose()
    per_asset: dict[str, list[str]] = {a: [] for a in assets}
    for eid, payload in rows:
        asset = json.loads(payload).get("asset_id")
        if asset in per_asset:
            per_asset[asset].append(eid)
    lost = sum(1 for evs in per_asset.values() if not evs)
    dup = sum(len(evs) - 1 for evs in per_asset.values() if len(evs) > 1)
    ledger = Ledger(stack)
    try:
        keys = [
            f"{subscription_name('audit-ingest', 'workorder.created')}:{e}"
            for evs in per_asset.values()
            for e in evs
        ]

        def recorded() -> dict | None:
            found = ledger.markers(keys)
            return found if all(found.get(k, {}).get("state") == "done" for k in keys) else None

        with_marker = wait_for(recorded, timeout=SETTLE_S)
    finally:
        ledger.close()
    dup += sum(1 for k in keys if int(with_marker[k].get("completions") or 0) > 1)
    return f"one ScheduleTime fired {KILLS} times over {KILLS} due PM schedules", (
        len(assets),
        lost,
        dup,
        0.0,
    )


def run(stack: emulators.Stack, token: str) -> str:
    gw = Gateway(stack)
    results = []
    cases: dict[str, Callable[[], tuple[str, tuple]]] = {
        "consumer": lambda: consumer_kills(stack, gw),
        "publisher": lambda: publisher_kills(stack, gw),
        "postgres": lambda: postgres_drops(stack, gw),
        "pubsub": lambda: emulator_restarts(stack, gw, "pubsub"),
        "firestore": lambda: emulator_restarts(stack, gw, "firestore"),
        "poison": lambda: poison_redrive(stack, gw),
        "scheduler": lambda: scheduler_twice(stack, gw),
    }
    chosen = [c for c in os.environ.get("BENCH_FAULTS_CASES", "").split(",") if c]
    t0 = time.monotonic()
    for name in chosen or list(cases):
        case = cases[name]
        t = time.monotonic()
        what, (writes, lost, dup, settle) = case()
        results.append((what, writes, lost, dup, settle, time.monotonic() - t))
        print(f"bench_faults: {what}: {writes} writes, lost {lost}, duplicated {dup}", flush=True)
    total_lost = sum(r[2] for r in results)
    total_dup = sum(r[3] for r in results)
    lines = [
        "## Faults",
        "",
        "`tools/bench_faults.py`: the cases of `tests/faults` at scale, on the local stack with "
        "the manifests' retry backoff (10..600 s). Counted for every committed write (a client "
        "may have seen an error for it) and every subscription of its event: *lost* = never "
        "processed, *duplicated* = processed more than once. Target 0 / 0.",
        "",
        "| case | writes | lost | duplicated | settled after the load | case took |",
        "|---|---|---|---|---|---|",
    ]
    for what, writes, lost, dup, settle, took in results:
        lines.append(f"| {what} | {writes} | {lost} | {dup} | {settle:.0f} s | {took:.0f} s |")
    lines += [
        "",
        f"Total: **{total_lost} lost, {total_dup} duplicated** "
        f"({time.monotonic() - t0:.0f} s in all).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from tools.bench import run_alone

    # only what the cases touch (the publisher, the user.created and workorder.created
    # consumers, the relay, redrive, PM ticks); a busy machine may take minutes to start it
    needs = ["gateway", "auth-api", "users-api", "audit-ingest", "audit-api"]
    needs += ["auth-on-user-event", "maintenance-on-user-event", "maintenance-api"]
    needs += ["maintenance-pm-tick", "ops-api", "ops-outbox-relay"]
    sys.exit(run_alone("bench-faults", run, only=needs, ready_timeout_s=600.0))
