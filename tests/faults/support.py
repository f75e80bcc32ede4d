"""Helpers of the fault suite and of tools/bench_faults.py: inject a fault, then count.

`kill(stack, name)` SIGKILLs a deployment's process group, `recover(stack, name, pid)` waits
until it serves again (the stack's monitor restarts crashed deployments as Cloud Run would;
when it does not, or gave up, the deployment is restarted through the Stack API).
`rewire(stack)` waits until the stack has wired a restarted Pub/Sub emulator again (its
monitor does, then publishes again what the emulator lost). `Ledger` is the end state: for the
events of the writes a client saw acknowledged, per subscription of their topic, the processed
marker must be `done` with exactly one completion (`lost` = not done, `duplicated` = completed
more than once), and the outbox holds exactly one published row per acknowledged write.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

import emulators
from emulators._scheduler import fire
from shared.events import PROCESSED
from shared.manifests import subscription_name
from tests.waiting import wait_for

ADMIN = ("admin@switchyard.local", "switchyard-local-admin")
# the backends of the stack's database inside a transaction, terminated
IN_TRANSACTION = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend' AND state IN ('active', 'idle in transaction')
"""


# -- faults -------------------------------------------------------------------------------
def healthy(stack: emulators.Stack, name: str) -> bool:
    dep = stack.catalog.deployments[name]
    try:
        return requests.get(stack.url_of(name) + dep.health_path, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def kill(stack: emulators.Stack, name: str) -> int:
    """SIGKILL deployment `name` (its whole process group); its old pid."""
    pid = wait_for(lambda: stack.pid_of(name), timeout=60)
    os.killpg(pid, signal.SIGKILL)
    return pid


def recover(stack: emulators.Stack, name: str, old_pid: int, timeout: float = 120.0) -> int:
    """Wait until `name` runs again as a new process and is healthy; its new pid."""
    auto = hasattr(stack, "restart_backoff_s")  # the stack restarts crashed deployments

    def up() -> int | None:
        pid = stack.pid_of(name)
        if pid and pid != old_pid:
            return pid if healthy(stack, name) else None
        child = stack.children.get(name)
        dead = child is None or not child.running
        if dead and (not auto or name in getattr(stack, "gave_up", ())):
            with contextlib.suppress(emulators.LocalStackError):  # the monitor was quicker
                stack.start_deployment(name, wait=False)
        return None

    return int(wait_for(up, timeout=timeout, interval=0.2))


def arm_after(fault: Callable[[], Any], delay_condition: Callable[[], bool]) -> threading.Thread:
    """Run `fault` in a thread once `delay_condition` holds (a positive signal, not a sleep)."""

    def run() -> None:
        wait_for(delay_condition, timeout=120, interval=0.05)
        fault()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def rewire(stack: emulators.Stack, timeout: float = 180.0) -> Any:
    """Wait until the stack has wired its restarted Pub/Sub emulator again: its monitor sees the
    emulator's new generation, wires it, then publishes again what the emulator lost (decision
    0049; the replay goes on in the background, `recovery.done` when finished). The recovery."""
    generation = stack.pubsub.generation
    recovery = wait_for(lambda: stack.pubsub_recoveries.get(generation), timeout=timeout)
    assert recovery.wired.wait(timeout), f"the stack did not wire Pub/Sub within {timeout:.0f} s"
    assert recovery.error is None, recovery.error
    return recovery


def run_relay(stack: emulators.Stack) -> bool:
    """Fire ops-outbox-relay now, as Cloud Scheduler would (a fresh ScheduleTime)."""
    url = stack.url_of("ops-outbox-relay") + "/"
    try:
        return fire(url, "ops-outbox-relay", datetime.now(UTC), timeout_s=60) == 200
    except requests.RequestException:
        return False


def retrying(fn: Callable[[], Any], timeout: float = 300.0) -> Any:
    """`fn()`, tried again while PostgreSQL refuses connections (a busy shared server)."""
    from sqlalchemy.exc import DBAPIError

    def attempt() -> tuple[Any] | None:
        try:
            return (fn(),)
        except DBAPIError as exc:
            if "too many clients" not in str(exc):
                raise
            return None

    return wait_for(attempt, timeout=timeout, interval=1.0)[0]


# -- clients of the stack -----------------------------------------------------------------
class Gateway:
    """A user of the platform through the gateway: the admin creates users."""

    TOKEN_REUSE_S = 600.0  # access tokens last 15 min; `make bench`'s fault section runs longer

    def __init__(self, stack: emulators.Stack) -> None:
        self.base = stack.gateway_url
        self.http = requests.Session()
        self._token_lock = threading.Lock()
        self._token = wait_for(self._login, timeout=60)
        self._token_at = time.monotonic()

    @property
    def token(self) -> str:
        with self._token_lock:
            if time.monotonic() - self._token_at > self.TOKEN_REUSE_S:
                fresh = self._login()
                if fresh:
                    self._token, self._token_at = fresh, time.monotonic()
            return self._token

    def _login(self) -> str | None:
        r = self.http.post(
            self.base + "/api/auth/login",
            json={"email": ADMIN[0], "password": ADMIN[1]},
            timeout=30,
        )
        return r.json()["access_token"] if r.status_code == 200 else None

    def req(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, timeout=60, **kw)

    def create_user(self, tag: str) -> str | None:
        """POST /api/users; the new user's id when the answer was 201 (acknowledged)."""
        import uuid

        email = f"{tag}-{uuid.uuid4().hex[:12]}@example.com"
        body = {"email": email, "name": "Fault Test", "roles": ["viewer"]}
        try:
            r = self.req("POST", "/api/users", json=body)
        except requests.RequestException:
            return None
        return r.json()["id"] if r.status_code == 201 else None


def firestore_of(stack: emulators.Stack) -> Any:
    from google.cloud import firestore

    os.environ["FIRESTORE_EMULATOR_HOST"] = stack.firestore.host
    return firestore.Client(project=stack.project)


def engine_of(stack: emulators.Stack) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(stack.database_url, poolclass=NullPool)


def subscriptions_of(stack: emulators.Stack, topic: str) -> list[str]:
    return [subscription_name(d.name, t) for d, t in stack.catalog.subscriptions() if t == topic]


# -- the end state ------------------------------------------------------------------------
@dataclass
class Verdict:
    expected: int  # acknowledged writes
    events: int  # their events in the outbox
    lost: list[tuple[str, str]] = field(default_factory=list)  # (subscription, event id)
    duplicated: list[tuple[str, str]] = field(default_factory=list)
    missing_events: list[str] = field(default_factory=list)  # acknowledged, no event
    extra_events: list[str] = field(default_factory=list)  # more than one event per write
    unpublished: list[str] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        return not (self.lost or self.missing_events or self.unpublished)

    def __str__(self) -> str:
        return (
            f"{self.expected} acknowledged writes, {self.events} events: lost "
            f"{len(self.lost)}, duplicated {len(self.duplicated)}, writes without an event "
            f"{len(self.missing_events)}, with more than one {len(self.extra_events)}, "
            f"unpublished {len(self.unpublished)}; first lost {self.lost[:3]}, first "
            f"duplicated {self.duplicated[:3]}"
        )


class Ledger:
    """What became of the user.created events of acknowledged user creations."""

    topic = "user.created"

    def __init__(self, stack: emulators.Stack) -> None:
        self.stack = stack
        self.fs = firestore_of(stack)
        self.engine = engine_of(stack)
        self.subscriptions = subscriptions_of(stack, self.topic)
        self.user_ids: list[str] = []
        self._lock = threading.Lock()

    def add(self, user_id: str | None) -> None:
        if user_id:
            with self._lock:
                self.user_ids.append(user_id)

    def events(self, user_ids: Iterable[str]) -> dict[str, list[tuple[str, bool]]]:
        """user id -> [(event id, published)] of its user.created rows in users' outbox."""
        from sqlalchemy import text

        wanted = set(user_ids)
        out: dict[str, list[tuple[str, bool]]] = {u: [] for u in wanted}

        def read() -> list[Any]:
            with self.engine.connect() as conn:
                return list(
                    conn.execute(
                        text(
                            "SELECT id, payload, published_at FROM users.outbox "
                            "WHERE event_type = :t AND created_at > now() - interval '1 hour'"
                        ),
                        {"t": self.topic},
                    ).all()
                )

        rows = retrying(read)
        for event_id, payload, published_at in rows:
            uid = json.loads(payload).get("id")
            if uid in wanted:
                out[uid].append((event_id, published_at is not None))
        return out

    def markers(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        refs = [self.fs.collection(PROCESSED).document(k) for k in keys]
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(refs), 300):
            for snap in self.fs.get_all(refs[i : i + 300]):
                if snap.exists:
                    found[snap.id] = snap.to_dict() or {}
        return found

    def verdict(self) -> Verdict:
        with self._lock:
            users = list(self.user_ids)
        by_user = self.events(users)
        v = Verdict(expected=len(users), events=sum(len(e) for e in by_user.values()))
        event_ids = []
        for uid, evs in by_user.items():
            if not evs:
                v.missing_events.append(uid)
            if len(evs) > 1:
                v.extra_events.append(uid)
            for eid, published in evs:
                event_ids.append(eid)
                if not published:
                    v.unpublished.append(eid)
        keys = [f"{s}:{e}" for s in self.subscriptions for e in event_ids]
        found = self.markers(keys)
        for key in keys:
            sub, eid = key.split(":", 1)
            doc = found.get(key)
            if doc is None or doc.get("state") != "done":
                v.lost.append((sub, eid))
            elif int(doc.get("completions") or 0) > 1:
                v.duplicated.append((sub, eid))
        return v

    def settle(self, timeout: float = 180.0, relay: bool = True) -> Verdict:
        """Wait until every acknowledged write's event is processed everywhere (firing the
        relay meanwhile, as its cron would); the verdict then."""

        def settled() -> Verdict | None:
            v = self.verdict()
            if v.settled:
                return v
            if relay and v.unpublished:
                run_relay(self.stack)
            return None

        try:
            return wait_for(settled, timeout=timeout, interval=1.0)
        except AssertionError:
            raise AssertionError(f"not settled within {timeout:.0f} s: {self.verdict()}") from None

    def close(self) -> None:
        self.engine.dispose()
        self.fs.close()


def committed_users(stack: emulators.Stack, tag: str) -> list[str]:
    """Ids of every user whose email starts with `tag` (committed, acknowledged or not)."""
    from sqlalchemy import text

    engine = engine_of(stack)

    def read() -> list[str]:
        with engine.connect() as conn:
            return [
                str(r[0])
                for r in conn.execute(
                    text("SELECT id FROM users.users WHERE email LIKE :t"), {"t": f"{tag}-%"}
                )
            ]

    try:
        return list(retrying(read))
    finally:
        engine.dispose()


class Writer:
    """Creates users one after another in a thread until stopped."""

    def __init__(self, gw: Gateway, ledger: Ledger, tag: str) -> None:
        self.gw, self.ledger, self.tag = gw, ledger, tag
        self.acked = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            uid = self.gw.create_user(self.tag)
            if uid:
                self.ledger.add(uid)
                self.acked += 1

    def start(self) -> Writer:
        self._thread.start()
        return self

    def more(self, n: int, timeout: float = 120.0) -> None:
        """Wait for `n` more acknowledged writes (a positive signal)."""
        target = self.acked + n
        wait_for(lambda: self.acked >= target, timeout=timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
