"""Concurrent pushes to one repository, interleaved on real PostgreSQL (decision 0048).

Two deliveries are ingested by two threads, each in its own transaction as source-ingest
runs them. One is held at a chosen statement (a hook on the engine) while the other runs,
so the interleaving is the one named, not a matter of luck:

- held after its commits went in (before its events, the rollup, the repository and the
  ref): a second push to the same branch, same day and authors, runs to its commit without
  waiting, because the shared rows are taken last;
- held at its last statement (every lock taken): a second push listing the same commits in
  the opposite order to another branch waits (observed in pg_stat_activity), then lands
  without a deadlock, and each commit is stored, counted and announced once.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from functions.source import ingest, intake, model, store
from shared import clients, db
from tests.integration import support
from tests.integration.support import configure, ok, reset_platform, wait_for

DATA = Path(__file__).resolve().parents[1] / "data" / "github"
SECRET = "a-webhook-secret-for-the-lock-tests"
WAIT_S = 60.0  # what a held or blocked thread is given before the test fails


@pytest.fixture(scope="module")
def database(pg_url: str, pubsub_emulator: Any, firestore_emulator: Any) -> Iterator[str]:
    with support.migrated_database(pg_url, "source") as url:
        yield url


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, database: str, tmp_path: Path) -> Iterator[None]:
    configure(monkeypatch, DATABASE_URL=database, SWITCHYARD_LOCAL_DIR=str(tmp_path))
    clients.firestore.cache_clear()
    intake.forget_secrets()
    yield
    reset_platform()


def _repository() -> str:
    from functions.source.api import app

    manager = support.Caller(app, ("manager",))
    owner, name = f"org-{uuid.uuid4().hex[:8]}", f"repo-{uuid.uuid4().hex[:6]}"
    body = {"owner": owner, "name": name, "webhook_secret": SECRET}
    return str(ok(manager.post("/api/repositories", json=body), 201)["full_name"])


def _commit(sha: str, i: int, at: datetime) -> dict[str, Any]:
    who = i % 3
    return {
        "id": sha,
        "distinct": True,
        "message": ("feat: " if i % 2 else "fix: ") + f"change {i}",
        "timestamp": at.isoformat(),
        "url": f"https://github.com/x/y/commit/{sha}",
        "author": {"name": f"Dev {who}", "email": f"dev{who}@example.com", "username": f"d{who}"},
        "added": [f"src/f{i}.py"],
        "removed": [],
        "modified": [],
    }


def _shas(n: int, rng: random.Random) -> list[str]:
    return [f"{rng.getrandbits(160):040x}" for _ in range(n)]


def _deliver(full: str, branch: str, shas: list[str]) -> str:
    """A signed push of `shas` (in that order) to `branch`, through source-webhook."""
    from functions.source.webhook import app

    data = json.loads((DATA / "push_several_commits.json").read_text())
    data["repository"]["full_name"] = full
    data["ref"] = f"refs/heads/{branch}"
    base = datetime.now(UTC) - timedelta(hours=5)
    data["commits"] = [
        _commit(sha, int(sha[:6], 16), base - timedelta(minutes=int(sha[:2], 16))) for sha in shas
    ]
    data["head_commit"] = data["commits"][-1]
    data["before"], data["after"] = "0" * 40, shas[-1]
    data["forced"] = data["created"] = data["deleted"] = False
    body = json.dumps(data).encode()
    delivery = str(uuid.uuid4())
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": model.sign(SECRET.encode(), body),
    }
    resp = app.test_client().post(
        "/api/webhook/github", data=body, headers=headers, content_type="application/json"
    )
    assert resp.status_code == 202, resp.get_data(as_text=True)
    return delivery


class Held:
    """Holds the thread named `who` at its first statement starting with `prefix`, inside
    its transaction, until `release()`."""

    def __init__(self, who: str, prefix: str) -> None:
        self.who, self.prefix = who, prefix
        self.reached = threading.Event()
        self.go = threading.Event()

    def __call__(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if threading.current_thread().name != self.who or self.reached.is_set():
            return
        if statement.lstrip().startswith(self.prefix):
            self.reached.set()
            assert self.go.wait(WAIT_S), "never released"

    def release(self) -> None:
        self.go.set()


def _run(name: str, delivery: str, results: dict[str, Any]) -> threading.Thread:
    def work() -> None:
        try:
            results[name] = ingest.ingest(delivery)
        except BaseException as exc:  # noqa: BLE001 - reported by the test (a deadlock)
            results[name] = exc

    thread = threading.Thread(target=work, name=name)
    thread.start()
    return thread


def _waiting_on_a_lock() -> int:
    with db.engine().connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def _facts(full: str) -> dict[str, Any]:
    with db.transaction() as tx:
        repo = store.repository_by_key(tx, full.lower())
        assert repo is not None
        c, d, b = store.commits.c, store.commit_days.c, store.commit_branches.c
        shas = tx.scalars(select(c.sha).where(c.repository_id == repo.id)).all()
        days = {
            dim: int(n or 0)
            for dim, n in tx.execute(
                select(d.dim, func.sum(d.commits)).where(d.repository_id == repo.id).group_by(d.dim)
            ).all()
        }
        links = tx.execute(select(b.sha, b.branch).where(b.repository_id == repo.id)).all()
        announced = [
            json.loads(p)["sha"]
            for p in tx.scalars(
                select(store.outbox.c.payload).where(store.outbox.c.event_type == "commit.recorded")
            ).all()
            if json.loads(p)["repository_id"] == repo.id
        ]
        refs = {
            r.ref: r.head_sha
            for r in tx.execute(
                select(store.refs).where(store.refs.c.repository_id == repo.id)
            ).all()
        }
    return {
        "shas": sorted(shas),
        "days": days,
        "links": sorted((str(s), str(br)) for s, br in links),
        "announced": sorted(announced),
        "refs": refs,
        "last_seen": repo.last_seen_sha,
    }


def test_a_push_does_not_wait_for_another_push_still_recording_its_commits() -> None:
    full = _repository()
    rng = random.Random(1)
    first, second = _shas(40, rng), _shas(40, rng)
    a, b = _deliver(full, "main", first), _deliver(full, "main", second)
    held = Held("A", "INSERT INTO source.outbox")  # A's commits are in, nothing shared yet
    event.listen(db.engine(), "before_cursor_execute", held)
    results: dict[str, Any] = {}
    try:
        thread_a = _run("A", a, results)
        assert held.reached.wait(WAIT_S)
        thread_b = _run("B", b, results)
        thread_b.join(WAIT_S)  # B runs to its commit while A still holds its transaction
        assert not thread_b.is_alive(), "the second push waited for the first"
        assert results["B"] == "processed"
        assert "A" not in results
    finally:
        held.release()
        thread_a.join(WAIT_S)
        # removed once no thread is inside it (SQLAlchemy iterates the listeners)
        event.remove(db.engine(), "before_cursor_execute", held)
    assert results["A"] == "processed"
    facts = _facts(full)
    everything = sorted(first + second)
    assert facts["shas"] == everything
    assert facts["announced"] == everything  # one commit.recorded each
    assert facts["days"] == {"type": 80, "author": 80}  # the rollup counts each once
    assert facts["links"] == [(s, "main") for s in everything]
    assert facts["refs"] == {"refs/heads/main": first[-1]}  # A committed last
    with db.transaction() as tx:
        assert store.delivery(tx, a).commits_recorded == 40  # type: ignore[union-attr]
        assert store.delivery(tx, b).commits_recorded == 40  # type: ignore[union-attr]


def test_overlapping_pushes_wait_in_one_order_and_land_exactly_once() -> None:
    full = _repository()
    rng = random.Random(2)
    shared, only_a, only_b = _shas(30, rng), _shas(10, rng), _shas(10, rng)
    # the shared commits listed in opposite orders: row by row, in the listed order, the two
    # transactions would each hold a commit the other needs
    a = _deliver(full, "main", only_a + shared)
    b = _deliver(full, "release", list(reversed(shared)) + only_b)
    held = Held("A", "INSERT INTO source.refs")  # A's last statement: every lock is taken
    event.listen(db.engine(), "before_cursor_execute", held)
    results: dict[str, Any] = {}
    try:
        thread_a = _run("A", a, results)
        assert held.reached.wait(WAIT_S)
        thread_b = _run("B", b, results)
        wait_for(_waiting_on_a_lock, timeout=WAIT_S)  # B is blocked on A's rows
        assert thread_b.is_alive() and not results
    finally:
        held.release()
        thread_a.join(WAIT_S)
        thread_b.join(WAIT_S)
        event.remove(db.engine(), "before_cursor_execute", held)
    assert results == {"A": "processed", "B": "processed"}, results  # no deadlock either
    facts = _facts(full)
    everything = sorted(shared + only_a + only_b)
    assert facts["shas"] == everything
    assert facts["announced"] == everything  # the shared ones announced once, by A
    assert facts["days"] == {"type": 50, "author": 50}
    assert facts["links"] == sorted(
        [(s, "main") for s in only_a + shared] + [(s, "release") for s in shared + only_b]
    )
    assert facts["refs"] == {"refs/heads/main": shared[-1], "refs/heads/release": only_b[-1]}
    with db.transaction() as tx:
        assert store.delivery(tx, a).commits_recorded == 40  # type: ignore[union-attr]
        assert store.delivery(tx, b).commits_recorded == 10  # type: ignore[union-attr]
        c = store.commits.c
        branches = dict(tx.execute(select(c.sha, c.branch).where(c.sha.in_(shared + only_b))).all())
    assert {branches[s] for s in shared} == {"main"}  # first seen there
    assert {branches[s] for s in only_b} == {"release"}
