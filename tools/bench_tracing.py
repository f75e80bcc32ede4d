"""What tracing costs: the gateway and users-api with OpenTelemetry spans on and off, same run.

`GET /api/users/me` through two copies of the pair, started here from the stack's own
environment, side by side on the same database and the same key:

- **on**: `TRACING=true`, `TRACE_EXPORTER=log` (each finished span one JSON line on stdout, as
  `make dev` runs it; in the cloud Google's exporter batches them to Cloud Trace instead): the
  gateway's server and client spans, users-api's server span and its SQL statements' spans;
- **off**: `TRACING=false`: the traceparent is only passed on, no span is made.

Each gateway forwards to its own users-api. Load as in `tools/bench_overhead.py` (its client,
8 keep-alive connections, best of two rounds, then one client interleaving the four targets
for the unloaded medians); the gateway's overhead is its p50 minus its users-api's p50, on and
off. The processes' output goes nowhere (the same for both). Latency on a shared machine is
noisy; the steadier figure is CPU: users-api's app called in-process as a WSGI app, in one
interpreter, in `BLOCKS` alternating blocks of `BENCH_PROFILE_N / BLOCKS` requests with tracing
on and off (`TRACING` flipped between blocks), the median block of each quoted (process CPU
time: the exporter's thread included, flushed at the end of each block).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import emulators  # noqa: E402
from tools import bench_overhead as bo  # noqa: E402

LAST: dict[str, float] = {}


def _start(st: emulators.Stack, name: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """A copy of deployment `name` on a free port, with `env` (its own process group)."""
    dep = st.catalog.deployments[name]
    port = emulators.free_port()
    proc = subprocess.Popen(
        [
            *emulators._stack._functions_framework(),
            "--source",
            str(dep.source_dir / "main.py"),
            "--target",
            dep.entry_point,
            "--signature-type",
            "http",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def _ready(url: str, token: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
            if r.status_code == 200:
                return
            raise RuntimeError(f"{url} answered {r.status_code}: {r.text[:200]}")
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not start") from None
            time.sleep(0.2)


def pair(st: emulators.Stack, tracing: bool) -> tuple[list[subprocess.Popen], str, str]:
    """users-api and a gateway forwarding to it, tracing on or off: (processes, direct, via)."""
    flags = FLAGS[tracing]
    users_env = {**st.env_for(st.catalog.deployments["users-api"]), **flags}
    users, users_url = _start(st, "users-api", users_env)
    gw_env = st.env_for(st.catalog.deployments["gateway"])
    urls = {**json.loads(gw_env.get("SERVICE_URLS", "{}")), "users-api": users_url}
    gw_env.update(flags, SERVICE_URLS=json.dumps(urls))
    gateway, gateway_url = _start(st, "gateway", gw_env)
    return [users, gateway], users_url + "/api/users/me", gateway_url + "/api/users/me"


FLAGS = {True: {"TRACING": "true", "TRACE_EXPORTER": "log"}, False: {"TRACING": "false"}}
BLOCKS = 10

# Runs in a fresh interpreter with users-api's environment: argv = main.py, token, n, blocks.
# Prints one JSON line: {"on": [µs per request of each block], "off": [...]}.
INTERLEAVED = r"""
import io, json, os, statistics, sys, time
import functions_framework
from werkzeug.test import EnvironBuilder
from shared import tracing
from shared.config import settings

source, token, n, blocks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
app = functions_framework.create_app(target="api", source=source, signature_type="http")
auth = {"Authorization": "Bearer " + token}
base = EnvironBuilder(path="/api/users/me", headers=auth).get_environ()

def call():
    env = dict(base)
    env["wsgi.input"] = io.BytesIO(b"")
    status = []
    b"".join(app(env, lambda s, h, e=None: status.append(s)))
    assert status[0].startswith("200"), status

def mode(on):
    os.environ["TRACING"] = "true" if on else "false"
    settings.cache_clear()

out = {"on": [], "off": []}
for on in (True, False):
    mode(on)
    for _ in range(200):
        call()
per = max(1, n // blocks)
for i in range(2 * blocks):
    on = i % 2 == 0
    mode(on)
    t0 = time.process_time()
    for _ in range(per):
        call()
    if on:
        tracing.flush()
    out["on" if on else "off"].append((time.process_time() - t0) / per * 1e6)
print(json.dumps(out))
"""


def cpu_per_request(st: emulators.Stack, token: str) -> dict[bool, float]:
    """users-api's CPU per request (µs) in-process, tracing on and off (median block each)."""
    env = {**st.env_for(st.catalog.deployments["users-api"]), **FLAGS[True]}
    main = ROOT / "functions" / "users" / "main.py"
    args = [str(main), token, str(bo.PROFILE_N), str(BLOCKS)]
    done = subprocess.run(
        [sys.executable, "-c", INTERLEAVED, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the interleaved CPU measure failed: {done.stderr[-2000:]}")
    blocks = json.loads(done.stdout.strip().splitlines()[-1])
    return {True: statistics.median(blocks["on"]), False: statistics.median(blocks["off"])}


def section(m: dict[str, Any], cpu: dict[bool, float]) -> str:
    best, seq = m["best"], m["seq"]
    ms = {n: v["p50"] * 1000 for n, v in seq.items()}
    over_on = ms["gateway on"] - ms["direct on"]
    over_off = ms["gateway off"] - ms["direct off"]
    rps = {n: b["rps"] for n, b in best.items()}
    LAST.update(
        users_cpu_on_us=round(cpu[True]),
        users_cpu_off_us=round(cpu[False]),
        gateway_overhead_on_ms=round(over_on, 3),
        gateway_overhead_off_ms=round(over_off, 3),
        gateway_p50_ratio=round(ms["gateway on"] / ms["gateway off"], 3),
        direct_p50_ratio=round(ms["direct on"] / ms["direct off"], 3),
        gateway_rps_ratio=round(rps["gateway on"] / rps["gateway off"], 3),
        direct_rps_ratio=round(rps["direct on"] / rps["direct off"], 3),
    )
    lines = [
        "## Tracing cost (tools/bench_tracing.py)",
        "",
        "`GET /api/users/me`, two copies of users-api and the gateway in the same run: spans on",
        "(`TRACING=true`, `log` exporter) and off (`TRACING=false`). Unloaded: one client, the",
        f"four targets interleaved, {bo.SEQUENTIAL} requests each (medians); loaded: "
        f"{bo.CLIENTS} keep-alive clients for {bo.SECONDS:g} s, best of {bo.ROUNDS} rounds.",
        "",
        "| target | p50 unloaded | p99 unloaded | req/s loaded | p50 loaded | CPU ms/req |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("direct off", "direct on", "gateway off", "gateway on"):
        b, s = best[name], seq[name]
        cpu_ms = sum(b["cpu"]) * 1000 if b["cpu"] else float("nan")
        lines.append(
            f"| {name} | {s['p50'] * 1000:.2f} ms | {s['p99'] * 1000:.2f} ms | {b['rps']:.0f} "
            f"| {b['p50'] * 1000:.2f} ms | {cpu_ms:.2f} |"
        )
    lines += [
        "",
        f"- gateway overhead (gateway p50 - its users-api p50, unloaded): **{over_on:.2f} ms "
        f"with tracing, {over_off:.2f} ms without** ({over_on - over_off:+.2f} ms)",
        f"- p50 ratio on/off: gateway {LAST['gateway_p50_ratio']:.3f}, users-api "
        f"{LAST['direct_p50_ratio']:.3f}; throughput ratio on/off: gateway "
        f"{LAST['gateway_rps_ratio']:.3f}, users-api {LAST['direct_rps_ratio']:.3f}",
        f"- users-api CPU per request in-process (WSGI, {BLOCKS} alternating blocks of "
        f"{max(1, bo.PROFILE_N // BLOCKS)} each way, median block): **{cpu[True]:.0f}"
        f" µs with tracing, {cpu[False]:.0f} µs without** ({cpu[True] - cpu[False]:+.0f} µs, "
        f"{(cpu[True] / cpu[False] - 1) * 100:+.1f}%): its server span, its SQL statements' "
        "spans and their export",
        "",
    ]
    return "\n".join(lines)


def run(st: emulators.Stack, token: str) -> str:
    procs: list[subprocess.Popen] = []
    try:
        on, direct_on, via_on = pair(st, True)
        procs += on
        off, direct_off, via_off = pair(st, False)
        procs += off
        for url in (direct_on, direct_off, via_on, via_off):
            _ready(url, token, procs[0])
        targets = [
            bo.Target("direct off", direct_off, token, (off[0].pid,)),
            bo.Target("direct on", direct_on, token, (on[0].pid,)),
            bo.Target("gateway off", via_off, token, (off[1].pid, off[0].pid)),
            bo.Target("gateway on", via_on, token, (on[1].pid, on[0].pid)),
        ]
        m = bo.measure(targets)
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    cpu = cpu_per_request(st, token) if bo.PROFILE_N > 0 else {True: 0.0, False: 1.0}
    return section(m, cpu)


def main() -> int:
    from tools.bench import run_alone

    return run_alone("tracing", run, only=["gateway", "auth-api", "users-api"])


if __name__ == "__main__":
    sys.exit(main())
