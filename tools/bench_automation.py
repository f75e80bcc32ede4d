"""Benchmark of the automation context, for `make bench` (tools/bench.py calls
`run(stack, token)` with an admin token and appends the returned markdown section).

A real OpenSSH server on loopback (tests/sshd.py's `running_sshd`) is the fleet: one target for
the single-target figures and 50 targets (50 accounts of the fleet: the same sshd, 50 target
entries) for the fan-out. Measured through the gateway of the running stack, medians quoted:
- runs started per second: sequential `POST /api/jobs/{id}/runs` (202 with the run id), and
  the latency of one;
- time from `POST .../runs` to the first stdout line readable at `GET /api/runs/{id}/logs`
  (the path Pub/Sub push -> automation-runner -> SSH -> Firestore -> API), polling every 50 ms;
- fan-out: a run of `sleep 0.2; echo ok` on 50 targets with max_concurrency 10, from POST to
  the run finished (polled every 100 ms).
Runs standalone too against a running `make dev` (`python tools/bench_automation.py URL
TOKEN`).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STARTS = 30
FIRST_LINE_RUNS = 10
FANOUT_TARGETS = 50
FANOUT_CONCURRENCY = 10
FANOUT_RUNS = 3


class _Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, status: int, **kw: Any) -> Any:
        resp = self.http.request(method, self.base + path, timeout=60, **kw)
        if resp.status_code != status:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content else None


def _wait(predicate: Any, timeout: float, interval: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError("timed out waiting")


def _finished(api: _Api, run_id: str) -> dict[str, Any] | None:
    run = api.call("GET", f"/api/runs/{run_id}", 200)
    return run if run["status"] in ("succeeded", "failed", "cancelled", "timed_out") else None


def measure(base: str, token: str, sshd: Any) -> dict[str, Any]:
    api = _Api(base, token)
    tag = f"bench-{uuid.uuid4().hex[:6]}"
    cred = api.call(
        "POST",
        "/api/credentials",
        201,
        json={"name": f"{tag}-key", "kind": "private_key", "secret": sshd.private_key},
    )

    def target(name: str, tags: list[str]) -> dict[str, Any]:
        return api.call(
            "POST",
            "/api/targets",
            201,
            json={
                "name": name,
                "kind": "ssh",
                "host": sshd.host,
                "port": sshd.port,
                "tags": tags,
                "options": {"user": sshd.user, "host_key": sshd.host_fingerprint},
                "credential_id": cred["id"],
            },
        )

    one = target(f"{tag}-one", [f"{tag}-one"])
    for i in range(FANOUT_TARGETS):
        target(f"{tag}-fan-{i:02d}", [f"{tag}-fan"])

    def job(name: str, command: str, **extra: Any) -> dict[str, Any]:
        body = {
            "name": f"{tag}-{name}",
            "steps": [{"kind": "command", "name": name, "command": command}],
        }
        return api.call("POST", "/api/jobs", 201, json={**body, **extra})

    # runs started per second
    quick = job("quick", "true", target_ids=[one["id"]])
    latencies, ids = [], []
    t0 = time.perf_counter()
    for _ in range(STARTS):
        s = time.perf_counter()
        ids.append(api.call("POST", f"/api/jobs/{quick['id']}/runs", 202, json={})["run_id"])
        latencies.append(time.perf_counter() - s)
    elapsed = time.perf_counter() - t0
    for run_id in ids:  # let the runner drain them before timing the next figures
        _wait(lambda r=run_id: _finished(api, r), timeout=300, interval=0.2)

    # POST /runs -> first log line
    echo = job("echo", "echo first-line; sleep 0.5", target_ids=[one["id"]])
    first_line = []
    for _ in range(FIRST_LINE_RUNS):
        s = time.perf_counter()
        run_id = api.call("POST", f"/api/jobs/{echo['id']}/runs", 202, json={})["run_id"]

        def seen(r: str = run_id) -> bool:
            page = api.call("GET", f"/api/runs/{r}/logs", 200)
            return any(x["stream"] == "stdout" for x in page["items"])

        _wait(seen, timeout=60, interval=0.05)
        first_line.append(time.perf_counter() - s)
        _wait(lambda r=run_id: _finished(api, r), timeout=60, interval=0.1)

    # fan-out to 50 targets, 10 at a time
    fan = job(
        "fan", "sleep 0.2; echo ok", target_tags=[f"{tag}-fan"], max_concurrency=FANOUT_CONCURRENCY
    )
    fan_times, fan_status = [], []
    for _ in range(FANOUT_RUNS):
        s = time.perf_counter()
        run_id = api.call("POST", f"/api/jobs/{fan['id']}/runs", 202, json={})["run_id"]
        run = _wait(lambda r=run_id: _finished(api, r), timeout=300, interval=0.1)
        fan_times.append(time.perf_counter() - s)
        fan_status.append(run["status"])
    return {
        "starts_per_s": STARTS / elapsed,
        "start_latency_ms": statistics.median(latencies) * 1000,
        "first_line_ms": statistics.median(first_line) * 1000,
        "first_line_max_ms": max(first_line) * 1000,
        "fanout_s": statistics.median(fan_times),
        "fanout_status": sorted(set(fan_status)),
    }


def report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "## automation",
            "",
            "Through the gateway of the local stack, against a real OpenSSH server on loopback "
            "(`tools/bench_automation.py`); medians.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| runs started per second (sequential POST /api/jobs/{{id}}/runs, {STARTS} runs) "
            f"| {r['starts_per_s']:.1f}/s |",
            f"| POST /runs latency (202) | {r['start_latency_ms']:.0f} ms |",
            f"| POST /runs to first log line ({FIRST_LINE_RUNS} runs) | "
            f"{r['first_line_ms']:.0f} ms (max {r['first_line_max_ms']:.0f} ms) |",
            f"| fan-out: {FANOUT_TARGETS} targets, concurrency {FANOUT_CONCURRENCY}, "
            f"`sleep 0.2` each ({FANOUT_RUNS} runs; {', '.join(r['fanout_status'])}) | "
            f"{r['fanout_s']:.2f} s |",
            "",
        ]
    )


def run(stack: Any, token: str) -> str:
    from tests.sshd import running_sshd

    with (
        tempfile.TemporaryDirectory(prefix="bench-sshd-") as folder,
        running_sshd(Path(folder)) as sshd,
    ):
        return report(measure(stack.gateway_url, token, sshd))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python tools/bench_automation.py GATEWAY_URL ADMIN_TOKEN\n")
        return 2

    class _Stack:
        gateway_url = argv[0].rstrip("/")

    sys.stdout.write(run(_Stack(), argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
