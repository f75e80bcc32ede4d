"""Benchmark of logistics-api for `make bench` (tools/bench.py calls `run(stack, token)` and
appends the returned markdown section).

Packages are bulk-loaded straight into the stack's database by PostgreSQL itself
(`INSERT ... SELECT` over `generate_series`, in chunks: no row crosses the wire; the secondary
indexes and the scans' foreign key are dropped for the load and rebuilt after it), 10,000
packages by default or `BENCH_LOGISTICS_ROWS` (e.g. 1000000), each with
`BENCH_LOGISTICS_SCANS` scans on average (default 10: 1M packages -> ~10M scans). Statuses are
mixed like a live network (75% delivered, 5% exception, ...; closed packages created over two
years, open ones over the last 10 days), on 12 regions and 4 service levels. Then, through
the gateway with the given token, ~30 sequential requests per query after a warm-up: list
pages (plain, page 2, filtered, late, searched) and stats (the default 30 days and a year);
export of every package straight from the function (rows/s, and the peak RSS of the
logistics-api process tree sampled every 20 ms next to its RSS before); scan intake: single
scans through the gateway vs batches of 1,000. Medians throughout. Runs standalone too:
`python tools/bench_logistics.py`.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROWS = int(os.environ.get("BENCH_LOGISTICS_ROWS", "10000"))
SCANS_PER_PACKAGE = int(os.environ.get("BENCH_LOGISTICS_SCANS", "10"))
CHUNK = 100_000
REQUESTS = 30
WARMUP = 3
SINGLE_SCANS = 200
BATCHES = 5
BATCH_SIZE = 1_000
REGIONS = [
    "DE-BE",
    "DE-HH",
    "DE-BY",
    "FR-IDF",
    "FR-ARA",
    "ES-MD",
    "ES-CT",
    "IT-LOM",
    "IT-LAZ",
    "NL-NH",
    "PL-MZ",
    "AT-9",
]
LEVELS = ["economy", "standard", "express", "overnight"]
# share (percent, cumulative upper bound) -> status
MIX = [
    (75, "delivered"),
    (80, "exception"),
    (88, "in_transit"),
    (93, "out_for_delivery"),
    (96, "picked_up"),
    (98, "created"),
    (99, "cancelled"),
    (100, "returned"),
]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _status_case() -> str:
    arms = " ".join(f"WHEN b.r < {upper} THEN '{status}'" for upper, status in MIX[:-1])
    return f"CASE {arms} ELSE '{MIX[-1][1]}' END"


PACKAGES_SQL = """
INSERT INTO logistics.packages (
    id, tracking_number, sender, recipient, origin_address, origin_lat, origin_lon,
    origin_region, destination_address, destination_lat, destination_lon, destination_region,
    service_level, weight_kg, promised_by, status, picked_up_at, delivered_at, last_scan_at,
    created_at, updated_at, version)
SELECT
    '00000000-0000-4000-8000-' || lpad(b.g::text, 12, '0'),
    'BL' || lpad(b.g::text, 12, '0'),
    'Sender ' || mod(b.g, 997),
    'Recipient ' || b.g,
    'Origin street ' || mod(b.g, 5000),
    40 + mod(b.g, 130) / 10.0, -3 + mod(b.g, 240) / 10.0,
    (ARRAY[{regions}])[1 + mod(b.g, 12)],
    'Destination street ' || mod(b.g, 7000),
    40 + mod(b.g, 137) / 10.0, -3 + mod(b.g, 241) / 10.0,
    (ARRAY[{regions}])[1 + mod(b.g / 12, 12)],
    (ARRAY['economy','standard','express','overnight'])[1 + mod(b.g / 144, 4)],
    0.1 + mod(b.g, 300) / 10.0,
    b.created + interval '2 hours' + (24 * (4 - mod(b.g / 144, 4))) * interval '1 hour',
    s.status,
    CASE WHEN s.status IN ('created', 'cancelled') THEN NULL
         ELSE least(now(), b.created + interval '2 hours') END,
    CASE WHEN s.status = 'delivered' THEN b.created + interval '2 hours' + b.transit END,
    CASE WHEN s.status IN ('created', 'cancelled') THEN NULL
         WHEN s.status = 'delivered' THEN b.created + interval '2 hours' + b.transit
         ELSE least(now(), b.created + interval '2 hours' + b.transit * 0.6) END,
    b.created, b.created, 1
FROM (
    SELECT g, mod(g * 7919, 100) AS r,
           -- packages still on their way were handed in over the last 10 days; closed ones
           -- over the last two years
           now() - CASE WHEN mod(g * 7919, 100) BETWEEN 75 AND 97
                        THEN mod(g, 14400) * interval '1 minute'
                        ELSE mod(g, 730) * interval '1 day' + mod(g, 1440) * interval '1 minute'
                             + interval '6 days' END AS created,
           (12 + mod(g * 31, 110)) * interval '1 hour' AS transit
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
) AS b
CROSS JOIN LATERAL (SELECT {status} AS status) AS s
"""

# Scans of the packages loaded in a chunk: a pickup, departures and arrivals, then (by status)
# out for delivery and the delivery or an exception, spread over the transit time.
SCANS_SQL = """
INSERT INTO logistics.tracking_events (
    id, package_id, kind, location, lat, lon, note, occurred_at, recorded_at, idempotency_key,
    actor, status_from, status_to, out_of_order)
SELECT
    substr(p.tracking_number, 3, 8) || '-' || substr(p.tracking_number, 11, 4) || '-4'
        || lpad(n.i::text, 3, '0') || '-8000-000000000000',
    p.id,
    CASE WHEN n.i = 1 THEN 'pickup'
         WHEN n.i = n.k AND p.status = 'delivered' THEN 'delivery'
         WHEN n.i = n.k AND p.status IN ('exception', 'returned') THEN 'exception'
         WHEN n.i = n.k - 1 AND p.status = 'delivered' THEN 'out_for_delivery'
         WHEN n.i = n.k AND p.status = 'out_for_delivery' THEN 'out_for_delivery'
         WHEN mod(n.i, 2) = 0 THEN 'departure' ELSE 'arrival' END,
    'Hub ' || mod(n.i, 40), p.origin_lat + n.i * 0.1, p.origin_lon + n.i * 0.1, NULL,
    p.picked_up_at + (p.last_scan_at - p.picked_up_at) * ((n.i - 1)::float / greatest(n.k - 1, 1)),
    p.last_scan_at, 'bench-' || p.id || '-' || n.i, 'bench', 'in_transit', NULL, false
FROM logistics.packages p
CROSS JOIN LATERAL (
    SELECT generate_series(1, k) AS i, k
    FROM (SELECT CASE WHEN p.status = 'picked_up' THEN 1
                      ELSE greatest(2, CAST(:per AS int) + mod(abs(hashtext(p.id)), 5) - 2)
                 END AS k) AS kk
) AS n
WHERE p.tracking_number >= :low AND p.tracking_number <= :high AND p.picked_up_at IS NOT NULL
"""


FK = "tracking_events_package_id_fkey"  # PostgreSQL's name for store.py's ForeignKey


def bulk_load(database_url: str, rows: int) -> dict[str, float]:
    """Load `rows` bench packages and their scans; seconds and counts. The secondary indexes
    (store.py's definitions) and the scans' foreign key are dropped first and built again
    after the load: one sorted build per index and one validating join instead of millions of
    random insertions and per-row checks (the primary keys stay; bench ids are uuid-shaped
    but ascending, so their inserts append to the primary-key index)."""
    from sqlalchemy import create_engine, text

    from functions.logistics import store

    regions = ",".join(f"'{r}'" for r in REGIONS)
    pk_sql = text(PACKAGES_SQL.format(regions=regions, status=_status_case()))
    indexes = [*store.packages.indexes, *store.tracking_events.indexes]
    engine = create_engine(database_url)
    out = {"packages": 0.0, "scans": 0.0, "packages_s": 0.0, "scans_s": 0.0}
    try:
        with engine.begin() as conn:
            for ix in indexes:
                ix.drop(conn, checkfirst=True)
            conn.execute(text(f"ALTER TABLE logistics.tracking_events DROP CONSTRAINT {FK}"))
        for first in range(1, rows + 1, CHUNK):
            last = min(rows, first + CHUNK - 1)
            t0 = time.perf_counter()
            with engine.begin() as conn:
                out["packages"] += conn.execute(pk_sql, {"first": first, "last": last}).rowcount
            t1 = time.perf_counter()
            with engine.begin() as conn:
                out["scans"] += conn.execute(
                    text(SCANS_SQL),
                    {
                        "per": SCANS_PER_PACKAGE,
                        "low": f"BL{first:012d}",
                        "high": f"BL{last:012d}",
                    },
                ).rowcount
            t2 = time.perf_counter()
            out["packages_s"] += t1 - t0
            out["scans_s"] += t2 - t1
            print(f"bench: logistics, loaded {last:,} packages", flush=True)
        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text("SET maintenance_work_mem = '256MB'"))
            for ix in indexes:
                ix.create(conn)
            conn.execute(
                text(
                    f"ALTER TABLE logistics.tracking_events ADD CONSTRAINT {FK} FOREIGN KEY "
                    "(package_id) REFERENCES logistics.packages (id)"
                )
            )
        out["index_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("packages", "tracking_events"):
                # VACUUM too: it sets the visibility map, as autovacuum would on a live
                # database, so the covering indexes serve index-only scans
                auto.execute(text(f"VACUUM ANALYZE logistics.{table}"))
        out["analyze_s"] = time.perf_counter() - t0
    finally:
        engine.dispose()
    return out


# --- measurements ----------------------------------------------------------------------------


def _timed(session: requests.Session, url: str, params: dict[str, Any]) -> list[float]:
    out = []
    for i in range(WARMUP + REQUESTS):
        t0 = time.perf_counter()
        resp = session.get(url, params=params, timeout=120)
        elapsed = time.perf_counter() - t0
        if resp.status_code != 200:
            raise RuntimeError(f"{url} {params}: {resp.status_code} {resp.text[:300]}")
        if i >= WARMUP:
            out.append(elapsed)
    return out


def latencies(base: str, session: requests.Session, rows: int) -> list[tuple[str, float]]:
    url = base + "/api/packages"
    first = session.get(url, params={"limit": 20}, timeout=60).json()
    now = datetime.now(UTC)
    queries: list[tuple[str, str, dict[str, Any]]] = [
        ("list, first page (20)", url, {"limit": 20}),
        ("list, page 2 by cursor", url, {"limit": 20, "cursor": first["next_cursor"]}),
        ("list, status=in_transit", url, {"status": "in_transit"}),
        (
            "list, origin region + express",
            url,
            {"origin_region": "FR-IDF", "service_level": "express"},
        ),
        ("list, late only", url, {"late": "true"}),
        (
            "list, promised in one week",
            url,
            {
                "promised_after": (now - timedelta(days=200)).isoformat(),
                "promised_before": (now - timedelta(days=193)).isoformat(),
            },
        ),
        ("list, q = one tracking number", url, {"q": f"BL{rows // 2:012d}"}),
        ("list, q = part of a recipient", url, {"q": f"recipient {rows // 3}"}),
        ("stats, last 30 days", base + "/api/logistics/stats", {}),
        (
            "stats, 365 days",
            base + "/api/logistics/stats",
            {"from": (now.date() - timedelta(days=364)).isoformat()},
        ),
    ]
    return [(name, med(_timed(session, u, p))) for name, u, p in queries]


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def export(stack: Any, token: str, fmt: str) -> dict[str, float]:
    """One full export straight from the function: rows, seconds, RSS before and peak."""
    pid = stack.pid_of("logistics-api")
    pids = _tree(pid) if pid else []
    before = _rss_kib(pids)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_kib(pids))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    lines = 0
    size = 0
    with requests.get(
        stack.url_of("logistics-api") + "/api/packages/export",
        params={"format": fmt},
        headers={"Authorization": f"Bearer {token}"},
        stream=True,
        timeout=600,
    ) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_content(chunk_size=1 << 16):
            lines += chunk.count(b"\n")
            size += len(chunk)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    rows = lines - 1 if fmt == "csv" else lines
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_s": rows / seconds,
        "mib": size / 2**20,
        "rss_before_mib": before / 1024,
        "rss_peak_mib": peak[0] / 1024,
    }


def _created_packages(database_url: str, n: int) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT id FROM logistics.packages WHERE status = 'in_transit' "
                        "ORDER BY id LIMIT :n"
                    ),
                    {"n": n},
                )
            ]
    finally:
        engine.dispose()


def _scan(package_id: str | None, kind: str, when: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": kind,
        "location": "Bench hub",
        "lat": 50.1,
        "lon": 8.7,
        "occurred_at": when.isoformat().replace("+00:00", "Z"),
        "idempotency_key": f"bench-{uuid.uuid4().hex}",
    }
    if package_id is not None:
        out["package_id"] = package_id
    return out


def intake(stack: Any, session: requests.Session) -> dict[str, float]:
    """Arrival scans of in-transit packages: one by one through the gateway, then batches of
    1,000 (straight at the function: see the note in the report)."""
    ids = _created_packages(stack.database_url, 200)
    if not ids:
        return {}
    base = stack.gateway_url
    now = datetime.now(UTC) - timedelta(minutes=5)
    single = []
    for i in range(SINGLE_SCANS):
        pid = ids[i % len(ids)]
        t0 = time.perf_counter()
        resp = session.post(
            f"{base}/api/packages/{pid}/events",
            json=_scan(None, "arrival", now + timedelta(milliseconds=i)),
            timeout=60,
        )
        single.append(time.perf_counter() - t0)
        if resp.status_code != 201:
            raise RuntimeError(f"scan: {resp.status_code} {resp.text[:300]}")
    batches = []
    target = stack.url_of("logistics-api") + "/api/tracking-events:batch"
    for b in range(BATCHES):
        scans = [
            _scan(ids[i % len(ids)], "arrival", now + timedelta(seconds=1 + b, microseconds=i))
            for i in range(BATCH_SIZE)
        ]
        t0 = time.perf_counter()
        resp = session.post(target, json={"scans": scans}, timeout=300)
        batches.append(time.perf_counter() - t0)
        if resp.status_code != 200 or resp.json()["accepted"] != BATCH_SIZE:
            raise RuntimeError(f"batch: {resp.status_code} {resp.text[:300]}")
    return {
        "single_p50": med(single),
        "single_per_s": 1 / med(single),
        "batch_p50": med(batches),
        "batch_per_s": BATCH_SIZE / med(batches),
    }


def run(stack: Any, token: str) -> str:
    print(f"bench: logistics, loading {ROWS:,} packages ...", flush=True)
    load = bulk_load(stack.database_url, ROWS)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    print("bench: logistics, measuring lists and stats ...", flush=True)
    lat = latencies(stack.gateway_url, session, ROWS)
    print("bench: logistics, exporting ...", flush=True)
    exports = {fmt: export(stack, token, fmt) for fmt in ("csv", "ndjson")}
    print("bench: logistics, scan intake ...", flush=True)
    scans = intake(stack, session)
    return report(load, lat, exports, scans)


def report(
    load: dict[str, float],
    lat: list[tuple[str, float]],
    exports: dict[str, dict[str, float]],
    scans: dict[str, float],
) -> str:
    def ms(v: float) -> str:
        return f"{v * 1000:.1f} ms"

    lines = [
        "## Logistics",
        "",
        f"logistics-api with {int(load['packages']):,} packages and {int(load['scans']):,} scans "
        f"(PostgreSQL; statuses mixed as {', '.join(s for _, s in MIX)} "
        f"75/5/8/5/3/2/1/1%, created over two years, 12 regions, 4 service levels). Loaded by "
        f"`INSERT ... SELECT generate_series` in chunks of {CHUNK:,}: "
        f"packages in {load['packages_s']:.1f} s "
        f"({load['packages'] / max(load['packages_s'], 1e-9):,.0f} rows/s), scans in "
        f"{load['scans_s']:.1f} s ({load['scans'] / max(load['scans_s'], 1e-9):,.0f} rows/s), "
        "secondary indexes and the foreign key (dropped for the load) rebuilt in "
        f"{load.get('index_s', 0):.1f} s, "
        f"VACUUM ANALYZE {load.get('analyze_s', 0):.1f} s. "
        "Set `BENCH_LOGISTICS_ROWS=1000000` for the 1M figures. Medians of "
        f"{REQUESTS} sequential requests through the gateway after {WARMUP} warm-up requests.",
        "",
        "| request | p50 |",
        "|---|---|",
    ]
    lines += [f"| {name} | {ms(v)} |" for name, v in lat]
    lines += [
        "",
        "| export (all packages, straight from the function) | rows | seconds | rows/s | MiB "
        "| RSS before | RSS peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for fmt, e in exports.items():
        lines.append(
            f"| {fmt} | {int(e['rows']):,} | {e['seconds']:.1f} | {e['rows_s']:,.0f} "
            f"| {e['mib']:.0f} | {e['rss_before_mib']:.0f} MiB | {e['rss_peak_mib']:.0f} MiB |"
        )
    if scans:
        lines += [
            "",
            "| scan intake | p50 per request | scans/s |",
            "|---|---|---|",
            f"| one scan per request (gateway) | {ms(scans['single_p50'])} "
            f"| {scans['single_per_s']:,.0f} |",
            f"| batches of {BATCH_SIZE:,} (function) | {ms(scans['batch_p50'])} "
            f"| {scans['batch_per_s']:,.0f} |",
        ]
    lines += [
        "",
        "Lists are keyset pages on an index per filter (created_at desc, id desc); `late` reads"
        " the promise against the delivery or now; `q` is an exact tracking number (unique "
        "index) or a contains match on the recipient (trigram index). Stats are six aggregate "
        "queries in one transaction, each an index-only scan (counts by status; late open "
        "packages on a partial index; deliveries, transit per lane and per service level on a "
        "covering `delivered_at` index; exceptions per day over the scans' kind and time). The "
        "export streams from a server-side cursor (2,000 rows per fetch): RSS stays flat "
        "whatever the row count. It is measured straight at the function because the gateway of"
        " this checkout buffers whole upstream bodies, and the batch intake likewise because "
        "the gateway does not route `/api/tracking-events:batch` yet (see the logistics "
        "report). A batch of 1,000 scans writes one outbox row per event inside its "
        "transaction and, after the commit, publishes and marks each one (`shared.events`): "
        "that, not the scans themselves, is most of its time.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:  # standalone: a stack of our own on a fresh database
    from tools.bench import run_alone

    return run_alone("bench-logistics", run)


if __name__ == "__main__":
    sys.exit(main())
