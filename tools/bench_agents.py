"""Benchmark of the agents, for `make bench` (tools/bench.py calls `run(stack, token)` and
appends the returned markdown section).

Measured through the gateway of a running stack, as a client sees it: the time from `POST`
(202) to the document reading `completed` (polled every 20 ms), for a small number of
sequential requests of each kind:
- anomaly investigations of one package created and scanned through logistics-api (its events
  reach the agents' read model first; the bench waits for that before timing);
- route investigations of 8 stops (OR-Tools' guided local search runs until its time limit,
  min(AGENTS_ROUTE_TIME_LIMIT_MS, 200 ms + 40 ms per stop) = 520 ms here, which dominates);
- code analyses of a small diff carrying a fake AWS key (detect-secrets on the added lines).
Each request is one hop through the outbox and Pub/Sub push (the emulator delivers every
~100 ms, design section 12) plus the work. Medians and p99 (with N this small, p99 is close
to the maximum). Runs standalone too: `python tools/bench_agents.py` starts its own stack.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N = 20
POLL_S = 0.02
TIMEOUT_S = 120.0
DIFF = """diff --git a/app/settings.py b/app/settings.py
index 1111111..2222222 100644
--- a/app/settings.py
+++ b/app/settings.py
@@ -1,2 +1,4 @@
 import os
+AWS_ACCESS_KEY_ID = "AKIAZ7QW3RTY5UIO2PLK"
+REGION = "eu-west-1"
 NAME = "app"
"""
STOPS = [
    {"name": f"S{i}", "lat": 48.80 + 0.03 * ((i * 7) % 8), "lon": 2.25 + 0.04 * ((i * 3) % 8)}
    for i in range(8)
]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class Client:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def req(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.http.request(method, self.base + path, timeout=30, **kw)


def _until(predicate: Callable[[], Any], timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_S)
    raise RuntimeError("bench: condition not met in time")


def timed(client: Client, path: str, body: dict[str, Any]) -> float:
    """Seconds from POST to the document reading completed (failed is an error)."""
    start = time.perf_counter()
    resp = client.req("POST", path, json=body)
    if resp.status_code != 202:
        raise RuntimeError(f"bench: {path} answered {resp.status_code}: {resp.text[:300]}")
    location = resp.headers["Location"]

    def done() -> dict[str, Any] | None:
        doc = client.req("GET", location).json()
        return doc if doc.get("status") in ("completed", "failed") else None

    doc = _until(done)
    elapsed = time.perf_counter() - start
    if doc["status"] != "completed":
        raise RuntimeError(f"bench: {location} failed: {doc.get('error')}")
    return elapsed


def scanned_package(client: Client) -> str:
    """A package with two scans through logistics-api, once the agents know both scans."""
    resp = client.req(
        "POST",
        "/api/packages",
        json={
            "sender": "Bench sender",
            "recipient": "Bench recipient",
            "origin": {"address": "Paris", "lat": 48.8566, "lon": 2.3522, "region": "FR"},
            "destination": {"address": "Berlin", "lat": 52.52, "lon": 13.405, "region": "DE"},
            "weight_kg": 2.0,
        },
    )
    resp.raise_for_status()
    pid = resp.json()["id"]
    t0 = datetime.now(UTC) - timedelta(hours=3)
    for kind, lat, lon, at in (
        ("pickup", 48.8566, 2.3522, t0),
        ("arrival", 50.8503, 4.3517, t0 + timedelta(hours=2)),
    ):
        client.req(
            "POST",
            f"/api/packages/{pid}/events",
            json={
                "kind": kind,
                "location": "bench",
                "lat": lat,
                "lon": lon,
                "occurred_at": at.isoformat(),
                "idempotency_key": f"bench-{uuid.uuid4().hex}",
            },
        ).raise_for_status()

    def known() -> bool:
        r = client.req("GET", f"/api/agents/packages/{pid}")
        return r.status_code == 200 and len(r.json()["scans"]) == 2

    _until(known)
    return pid


def measure(base: str, token: str, n: int = N) -> dict[str, list[float]]:
    client = Client(base, token)
    pid = scanned_package(client)
    cases: dict[str, tuple[str, dict[str, Any]]] = {
        "anomaly investigation (2 scans)": (
            "/api/agents/investigations",
            {"kind": "anomaly", "package_id": pid},
        ),
        "route investigation (8 stops)": (
            "/api/agents/investigations",
            {"kind": "route", "stops": STOPS},
        ),
        "code analysis (small diff, 1 secret)": (
            "/api/agents/analyze/code",
            {"diff": DIFF, "message": "chore: bench"},
        ),
    }
    out: dict[str, list[float]] = {}
    for name, (path, body) in cases.items():
        timed(client, path, body)  # warm-up: cold imports (OR-Tools, detect-secrets)
        out[name] = [timed(client, path, body) for _ in range(n)]
    return out


def report(results: dict[str, list[float]], n: int = N) -> str:
    def ms(v: float) -> str:
        return f"{v * 1000:.0f} ms"

    lines = [
        "## Agents",
        "",
        f"From `POST` (202) to the document reading `completed`, through the gateway, {n} "
        "sequential requests per kind after one warm-up (polling every 20 ms). Each includes "
        "the outbox publish, the Pub/Sub emulator's push (~100 ms per hop) and the work in "
        "agents-worker; the route figure is dominated by the solver's time limit "
        "(guided local search runs until min(AGENTS_ROUTE_TIME_LIMIT_MS, 200 ms + 40 ms per "
        "stop): 520 ms for 8 stops).",
        "",
        "| work | p50 | p99 |",
        "|---|---|---|",
    ]
    for name, values in results.items():
        lines.append(f"| {name} | {ms(pct(values, 50))} | {ms(pct(values, 99))} |")
    lines.append("")
    return "\n".join(lines)


def run(stack: Any, token: str) -> str:
    print("bench: agents, investigations and analyses ...", flush=True)
    return report(measure(stack.gateway_url, token))


def main() -> int:  # standalone: a stack of our own on a fresh database
    from tools.bench import run_alone

    return run_alone("bench-agents", run)


if __name__ == "__main__":
    sys.exit(main())
