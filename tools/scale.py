"""What the scale benchmarks of maintenance, production and logistics share (issue 14, item 6;
docs/decisions/0042): timing a query through the gateway, the plans of the SQL a request runs,
and the 10k-vs-1M table with its verdicts.

Plans: `plans_of(stack, deployment, path, token)` runs the request in this process through the
context's Flask app (the same parsing, service and store code the deployment runs, against the
stack's database), and every SELECT it sends is first explained (`EXPLAIN (FORMAT JSON)`, same
statement, same parameters, same transaction) by a SQLAlchemy cursor hook. A plan is summed up
as the scans it does (`Index Scan using ix_x on t`, `Seq Scan on t`, ...); a sequential scan of
one of the context's big tables is what the verdict looks for. The tests use the same hook
(`capture`) with `enable_seqscan` off on small tables, so a dropped index fails `make test`.
Not a `bench_*.py` module itself (tools/bench.py runs those).
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

from shared import trigram

REQUESTS = 21  # per query and scale: medians of these, after WARMUP
WARMUP = 3
TARGET_RATIO = 2.0  # 1M median <= 2x the 10k median
LOAD_TARGET_S = 60.0  # a bulk load of 1M rows

SCANS = {
    "Seq Scan",
    "Index Scan",
    "Index Only Scan",
    "Bitmap Index Scan",
    "Bitmap Heap Scan",
    "Parallel Seq Scan",
}


@dataclass
class Plan:
    statement: str
    scans: list[str] = field(default_factory=list)  # "Index Scan using ix on t", ...
    seq_tables: set[str] = field(default_factory=set)  # tables read by a sequential scan
    indexes: set[str] = field(default_factory=set)  # indexes used
    tables: set[str] = field(default_factory=set)  # tables read (by any scan)
    conds: list[str] = field(default_factory=list)  # the index conditions of its index scans

    def summary(self) -> str:
        return ", ".join(dict.fromkeys(self.scans)) or "no scan"


def _walk(node: dict[str, Any], plan: Plan) -> None:
    kind = node.get("Node Type", "")
    if kind in SCANS:
        rel = node.get("Relation Name")
        ix = node.get("Index Name")
        if rel:
            plan.tables.add(rel)
        if kind in ("Seq Scan", "Parallel Seq Scan") and rel:
            plan.seq_tables.add(rel)
        if ix:
            plan.indexes.add(ix)
        if "Index Cond" in node:
            plan.conds.append(node["Index Cond"])
        text = kind + (f" using {ix}" if ix else "") + (f" on {rel}" if rel else "")
        if kind != "Bitmap Heap Scan":  # its Bitmap Index Scan child names the index
            plan.scans.append(text)
    for child in node.get("Plans", []):
        _walk(child, plan)


def explain_json(rows: list[Any]) -> dict[str, Any]:
    import json

    value = rows[0][0]
    doc = json.loads(value) if isinstance(value, str) else value
    return doc[0]["Plan"]


@contextmanager
def capture(engine: Any, *, seqscan: bool = True) -> Iterator[list[Plan]]:
    """Explain every SELECT `engine` runs inside the block (PostgreSQL), in order. With
    `seqscan=False` the planner is told to avoid sequential scans for the EXPLAIN (the way to
    see which index a query can use on a table too small to need one)."""
    from sqlalchemy import event

    plans: list[Plan] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool):
        head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if many or head not in ("SELECT", "WITH") or "FROM pg_stats" in statement:
            return  # the statistics shared.trigram reads are not the query's plan
        if not seqscan:
            cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        root = explain_json(cursor.fetchall())
        if not seqscan:
            cursor.execute("RESET enable_seqscan")
        plan = Plan(" ".join(statement.split())[:300])
        _walk(root, plan)
        plans.append(plan)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield plans
    finally:
        event.remove(engine, "before_cursor_execute", before)


@contextmanager
def deployment_env(stack: Any, deployment: str) -> Iterator[None]:
    """This process configured as `deployment` of `stack` (its database, keys, emulators),
    restored afterwards."""
    from shared import db
    from shared.config import settings

    saved = dict(os.environ)
    os.environ.update(stack.env_for(stack.catalog.deployments[deployment]))
    settings.cache_clear()
    db.reset()
    quiet = logging.getLogger("switchyard")  # the in-process requests' access log lines
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        yield
    finally:
        quiet.setLevel(level)
        os.environ.clear()
        os.environ.update(saved)
        settings.cache_clear()
        db.reset()


def plans_of(app: Any, path: str, token: str) -> list[Plan]:
    """The plans of the SELECTs the request `GET path` runs in `app` (call inside
    deployment_env)."""
    from shared import db

    with capture(db.engine()) as plans:
        resp = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    if resp.status_code != 200:
        raise RuntimeError(f"{path}: {resp.status_code} {resp.get_data(as_text=True)[:300]}")
    return plans


def timed(session: requests.Session, urls: list[str]) -> list[float]:
    """Median seconds of REQUESTS GETs of each of `urls` after WARMUP, taken in turns (one of
    each per round), so the load of this shared machine at any moment falls on all alike."""
    out: list[list[float]] = [[] for _ in urls]
    for i in range(WARMUP + REQUESTS):
        for times, url in zip(out, urls, strict=True):
            t0 = time.perf_counter()
            resp = session.get(url, timeout=120)
            elapsed = time.perf_counter() - t0
            if resp.status_code != 200:
                raise RuntimeError(f"{url}: {resp.status_code} {resp.text[:300]}")
            if i >= WARMUP:
                times.append(elapsed)
    return [statistics.median(times) for times in out]


@dataclass
class Measured:
    name: str
    path: str
    median: float
    plans: list[Plan]


def measure(
    stack: Any, deployment: str, app: Any, token: str, queries: list[tuple[str, str]]
) -> list[Measured]:
    """Each (name, path): its median through the gateway and the plans of its SELECTs. A search
    reads the table's ANALYZE sample once per `trigram.STATS_TTL_S` in each process: after a
    load, a second measure of the deployment waits until its processes use the loaded table's."""
    since = _measured.get(deployment)
    if since is not None:
        time.sleep(max(0.0, trigram.STATS_TTL_S - (time.monotonic() - since)))
    trigram.forget()  # this process's, for the plans
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    with deployment_env(stack, deployment):
        plans = [plans_of(app, path, token) for _, path in queries]
    medians = timed(session, [stack.gateway_url + path for _, path in queries])
    _measured[deployment] = time.monotonic()
    return [
        Measured(name, path, median, plan)
        for (name, path), median, plan in zip(queries, medians, plans, strict=True)
    ]


_measured: dict[str, float] = {}  # deployment: when its last measure ended (monotonic)


def verdict(ok: bool) -> str:
    return "meets target" if ok else "**misses target**"


def table(
    small: list[Measured], large: list[Measured], big_tables: set[str], labels: tuple[str, str]
) -> list[str]:
    """The markdown rows: per query the two medians, the ratio against the 2x target, and the
    plan at the large scale (a sequential scan of a big table is flagged)."""
    a, b = labels
    lines = [
        f"| query | median @ {a} | median @ {b} | ratio | target <= {TARGET_RATIO:g}x "
        f"| plan @ {b} (EXPLAIN) |",
        "|---|---|---|---|---|---|",
    ]
    for s, m in zip(small, large, strict=True):
        seq = sorted({t for p in m.plans for t in p.seq_tables} & big_tables)
        ratio = m.median / s.median
        plan = "; ".join(p.summary() for p in m.plans)
        flag = f" **Seq Scan on {', '.join(seq)}**" if seq else ""
        lines.append(
            f"| {m.name} | {s.median * 1000:.1f} ms | {m.median * 1000:.1f} ms | {ratio:.2f}x "
            f"| {verdict(ratio <= TARGET_RATIO and not seq)} | {plan}{flag} |"
        )
    return lines


def load_line(what: str, rows: int, seconds: float, extra: str = "") -> str:
    per_s = rows / max(seconds, 1e-9)
    return (
        f"| {what} | {rows:,} | {seconds:.1f} s | {per_s:,.0f} rows/s | "
        f"{verdict(seconds * 1_000_000 / max(rows, 1) <= LOAD_TARGET_S)} {extra}|"
    )


# --- bulk loads: the indexes set aside during a load, built again ---------------------------

BUILD_WORKERS = 2  # one connection per core here: CREATE INDEX takes a SHARE lock, which
# another CREATE INDEX and the rollups' reads of the same table do not wait for


def rebuild(engine: Any, indexes: list[Any], *also: Any) -> None:
    """Build `indexes` dropped before a bulk load (SQLAlchemy `Index` objects, or their
    `CREATE INDEX` texts as `pg_indexes` gives them) and run the callables `also` (each given
    a connection in its own transaction: the rollups' recount) over BUILD_WORKERS connections
    at once, the GIN (trigram) builds first: they are the longest and use one core each. Each
    build is one sorted pass with 256 MB of `maintenance_work_mem`. The first failure is
    raised once every task has ended."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import text

    def build(ix: Any) -> None:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
            if isinstance(ix, str):
                conn.execute(text(ix))
            else:
                ix.create(conn)

    def run(fn: Any) -> None:
        with engine.begin() as conn:
            fn(conn)

    def is_gin(ix: Any) -> bool:
        if isinstance(ix, str):
            return " USING gin " in ix
        return bool(ix.dialect_options["postgresql"].get("using") == "gin")

    gin = [ix for ix in indexes if is_gin(ix)]
    with ThreadPoolExecutor(BUILD_WORKERS, thread_name_prefix="rebuild") as pool:
        futures = [pool.submit(build, ix) for ix in gin]
        futures += [pool.submit(run, fn) for fn in also]
        futures += [pool.submit(build, ix) for ix in indexes if ix not in gin]
    for fut in futures:
        fut.result()
