"""The source monitor against a local fake of GitHub's REST API (tests/integration/
test_source_fakegithub.py) on PostgreSQL: polling records each commit once even when the
webhook brought it first, conditional requests (ETag / 304), the token from shared.secrets,
rate limits (stop early, remember the reset), and the schedule's start/stop/status through
the local scheduler's control endpoint."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from emulators._scheduler import Job, LocalScheduler
from functions.source import ingest, intake, model, monitor, store
from shared import clients, db
from shared import secrets as ssecrets
from shared.config import settings
from tests.integration import support
from tests.integration.support import configure, migrated_database, reset_platform
from tests.integration.test_source_api import deliver, payload_for
from tests.integration.test_source_fakegithub import FakeGitHub, rest_commit

SECRET = "a-webhook-secret-of-some-length"
TOKEN = "ghp_" + "t" * 36  # noqa: S105 - a fake token for the fake GitHub


@pytest.fixture(scope="module")
def fake_github():
    with FakeGitHub() as gh:
        yield gh


@pytest.fixture(scope="module")
def backend(tmp_path_factory, pubsub_emulator, firestore_emulator, pg_url):
    # a database of its own: the monitor polls every tracked repository, and other tests
    # (the contract fuzzer through the stack) leave theirs in the session's database
    with migrated_database(pg_url, "source") as url:
        env = {
            "SWITCHYARD_LOCAL_DIR": str(tmp_path_factory.mktemp("source-monitor")),
            "DATABASE_URL": url,
        }
        reset_platform()
        clients.firestore.cache_clear()
        yield env


@pytest.fixture(autouse=True)
def env(monkeypatch, backend, fake_github):
    configure(monkeypatch, **backend, GITHUB_API_URL=fake_github.url)
    intake.forget_secrets()
    fake_github.remaining = fake_github.rate_limit
    fake_github.requests.clear()
    yield
    reset_platform()


def caller(*roles):
    from functions.source.api import app

    return support.Caller(app, roles)


@pytest.fixture()
def repos():
    """Repositories made by one test, deleted after it (the poller walks every one)."""
    made: list[dict] = []
    manager = caller("manager")

    def make(**over):
        body = {
            "owner": f"org-{uuid.uuid4().hex[:8]}",
            "name": "hello-world",
            "polling": True,
            "webhook_secret": SECRET,
            **over,
        }
        resp = manager.post("/api/repositories", json=body)
        assert resp.status_code == 201, resp.get_data(as_text=True)
        made.append(resp.get_json())
        return resp.get_json()

    yield make
    for repo in made:
        manager.delete(f"/api/repositories/{repo['full_name']}")


def recorded(full):
    with db.transaction() as tx:
        rows = tx.execute(
            select(store.outbox.c.payload)
            .where(store.outbox.c.event_type == "commit.recorded")
            .order_by(store.outbox.c.created_at)
        ).all()
    return [p for p in (json.loads(r.payload) for r in rows) if p["repository"] == full]


def commit_count(repo_id):
    with db.transaction() as tx:
        return tx.execute(
            select(func.count())
            .select_from(store.commits)
            .where(store.commits.c.repository_id == repo_id)
        ).scalar_one()


def same_commits_as_the_push_file(owner, name):
    """The three commits of tests/data/github/push_several_commits.json as REST shows them,
    plus one the webhook never delivered."""
    push = payload_for("push_several_commits.json", f"{owner}/{name}")
    items = [
        rest_commit(c["id"], c["message"], datetime.fromisoformat(c["timestamp"]), owner=owner)
        for c in push["commits"]
    ]
    missed = rest_commit(
        "6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192",
        "perf(stats): cache the day buckets",
        datetime(2026, 11, 30, 10, 30, tzinfo=UTC),
        owner=owner,
        files=[("stats.py", "modified", 12, 3), ("cache.py", "added", 40, 0)],
    )
    return push, items + [missed]


def test_webhook_and_poller_together_store_each_commit_once(repos, fake_github):
    from functions.source.webhook import app as webhook_app

    repo = repos()
    owner, name = repo["owner"], repo["name"]
    push, rest = same_commits_as_the_push_file(owner, name)
    fake_github.add(owner, name, *rest)
    ssecrets.put(settings().github_token_secret, TOKEN)

    delivery = str(uuid.uuid4())
    resp = deliver(webhook_app.test_client(), "push", push, SECRET, delivery=delivery)
    assert resp.status_code == 202
    assert ingest.ingest(delivery) == "processed"

    run = monitor.poll("manual")
    assert (run.repositories_checked, run.commits_found, run.stopped_early) == (1, 1, False)
    assert run.rate_limit_remaining == fake_github.rate_limit - run.requests
    assert commit_count(repo["id"]) == 4
    events = recorded(repo["full_name"])
    assert sorted(e["source"] for e in events) == ["poll", "webhook", "webhook", "webhook"]
    (polled,) = [e for e in events if e["source"] == "poll"]
    assert polled["sha"].startswith("6f70819") and polled["conventional_type"] == "perf"
    assert (polled["additions"], polled["deletions"], polled["files_known"]) == (52, 3, True)
    assert polled["added"] == ["cache.py"] and polled["branch"] == "main"

    listing = [r for r in fake_github.requests if r["path"].endswith("/commits")]
    assert listing[0]["query"]["sha"] == "main" and listing[0]["query"]["per_page"] == "100"
    horizon = datetime.fromisoformat(repo["created_at"].replace("Z", "+00:00")) - monitor.HORIZON
    assert listing[0]["query"]["since"] == horizon.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listing[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert listing[0]["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    assert "If-None-Match" not in listing[0]["headers"]

    # the next poll asks conditionally: 304, nothing new, no rate limit spent on the list
    fake_github.requests.clear()
    again = monitor.poll("schedule", datetime.now(UTC))
    assert (again.commits_found, again.not_modified, again.repositories_checked) == (0, 1, 1)
    (conditional,) = fake_github.requests
    assert conditional["headers"]["If-None-Match"].startswith('W/"')
    assert conditional["query"] == listing[0]["query"]  # the same URL: its ETag applies
    assert commit_count(repo["id"]) == 4 and len(recorded(repo["full_name"])) == 4

    # the webhook redelivering the push later adds nothing either
    late = str(uuid.uuid4())
    deliver(webhook_app.test_client(), "push", push, SECRET, delivery=late)
    assert ingest.ingest(late) == "processed"
    with db.transaction() as tx:
        assert store.delivery(tx, late).commits_recorded == 0
    assert TOKEN not in json.dumps([r.__dict__ for r in [run, again]], default=str)
    ssecrets.delete(settings().github_token_secret)


def test_the_poller_stops_early_on_the_rate_limit(repos, fake_github):
    first, second = repos(), repos()
    for repo in (first, second):
        _, rest = same_commits_as_the_push_file(repo["owner"], repo["name"])
        fake_github.add(repo["owner"], repo["name"], *rest)
    fake_github.remaining = monitor.RATE_RESERVE + 1  # one list request, then the reserve
    run = monitor.poll("manual")
    assert run.stopped_early and run.repositories_checked == 1
    assert run.rate_limit_remaining == monitor.RATE_RESERVE
    assert run.rate_limit_reset == datetime.fromtimestamp(fake_github.reset, UTC)
    checked = first if commit_count(first["id"]) else second
    assert commit_count(checked["id"]) == 4
    # no budget for the single-commit requests: recorded without files, said so
    assert {e["files_known"] for e in recorded(checked["full_name"])} == {False}

    fake_github.remaining = 0
    spent = monitor.poll("manual")
    assert spent.stopped_early and spent.commits_found == 0 and spent.rate_limit_remaining == 0


def test_a_repository_github_does_not_know_is_reported_and_others_still_polled(repos, fake_github):
    known = repos()
    repos(owner="gone-" + uuid.uuid4().hex[:6], name="missing")
    _, rest = same_commits_as_the_push_file(known["owner"], known["name"])
    fake_github.add(known["owner"], known["name"], *rest)
    run = monitor.poll("manual")
    assert run.repositories_checked == 1 and run.commits_found == 4
    assert "404" in (run.error or "") and "missing" in (run.error or "")


def test_the_monitor_api_controls_the_local_schedule(repos, fake_github):
    manager, viewer = caller("manager"), caller("viewer")
    down = viewer.get("/api/source/monitor/status")
    assert down.status_code == 200 and down.get_json()["state"] == "UNKNOWN"
    stopped = manager.post("/api/source/monitor/stop")
    assert stopped.status_code == 503 and stopped.mimetype == "application/problem+json"

    scheduler = LocalScheduler(
        [Job(name="source-monitor", schedule="*/10 * * * *", url="http://127.0.0.1:9/")],
        state_dir=settings().local_dir / "scheduler",
        log=lambda _: None,
    ).start()
    try:
        for path in ("stop", "start", "run-once"):
            resp = viewer.post(f"/api/source/monitor/{path}")
            assert resp.status_code == 403, path
        paused = manager.post("/api/source/monitor/stop").get_json()
        assert paused == {"state": "PAUSED", "next_run": None}
        assert scheduler.jobs["source-monitor"].paused

        repo = repos()
        _, rest = same_commits_as_the_push_file(repo["owner"], repo["name"])
        fake_github.add(repo["owner"], repo["name"], *rest)
        once = manager.post("/api/source/monitor/run-once")
        assert once.status_code == 200, once.get_data(as_text=True)
        assert once.get_json()["commits_found"] == 4 and once.get_json()["trigger"] == "manual"

        status = viewer.get("/api/source/monitor/status").get_json()
        assert status["state"] == "PAUSED" and status["next_run"] is None
        assert status["last_run"]["id"] == once.get_json()["id"]
        assert (status["repositories_checked"], status["commits_found"]) == (1, 4)
        assert status["rate_limit_remaining"] == fake_github.remaining
        assert status["repositories_polled"] >= 1

        resumed = manager.post("/api/source/monitor/start").get_json()
        assert resumed["state"] == "ENABLED"
        next_run = datetime.fromisoformat(resumed["next_run"].replace("Z", "+00:00"))
        assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(minutes=10)
        assert viewer.get("/api/source/monitor/status").get_json()["state"] == "ENABLED"
    finally:
        scheduler.stop()


def test_scheduled_entry_point_runs_a_poll(repos, fake_github):
    import functions_framework

    repo = repos()
    _, rest = same_commits_as_the_push_file(repo["owner"], repo["name"])
    fake_github.add(repo["owner"], repo["name"], *rest)
    app = functions_framework.create_app("monitor", "functions/source/main.py", "http")
    resp = app.test_client().post(
        "/",
        headers={
            "X-CloudScheduler": "true",
            "X-CloudScheduler-JobName": "source-monitor",
            "X-CloudScheduler-ScheduleTime": "2026-12-01T09:00:00Z",
        },
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["commits_found"] == 4
    with db.transaction() as tx:
        (last,) = store.last_runs(tx, 1)
    assert last.trigger == "schedule"
    assert last.scheduled_for == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert model.MonitorRun.__dataclass_fields__  # domain object back from the store
