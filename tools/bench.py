"""`make bench`: measure the local stack and write docs/benchmarks.md.

Starts the whole stack (same runner as `make dev`) on free ports against a fresh PostgreSQL
database, then measures, each time next to a baseline taken in the same run (these machines
are noisy, so only medians and ratios are quoted):

- framework and gateway overhead (`tools/bench_overhead.py`, first): `GET /api/users/me`
  from a bare functions-framework function doing the same work, from users-api and through
  the gateway, side by side in the same run, with the ratios and a cProfile summary;
- login throughput: `POST /api/auth/login` (argon2id) through the gateway, 4 clients;
- every other `tools/bench_*.py` module's `run(stack, token) -> str` (a markdown section),
  called with the running stack: cold starts (bench_coldstart), event latency against a raw
  push baseline (bench_events), each context's figures at 10k and 1M rows, faults, the dev
  loop, realtime streams.

Rate limits are raised for the run (they would otherwise be what is measured). Targets: those
of issue 14 in each section (overhead: deployment >= 0.9x the bare throughput and <= 1.1x its
p50, gateway/direct >= 0.85, p50 added <= 1 ms), each printed next to its figure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import emulators  # noqa: E402
from shared.manifests import catalog  # noqa: E402
from tools import bench_devloop, bench_overhead  # noqa: E402

OUT = ROOT / "docs" / "benchmarks.md"
PG_BASE = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+pg8000://postgres@127.0.0.1:5432/postgres"
)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# --- database ----------------------------------------------------------------------------


def make_database() -> tuple[str, Callable[[], None]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"switchyard_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(PG_BASE).set(database=name).render_as_string(hide_password=False), drop


# --- HTTP measurements -------------------------------------------------------------------


def timed_gets(url: str, headers: dict, n: int) -> list[float]:
    sess = requests.Session()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = sess.get(url, headers=headers, timeout=10)
        out.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
    return out


def throughput(fn, clients: int, seconds: float) -> tuple[float, list[float]]:
    stop = time.monotonic() + seconds
    lat: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        sess = requests.Session()
        mine = []
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            fn(sess)
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    t0 = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(worker) for _ in range(clients)]:
            f.result()
    return len(lat) / (time.monotonic() - t0), lat


def login_throughput(st: emulators.Stack) -> dict:
    url = st.gateway_url + "/api/auth/login"
    body = {"email": st.admin_email, "password": st.admin_password}

    def login(sess: requests.Session) -> None:
        r = sess.post(url, json=body, timeout=30)
        if r.status_code != 200:
            raise RuntimeError(f"login {r.status_code} {r.text[:200]}")

    rps, lat = throughput(login, 4, 8)
    return {"rps": rps, "p50": pct(lat, 50), "p99": pct(lat, 99), "n": len(lat)}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def verdict(ok: bool) -> str:
    return "meets target" if ok else "**misses target**"


def report() -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` on {now}; machine: {machine()}. One process per deployment "
        "(functions-framework: gunicorn, 1 worker; 8 threads (gthread) for WSGI deployments, "
        "the uvicorn worker for the ASGI ones, the gateway and realtime-stream), PostgreSQL "
        "15 on localhost, the "
        "Pub/Sub and Firestore emulators. Baselines are measured in the same run; only medians "
        "and ratios are meaningful on these noisy machines. Rate limits raised for the run.",
        "",
    ]
    return "\n".join(lines)


def overhead_section(overhead: str, login: dict) -> str:
    """The first marked section: framework and gateway overhead, then login throughput (both
    measured first, on a stack nothing else has loaded yet)."""
    return "\n".join(
        [
            MARK.format("bench_overhead"),
            overhead,
            "",
            "## Login",
            "",
            f"`POST /api/auth/login` through the gateway, 4 clients for 8 s ({login['n']} "
            f"logins): **{login['rps']:.1f} logins/s**, p50 {ms(login['p50'])}, p99 "
            f"{ms(login['p99'])}. Dominated by argon2id (m=19 MiB, t=2, p=1), by design.",
            "",
        ]
    )


# Limits a benchmark must not hit: it measures the platform, not its throttles.
BENCH_ENV = {
    "RATE_LIMIT_USER_PER_MIN": "1000000",
    "RATE_LIMIT_IP_PER_MIN": "1000000",
    "LOGIN_MAX_FAILURES": "1000000",
    "LOG_LEVEL": "WARNING",
}


def bench_stack(
    label: str = "bench", **options: Any
) -> tuple[emulators.Stack, Callable[[], None], Path]:
    """A whole local stack (not started) on a fresh PostgreSQL database and free ports, with
    BENCH_ENV; `drop()` removes the database after `stack.stop()`. A bench module's own
    `main` (running it alone) starts from this too; `options` go to `emulators.Stack` (e.g.
    `only=` the deployments it needs)."""
    url, drop = make_database()
    workdir = Path(tempfile.mkdtemp(prefix=f"switchyard-{label}-"))
    n = len(catalog().deployments)
    ports = emulators.Ports(
        pubsub=emulators.free_port(),
        firestore=emulators.free_port(),
        gateway=emulators.free_port(),
        functions_base=emulators.free_port_block(n),
    )
    st = emulators.Stack(
        project=f"bench-{uuid.uuid4().hex[:6]}",
        ports=ports,
        local_dir=workdir / "local",
        database_url=url,
        log_dir=ROOT / "test-output" / label,
        echo=False,
        persist_firestore=False,
        env=dict(BENCH_ENV),
        **options,
    )
    return st, drop, workdir


def run_alone(label: str, run: Callable[[emulators.Stack, str], str], **options: Any) -> int:
    """Run one bench module's `run(stack, token)` on a stack of its own (its `main`)."""
    st, drop, _ = bench_stack(label, **options)
    try:
        st.start()
        resp = requests.post(
            st.gateway_url + "/api/auth/login",
            timeout=30,
            json={"email": st.admin_email, "password": st.admin_password},
        )
        resp.raise_for_status()
        print(run(st, resp.json()["access_token"]))
    finally:
        st.stop()
        drop()
    return 0


def login(st: emulators.Stack) -> str:
    """A fresh admin access token (they last 15 min; the whole bench runs longer)."""
    r = requests.post(
        st.gateway_url + "/api/auth/login",
        timeout=30,
        json={"email": st.admin_email, "password": st.admin_password},
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


MARK = "<!-- section: {} -->"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min)"


def quiet(st: emulators.Stack, idle_s: float = 3.0, timeout_s: float = 300.0) -> float:
    """Wait until the stack's push bridge has delivered nothing for `idle_s` (the events an
    earlier measurement caused are consumed: their consumers would share the cores with the
    next one); the seconds waited. Gives up after `timeout_s`, saying so."""
    t0 = time.monotonic()
    since = t0
    while st.bridge is not None and time.monotonic() - since < idle_s:
        if time.monotonic() - t0 > timeout_s:
            print(f"bench: events still being delivered after {timeout_s:.0f} s", flush=True)
            break
        if st.bridge.busy:
            since = time.monotonic()
        time.sleep(0.1)
    return time.monotonic() - t0


def _section(stem: str, st: emulators.Stack, failed: list[str]) -> str:
    print(f"bench: {stem} ...", flush=True)
    quiet(st)
    module = importlib.import_module(f"tools.{stem}")
    try:
        text = module.run(st, login(st))
    except Exception as exc:  # noqa: BLE001 - reported below and in the exit code
        traceback.print_exc()
        failed.append(stem)
        text = (
            f"## {stem}\n\n**Failed in this run**: `{type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}` (traceback in the "
            "bench's output).\n"
        )
    return f"{MARK.format(stem)}\n{text}"


def _replace(page: str, fresh: dict[str, str]) -> str:
    """`page` with the marked sections of `fresh` put in place of theirs (or appended)."""
    parts = re.split(r"(?m)^(?=<!-- section: \S+ -->$)", page)
    out = []
    for part in parts:
        m = re.match(r"<!-- section: (\S+) -->", part)
        out.append(fresh.pop(m.group(1)) if m and m.group(1) in fresh else part)
    return "".join([*out, *(f"{v}\n" for v in fresh.values())])


def main(argv: list[str] | None = None) -> int:
    """Every section in one run. A section that raises is reported as failed in
    docs/benchmarks.md (its traceback printed) and the others still run; the exit code is 1.
    `--only bench_x ...` re-runs those sections alone and puts them in place in the page,
    each saying when and that it was re-run."""
    parser = argparse.ArgumentParser(description="measure and write docs/benchmarks.md")
    parser.add_argument("--only", nargs="+", metavar="SECTION", default=[])
    args = parser.parse_args(argv)
    stems = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    unknown = sorted(set(args.only) - set(stems))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(stems)}")
    if args.only and not OUT.exists():
        parser.error(f"--only replaces sections of {OUT}: run the whole bench first")
    if not args.only or "bench_devloop" in args.only:
        print("bench: make dev start, before the bench stack starts ...", flush=True)
        bench_devloop.EARLY[:] = bench_devloop.start_times()
    st, drop, _ = bench_stack()
    failed: list[str] = []
    sections: dict[str, str] = {}
    try:
        st.start()
        os.environ.update(st.env())  # this process is a client of the stack's emulators too
        load_before = _load()
        if not args.only or "bench_overhead" in args.only:
            # measured first, on a stack nothing else has loaded yet (with login throughput)
            print("bench: bench_overhead ...", flush=True)
            overhead = bench_overhead.run(st, login(st))
            print("bench: login throughput ...", flush=True)
            sections["bench_overhead"] = overhead_section(overhead, login_throughput(st))
        for stem in args.only or stems:
            if stem != "bench_overhead":
                sections[stem] = _section(stem, st, failed)
    finally:
        st.stop()
        drop()
    if args.only:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        note = (
            f"_Re-run alone (`tools/bench.py --only`) on {now}, load average {load_before} "
            "at its start; the other sections are the full run's._\n\n"
        )
        for stem, text in sections.items():
            head, _, body = text.partition("\n")
            title, _, rest = body.partition("\n")
            sections[stem] = f"{head}\n{title}\n\n{note}{rest.lstrip()}"
        OUT.write_text(_replace(OUT.read_text(), sections))
    else:
        header = report()
        header += f"\nLoad average at the start: {load_before}; at the end: {_load()}.\n"
        OUT.write_text("\n".join([header, *sections.values()]) + "\n")
    print(OUT.read_text())
    print(json.dumps(bench_overhead.LAST), flush=True)
    if failed:
        print(f"bench: failed sections: {', '.join(failed)}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
