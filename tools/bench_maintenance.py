"""Benchmark of maintenance-api at 10k and 100k work orders, for `make bench` (tools/bench.py
calls `run(stack, token)` and appends the returned markdown section).

Work orders are inserted in bulk straight into the stack's PostgreSQL database (one
`INSERT ... SELECT generate_series` per scale, numbers reserved from the counter, not through
the API): 65% finished (closed/completed), 10% cancelled, 25% active (most of them overdue: a
pessimistic mix for the overdue figures), created in time order over the last 180 days on 200
assets, 4 priorities, 3 types. Then latency is measured through the gateway with the given
token, 50 sequential requests per query after a short warm-up: list pages (plain, filtered by
status, overdue, searched, page 2 by cursor) and the dashboard stats. Runs standalone too:
`python tools/bench_maintenance.py` starts its own stack on a fresh PostgreSQL database.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REQUESTS = 50
WARMUP = 5
SCALES = (10_000, 100_000)
ASSETS = 200
SPREAD_DAYS = 180

# bucket = g mod 20 (mod(), not %: pg8000 takes % for a parameter): 0-1 open, 2 assigned,
# 3 in_progress, 4 on_hold, 5-14 closed, 15-17 completed, 18-19 cancelled
_INSERT = """
WITH base AS (
    SELECT g, mod(g, 20) AS bucket,
           -- in time order, as orders arrive (+ up to an hour of jitter)
           now() - (1 - g::float / :n) * interval '{spread} days'
               - random() * interval '1 hour' AS created,
           random() * interval '72 hours' AS took
    FROM generate_series(1, :n) AS g
), shaped AS (
    SELECT g, created,
           CASE WHEN bucket < 2 THEN 'open' WHEN bucket = 2 THEN 'assigned'
                WHEN bucket = 3 THEN 'in_progress' WHEN bucket = 4 THEN 'on_hold'
                WHEN bucket < 15 THEN 'closed' WHEN bucket < 18 THEN 'completed'
                ELSE 'cancelled' END AS status,
           created + took AS finished
    FROM base
)
INSERT INTO maintenance.work_orders (
    id, number, title, description, asset_id, priority, type, status, due_date, assignee_id,
    labour_notes, pm_schedule_id, created_by, version, created_at, updated_at, completed_at,
    closed_at, cancelled_at, resolved_at)
SELECT gen_random_uuid()::text, :start + g,
       'Bench order ' || g || ' '
           || (ARRAY['belt', 'bearing', 'seal', 'motor', 'valve'])[1 + mod(g, 5)],
       NULL,
       (CAST(:assets AS text[]))[1 + mod(g, :nassets)],
       (ARRAY['low', 'medium', 'high', 'urgent'])[1 + mod(g / 7, 4)],
       (ARRAY['corrective', 'corrective', 'preventive', 'inspection'])[1 + mod(g / 3, 4)],
       status,
       (created + interval '7 days')::date,
       CASE WHEN status IN ('open', 'cancelled') THEN NULL ELSE :assignee END,
       NULL, NULL, 'bench', 1, created, finished,
       CASE WHEN status IN ('completed', 'closed') THEN finished END,
       CASE WHEN status = 'closed' THEN finished + interval '1 hour' END,
       CASE WHEN status = 'cancelled' THEN finished END,
       CASE WHEN status IN ('completed', 'closed', 'cancelled') THEN finished END
FROM shaped
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _engine(url: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    if not url.startswith("postgresql"):
        raise RuntimeError("bench_maintenance needs the stack on PostgreSQL (DATABASE_URL)")
    return create_engine(url, poolclass=NullPool)


def _assets(conn: Any, run: str) -> list[str]:
    from sqlalchemy import text

    ids = [str(uuid.uuid4()) for _ in range(ASSETS)]
    conn.execute(
        text(
            "INSERT INTO maintenance.assets (id, tag, name, category, location, parent_id, status,"
            " criticality, version, created_at, updated_at) VALUES (:id, :tag, :name, 'bench',"
            " 'Bench hall', NULL, 'operational', 'medium', 1, now(), now())"
        ),
        [
            {"id": i, "tag": f"BENCH-{run}-{n:04d}", "name": f"Bench asset {n}"}
            for n, i in enumerate(ids)
        ],
    )
    return ids


def insert_work_orders(url: str, n: int, assets: list[str], assignee: str) -> float:
    """Insert `n` work orders in one statement; returns the seconds it took (with VACUUM
    ANALYZE, which autovacuum would do after a bulk insert: statistics, visibility map)."""
    from sqlalchemy import text

    started = time.perf_counter()
    eng = _engine(url)
    try:
        with eng.begin() as conn:
            end = conn.execute(
                text(
                    "UPDATE maintenance.counters SET value = value + :n "
                    "WHERE name = 'work_orders' RETURNING value"
                ),
                {"n": n},
            ).scalar_one()
            conn.execute(
                text(_INSERT.format(spread=SPREAD_DAYS)),
                {
                    "n": n,
                    "start": end - n,
                    "assets": assets,
                    "nassets": len(assets),
                    "assignee": assignee,
                },
            )
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE maintenance.work_orders"))
            conn.execute(text("ANALYZE maintenance.assets"))
    finally:
        eng.dispose()
    return time.perf_counter() - started


def _timed(sess: requests.Session, url: str, headers: dict[str, str]) -> list[float]:
    for _ in range(WARMUP):
        sess.get(url, headers=headers, timeout=30)
    out = []
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        r = sess.get(url, headers=headers, timeout=30)
        out.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
    return out


def measure(base: str, token: str, asset: str) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}
    sess = requests.Session()
    first = sess.get(f"{base}/api/work-orders?limit=50", headers=headers, timeout=30).json()
    queries = {
        "list, first page (50)": "/api/work-orders?limit=50",
        "list, page 2 by cursor": f"/api/work-orders?limit=50&cursor={first['next_cursor']}",
        "list, status=open": "/api/work-orders?status=open&limit=50",
        "list, overdue=true": "/api/work-orders?overdue=true&limit=50",
        "list, asset_id + priority": f"/api/work-orders?asset_id={asset}&priority=urgent&limit=50",
        "list, q=bearing": "/api/work-orders?q=bearing&limit=50",
        "stats": "/api/maintenance/stats",
    }
    return {name: _timed(sess, base + path, headers) for name, path in queries.items()}


def run(stack: Any, token: str) -> str:
    """Insert 10k then 100k work orders into the stack's database and measure through its
    gateway; returns the "## Maintenance" markdown section."""
    import jwt
    from sqlalchemy import text

    url = stack.database_url
    run_id = uuid.uuid4().hex[:6].upper()
    eng = _engine(url)
    try:
        with eng.begin() as conn:
            assets = _assets(conn, run_id)
            existing = conn.execute(
                text("SELECT count(*) FROM maintenance.work_orders")
            ).scalar_one()
    finally:
        eng.dispose()
    # the caller becomes the assignee of the active bench orders (read, not verified: the
    # gateway verifies it on every request)
    assignee = str(jwt.decode(token, options={"verify_signature": False})["sub"])
    results: dict[int, tuple[float, dict[str, list[float]]]] = {}
    total = existing
    for scale in SCALES:
        took = insert_work_orders(url, scale - (total - existing), assets, assignee)
        total = existing + scale
        print(f"bench: maintenance at {scale} work orders ...", flush=True)
        results[scale] = (took, measure(stack.gateway_url, token, assets[0]))
    return report(results, existing)


def report(results: dict[int, tuple[float, dict[str, list[float]]]], existing: int) -> str:
    scales = sorted(results)
    names = list(results[scales[0]][1])
    head = " | ".join(f"{s // 1000}k p50 | {s // 1000}k p99" for s in scales)
    lines = [
        "## Maintenance",
        "",
        "Work orders inserted in bulk into PostgreSQL (one `INSERT ... SELECT "
        "generate_series`, in time order, then VACUUM ANALYZE): "
        + ", ".join(f"{s:,} in {results[s][0]:.1f} s" for s in scales)
        + f" ({existing} were there before), 65% finished, 10% cancelled, 25% active, over "
        f"{SPREAD_DAYS} days and {ASSETS} assets. Latency through the gateway (JWT checked by "
        f"the gateway and maintenance-api), {REQUESTS} sequential requests per query after "
        f"{WARMUP} warm-up requests.",
        "",
        f"| query | {head} |",
        "|---|" + "---|" * (2 * len(scales)),
    ]
    for name in names:
        cells = " | ".join(
            f"{pct(results[s][1][name], 50) * 1000:.1f} ms | "
            f"{pct(results[s][1][name], 99) * 1000:.1f} ms"
            for s in scales
        )
        lines.append(f"| {name} | {cells} |")
    lines += [
        "",
        "Stats are grouped counts and conditional sums in SQL over indexed columns "
        "(status/priority, the open-orders due-date partial index, created/completed/"
        "resolved timestamps); lists are keyset pages on the work-order number.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    import emulators
    from shared.manifests import catalog

    base = os.environ.get(
        "TEST_DATABASE_URL", "postgresql+pg8000://postgres@127.0.0.1:5432/postgres"
    )
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"switchyard_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    ports = emulators.Ports(
        pubsub=emulators.free_port(),
        firestore=emulators.free_port(),
        gateway=emulators.free_port(),
        functions_base=emulators.free_port_block(len(catalog().deployments)),
    )
    st = emulators.Stack(
        project=f"bench-{uuid.uuid4().hex[:6]}",
        ports=ports,
        local_dir=Path(os.environ.get("TMPDIR", "/tmp")) / f"switchyard-bench-{name}",
        database_url=url,
        log_dir=ROOT / "test-output" / "bench-maintenance",
        echo=False,
        persist_firestore=False,
        scheduler=False,
        env={
            "RATE_LIMIT_USER_PER_MIN": "1000000",
            "RATE_LIMIT_IP_PER_MIN": "1000000",
            "LOG_LEVEL": "WARNING",
        },
    )
    try:
        st.start()
        r = requests.post(
            st.gateway_url + "/api/auth/login",
            timeout=30,
            json={"email": st.admin_email, "password": st.admin_password},
        )
        r.raise_for_status()
        print(run(st, r.json()["access_token"]))
    finally:
        st.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
