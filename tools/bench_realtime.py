"""Benchmark of realtime streams through the gateway, for `make bench` (tools/bench.py calls
`run(stack, token)` and appends the returned markdown section).

For each level (100, then 1,000 concurrent streams while the previous level opened them all):
N Server-Sent Event streams of one package feed are opened through the gateway at once (one
asyncio aiohttp client, bearer token), each waits for its `snapshot` event (opening bounded to
120 s; streams still waiting then are reported, not counted). The resident memory (RSS, process
trees) of the gateway and of realtime-stream is read before and after: the difference per open
stream; and their thread counts (both run in functions-framework's ASGI mode, decision 0035:
an open stream should cost no thread). Then EVENTS feed entries are written straight into
Firestore with realtime's own `store.apply` (as realtime-fanout does; each carries its write
time), and for each one the bench records when a raw Firestore `on_snapshot` listener in this
process saw it and when each client received it: event-to-client latency p50/p99 next to the
raw listener's p50/p99, in the same run. Runs standalone too: `python tools/bench_realtime.py`
starts its own stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LEVELS = (100, 1000)
OPEN_WITHIN_S = 120.0
EVENTS = 20
EVENT_EVERY_S = 0.25
DRAIN_S = 5.0
IDLE_AFTER_S = 12.0  # after all opened: anyio's idle worker threads have left


def _tree_rss_kib(pid: int | None) -> int:
    """RSS of `pid` and all its descendants (functions-framework forks a gunicorn worker)."""
    return _tree_status(pid, "VmRSS:")


def _tree_threads(pid: int | None) -> int:
    """Threads of `pid` and all its descendants."""
    return _tree_status(pid, "Threads:")


def _tree_status(pid: int | None, field: str) -> int:
    """The sum of a /proc/<pid>/status field over `pid` and all its descendants."""
    if not pid:
        return 0
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, todo = {pid}, [pid]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p and child not in tree:
                tree.add(child)
                todo.append(child)
    total = 0
    for p in tree:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Level:
    def __init__(self, n: int) -> None:
        self.n = n
        self.opened = 0
        self.all_open = asyncio.Event()
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def _client(session: Any, url: str, token: str, level: Level) -> None:
    import aiohttp

    opened = False
    try:
        async with session.get(
            url,
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
        ) as resp:
            if resp.status != 200:
                level.error(f"HTTP {resp.status}")
                return
            event = ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "snapshot" and not opened:
                    opened = True
                    level.opened += 1
                    if level.opened == level.n:
                        level.all_open.set()
                elif line.startswith("data: ") and event == "bench":
                    sent = json.loads(line[6:])["t"]
                    level.latencies.append(time.time() - sent)
                elif line == "":
                    event = ""
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a refused or dropped connection is a result, not a crash
        level.error(type(exc).__name__)


def _pids(stack: Any) -> dict[str, int | None]:
    return {name: stack.children[name].pid for name in ("gateway", "realtime-stream")}


async def _level(stack: Any, token: str, n: int, key: str, raw: dict[int, float]) -> dict:
    import aiohttp

    from functions.realtime import model, store

    pids = _pids(stack)
    before = {name: _tree_rss_kib(pid) for name, pid in pids.items()}
    threads_before = {name: _tree_threads(pid) for name, pid in pids.items()}
    level = Level(n)
    url = f"{stack.gateway_url}/api/realtime/packages/{key.removeprefix('package:')}"
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.monotonic()
        tasks = [asyncio.create_task(_client(session, url, token, level)) for _ in range(n)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(level.all_open.wait(), OPEN_WITHIN_S)
        open_s = time.monotonic() - t0
        await asyncio.sleep(1.0)  # let the servers settle before reading their memory
        after = {name: _tree_rss_kib(pid) for name, pid in pids.items()}
        threads_open = {name: _tree_threads(pid) for name, pid in pids.items()}
        loop = asyncio.get_running_loop()
        written: dict[int, float] = {}
        for i in range(EVENTS):
            sent = time.time()
            plan = model.Plan(items=(model.FeedItem(key, "bench", {"i": i, "t": sent}),))
            await loop.run_in_executor(None, store.apply, uuid.uuid4().hex, plan)
            written[store.current_seq(key)] = sent
            await asyncio.sleep(EVENT_EVERY_S)
        expected = EVENTS * level.opened
        deadline = time.monotonic() + DRAIN_S
        while len(level.latencies) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        # idle worker threads leave the pools after 10 s (anyio): what the open streams keep
        await asyncio.sleep(max(0.0, IDLE_AFTER_S - (time.monotonic() - t0 - open_s)))
        threads_idle = {name: _tree_threads(pid) for name, pid in pids.items()}
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    raw_lat = [raw[seq] - sent for seq, sent in written.items() if seq in raw]
    per_stream = {name: (after[name] - before[name]) / max(level.opened, 1) for name in pids}
    return {
        "n": n,
        "opened": level.opened,
        "open_s": open_s,
        "rss_before": before,
        "rss_after": after,
        "per_stream_kib": per_stream,
        "threads_before": threads_before,
        "threads_open": threads_open,
        "threads_idle": threads_idle,
        "load": os.getloadavg()[0],
        "received": len(level.latencies),
        "expected": expected,
        "lat": level.latencies,
        "raw": raw_lat,
        "errors": level.errors,
    }


def run(stack: Any, token: str) -> str:
    env = stack.env()
    for name in ("FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"):
        if name in env:
            os.environ[name] = env[name]
    from shared import clients
    from shared.config import settings

    settings.cache_clear()
    clients.firestore.cache_clear()
    key = f"package:bench-{uuid.uuid4().hex[:12]}"
    raw: dict[int, float] = {}
    lock = threading.Lock()

    def on_change(docs: list[Any], _changes: Any, _read_time: Any) -> None:
        now = time.time()
        for d in docs:
            seq = int((d.to_dict() or {}).get("seq", 0))
            with lock:
                raw.setdefault(seq, now)

    watch = clients.firestore().collection("realtime_streams").document(key).on_snapshot(on_change)
    results = []
    try:
        for n in LEVELS:
            res = asyncio.run(_level(stack, token, n, key, raw))
            results.append(res)
            if res["opened"] < n:
                break
    finally:
        watch.unsubscribe()
    return _report(results)


def _threads_cell(r: dict, name: str) -> str:
    return f"{r['threads_before'][name]} -> {r['threads_open'][name]} -> {r['threads_idle'][name]}"


def _report(results: list[dict]) -> str:
    lines = [
        "## realtime: concurrent SSE streams through the gateway",
        "",
        f"One package feed, N streams opened at once through the gateway (bearer), {EVENTS} "
        f"feed entries written every {EVENT_EVERY_S} s with realtime's `store.apply`. Latency: "
        "write start to arrival (client through gateway vs. a raw Firestore listener in the "
        "bench process, same run). Memory: RSS growth of each process tree per open stream.",
        "",
        "Threads: each process tree's thread count before the streams opened -> just after "
        f"they all opened -> {IDLE_AFTER_S:.0f} s later, still open and idle (the worker "
        "threads of the opening burst have left). Load: the machine's 1-minute load average "
        "(2 cores, shared) at the end of the level.",
        "",
        "| streams | opened (s to open) | gateway KiB/stream | realtime-stream KiB/stream "
        "| gateway threads | realtime-stream threads "
        "| delivered | client p50 / p99 ms | raw listener p50 / p99 ms | errors | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat = [x * 1000 for x in r["lat"]]
        raw = [x * 1000 for x in r["raw"]]
        errors = ", ".join(f"{k} x{v}" for k, v in sorted(r["errors"].items())) or "none"
        lines.append(
            f"| {r['n']} | {r['opened']} ({r['open_s']:.1f}) "
            f"| {r['per_stream_kib']['gateway']:.0f} "
            f"| {r['per_stream_kib']['realtime-stream']:.0f} "
            f"| {_threads_cell(r, 'gateway')} | {_threads_cell(r, 'realtime-stream')} "
            f"| {r['received']}/{r['expected']} "
            f"| {_pct(lat, 0.5):.0f} / {_pct(lat, 0.99):.0f} "
            f"| {_pct(raw, 0.5):.0f} / {_pct(raw, 0.99):.0f} | {errors} | {r['load']:.0f} |"
        )
    if results:
        last = results[-1]
        med = statistics.median(last["lat"]) * 1000 if last["lat"] else float("nan")
        lines += [
            "",
            f"Median event-to-client latency at {last['n']} streams: {med:.0f} ms. "
            "The gateway and realtime-stream run in functions-framework's ASGI mode (uvicorn "
            "worker, decision 0035): an open stream is a coroutine; the threads are the worker "
            "pool for the Flask part of requests, Firestore's and gRPC's, not one per stream.",
            "",
        ]
    return "\n".join(lines)


# Standalone, the stack runs only what the streams pass through (and the login): on a shared
# machine a whole stack competes with the streams it measures.
ALONE = ("gateway", "realtime-stream", "auth-api")


def main() -> int:  # standalone: a stack of our own on a fresh database
    from tools.bench import run_alone

    return run_alone("bench-realtime", run, only=ALONE, ready_timeout_s=180.0)


if __name__ == "__main__":
    sys.exit(main())
