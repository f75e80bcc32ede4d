"""Benchmark of the source context, for `make bench` (tools/bench.py calls `run(stack, token)`
and appends the returned markdown section).

1. Webhook answer time: signed `push` deliveries (3 commits each, fresh SHAs) sent by 50
   concurrent clients through the gateway; p50/p99 of the answer. Then single large
   deliveries straight to source-webhook (the gateway's body limit is 1 MiB, see the
   section's note) at 1, 5 and 20 MB.
2. Delivery to `commit.recorded`: one delivery at a time, from sending it to the
   `commit.recorded` outbox row being published (webhook -> Firestore + outbox -> Pub/Sub ->
   source-ingest -> commits + outbox -> Pub/Sub), read from the stack's database.
3. Commit statistics and lists: commits inserted in bulk (COPY) into one repository over a
   year, then `GET /api/commits/statistics` (default 90 days; a full year), the first list
   page and a message search through the gateway. 10k commits by default;
   `SOURCE_BENCH_COMMITS=1000000` for the 1M figure (takes minutes to load). Then the
   statistics query itself in-process, from the commits (before) and from the daily rollup
   (after), in the same run.
Medians quoted. Runs standalone too: `python tools/bench_source.py` (its own stack).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
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

DATA = ROOT / "tests" / "data" / "github"
CLIENTS = 50
DELIVERIES = 300
LATENCY_SAMPLES = 20
STATS_REQUESTS = 20
ROLLUP_ROUNDS = 5
CHUNK = 20_000
SECRET = "bench-webhook-secret-0123456789"
TYPES = ["feat", "fix", "docs", "chore", "refactor", "test", "perf", "ci", None]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(v: float) -> str:
    return f"{v * 1000:.1f} ms"


def _sign(body: bytes) -> str:
    from functions.source.model import sign

    return sign(SECRET.encode(), body)


def _push(full: str, rng: random.Random, padding: int = 0) -> tuple[bytes, list[str]]:
    data = json.loads((DATA / "push_several_commits.json").read_text())
    data["repository"]["full_name"] = full
    shas = []
    for c in data["commits"]:
        c["id"] = f"{rng.getrandbits(160):040x}"
        shas.append(c["id"])
    data["after"] = shas[-1]
    data["head_commit"] = data["commits"][-1]
    if padding:
        data["padding"] = os.urandom(padding // 2).hex()
    return json.dumps(data).encode(), shas


def _deliver(session: requests.Session, url: str, body: bytes) -> tuple[float, int]:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": _sign(body),
    }
    started = time.perf_counter()
    resp = session.post(url, data=body, headers=headers, timeout=60)
    return time.perf_counter() - started, resp.status_code


def _repository(base: str, token: str) -> str:
    owner = f"bench-{uuid.uuid4().hex[:8]}"
    resp = requests.post(
        base + "/api/repositories",
        headers={"Authorization": f"Bearer {token}"},
        json={"owner": owner, "name": "hello-world", "webhook_secret": SECRET},
        timeout=30,
    )
    resp.raise_for_status()
    return f"{owner}/hello-world"


def webhook_answers(base: str, full: str) -> tuple[list[float], dict[int, int]]:
    rng = random.Random(11)
    bodies = [_push(full, rng)[0] for _ in range(DELIVERIES)]
    times: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    queue = list(bodies)

    def worker() -> None:
        session = requests.Session()
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            took, status = _deliver(session, base + "/api/webhook/github", body)
            with lock:
                times.append(took)
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times, statuses


def _big_push(full: str, rng: random.Random, commits: int, files: int) -> bytes:
    """A push as GitHub sends a large one: up to 2048 commits with long file lists."""
    data = json.loads((DATA / "push_several_commits.json").read_text())
    data["repository"]["full_name"] = full
    template = data["commits"][0]
    data["commits"] = [
        dict(
            template,
            id=f"{rng.getrandbits(160):040x}",
            modified=[f"src/module_{i}/file_{j}.py" for j in range(files)],
        )
        for i in range(commits)
    ]
    data["after"] = data["commits"][-1]["id"]
    return json.dumps(data).encode()


def large_answers(stack: Any, full: str) -> list[tuple[str, int, float, int]]:
    """(kind, bytes, seconds, status) of single large deliveries straight to source-webhook,
    and of a 2 MB one through the gateway."""
    rng = random.Random(13)
    url = stack.url_of("source-webhook") + "/api/webhook/github"
    session = requests.Session()
    out = []
    for commits, files in ((100, 100), (2048, 300)):
        body = _big_push(full, rng, commits, files)
        took, status = _deliver(session, url, body)
        out.append((f"push, {commits} commits x {files} files", len(body), took, status))
    for size in (1_000_000, 5_000_000, 20_000_000):
        body, _ = _push(full, rng, padding=size)
        took, status = _deliver(session, url, body)
        out.append(("random padding (incompressible)", len(body), took, status))
    body = _push(full, rng, 2_000_000)[0]
    took, status = _deliver(session, stack.gateway_url + "/api/webhook/github", body)
    out.append(("through the gateway", len(body), took, status))
    return out


def drain(stack: Any, timeout: float = 600.0) -> float:
    """Wait until source-ingest has taken every delivery; seconds waited."""
    from sqlalchemy import text

    engine = _engine(stack)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < timeout:
            with engine.connect() as conn:
                waiting = conn.execute(
                    text("SELECT count(*) FROM source.deliveries WHERE status = 'received'")
                ).scalar_one()
            if not waiting:
                break
            time.sleep(0.2)
    finally:
        engine.dispose()
    return time.perf_counter() - started


def _engine(stack: Any) -> Any:
    from sqlalchemy import create_engine

    return create_engine(stack.database_url)


def delivery_to_recorded(stack: Any, full: str) -> list[float]:
    from sqlalchemy import text

    rng = random.Random(17)
    engine = _engine(stack)
    session = requests.Session()
    samples = []
    try:
        for _ in range(LATENCY_SAMPLES):
            body, shas = _push(full, rng)
            started = time.perf_counter()
            _, status = _deliver(session, stack.gateway_url + "/api/webhook/github", body)
            if status != 202:
                raise RuntimeError(f"delivery answered {status}")
            deadline = started + 60
            while time.perf_counter() < deadline:
                with engine.connect() as conn:
                    n = conn.execute(
                        text(
                            "SELECT count(*) FROM source.outbox WHERE event_type = "
                            "'commit.recorded' AND published_at IS NOT NULL AND payload LIKE :p"
                        ),
                        {"p": f'%"sha":"{shas[-1]}"%'},
                    ).scalar_one()
                if n:
                    samples.append(time.perf_counter() - started)
                    break
                time.sleep(0.01)
    finally:
        engine.dispose()
    return samples


def _copy(conn: Any, table: str, cols: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    buf.seek(0)
    cursor = conn.connection.dbapi_connection.cursor()
    cursor.execute(f"COPY {table} ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv)", stream=buf)


def load_commits(stack: Any, full: str, count: int) -> float:
    """COPY `count` commits of `full` spread over the last year; seconds taken."""
    from sqlalchemy import text

    engine = _engine(stack)
    rng = random.Random(23)
    now = datetime.now(UTC)
    authors = [f"dev{i}@example.com" for i in range(200)]
    cols = [
        "repository_id",
        "sha",
        "message",
        "author_name",
        "author_email",
        "author_login",
        "author_key",
        "branch",
        "committed_at",
        "recorded_at",
        "conventional_type",
        "conventional_scope",
        "breaking",
        "added",
        "removed",
        "modified",
        "files_changed",
        "additions",
        "deletions",
        "url",
        "source",
        "delivery_id",
    ]
    started = time.perf_counter()
    try:
        with engine.begin() as conn:
            repo_id = conn.execute(
                text("SELECT id FROM source.repositories WHERE full_name_key = :k"),
                {"k": full.lower()},
            ).scalar_one()
        done = 0
        while done < count:
            rows = []
            for _ in range(min(CHUNK, count - done)):
                kind = rng.choice(TYPES)
                author = rng.choice(authors)
                message = (f"{kind}: " if kind else "") + f"change {rng.randrange(10**6)} widget"
                files = rng.randint(1, 12)
                rows.append(
                    [
                        repo_id,
                        f"{rng.getrandbits(160):040x}",
                        message,
                        author.split("@")[0],
                        author,
                        author.split("@")[0],
                        author,
                        "main",
                        (now - timedelta(seconds=rng.uniform(0, 365 * 86400))).isoformat(),
                        now.isoformat(),
                        kind or "",
                        "",
                        "false",
                        "[]",
                        "[]",
                        "[]",
                        files,
                        rng.randint(0, 400),
                        rng.randint(0, 200),
                        "",
                        "poll",
                        "",
                    ]
                )
            with engine.begin() as conn:
                _copy(conn, "source.commits", cols, rows)
            done += len(rows)
        # COPY bypasses the recorder, so the daily rollup is recounted (as the migration
        # that created it does for existing commits).
        from sqlalchemy.orm import Session

        from functions.source import store

        with Session(engine) as session, session.begin():
            store.rebuild_commit_days(session, repo_id)
        # (CSV's empty fields are NULL already.) The statistics read an index-only scan,
        # which needs the visibility map a VACUUM builds.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE source.commits"))
            conn.execute(text("VACUUM ANALYZE source.commit_days"))
    finally:
        engine.dispose()
    return time.perf_counter() - started


def rollup_versus_scan(stack: Any, full: str) -> list[tuple[str, list[float], list[float]]]:
    """The statistics query itself, in this process against the stack's database: from the
    commits (the scan used before the rollup) and from the daily rollup, same ranges."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from functions.source import store

    engine = _engine(stack)
    now = datetime.now(UTC)
    out = []
    try:
        with engine.connect() as conn:
            repo_id = conn.execute(
                text("SELECT id FROM source.repositories WHERE full_name_key = :k"),
                {"k": full.lower()},
            ).scalar_one()
        for name, days in (("90 days", 90), ("a year", 366)):
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(ROLLUP_ROUNDS):
                for rollup in (False, True):
                    with Session(engine) as session:
                        started = time.perf_counter()
                        store.commit_statistics(
                            session,
                            top=20,
                            rollup=rollup,
                            repository_ids=[repo_id],
                            since=now - timedelta(days=days),
                            until=None,
                        )
                        times[rollup].append(time.perf_counter() - started)
            out.append((name, times[False], times[True]))
    finally:
        engine.dispose()
    return out


def timed(session: requests.Session, url: str, params: dict[str, Any]) -> list[float]:
    for _ in range(2):
        session.get(url, params=params, timeout=120).raise_for_status()
    out = []
    for _ in range(STATS_REQUESTS):
        started = time.perf_counter()
        session.get(url, params=params, timeout=120).raise_for_status()
        out.append(time.perf_counter() - started)
    return out


def queries(base: str, token: str, full: str) -> list[tuple[str, list[float]]]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    year = (datetime.now(UTC) - timedelta(days=365)).isoformat()
    return [
        (
            "statistics, default 90 days",
            timed(session, base + "/api/commits/statistics", {"repository": full}),
        ),
        (
            "statistics, a year",
            timed(session, base + "/api/commits/statistics", {"repository": full, "since": year}),
        ),
        (
            "statistics, a year, type feat",
            timed(
                session,
                base + "/api/commits/statistics",
                {"repository": full, "since": year, "type": "feat"},
            ),
        ),
        ("list, first page", timed(session, base + "/api/commits", {"repository": full})),
        (
            "list, author filter",
            timed(session, base + "/api/commits", {"author": "dev7@example.com"}),
        ),
        ("list, message search", timed(session, base + "/api/commits", {"q": "change widget"})),
    ]


def run(stack: Any, token: str) -> str:
    base = stack.gateway_url
    load = os.getloadavg()[0]
    full = _repository(base, token)
    answers, statuses = webhook_answers(base, full)
    drained = drain(stack)
    large = large_answers(stack, full)
    drain(stack)
    recorded = delivery_to_recorded(stack, full)
    count = int(os.environ.get("SOURCE_BENCH_COMMITS", "10000"))
    stats_repo = _repository(base, token)
    loaded = load_commits(stack, stats_repo, count)
    measured = queries(base, token, stats_repo)
    compared = rollup_versus_scan(stack, stats_repo)
    lines = [
        "## source",
        "",
        f"Webhook: {DELIVERIES} signed `push` deliveries (3 commits each) from {CLIENTS} "
        f"concurrent clients through the gateway. Load average when it began: {load:.1f} "
        f"on {os.cpu_count()} CPUs (a shared machine: absolute figures are pessimistic).",
        "",
        "| measure | p50 | p99 | max |",
        "|---|---|---|---|",
        f"| webhook answer | {ms(pct(answers, 50))} | {ms(pct(answers, 99))} | "
        f"{ms(max(answers))} |",
        f"| delivery to `commit.recorded` published ({len(recorded)} sequential) | "
        f"{ms(pct(recorded, 50))} | {ms(pct(recorded, 99))} | {ms(max(recorded))} |",
        "",
        f"Answers: {', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))}; "
        f"source-ingest had taken all {DELIVERIES} ({3 * DELIVERIES} commits) "
        f"{drained:.1f} s after the last answer. The latency is measured after that.",
        "",
        "Single large deliveries straight to source-webhook (the gateway refuses over 1 MiB):",
        "",
        "| body | size | answer | status |",
        "|---|---|---|---|",
    ]
    for kind, size, took, status in large:
        lines.append(f"| {kind} | {size / 1e6:.1f} MB | {ms(took)} | {status} |")
    lines += [
        "",
        f"Commits: {count:,} in one repository over a year, loaded by COPY in {loaded:.1f} s; "
        f"{STATS_REQUESTS} sequential requests each through the gateway.",
        "",
        "| query | median | p95 |",
        "|---|---|---|",
    ]
    for name, values in measured:
        lines.append(f"| {name} | {ms(pct(values, 50))} | {ms(pct(values, 95))} |")
    lines += [
        "",
        "The statistics query alone (in-process, the same database), before and after the "
        f"daily rollup (decision 0038), {ROLLUP_ROUNDS} rounds alternating:",
        "",
        "| range | scan of the commits (before), median | daily rollup (after), median |",
        "|---|---|---|",
    ]
    for name, scan, rolled in compared:
        lines.append(f"| {name} | {ms(pct(scan, 50))} | {ms(pct(rolled, 50))} |")
    lines.append("")
    return "\n".join(lines)


def main() -> int:  # standalone: a stack of our own on a fresh database
    from tools.bench import run_alone

    return run_alone("bench-source", run)


if __name__ == "__main__":
    sys.exit(main())
