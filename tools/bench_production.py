"""Benchmark of production-api at 10k and 100k batches, for `make bench` (tools/bench.py calls
`run(stack, token)` and appends the returned markdown section).

Rows are inserted in bulk straight into the stack's database (COPY in chunks on PostgreSQL,
SQLAlchemy executemany elsewhere; not through the API): batches with a realistic mix of
statuses, created over the last two years, each with the `batch_transitions` its status
implies (about 8.5 per batch). Then latency is measured through the gateway with the given
token, ~50 sequential requests per query after a short warm-up: list pages (plain, filtered,
searched, page 2 by cursor) and metrics (the default 30 days and a full year). Runs
standalone too: `python tools/bench_production.py` starts its own stack on a fresh PostgreSQL
database.
"""

from __future__ import annotations

import csv
import io
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REQUESTS = 50
WARMUP = 5
CHUNK = 5_000
SCALES = (10_000, 100_000)
SPREAD_DAYS = 730
STAGES = ["dispensing", "granulation", "compression", "coating", "packaging"]
PRODUCTS = [
    f"{name} {dose}"
    for name in (
        "Paracetamol",
        "Ibuprofen",
        "Amoxicillin",
        "Metformin",
        "Atorvastatin",
        "Omeprazole",
        "Lisinopril",
        "Amlodipine",
        "Cetirizine",
        "Losartan",
    )
    for dose in ("250 mg", "500 mg")
]
# status -> share of batches
MIX = [
    ("completed", 0.75),
    ("rejected", 0.05),
    ("released", 0.03),
    ("qa_hold", 0.04),
    ("in_progress", 0.08),
    ("planned", 0.05),
]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


# --- data ------------------------------------------------------------------------------------


def _batch(rng: random.Random, n: int, now: datetime) -> tuple[dict[str, Any], list[dict]]:
    """One batch row and its transition rows, consistent with the lifecycle."""
    r = rng.random()
    status = next(s for s, share in _cumulative() if r < share)
    hours = rng.uniform
    steps: list[tuple[str, str | None, str, float]] = []  # kind, from, to, hours later
    stage_reached = 0
    if status != "planned":
        steps.append(("status", "planned", "in_progress", hours(1, 48)))
        last = 4 if status in ("completed", "released") else rng.randrange(5)
        for i in range(1, last + 1):
            steps.append(("stage", STAGES[i - 1], STAGES[i], hours(1, 12)))
        stage_reached = last
        if status in ("qa_hold", "released", "completed", "rejected"):
            steps.append(("status", "in_progress", "qa_hold", hours(1, 12)))
        if status == "rejected":
            steps.append(("status", "qa_hold", "rejected", hours(1, 48)))
        if status in ("released", "completed"):
            steps.append(("status", "qa_hold", "released", hours(1, 48)))
        if status == "completed":
            steps.append(("status", "released", "completed", hours(1, 24)))
    total = sum(s[3] for s in steps)
    created = now - timedelta(days=rng.uniform(0, SPREAD_DAYS), hours=total)
    batch_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    planned = float(rng.choice((50_000, 100_000, 250_000, 500_000)))
    at = created
    rows = [
        {
            "batch_id": batch_id,
            "kind": "status",
            "from_value": None,
            "to_value": "planned",
            "reason": "created",
            "actor": "bench",
            "at": created,
            "stage_entered_at": None,
        }
    ]
    started = completed = visit_began = None
    for kind, old, new, later in steps:
        at = at + timedelta(hours=later)
        ends_visit = kind == "stage" or new == "released"
        rows.append(
            {
                "batch_id": batch_id,
                "kind": kind,
                "from_value": old,
                "to_value": new,
                "reason": "bench",
                "actor": "bench",
                "at": at,
                "stage_entered_at": visit_began if ends_visit else None,
            }
        )
        if kind == "stage" or (new == "in_progress" and old == "planned"):
            visit_began = at
        if new == "in_progress" and old == "planned":
            started = at
        if new == "completed":
            completed = at
    batch = {
        "id": batch_id,
        "batch_number": f"BENCH-{n:07d}",
        "product": rng.choice(PRODUCTS),
        "planned_quantity": planned,
        "actual_quantity": round(planned * rng.uniform(0.9, 1.02), 1) if completed else None,
        "unit": "tablets",
        "stage": STAGES[stage_reached],
        "status": status,
        "notes": None,
        "planned_start": created + timedelta(hours=24),
        "started_at": started,
        "completed_at": completed,
        "created_at": created,
        "updated_at": at,
        "version": len(rows),
    }
    return batch, rows


def _cumulative() -> list[tuple[str, float]]:
    out, acc = [], 0.0
    for status, share in MIX:
        acc += share
        out.append((status, acc))
    out[-1] = (out[-1][0], 1.01)
    return out


def _copy(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL COPY of `rows` into `table` through the connection's pg8000 cursor."""
    cols = [c.name for c in table.columns if c.name in rows[0]]
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow(
            [
                ""
                if row[c] is None
                else row[c].isoformat()
                if isinstance(row[c], datetime)
                else row[c]
                for c in cols
            ]
        )
    buf.seek(0)
    cursor = conn.connection.dbapi_connection.cursor()
    cursor.execute(
        f"COPY {table.fullname} ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv)", stream=buf
    )


def insert(database_url: str, first: int, count: int, seed: int = 7) -> tuple[float, int]:
    """Insert batches number first..first+count-1 with their transitions; (seconds, rows).

    PostgreSQL gets COPY (pg8000's executemany is one round trip per row: ~3k rows/s here,
    SQLAlchemy's multi-row "insertmanyvalues" ~9k rows/s; COPY ~25-40k rows/s with the
    indexes and the foreign key in place); other databases get SQLAlchemy executemany."""
    from sqlalchemy import create_engine, text

    from functions.production import store

    rng = random.Random(seed + first)
    now = datetime.now(UTC)
    engine = create_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    started = time.perf_counter()
    rows_total = 0
    try:
        with engine.begin() as conn:
            for offset in range(0, count, CHUNK):
                batches, transitions = [], []
                for n in range(first + offset, first + min(count, offset + CHUNK)):
                    b, t = _batch(rng, n, now)
                    batches.append(b)
                    transitions += t
                for table, rows in ((store.batches, batches), (store.transitions, transitions)):
                    if postgres:
                        _copy(conn, table, rows)
                    else:
                        conn.execute(table.insert(), rows)
                rows_total += len(batches) + len(transitions)
        if postgres:
            with engine.connect() as conn:
                auto = conn.execution_options(isolation_level="AUTOCOMMIT")
                for name in ("batches", "batch_transitions"):
                    auto.execute(text(f"ANALYZE production.{name}"))
    finally:
        engine.dispose()
    return time.perf_counter() - started, rows_total


# --- measurements ----------------------------------------------------------------------------


def _timed(session: requests.Session, url: str, params: dict[str, Any]) -> list[float]:
    out = []
    for i in range(WARMUP + REQUESTS):
        t0 = time.perf_counter()
        resp = session.get(url, params=params, timeout=60)
        elapsed = time.perf_counter() - t0
        if resp.status_code != 200:
            raise RuntimeError(f"{url} {params}: {resp.status_code} {resp.text[:200]}")
        if i >= WARMUP:
            out.append(elapsed)
    return out


def measure(base: str, token: str, scale: int) -> list[tuple[str, list[float]]]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    url = base + "/api/batches"
    first = session.get(url, params={"limit": 20}, timeout=60).json()
    queries: list[tuple[str, str, dict[str, Any]]] = [
        ("list, first page (20)", url, {"limit": 20}),
        ("list, page 2 by cursor", url, {"limit": 20, "cursor": first["next_cursor"]}),
        ("list, status=in_progress", url, {"status": "in_progress"}),
        ("list, product + status=completed", url, {"product": PRODUCTS[3], "status": "completed"}),
        ("list, search q=0042 (many matches)", url, {"q": "0042"}),
        ("list, search one batch number", url, {"q": f"BENCH-{scale - 1:07d}"}),
        (
            "list, created in one week",
            url,
            {
                "created_from": (datetime.now(UTC) - timedelta(days=200)).isoformat(),
                "created_to": (datetime.now(UTC) - timedelta(days=193)).isoformat(),
            },
        ),
        ("metrics, last 30 days", url + "/metrics", {}),
        (
            "metrics, 365 days",
            url + "/metrics",
            {"from": (datetime.now(UTC).date() - timedelta(days=364)).isoformat()},
        ),
    ]
    return [(name, _timed(session, u, params)) for name, u, params in queries]


def run(stack: Any, token: str) -> str:
    """Insert 10k then 100k batches into `stack`'s database, measure, return markdown."""
    results: dict[int, list[tuple[str, list[float]]]] = {}
    inserts: dict[int, tuple[float, int]] = {}
    done = 0
    for scale in SCALES:
        print(f"bench: production, inserting up to {scale} batches ...", flush=True)
        inserts[scale] = insert(stack.database_url, done, scale - done)
        done = scale
        print(f"bench: production, measuring at {scale} batches ...", flush=True)
        results[scale] = measure(stack.gateway_url, token, scale)
    return report(results, inserts)


def report(
    results: dict[int, list[tuple[str, list[float]]]], inserts: dict[int, tuple[float, int]]
) -> str:
    small, large = SCALES

    def ms(v: float) -> str:
        return f"{v * 1000:.1f} ms"

    lines = [
        "## Production",
        "",
        f"production-api through the gateway at {small:,} and {large:,} batches (PostgreSQL; "
        f"statuses mixed as {', '.join(f'{s} {int(p * 100)}%' for s, p in MIX)}, created over "
        f"{SPREAD_DAYS} days, ~8.5 `batch_transitions` rows per batch). Rows were bulk-inserted "
        "straight into the database (COPY in chunks of "
        f"{CHUNK:,} batches with their transitions, indexes and foreign key in place, then "
        "ANALYZE): "
        + "; ".join(
            f"{rows:,} rows up to {scale:,} batches in {secs:.1f} s"
            for scale, (secs, rows) in inserts.items()
        )
        + f". {REQUESTS} sequential requests per query after {WARMUP} warm-up requests.",
        "",
        f"| request | p50 @ {small // 1000}k | p99 @ {small // 1000}k "
        f"| p50 @ {large // 1000}k | p99 @ {large // 1000}k |",
        "|---|---|---|---|---|",
    ]
    for (name, a), (_, b) in zip(results[small], results[large], strict=True):
        lines.append(
            f"| {name} | {ms(pct(a, 50))} | {ms(pct(a, 99))} | {ms(pct(b, 50))} "
            f"| {ms(pct(b, 99))} |"
        )
    lines += [
        "",
        "Lists are keyset pages on indexes that match each filter and the sort "
        "order (created_at desc, id desc); `q` is a contains match on the batch number "
        "(no index can serve it; it stops at the first page of matches). Metrics run "
        "four aggregate queries in one transaction (counts by status and stage, yield "
        "per product over `completed_at`, cycle time per stage over the transitions in "
        "the range, completions per UTC day).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:  # standalone: a stack of our own on a fresh database
    from tools.bench import run_alone

    return run_alone("bench-production", run)


if __name__ == "__main__":
    sys.exit(main())
