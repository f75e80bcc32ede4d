"""Event latency for `make bench` (tools/bench.py calls `run(stack, token)` and appends the
returned markdown section); `python tools/bench_events.py` runs it alone on a small stack.

Two paths, measured in the same run at the same open-loop rate (`BENCH_EVENT_RATE`, 100/s),
in interleaved rounds (`BENCH_EVENT_ROUNDS` x `BENCH_EVENT_COUNT` each) so drift in machine
load hits both alike:

- **event path**: `POST /api/users` straight to users-api (no gateway), which creates a user
  and emits `user.created` through the outbox; delivered by the stack's push bridge to
  audit-ingest, stored with its processed marker in one Firestore commit. Latency = the audit
  document's update time (the commit that stored it, Firestore's clock) - `occurred_at`
  (stamped by `emit`, before the transaction's commit). The
  emitting request's own latency is measured too (client side, send to answer).
- **raw push (baseline)**: one bare functions-framework function (records its entry time,
  does nothing else) per consumer of `user.created` (three), each behind a pull subscription
  with that consumer's settings (ack deadline, retry and dead-letter policy, the bridge's
  in-flight limit), pushed by a `PushBridge` of its own: the delivery work the local stack
  does for one user.created, minus the consumers' own work; latency read at audit-ingest's
  stand-in. Messages are published as the outbox's sender publishes them (one
  `shared.clients.publish` call each); latency = function entry - the stamp taken just before
  the publish.

Targets (issue 14): event p50 <= 1.3x and p99 <= 2x the raw push's, same run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import emulators  # noqa: E402
from emulators._bridge import PushBridge  # noqa: E402
from emulators._wiring import Plan, clients, push_endpoint  # noqa: E402
from emulators._wiring import _apply as apply_plan  # noqa: E402

RATE = float(os.environ.get("BENCH_EVENT_RATE", "100"))
COUNT = int(os.environ.get("BENCH_EVENT_COUNT", "1000"))
ROUNDS = int(os.environ.get("BENCH_EVENT_ROUNDS", "2"))
SETTLE_S = 120.0
CONSUMER = "audit-ingest"
TOPIC = "user.created"
TARGET_P50, TARGET_P99 = 1.3, 2.0
STAGES = (
    "emit -> outbox row marked published",
    "marked -> consumer entered (Pub/Sub, bridge, push, claim)",
    "consumer entered -> stored (its commit)",
)

BARE = """
import time
import flask, functions_framework

@functions_framework.http
def bare(request: flask.Request):
    now = time.time()
    if request.method != "POST":  # the readiness probe
        return ("", 204)
    msg = (request.get_json(silent=True) or {}).get("message", {})
    sent = float(msg.get("attributes", {}).get("t", now))
    with open(__file__ + ".lat", "a") as f:
        f.write(f"{now - sent}\\n")
    return ("", 204)
"""


# The emitting client runs in a process of its own: in the bench process it would take the
# GIL from the stack's push bridge, which runs there (a real client is not in the stack).
LOADGEN = """
import json, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
import requests
url, token, tag = sys.argv[1], sys.argv[2], sys.argv[5]
count, rate = int(sys.argv[3]), float(sys.argv[4])
local = threading.local()
ids, durations, failures = [], [], []
t0 = time.perf_counter() + 0.05
def one(i):
    s = getattr(local, "s", None) or requests.Session()
    local.s = s
    delay = t0 + i / rate - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    body = {"email": f"ev-{tag}-{i}@example.com", "name": "Bench Event", "roles": ["viewer"]}
    start = time.perf_counter()
    r = s.post(url, json=body, headers={"Authorization": "Bearer " + token}, timeout=60)
    durations.append(time.perf_counter() - start)
    if r.status_code == 201:
        ids.append(r.json()["id"])
    else:
        failures.append(f"{r.status_code} {r.text[:200]}")
with ThreadPoolExecutor(16) as pool:
    for f in [pool.submit(one, i) for i in range(count)]:
        f.result()
print(json.dumps({"ids": ids, "durations": durations, "failures": failures}))
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def paced(count: int, rate: float, send: Any, workers: int = 16) -> list[float]:
    """Call `send(i)` `count` times at `rate`/s on a schedule (open loop: a slow call does not
    delay the next ones), from `workers` threads; returns each call's duration."""
    durations: list[float] = []
    lock = threading.Lock()
    t0 = time.perf_counter() + 0.05

    def one(i: int) -> None:
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        start = time.perf_counter()
        send(i)
        with lock:
            durations.append(time.perf_counter() - start)

    with ThreadPoolExecutor(workers, thread_name_prefix="paced") as pool:
        for f in [pool.submit(one, i) for i in range(count)]:
            f.result()
    return durations


class RawPath:
    """The baseline: bare functions behind pull subscriptions and a push bridge of its own.

    As many bare functions as `user.created` has consumers (each its own process and
    subscription, with that consumer's settings and the bridge's in-flight limit for it), so
    the baseline does the event path's delivery work: one publish, a pull, a push and an ack
    per consumer (decision 0054; it had one). Latency is read at the first one, audit-ingest's
    stand-in (the event path's figure is audit-ingest's)."""

    def __init__(self, st: emulators.Stack, workdir: Path) -> None:
        self.st = st
        assert st.plan is not None
        self.likes = [p for p in st.plan.push if p.topic == TOPIC]
        self.likes.sort(key=lambda p: p.deployment != CONSUMER)  # audit-ingest's first
        self.srcs = [workdir / f"bare_{n}.py" for n in range(len(self.likes))]
        for src in self.srcs:
            src.write_text(BARE)
        self.src = self.srcs[0]
        self.lat = Path(str(self.src) + ".lat")
        self.ports = [emulators.free_port() for _ in self.likes]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.bridge: PushBridge | None = None
        self.topic = f"bench.raw.{uuid.uuid4().hex[:6]}"
        self.bridge_timings: list[tuple[float, float, float]] = []

    def start(self) -> None:
        from emulators._bridge import in_flight_for

        st = self.st
        for src, port in zip(self.srcs, self.ports, strict=True):
            self.procs.append(
                subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "functions-framework"),
                        *("--target", "bare", "--source", str(src), "--signature-type", "http"),
                        *("--host", "127.0.0.1", "--port", str(port)),
                    ],
                    env=st.env_for(None),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 120
        for port in self.ports:
            while True:
                try:
                    requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the bare function did not start") from None
                    time.sleep(0.05)
        assert st.plan is not None
        subs = tuple(
            dataclasses.replace(
                like,
                name=f"bench-bare-{n}--{self.topic}",
                topic=self.topic,
                # the consumer's name: the bridge keeps as many in flight as for it
                deployment=like.deployment,
                push_endpoint=push_endpoint(port, st.project, self.topic),
                dead_letter_topic=f"{self.topic}.dead-letter",
            )
            for n, (like, port) in enumerate(zip(self.likes, self.ports, strict=True))
        )
        assert in_flight_for(subs[0].deployment) == in_flight_for(CONSUMER)
        plan = Plan(
            project=st.project,
            topics=(self.topic, subs[0].dead_letter_topic),
            push=subs,
            keep=(),
        )
        pub, subc = clients(st.pubsub.host)
        try:
            apply_plan(plan, st.project, pub, subc)
        finally:
            pub.transport.close()
        self.bridge = PushBridge(plan, st.pubsub.host).start()

    def round(self, count: int) -> list[float]:
        from shared.clients import publish

        before = len(self.lat.read_text().split()) if self.lat.exists() else 0
        path = f"projects/{self.st.project}/topics/{self.topic}"

        def send(i: int) -> None:  # as the outbox's sender publishes (shared.clients.publish)
            publish(path, [(b"{}", {"t": repr(time.time())})], 30.0)

        paced(count, RATE, send, workers=4)
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            got = self.lat.read_text().split() if self.lat.exists() else []
            if len(got) >= before + count:
                break
            time.sleep(0.2)
        got = self.lat.read_text().split()
        if len(got) < before + count:
            raise RuntimeError(f"raw push: {len(got) - before}/{count} arrived")
        return [float(x) for x in got[before:]]

    def stop(self) -> None:
        if self.bridge is not None:
            self.bridge_timings = self.bridge.timings(f"bench-bare-0--{self.topic}")
            self.bridge.stop()
        for proc in self.procs:
            os.killpg(proc.pid, 15)
            proc.wait(10)


class EventPath:
    """users-api creates users (each emits user.created); audit-ingest stores the envelopes."""

    def __init__(self, st: emulators.Stack, token: str) -> None:
        from google.cloud import firestore
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.st = st
        self.url = st.url_of("users-api") + "/api/users"
        self.token = token
        os.environ["FIRESTORE_EMULATOR_HOST"] = st.firestore.host
        self.fs = firestore.Client(project=st.project)
        self.engine = create_engine(st.database_url, poolclass=NullPool)
        self.tag = uuid.uuid4().hex[:8]

    def round(self, count: int, n: int) -> tuple[list[float], list[float], dict[str, list[float]]]:
        """(emit -> stored latencies, emitting request latencies, stages) of `count` user
        creations; the stages split each event's way: emit -> outbox row marked published
        -> audit-ingest's consumer entered (`received_at`) -> the audit document's commit."""
        from sqlalchemy import text

        from shared.manifests import subscription_name

        self.sub = subscription_name(CONSUMER, TOPIC)
        bridge = self.st.bridge
        self.acked_before = len(bridge.timings(self.sub)) if bridge is not None else 0
        out = subprocess.run(
            [sys.executable, "-c", LOADGEN, self.url, self.token, str(count), str(RATE)]
            + [f"{self.tag}-{n}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=SETTLE_S + count / RATE,
        )
        sent = json.loads(out.stdout)
        user_ids, requests_s, failures = sent["ids"], sent["durations"], sent["failures"]
        if failures:
            raise RuntimeError(f"{len(failures)} user creations failed: {failures[0]}")
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, published_at FROM users.outbox WHERE event_type = "
                    "'user.created' AND payload::jsonb->>'id' = ANY(:ids)"
                ),
                {"ids": user_ids},
            ).all()
        event_ids = [r[0] for r in rows]
        marked = {r[0]: r[1] for r in rows}
        if len(event_ids) != count:
            raise RuntimeError(f"{len(event_ids)} user.created rows for {count} users")
        coll = self.fs.collection("audit_events")
        docs: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + SETTLE_S
        # Wait on the bridge's count of audit-ingest's acks first: reading 1,000 documents
        # from Firestore every 0.5 s while a backlog drains loads the emulator under test.
        while self.st.bridge is not None and time.monotonic() < deadline:
            if len(self.st.bridge.timings(self.sub)) >= self.acked_before + count:
                break
            time.sleep(0.2)
        while time.monotonic() < deadline and len(docs) < count:
            missing = [coll.document(x) for x in event_ids if x not in docs]
            for i in range(0, len(missing), 300):
                for snap in self.fs.get_all(missing[i : i + 300]):
                    if snap.exists:
                        docs[snap.id] = {**(snap.to_dict() or {}), "_stored": snap.update_time}
            if len(docs) < count:
                time.sleep(0.5)
        if len(docs) < count:
            raise RuntimeError(f"only {len(docs)}/{count} events reached the audit trail")
        # stored = the commit that wrote the audit document (Firestore's own update time)
        lat = [(d["_stored"] - d["occurred_at"]).total_seconds() for d in docs.values()]
        stages: dict[str, list[float]] = {k: [] for k in STAGES}
        for eid, d in docs.items():
            if marked.get(eid) is None:
                continue
            stages[STAGES[0]].append((marked[eid] - d["occurred_at"]).total_seconds())
            stages[STAGES[1]].append((d["received_at"] - marked[eid]).total_seconds())
            stages[STAGES[2]].append((d["_stored"] - d["received_at"]).total_seconds())
        return lat, requests_s, stages


def cpu_seconds(groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by every process of each process group."""
    tick = os.sysconf("SC_CLK_TCK")
    by_pgid = {pgid: name for name, pgid in groups.items()}
    out = dict.fromkeys(groups, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = by_pgid.get(int(fields[2]))  # fields[0] is the state; [2] the pgrp
        if name is not None:
            out[name] += (int(fields[11]) + int(fields[12])) / tick
    return out


def groups_of(st: emulators.Stack) -> dict[str, int]:
    """The process groups of the stack's processes (each child leads its own) and of this
    process (the bench client and the stack's push bridge run here)."""
    out = {"bench process (client, push bridges)": os.getpgid(0)}
    for name in ("pubsub", "firestore"):
        child = getattr(st, name).child
        if child is not None and child.pid:
            out[f"{name} emulator"] = child.pid
    for name, child in st.children.items():
        if child.pid:
            out[name] = child.pid
    return out


def measure(st: emulators.Stack, token: str) -> dict[str, Any]:
    os.environ.update(st.env())  # this process is a client of the stack's emulators too
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-bench-events-"))
    raw_path = RawPath(st, workdir)
    raw_path.start()
    ev_path = EventPath(st, token)
    raw: list[float] = []
    ev: list[float] = []
    req: list[float] = []
    loads: list[float] = []
    stages: dict[str, list[float]] = {k: [] for k in STAGES}
    cpu: dict[str, float] = {}
    bridge_t: list[tuple[float, float, float]] = []
    try:
        # warm-up: connections, pools and the first imports of both paths
        raw_path.round(50)
        ev_path.round(50, -1)
        groups = groups_of(st)
        for n in range(ROUNDS):
            loads.append(os.getloadavg()[0])
            raw += raw_path.round(COUNT)
            loads.append(os.getloadavg()[0])
            before = cpu_seconds(groups)
            lat, r, st_ = ev_path.round(COUNT, n)
            if st.bridge is not None:
                from shared.manifests import subscription_name

                bridge_t += st.bridge.timings(subscription_name(CONSUMER, TOPIC))[-COUNT:]
            for k, used in cpu_seconds(groups).items():
                cpu[k] = cpu.get(k, 0.0) + used - before.get(k, 0.0)
            ev += lat
            req += r
            for k, v in st_.items():
                stages[k] += v
        loads.append(os.getloadavg()[0])
    finally:
        raw_path.stop()
    return {
        "raw": raw,
        "ev": ev,
        "req": req,
        "loads": loads,
        "stages": stages,
        "cpu": cpu,
        "bridge": bridge_t,
        "raw_bridge": raw_path.bridge_timings,
    }


def report(m: dict[str, Any]) -> str:
    raw, ev, req = m["raw"], m["ev"], m["req"]
    r50, r99, e50, e99 = pct(raw, 50), pct(raw, 99), pct(ev, 50), pct(ev, 99)
    q50, q99 = pct(req, 50), pct(req, 99)
    ok50, ok99 = e50 <= TARGET_P50 * r50, e99 <= TARGET_P99 * r99
    loads = m["loads"]

    def ms(v: float) -> str:
        return f"{v * 1000:.1f} ms"

    def verdict(ok: bool) -> str:
        return "meets target" if ok else "**misses target**"

    return "\n".join(
        [
            "## Event latency",
            "",
            f"`tools/bench_events.py`: {ROUNDS} interleaved rounds of {COUNT} per path at "
            f"{RATE:.0f}/s (open loop). Event path: `POST /api/users` straight to users-api "
            "(creates a user, emits `user.created` through the outbox), pushed by the stack's "
            "push bridge to audit-ingest, stored with its processed marker in one Firestore "
            "commit; latency = the audit document's update time (its commit) - `occurred_at` "
            "(stamped by `emit`, before the commit). Baseline: one "
            "bare functions-framework function per consumer of user.created (3), each behind a "
            "pull subscription with that consumer's settings, and a push bridge of their own "
            "(the delivery work of one user.created without the consumers' own); latency = "
            "audit-ingest's stand-in's entry - the stamp before the publish. "
            f"Load average during the run: {min(loads):.1f}-{max(loads):.1f} on "
            f"{os.cpu_count()} cores.",
            "",
            "| path | n | p50 | p99 | max |",
            "|---|---|---|---|---|",
            f"| emit -> audit stored | {len(ev)} | {ms(e50)} | {ms(e99)} | {ms(max(ev))} |",
            f"| raw push (baseline) | {len(raw)} | {ms(r50)} | {ms(r99)} | {ms(max(raw))} |",
            f"| the emitting request (`POST /api/users`) | {len(req)} | {ms(q50)} | {ms(q99)} "
            f"| {ms(max(req))} |",
            "",
            f"Ratio event/raw: p50 **{e50 / r50:.2f}x** (target <= {TARGET_P50}x: "
            f"{verdict(ok50)}), p99 **{e99 / r99:.2f}x** (target <= {TARGET_P99}x: "
            f"{verdict(ok99)}). Mean event latency {ms(statistics.fmean(ev))}, raw "
            f"{ms(statistics.fmean(raw))}.",
            "",
            "Where an event's time goes (each stage's own p50 / p99; clocks of one machine, "
            "the outbox row's mark is written after Pub/Sub accepted the publish):",
            "",
            "| stage | p50 | p99 |",
            "|---|---|---|",
            *(
                f"| {k} | {ms(pct(v, 50))} | {ms(pct(v, 99))} |"
                for k, v in m["stages"].items()
                if v
            ),
            "",
            "The push bridge's own account of each delivery (p50 / p99): time in Pub/Sub "
            "before its pull, pulled until its push started (a free slot), the push until "
            "the answer:",
            "",
            "| subscription | in Pub/Sub | waiting in the bridge | push (to the answer) |",
            "|---|---|---|---|",
            *(
                f"| {label} | "
                + " | ".join(
                    f"{ms(pct(col, 50))} / {ms(pct(col, 99))}"
                    for col in map(list, zip(*rows, strict=True))
                )
                + " |"
                for label, rows in (
                    ("audit-ingest--user.created", m["bridge"]),
                    ("bare (baseline)", m["raw_bridge"]),
                )
                if rows
            ),
            "",
            "CPU per event on the event path's rounds (user + system, every process of the "
            "group; the bench process also runs the raw path's idle bridge):",
            "",
            "| process | CPU ms per event |",
            "|---|---|",
            *(
                f"| {k} | {v * 1000 / max(1, len(ev)):.2f} |"
                for k, v in sorted(m["cpu"].items(), key=lambda kv: -kv[1])
                if v > 0
            ),
            "",
        ]
    )


def run(st: emulators.Stack, token: str) -> str:
    return report(measure(st, token))


def main() -> int:  # standalone: a small stack of our own on a fresh database
    from tools.bench import run_alone

    needs = ["gateway", "auth-api", "users-api", CONSUMER]
    needs += ["auth-on-user-event", "maintenance-on-user-event"]  # user.created's consumers
    return run_alone("bench-events", run, only=needs, ready_timeout_s=600.0)


if __name__ == "__main__":
    sys.exit(main())
