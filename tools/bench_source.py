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
4. source-ingest's transaction for one 2048-commit push, the recorder before decision 0048
   (row by row) and the set-based one alternating in one run, then two pushes to one
   branch at once each way (wall time, time blocked on the shared rows).
Medians quoted. Runs standalone too: `python tools/bench_source.py` (its own stack).
"""

from __future__ import annotations

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


def _big_push(full: str, size: int) -> bytes:
    """A push as GitHub sends a large one: 2048 commits (GitHub's most) whose file lists
    bring the body to about `size` bytes (JSON that compresses ~9x). The SHAs are the same
    in every such push: the first records them, the others record nothing (the ingest is
    idempotent per repository + sha), so the backlog of commits and their analyses stays
    small while the answer time, which does not depend on it, is measured."""
    rng = random.Random(2048)
    data = json.loads((DATA / "push_several_commits.json").read_text())
    data["repository"]["full_name"] = full
    template = data["commits"][0]
    files = max(1, size // (2048 * 32))
    data["commits"] = [
        dict(
            template,
            id=f"{rng.getrandbits(160):040x}",
            modified=[f"src/module_{i % 97}/file_{j}.py" for j in range(files)],
        )
        for i in range(2048)
    ]
    data["after"] = data["commits"][-1]["id"]
    return json.dumps(data).encode()


LARGE_SIZES = (1_000_000, 5_000_000, 20_000_000)
LARGE_ROUNDS = 5


def large_answers(stack: Any, full: str) -> list[tuple[str, int, list[float], set[int]]]:
    """(kind, bytes, answer seconds, statuses) of large deliveries, LARGE_ROUNDS of each
    size and kind, straight to source-webhook and through the gateway (whose per-route body
    limit is 25 MB for this route), one at a time."""
    rng = random.Random(13)
    direct = stack.url_of("source-webhook") + "/api/webhook/github"
    gateway = stack.gateway_url + "/api/webhook/github"
    session = requests.Session()
    out = []
    for size in LARGE_SIZES:
        for kind, url, padded in (
            ("push, 2048 commits, direct", direct, False),
            ("incompressible padding, direct", direct, True),
            ("push, 2048 commits, via the gateway", gateway, False),
        ):
            times, statuses, length = [], set(), 0
            for _ in range(LARGE_ROUNDS):
                body = _push(full, rng, size)[0] if padded else _big_push(full, size)
                took, status = _deliver(session, url, body)
                times.append(took)
                statuses.add(status)
                length = len(body)
            out.append((kind, length, times, statuses))
    return out


# --- source-ingest of one 2048-commit push: row by row (before decision 0048) and set-based

INGEST_COMMITS = 2048  # GitHub's most per push
INGEST_ROUNDS = 3  # rounds alternating the two recorders (each a fresh 2048 SHAs)
_HOT = ("INSERT INTO source.refs", "INSERT INTO source.commit_days", "UPDATE source.repositories")


def _ingest_push(full: str, rng: random.Random, branch: str = "main") -> Any:
    """A parsed 2048-commit push as GitHub sends one: fresh SHAs, 20 authors, the last few
    hours, conventional types mixed, a few files each."""
    from functions.source import model

    data = json.loads((DATA / "push_several_commits.json").read_text())
    data["repository"]["full_name"] = full
    data["ref"] = f"refs/heads/{branch}"
    template = data["commits"][0]
    now = datetime.now(UTC)
    commits = []
    for i in range(INGEST_COMMITS):
        who = i % 20
        kind = TYPES[i % len(TYPES)]
        commits.append(
            dict(
                template,
                id=f"{rng.getrandbits(160):040x}",
                message=(f"{kind}: " if kind else "") + f"change {i} of the push",
                timestamp=(now - timedelta(seconds=10 * (INGEST_COMMITS - i))).isoformat(),
                author={
                    "name": f"Dev {who}",
                    "email": f"dev{who}@example.com",
                    "username": f"dev{who}",
                },
                modified=[f"src/module_{i % 97}/file_{j}.py" for j in range(i % 5 + 1)],
            )
        )
    data["commits"] = commits
    data["after"] = commits[-1]["id"]
    data["head_commit"] = commits[-1]
    return model.parse_push(data)


def _record_rowwise(tx: Any, repo: Any, commits: Any, *, branch: str, source: str) -> int:
    """`service.record_commits` as it was before decision 0048, the reference of the
    comparison: per commit an INSERT, a branch link (and the branch of a known commit) and
    its outbox row; then one upsert per (day, type) and (day, author) key, then the
    repository (the monthly rollup did not exist)."""
    from functions.source import service, store
    from shared.events import emit

    now = datetime.now(UTC)
    counted, latest, new = [], None, 0
    for facts in commits:
        values = service._commit_values(
            repo, facts, branch=branch, source=source, delivery_id=None, now=now
        )
        stmt = (
            db_insert(tx, store.commits)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["repository_id", "sha"])
        )
        inserted = tx.execute(stmt).rowcount == 1
        tx.execute(
            db_insert(tx, store.commit_branches)
            .values(repository_id=repo.id, sha=facts.sha, branch=branch)
            .on_conflict_do_nothing(index_elements=["repository_id", "sha", "branch"])
        )
        if not inserted:
            store.set_branch_if_missing(tx, repo.id, [facts.sha], branch)
        if latest is None or facts.committed_at >= latest.committed_at:
            latest = facts
        if not inserted:
            continue
        new += 1
        counted.append(values)
        emit(tx, service._recorded(repo, facts, values, branch, source))
    # the old count_commits: the increments summed per (day, key), then one upsert per key
    adds: dict[tuple[str, Any, str], list[int]] = {}
    for v in counted:
        day = v["committed_at"].astimezone(UTC).date()
        for dim, key in (("type", v["conventional_type"] or "none"), ("author", v["author_key"])):
            acc = adds.setdefault((dim, day, key), [0, 0, 0, 0])
            for i, m in enumerate(("additions", "deletions", "files_changed")):
                acc[i + 1] += v[m] or 0
            acc[0] += 1
    t = store.commit_days.c
    for (dim, day, key), (n, a, d, f) in sorted(adds.items()):
        stmt = db_insert(tx, store.commit_days).values(
            repository_id=repo.id,
            dim=dim,
            day=day,
            key=key,
            commits=n,
            additions=a,
            deletions=d,
            files_changed=f,
        )
        tx.execute(
            stmt.on_conflict_do_update(
                index_elements=["repository_id", "dim", "day", "key"],
                set_={m: getattr(t, m) + stmt.excluded[m] for m in store.MEASURES},
            )
        )
    if latest is not None:
        store.advance_last_seen(tx, repo.id, latest.sha, latest.committed_at)
    return new


def db_insert(tx: Any, table: Any) -> Any:
    from shared import db

    return db.insert(tx, table)


def _one_push(full: str, push: Any, *, setbased: bool) -> float:
    """source-ingest's work for one push (the ref, the commits, the rollup, the repository)
    in one transaction, the old way (the ref first, a row at a time) or the new; seconds.

    Rolled back, not committed: committed, its 2048 `commit.recorded` events would reach the
    stack's consumers (the agents analyse every recorded commit), a backlog of ~20k analyses
    under the rest of the bench. The rollback releases the locks as a commit would; the
    commit's own WAL flush (milliseconds) is not in the figure."""
    from sqlalchemy.orm import Session

    from functions.source import service, store
    from shared import db

    now = datetime.now(UTC)
    started = time.perf_counter()
    tx = Session(db.engine())
    try:
        repo = store.repository_by_key(tx, full.lower(), lock="key share" if setbased else False)
        if repo is None:
            raise RuntimeError(f"{full} is not tracked")
        ref = {
            "repository_id": repo.id,
            "ref": push.ref,
            "ref_type": push.ref_type,
            "head_sha": push.after,
            "deleted": False,
            "forced_at": None,
            "updated_at": now,
            "delivery_id": None,
        }
        if setbased:
            new = len(
                service.record_commits(
                    tx, repo, push.commits, branch=push.ref_name, source="webhook"
                )
            )
            store.move_ref(tx, **ref)
        else:
            store.move_ref(tx, **ref)
            new = _record_rowwise(tx, repo, push.commits, branch=push.ref_name, source="webhook")
        if new != INGEST_COMMITS:
            raise RuntimeError(f"{new} of {INGEST_COMMITS} commits recorded")
        return time.perf_counter() - started
    finally:
        tx.rollback()
        tx.close()


def _pair(full: str, pushes: list[Any], setbased: bool, local: Any) -> tuple[float, float]:
    """The pushes recorded at once, a thread each: wall seconds and the longest time one of
    them spent in the statements on the shared rows (`local.hot`, see ingest_pushes)."""
    waits: list[float] = []
    lock = threading.Lock()

    def work(push: Any) -> None:
        local.hot = {}
        try:
            _one_push(full, push, setbased=setbased)
            with lock:
                waits.append(local.hot.get("s", 0.0))
        finally:
            local.hot = None

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(p,)) for p in pushes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(waits) != len(pushes):
        raise RuntimeError("a concurrent push failed")
    return time.perf_counter() - started, max(waits)


def ingest_pushes(stack: Any, full: str) -> dict[str, Any]:
    """A 2048-commit push recorded in this process against the stack's database as
    source-ingest does it (rolled back, see _one_push), INGEST_ROUNDS rounds alternating the
    old and the new recorder (fresh SHAs each time, same repository), then two pushes to one
    branch at once, each way: the wall time and the longest a push spent in the statements
    on the shared rows."""
    from sqlalchemy import event

    from shared import db
    from tools import scale

    rng = random.Random(48)
    out: dict[str, Any] = {"rowwise": [], "setbased": [], "pair": {}}
    with scale.deployment_env(stack, "source-ingest"):
        local = threading.local()

        def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            local.t0 = time.perf_counter()

        def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            hot = getattr(local, "hot", None)
            if hot is not None and statement.lstrip().startswith(_HOT):
                hot["s"] = hot.get("s", 0.0) + time.perf_counter() - local.t0

        engine = db.engine()
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        try:
            for _ in range(INGEST_ROUNDS):
                for setbased in (False, True):
                    push = _ingest_push(full, rng)
                    took = _one_push(full, push, setbased=setbased)
                    out["setbased" if setbased else "rowwise"].append(took)
            for setbased in (False, True):
                pushes = [_ingest_push(full, rng, "release") for _ in range(2)]
                out["pair"]["setbased" if setbased else "rowwise"] = _pair(
                    full, pushes, setbased, local
                )
        finally:
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
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


# The commits the statistics bench loads, generated by PostgreSQL itself (no rows cross the
# wire): one repository, spread over the last year, 200 authors, the types of TYPES (the
# last is no conventional header), 1 in RARE messages carrying the word RARE_WORD (a
# selective search next to the word every message has).
RARE = 1000
RARE_WORD = "flux-capacitor"
_LOAD_SQL = """
INSERT INTO source.commits (
    repository_id, sha, message, author_name, author_email, author_login, author_key,
    branch, committed_at, recorded_at, conventional_type, conventional_scope, breaking,
    added, removed, modified, files_changed, additions, deletions, url, source, delivery_id)
SELECT CAST(:repo AS text), sha,
       (CASE WHEN kind IS NULL THEN '' ELSE kind || ': ' END) || 'change '
       || mod(g, 1000000) || ' widget'
       || (CASE WHEN mod(g, CAST(:rare AS integer)) = 0 THEN ' ' || CAST(:word AS text)
           ELSE '' END),
       'dev' || who, 'dev' || who || '@example.com', 'dev' || who,
       'dev' || who || '@example.com', 'main',
       now() - make_interval(secs => random() * 365 * 86400), now(), kind, NULL, false,
       '[]', '[]', '[]', 1 + mod(g, 12), mod(g * 7, 401), mod(g * 13, 201), NULL, 'poll', NULL
FROM (
    SELECT g, md5(CAST(:salt AS text) || g::text)
              || substr(md5(g::text || CAST(:salt AS text)), 1, 8) AS sha,
           mod(g, 200) AS who,
           (ARRAY['feat','fix','docs','chore','refactor','test','perf','ci'])[1 + mod(g, 9)] AS kind
    FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS g
) AS s
"""
LOAD_STEP = 250_000  # rows per statement (each its own transaction)
# From this many rows on, the commits' secondary indexes are dropped for the load and built
# again after it (one sorted build is several times faster than a million index inserts,
# the GIN one above all); the definitions are read back from pg_indexes, so they are the
# migrations' exactly.
REBUILD_FROM = 100_000


def _secondary_indexes(conn: Any) -> list[tuple[str, str]]:
    from sqlalchemy import text

    rows = conn.execute(
        text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "JOIN pg_class c ON c.relname = i.indexname "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname "
            "JOIN pg_index x ON x.indexrelid = c.oid "
            "WHERE i.schemaname = 'source' AND i.tablename = 'commits' AND NOT x.indisprimary "
            "ORDER BY i.indexname"
        )
    ).all()
    return [(str(n), str(d)) for n, d in rows]


def load_commits(stack: Any, full: str, count: int, *, first: int = 1) -> float:
    """Add commits number `first` .. `first + count - 1` to `full`, generated server-side
    (INSERT ... SELECT over generate_series, LOAD_STEP rows a statement; for a large load
    with the secondary indexes built afterwards, two at once), recount its daily rollup and
    VACUUM ANALYZE; seconds taken."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from functions.source import store
    from tools import scale

    engine = _engine(stack)
    started = time.perf_counter()
    try:
        with engine.begin() as conn:
            repo_id = conn.execute(
                text("SELECT id FROM source.repositories WHERE full_name_key = :k"),
                {"k": full.lower()},
            ).scalar_one()
            dropped = _secondary_indexes(conn) if count >= REBUILD_FROM else []
            for name, _ in dropped:
                conn.execute(text(f'DROP INDEX source."{name}"'))
        lo, end = first, first + count
        while lo < end:
            hi = min(end, lo + LOAD_STEP) - 1
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL synchronous_commit = off"))
                conn.execute(text("SELECT setseed(:s)"), {"s": (lo % 1000) / 1000})
                conn.execute(
                    text(_LOAD_SQL),
                    {
                        "repo": repo_id,
                        "lo": lo,
                        "hi": hi,
                        "rare": RARE,
                        "word": RARE_WORD,
                        "salt": repo_id,
                    },
                )
            lo = hi + 1
        if dropped:
            scale.rebuild(engine, [definition for _, definition in dropped])
        # The load bypasses the recorder, so the daily rollup is recounted (as the migration
        # that created it does for existing commits).
        with Session(engine) as session, session.begin():
            store.rebuild_commit_days(session, repo_id)
        # The statistics read an index-only scan, which needs the visibility map a VACUUM
        # builds; ANALYZE gives the planner the new row counts.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE source.commits"))
            conn.execute(text("VACUUM ANALYZE source.commit_days"))
            conn.execute(text("VACUUM ANALYZE source.commit_months"))
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
        for name, days, filters in (
            ("90 days", 90, {}),
            ("a year", 366, {}),
            (
                "a year, type feat (daily + monthly rollups, decision 0048)",
                366,
                {"types": ["feat"]},
            ),
        ):
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
                            **filters,
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


def _cases(full: str) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(name, route, request parameters, the store call's filters) of each measured query."""
    year = datetime.now(UTC) - timedelta(days=365)
    quarter = datetime.now(UTC) - timedelta(days=90)
    stats, listing = "/api/commits/statistics", "/api/commits"
    return [
        ("list, first page", listing, {"repository": full}, {"list": True, "repo": True}),
        (
            "list, author filter",
            listing,
            {"repository": full, "author": "dev7@example.com"},
            {"list": True, "repo": True, "author": "dev7@example.com"},
        ),
        (
            "search, a word in every message",
            listing,
            {"repository": full, "q": "change widget"},
            {"list": True, "repo": True, "search": "change widget"},
        ),
        (
            f"search, a word in 1 of {RARE} messages",
            listing,
            {"repository": full, "q": RARE_WORD.split("-")[0]},
            {"list": True, "repo": True, "search": RARE_WORD.split("-")[0]},
        ),
        (
            "statistics (rollup), default 90 days",
            stats,
            {"repository": full},
            {"repo": True, "since": quarter},
        ),
        (
            "statistics (rollup), a year",
            stats,
            {"repository": full, "since": year.isoformat()},
            {"repo": True, "since": year},
        ),
        (
            "statistics, a year, type feat (rollups)",
            stats,
            {"repository": full, "since": year.isoformat(), "type": "feat"},
            {"repo": True, "since": year, "types": ["feat"]},
        ),
    ]


def queries(base: str, token: str, fulls: list[str]) -> dict[str, list[list[float]]]:
    """Each case through the gateway for each repository (one per size), two warm-ups each,
    then STATS_REQUESTS rounds alternating between the repositories, so that both sizes
    meet the same machine load; seconds per repository."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    out: dict[str, list[list[float]]] = {}
    for i, (name, route, _, _) in enumerate(_cases(fulls[0])):
        params = [_cases(full)[i][2] for full in fulls]
        for p in params:
            for _ in range(2):
                session.get(base + route, params=p, timeout=120).raise_for_status()
        times: list[list[float]] = [[] for _ in fulls]
        for _ in range(STATS_REQUESTS):
            for k, p in enumerate(params):
                started = time.perf_counter()
                session.get(base + route, params=p, timeout=120).raise_for_status()
                times[k].append(time.perf_counter() - started)
        out[name] = times
    return out


def plans(stack: Any, full: str) -> dict[str, list[str]]:
    """The access paths PostgreSQL takes for each case's statements (EXPLAIN ANALYZE of the
    SQL the store runs, captured), e.g. `Index Only Scan using ix_commits_type on commits`."""
    from sqlalchemy import event, text
    from sqlalchemy.orm import Session

    from functions.source import store

    engine = _engine(stack)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        captured.append((statement, params))

    out: dict[str, list[str]] = {}
    try:
        with engine.connect() as conn:
            repo_id = conn.execute(
                text("SELECT id FROM source.repositories WHERE full_name_key = :k"),
                {"k": full.lower()},
            ).scalar_one()
        for name, _, _, call in _cases(full):
            filters = {k: v for k, v in call.items() if k not in ("list", "repo")}
            if call.get("repo"):
                filters["repository_ids"] = [repo_id]
            captured.clear()
            event.listen(engine, "before_cursor_execute", capture)
            try:
                with Session(engine) as session:
                    if call.get("list"):
                        store.search_commits(session, after=None, limit=50, **filters)
                    else:
                        store.commit_statistics(session, top=20, until=None, **filters)
            finally:
                event.remove(engine, "before_cursor_execute", capture)
            paths: list[str] = []
            with engine.connect() as conn:
                for statement, params in captured:
                    lines = conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + statement, params
                    ).scalars()
                    for line in lines:
                        node = line.strip().removeprefix("->").strip()
                        if " Scan " in f" {node}" and " on " in node:
                            node = node.split(" (actual")[0]
                            if node not in paths:
                                paths.append(node)
            out[name] = paths
    finally:
        engine.dispose()
    return out


def seq_scans(paths: dict[str, list[str]]) -> list[str]:
    """The cases that read the commits table sequentially (what an index should prevent)."""
    return [
        name
        for name, nodes in paths.items()
        if any(n.startswith("Seq Scan on commits") for n in nodes)
    ]


def _fresh_token(stack: Any, token: str) -> str:
    """A new admin access token (the webhook and ingest phases can outlast one), or the
    given one when the stack names no admin."""
    email, password = getattr(stack, "admin_email", None), getattr(stack, "admin_password", None)
    if not (email and password):
        return token
    resp = requests.post(
        stack.gateway_url + "/api/auth/login",
        json={"email": email, "password": password},
        timeout=30,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def run(stack: Any, token: str) -> str:
    base = stack.gateway_url
    load = os.getloadavg()[0]
    full = _repository(base, token)
    answers, statuses = webhook_answers(base, full)
    drained = drain(stack)
    large = large_answers(stack, full)
    drain(stack)
    recorded = delivery_to_recorded(stack, full)
    ingested = ingest_pushes(stack, _repository(base, token))
    sizes = [int(n) for n in os.environ.get("SOURCE_BENCH_COMMITS", "10000,1000000").split(",")]
    token = _fresh_token(stack, token)  # the run so far may have outlived the first token
    repos = [_repository(base, token) for _ in sizes]
    loaded = [load_commits(stack, full, size) for full, size in zip(repos, sizes, strict=True)]
    measured = queries(base, token, repos)
    paths = [plans(stack, full) for full in repos]
    stats_repo = repos[-1]
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
        f"Large deliveries, one at a time, {LARGE_ROUNDS} of each (target: median under 1 s; "
        "GitHub gives up after 10 s). The answer covers the HMAC, the parse, the body "
        "compressed and stored in Firestore chunks and the SQL row with its outbox event; the "
        "commits are source-ingest's (decision 0043):",
        "",
        "| body | size | median | max | status |",
        "|---|---|---|---|---|",
    ]
    for kind, size, times, codes in large:
        lines.append(
            f"| {kind} | {size / 1e6:.1f} MB | {ms(pct(times, 50))} | {ms(max(times))} | "
            f"{', '.join(map(str, sorted(codes)))} |"
        )
    before, after = pct(ingested["rowwise"], 50), pct(ingested["setbased"], 50)
    pair_before, pair_after = ingested["pair"]["rowwise"], ingested["pair"]["setbased"]
    lines += [
        "",
        f"source-ingest's transaction for one {INGEST_COMMITS}-commit push (the ref, the "
        "commits and their branch links, one `commit.recorded` outbox row each, the daily "
        "rollup, the repository), in this process against the stack's database and rolled "
        "back (committed, its events would queue ~20k commit analyses under the rest of the "
        "bench), "
        f"{INGEST_ROUNDS} rounds alternating the recorder before decision 0048 (a statement "
        "per commit, per link, per rollup key; the ref locked first) and the set-based one "
        "(multi-row statements; the shared rows last). Then two such pushes to one branch "
        "at once, each way: wall time, and the longest one of them spent in the statements "
        "on the rows they share (ref, rollup, repository), which is lock waiting:",
        "",
        "| recorder | one push, median | two at once, wall | two at once, longest wait |",
        "|---|---|---|---|",
        f"| row by row (before) | {ms(before)} | {ms(pair_before[0])} | {ms(pair_before[1])} |",
        f"| set-based (0048) | {ms(after)} | {ms(pair_after[0])} | {ms(pair_after[1])} |",
        "",
        f"One push {before / after:.1f}x faster set-based.",
    ]
    head = " | ".join(f"{n:,} commits, median" for n in sizes)
    lines += [
        "",
        "Commits over a year, one repository per size in the same database, loaded "
        "server-side (INSERT ... SELECT over generate_series; a large load builds the "
        "secondary indexes afterwards) in "
        + ", ".join(f"{t:.1f} s ({n:,})" for n, t in zip(sizes, loaded, strict=True))
        + f"; {STATS_REQUESTS} rounds per query through the gateway, alternating between "
        "the repositories so that both meet the same load. The ratio is the largest size's "
        "median over the smallest's (target: within 2x).",
        "",
        f"| query | {head} | ratio | plan at {sizes[-1]:,} |",
        "|---" * (len(sizes) + 3) + "|",
    ]
    for name, per_repo in measured.items():
        medians = [pct(t, 50) for t in per_repo]
        plan = "; ".join(f"`{p}`" for p in paths[-1].get(name, []))
        lines.append(
            f"| {name} | {' | '.join(ms(m) for m in medians)} | "
            f"{medians[-1] / medians[0]:.1f}x | {plan} |"
        )
    scans = sorted({n for found in paths for n in seq_scans(found)})
    lines += [
        "",
        "Sequential scans of the commits table: " + (", ".join(scans) if scans else "none") + ".",
        "",
        "The statistics query alone (in-process, the same database), before and after the "
        f"rollups (decisions 0038, 0048), {ROLLUP_ROUNDS} rounds alternating, at "
        f"{sizes[-1]:,} commits:",
        "",
        "| range | scan of the commits (before), median | rollups (after), median |",
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
