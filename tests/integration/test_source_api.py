"""source-api and source-webhook through the Flask test client with real tokens, on
PostgreSQL (and SQLite for the portable parts) with the Firestore and Pub/Sub emulators:
repositories (secrets kept in shared.secrets, never returned), the signed webhook (GitHub's
shapes from tests/data/github/), de-duplication, the ingest of every kind of push and of
pull requests, commits search, statistics and RBAC."""

from __future__ import annotations

import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from functions.source import ingest, intake, model, rawstore, store
from shared import clients, db
from shared import secrets as ssecrets
from shared.config import settings
from shared.migrate import upgrade
from tests.integration import support
from tests.integration.support import assert_problem, configure, ok, reset_platform

PROBLEM = "application/problem+json"
DATA = Path(__file__).resolve().parents[1] / "data" / "github"


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def backend(request, tmp_path_factory, pubsub_emulator, firestore_emulator):
    local_dir = tmp_path_factory.mktemp(f"source-{request.param}")
    env = {"SWITCHYARD_LOCAL_DIR": str(local_dir), "SWITCHYARD_ENV": "test"}
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    with pytest.MonkeyPatch.context() as mp:
        configure(mp, **env)
        upgrade("source")
        upgrade("source")  # idempotent
        assert db.engine().dialect.name == request.param
    reset_platform()
    clients.firestore.cache_clear()
    return env


@pytest.fixture(autouse=True)
def env(monkeypatch, backend):
    configure(monkeypatch, **backend)
    intake.forget_secrets()
    yield
    reset_platform()


def api_caller(roles=("viewer",)):
    from functions.source.api import app

    return support.Caller(app, roles)


@pytest.fixture()
def manager():
    return api_caller(("manager",))


@pytest.fixture()
def operator():
    return api_caller(("operator",))


@pytest.fixture()
def viewer():
    return api_caller(("viewer",))


@pytest.fixture()
def hook():
    from functions.source.webhook import app

    return app.test_client()


def new_repo(manager, *, polling=False, secret=None, **over):
    owner, name = f"org-{uuid.uuid4().hex[:8]}", f"repo-{uuid.uuid4().hex[:6]}"
    body = {"owner": owner, "name": name, "polling": polling, **over}
    if secret is not None:
        body["webhook_secret"] = secret
    return ok(manager.post("/api/repositories", json=body), 201)


def payload_for(name: str, full_name: str) -> dict:
    data = json.loads((DATA / name).read_text())
    data["repository"]["full_name"] = full_name
    data["repository"]["name"] = full_name.split("/")[1]
    return data


def deliver(hook, event, data, secret, *, delivery=None, signature=None, raw=None, headers=None):
    body = raw if raw is not None else json.dumps(data).encode()
    sent = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "109948940",
        "User-Agent": "GitHub-Hookshot/044aadd",
        **(headers or {}),
    }
    if signature is not False:
        sent["X-Hub-Signature-256"] = signature or model.sign(secret.encode(), body)
    return hook.post(
        "/api/webhook/github", data=body, headers=sent, content_type="application/json"
    )


def outbox(event_type):
    with db.transaction() as tx:
        rows = tx.execute(
            select(store.outbox)
            .where(store.outbox.c.event_type == event_type)
            .order_by(store.outbox.c.created_at)
        ).all()
    return [json.loads(r.payload) for r in rows]


def delivery_row(delivery_id):
    with db.transaction() as tx:
        return store.delivery(tx, delivery_id)


def firestore_doc(delivery_id):
    return clients.firestore().collection(rawstore.COLLECTION).document(delivery_id).get()


SECRET = "a-webhook-secret-of-some-length"


# --- repositories ----------------------------------------------------------------------------


def test_repository_lifecycle_keeps_the_secret_out_of_every_answer(manager, viewer):
    created = new_repo(manager, secret=SECRET, default_branch="trunk", polling=True)
    full = f"{created['owner']}/{created['name']}"
    assert created["full_name"] == full and created["provider"] == "github"
    assert created["has_webhook_secret"] is True and created["default_branch"] == "trunk"
    assert "webhook_secret" not in created and SECRET not in json.dumps(created)
    name, _, version = created["webhook_secret_ref"].partition("@")
    assert name == f"source-webhook-{created['id']}"
    assert ssecrets.get(name, version) == SECRET  # kept in the secret store, encrypted
    assert ok(viewer.get(f"/api/repositories/{full.upper()}")) == created  # case-insensitive
    listed = ok(viewer.get("/api/repositories", query_string={"limit": 100}))
    assert any(r["id"] == created["id"] for r in listed["items"])
    assert SECRET not in json.dumps(listed)

    rotated = ok(manager.put(f"/api/repositories/{full}", json={"generate_webhook_secret": True}))
    generated = rotated["webhook_secret"]
    assert len(generated) == 64 and rotated["version"] == 2
    assert rotated["webhook_secret_ref"] != created["webhook_secret_ref"]
    new_name, _, new_version = rotated["webhook_secret_ref"].partition("@")
    assert ssecrets.get(new_name, new_version) == generated
    again = ok(viewer.get(f"/api/repositories/{full}"))
    assert "webhook_secret" not in again and generated not in json.dumps(again)

    changed = ok(manager.put(f"/api/repositories/{full}", json={"polling": False, "version": 2}))
    assert changed["polling"] is False and changed["version"] == 3
    stale = manager.put(f"/api/repositories/{full}", json={"polling": True, "version": 2})
    assert_problem(stale, 409)
    removed = ok(manager.put(f"/api/repositories/{full}", json={"remove_webhook_secret": True}))
    assert removed["has_webhook_secret"] is False and removed["webhook_secret_ref"] is None
    assert not ssecrets.exists(new_name)

    events = [e for e in outbox("repository.updated") if e["id"] == created["id"]]
    assert [sorted(e["changed"]) for e in events] == [
        ["webhook_secret"],
        ["polling"],
        ["webhook_secret"],
    ]
    assert all(SECRET not in json.dumps(e) and generated not in json.dumps(e) for e in events)

    resp = manager.delete(f"/api/repositories/{full}")
    assert resp.status_code == 204
    assert_problem(viewer.get(f"/api/repositories/{full}"), 404)
    assert [e["id"] for e in outbox("repository.deleted")].count(created["id"]) == 1


def test_a_generated_secret_is_shown_once_on_create(manager, viewer):
    created = ok(
        manager.post(
            "/api/repositories",
            json={
                "owner": "o-" + uuid.uuid4().hex[:6],
                "name": "r",
                "generate_webhook_secret": True,
            },
        ),
        201,
    )
    assert len(created["webhook_secret"]) == 64
    full = created["full_name"]
    assert "webhook_secret" not in ok(viewer.get(f"/api/repositories/{full}"))


def test_repository_rules_and_roles(manager, operator, viewer):
    body = {"owner": "o-" + uuid.uuid4().hex[:6], "name": "r"}
    assert_problem(viewer.post("/api/repositories", json=body), 403)
    assert_problem(operator.post("/api/repositories", json=body), 403)
    ok(manager.post("/api/repositories", json=body), 201)
    dup = dict(body, owner=body["owner"].upper())
    assert_problem(manager.post("/api/repositories", json=dup), 409)
    for bad in (
        {"owner": "-x", "name": "r"},
        {"owner": "o", "name": ".."},
        {"owner": "o", "name": "r", "provider": "gitlab"},
        {"owner": "o", "name": "r", "webhook_secret": "short"},
        {"owner": "o", "name": "r", "default_branch": "a..b"},
        {"owner": "o", "name": "r", "webhook_secret": SECRET, "generate_webhook_secret": True},
        {"owner": "o", "name": "r", "unknown": 1},
    ):
        assert_problem(manager.post("/api/repositories", json=bad), 422)
    full = f"{body['owner']}/r"
    assert_problem(viewer.put(f"/api/repositories/{full}", json={"polling": True}), 403)
    assert_problem(viewer.delete(f"/api/repositories/{full}"), 403)
    assert_problem(manager.put(f"/api/repositories/{full}", json={"polling": None}), 422)
    assert_problem(manager.get("/api/repositories/nobody/nothing"), 404)


def test_every_route_needs_a_token():
    from functions.source.api import app

    anonymous = app.test_client()
    for path in (
        "/api/repositories",
        "/api/commits",
        "/api/commits/statistics",
        "/api/webhook/events",
        "/api/webhook/statistics",
        "/api/source/monitor/status",
    ):
        assert_problem(anonymous.get(path), 401)


# --- the webhook -----------------------------------------------------------------------------


def test_signed_push_is_stored_once_and_ingested_into_commits(manager, viewer, hook):
    repo = new_repo(manager, secret=SECRET)
    full = repo["full_name"]
    data = payload_for("push_several_commits.json", full)
    delivery = str(uuid.uuid4())
    resp = deliver(hook, "push", data, SECRET, delivery=delivery)
    assert ok(resp, 202) == {"status": "accepted", "delivery_id": delivery, "event": "push"}
    row = delivery_row(delivery)
    assert (row.event, row.status, row.repository, row.size_bytes) == (
        "push",
        "received",
        full,
        len(json.dumps(data).encode()),
    )
    assert firestore_doc(delivery).exists
    (received,) = [e for e in outbox("github.delivery.received") if e["delivery_id"] == delivery]
    assert received["repository"] == full and received["event"] == "push"

    # a redelivery (GitHub's "Redeliver" keeps the delivery id) is a 200 no-op
    again = deliver(hook, "push", data, SECRET, delivery=delivery)
    assert ok(again, 200)["status"] == "duplicate"
    assert len([e for e in outbox("github.delivery.received") if e["delivery_id"] == delivery]) == 1

    assert ingest.ingest(delivery) == "processed"
    assert ingest.ingest(delivery) == "processed"  # a second delivery of the event: nothing
    row = delivery_row(delivery)
    assert row.commits_recorded == 3 and row.processed_at is not None
    shown = ok(viewer.get(f"/api/webhook/events/{delivery}"))
    assert (shown["id"], shown["status"], shown["commits_recorded"]) == (delivery, "processed", 3)
    assert_problem(viewer.get(f"/api/webhook/events/{uuid.uuid4()}"), 404)
    recorded = [e for e in outbox("commit.recorded") if e["repository"] == full]
    assert [e["sha"][:7] for e in recorded] == ["1a2b3c4", "2b3c4d5", "3c4d5e6"]
    first = recorded[0]
    assert first == {
        "repository": full,
        "repository_id": repo["id"],
        "sha": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
        "author": "Mona Lisa",
        "author_email": "mona@example.com",
        "author_login": "mona",
        "message": "feat(api): add commit statistics endpoint\n\nGroups by day and type.",
        "branch": "main",
        "timestamp": "2026-11-30T08:15:02.000000Z",
        "added": ["api/stats.py"],
        "removed": [],
        "modified": ["api/__init__.py"],
        "files_known": True,
        "additions": None,
        "deletions": None,
        "url": "https://github.com/octo-org/hello-world/commit/1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
        "source": "webhook",
        "conventional_type": "feat",
        "conventional_scope": "api",
        "breaking": False,
    }
    page = ok(viewer.get(f"/api/repositories/{full}/commits"))
    assert [c["sha"][:7] for c in page["items"]] == ["3c4d5e6", "2b3c4d5", "1a2b3c4"]
    assert page["items"][0]["breaking"] is True and page["items"][0]["branches"] == []
    one = ok(viewer.get(f"/api/commits/{first['sha']}"))
    assert one["branches"] == ["main"] and one["files_changed"] == 2
    assert ok(viewer.get(f"/api/repositories/{full}"))["last_seen_sha"].startswith("3c4d5e6")


def test_bad_or_missing_signature_is_401_and_nothing_is_stored(manager, hook):
    repo = new_repo(manager, secret=SECRET)
    data = payload_for("push_several_commits.json", repo["full_name"])
    body = json.dumps(data).encode()
    cases = {
        "missing": dict(signature=False),
        "wrong secret": dict(signature=model.sign(b"another-secret-entirely", body)),
        "tampered": dict(signature=model.sign(SECRET.encode(), body + b" ")),
        "sha1 only": dict(signature="sha1=" + "0" * 40),
    }
    for why, kw in cases.items():
        delivery = str(uuid.uuid4())
        problem = assert_problem(deliver(hook, "push", data, SECRET, delivery=delivery, **kw), 401)
        assert "X-Hub-Signature-256" in problem["detail"], why
        assert delivery_row(delivery) is None, why
        assert not firestore_doc(delivery).exists, why

    # a repository that is not tracked, or has no secret, cannot be verified either
    for full in ("nobody/nothing", new_repo(manager)["full_name"]):
        delivery = str(uuid.uuid4())
        other = payload_for("push_several_commits.json", full)
        assert_problem(deliver(hook, "push", other, SECRET, delivery=delivery), 401)
        assert delivery_row(delivery) is None


def test_ping_is_answered_and_other_events_are_stored_ignored(manager, viewer, hook):
    repo = new_repo(manager, secret=SECRET)
    full = repo["full_name"]
    ping_id, star_id = str(uuid.uuid4()), str(uuid.uuid4())
    pong = ok(deliver(hook, "ping", payload_for("ping.json", full), SECRET, delivery=ping_id))
    assert pong["status"] == "pong"
    assert delivery_row(ping_id).status == "processed"
    star = {
        "action": "created",
        "starred_at": "2026-11-30T12:00:00Z",
        "repository": {"full_name": full},
        "sender": {"login": "mona"},
    }
    assert ok(deliver(hook, "star", star, SECRET, delivery=star_id))["status"] == "ignored"
    assert delivery_row(star_id).status == "ignored"
    received = [e["delivery_id"] for e in outbox("github.delivery.received")]
    assert ping_id not in received and star_id not in received
    events = ok(viewer.get("/api/webhook/events", query_string={"repository": full}))
    assert {(e["id"], e["status"]) for e in events["items"]} == {
        (ping_id, "processed"),
        (star_id, "ignored"),
    }
    assert json.loads(json.dumps(events["items"][-1]["summary"]))["hook_id"] == 109948940


def test_bad_requests_to_the_webhook(manager, hook):
    repo = new_repo(manager, secret=SECRET)
    data = payload_for("push_several_commits.json", repo["full_name"])
    assert_problem(deliver(hook, "push", data, SECRET, headers={"X-GitHub-Event": ""}), 400)
    resp = hook.post(
        "/api/webhook/github",
        data=b"{}",
        headers={"X-GitHub-Event": "push"},
        content_type="application/json",
    )
    assert_problem(resp, 400)
    assert_problem(deliver(hook, "push", data, SECRET, raw=b"not json{"), 400)
    # over GitHub's 25 MB cap: 413 from the declared length, before reading the body
    big = hook.post(
        "/api/webhook/github",
        data=b"x" * (model.MAX_PAYLOAD_BYTES + 1),
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256=" + "0" * 64,
        },
        content_type="application/json",
    )
    assert_problem(big, 413)


def test_a_full_body_budget_answers_503_and_reads_nothing(manager, hook, monkeypatch):
    from functions.source import webhook

    repo = new_repo(manager, secret=SECRET)
    data = payload_for("push_several_commits.json", repo["full_name"])
    size = len(json.dumps(data).encode())
    monkeypatch.setattr(webhook, "BUDGET_WAIT_S", 0.0)
    delivery = str(uuid.uuid4())
    # other deliveries hold all but fewer bytes than this one's
    with webhook.BUDGET.hold(webhook.IN_FLIGHT_BODY_BYTES - size + 1, 0):
        busy = deliver(hook, "push", data, SECRET, delivery=delivery)
    body = assert_problem(busy, 503)
    assert busy.headers["Retry-After"] == str(webhook.RETRY_AFTER_S)
    assert "retry" in body["detail"]
    assert delivery_row(delivery) is None and not firestore_doc(delivery).exists
    # once they are done, the same delivery (GitHub's redelivery keeps the id) is taken
    assert ok(deliver(hook, "push", data, SECRET, delivery=delivery), 202)["status"] == "accepted"
    assert webhook.BUDGET.used == 0


def test_form_encoded_deliveries_are_verified_over_the_raw_body(manager, hook):
    from urllib.parse import urlencode

    repo = new_repo(manager, secret=SECRET)
    data = payload_for("push_forced.json", repo["full_name"])
    raw = urlencode({"payload": json.dumps(data)}).encode()
    delivery = str(uuid.uuid4())
    resp = hook.post(
        "/api/webhook/github",
        data=raw,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": model.sign(SECRET.encode(), raw),
        },
        content_type="application/x-www-form-urlencoded",
    )
    assert ok(resp, 202)["status"] == "accepted"
    assert ingest.ingest(delivery) == "processed"
    assert delivery_row(delivery).commits_recorded == 1


def test_a_large_delivery_is_stored_in_chunks_and_read_back(manager, hook):
    repo = new_repo(manager, secret=SECRET)
    data = payload_for("push_several_commits.json", repo["full_name"])
    # incompressible padding: the compressed body (~4.3 MB) spans five chunk documents
    # written in two batches (a batch stays under the 4 MiB gRPC message limit)
    data["padding"] = os.urandom(4_000_000).hex()
    delivery = str(uuid.uuid4())
    ok(deliver(hook, "push", data, SECRET, delivery=delivery), 202)
    row = delivery_row(delivery)
    assert row.chunks >= 5 and row.size_bytes > 8_000_000
    assert row.stored_bytes > rawstore.BATCH_BYTES
    body, ctype = rawstore.load(delivery)
    assert json.loads(body) == data and ctype == "application/json"
    assert ingest.ingest(delivery) == "processed"


# --- ingest of every kind of push -------------------------------------------------------------


def push_and_ingest(hook, full, name, event="push"):
    delivery = str(uuid.uuid4())
    data = payload_for(name, full)
    resp = deliver(hook, event, data, SECRET, delivery=delivery)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    assert ingest.ingest(delivery) == "processed"
    return delivery_row(delivery)


def test_forced_push_branch_deletion_and_tag(manager, viewer, hook):
    repo = new_repo(manager, secret=SECRET)
    full, rid = repo["full_name"], repo["id"]
    push_and_ingest(hook, full, "push_several_commits.json")
    forced = push_and_ingest(hook, full, "push_forced.json")
    assert forced.commits_recorded == 1 and json.loads(forced.summary)["forced"] is True
    with db.transaction() as tx:
        ref = store.ref_of(tx, rid, "refs/heads/feature/retry")
    assert ref["forced_at"] is not None and ref["head_sha"].startswith("4d5e6f7")
    assert not ref["deleted"]

    deleted = push_and_ingest(hook, full, "push_branch_deleted.json")
    assert deleted.commits_recorded == 0 and json.loads(deleted.summary)["deleted"] is True
    with db.transaction() as tx:
        ref = store.ref_of(tx, rid, "refs/heads/feature/retry")
    assert ref["deleted"] and ref["head_sha"] is None and ref["forced_at"] is not None
    # the commit the deleted branch carried stays recorded
    on_branch = ok(
        viewer.get("/api/commits", query_string={"repository": full, "branch": "feature/retry"})
    )
    assert [c["sha"][:7] for c in on_branch["items"]] == ["4d5e6f7"]

    tag = push_and_ingest(hook, full, "push_tag.json")
    assert tag.commits_recorded == 0 and json.loads(tag.summary)["ref_type"] == "tag"
    with db.transaction() as tx:
        assert store.ref_of(tx, rid, "refs/tags/v1.4.0")["ref_type"] == "tag"
        count = tx.execute(
            select(func.count())
            .select_from(store.commits)
            .where(store.commits.c.repository_id == rid)
        ).scalar_one()
    assert count == 4
    assert len([e for e in outbox("commit.recorded") if e["repository"] == full]) == 4


def test_the_same_commits_pushed_to_a_second_branch_are_linked_not_duplicated(
    manager, viewer, hook
):
    repo = new_repo(manager, secret=SECRET)
    full = repo["full_name"]
    push_and_ingest(hook, full, "push_several_commits.json")
    data = payload_for("push_several_commits.json", full)
    data["ref"] = "refs/heads/release"
    for c in data["commits"]:
        c["distinct"] = False
    delivery = str(uuid.uuid4())
    ok(deliver(hook, "push", data, SECRET, delivery=delivery), 202)
    ingest.ingest(delivery)
    assert delivery_row(delivery).commits_recorded == 0
    commits = ok(viewer.get("/api/commits", query_string={"repository": full, "branch": "release"}))
    assert len(commits["items"]) == 3
    assert all(c["branch"] == "main" for c in commits["items"])  # first seen there
    sha = commits["items"][0]["sha"]
    assert ok(viewer.get(f"/api/commits/{sha}", query_string={"repository": full}))["branches"] == [
        "main",
        "release",
    ]


def test_pull_request_is_summarised_and_a_broken_payload_fails(manager, viewer, hook):
    repo = new_repo(manager, secret=SECRET)
    full = repo["full_name"]
    pr = push_and_ingest(hook, full, "pull_request_opened.json", event="pull_request")
    summary = json.loads(pr.summary)
    assert (summary["action"], summary["number"], summary["head"]["ref"]) == (
        "opened",
        42,
        "feature/retry",
    )
    broken = payload_for("push_several_commits.json", full)
    broken["commits"][0]["timestamp"] = "yesterday"
    delivery = str(uuid.uuid4())
    ok(deliver(hook, "push", broken, SECRET, delivery=delivery), 202)
    assert ingest.ingest(delivery) == "failed"
    row = delivery_row(delivery)
    assert row.status == "failed" and "timestamp" in row.error
    waiting = ok(viewer.get("/api/webhook/events/unprocessed", query_string={"repository": full}))
    assert [d["id"] for d in waiting["items"]] == [delivery]
    stats = ok(viewer.get("/api/webhook/statistics"))
    push_counts = next(e for e in stats["by_event"] if e["event"] == "push")
    assert push_counts["failed"] >= 1 and stats["failures"] >= 1
    assert stats["latency"]["processed"] >= 1 and stats["latency"]["avg_seconds"] >= 0


# --- commits: by hand, search, statistics -----------------------------------------------------


def commit_body(full, **over):
    return {
        "repository": full,
        "sha": uuid.uuid4().hex + uuid.uuid4().hex[:8],
        "message": "fix(db): close the pool",
        "author_name": "Ada",
        "author_email": "Ada@Example.com",
        "timestamp": "2026-11-20T10:00:00+02:00",
        "branch": "main",
        "modified": ["db.py"],
        "additions": 5,
        "deletions": 2,
        **over,
    }


def test_track_a_commit_by_hand(manager, operator, viewer):
    repo = new_repo(manager)
    body = commit_body(repo["full_name"])
    assert_problem(viewer.post("/api/commits", json=body), 403)
    made = ok(operator.post("/api/commits", json=body), 201)
    assert (made["source"], made["conventional_type"], made["conventional_scope"]) == (
        "manual",
        "fix",
        "db",
    )
    assert made["committed_at"] == "2026-11-20T08:00:00Z" and made["branches"] == ["main"]
    assert made["author_email"] == "Ada@Example.com"
    assert_problem(operator.post("/api/commits", json=body), 409)
    assert_problem(operator.post("/api/commits", json=dict(body, repository="no/where")), 404)
    assert_problem(operator.post("/api/commits", json=dict(body, sha="abc")), 422)
    assert_problem(
        operator.post("/api/commits", json=dict(body, timestamp="2026-11-20T10:00:00")), 422
    )
    (event,) = [e for e in outbox("commit.recorded") if e["sha"] == body["sha"]]
    assert event["additions"] == 5 and event["source"] == "manual"
    assert_problem(viewer.get("/api/commits/not-a-sha"), 422)
    assert_problem(viewer.get("/api/commits/" + "f" * 40), 404)


def test_search_filters_and_keyset_pages(manager, operator, viewer):
    repo = new_repo(manager)
    full = repo["full_name"]
    base = datetime(2026, 10, 1, tzinfo=UTC)
    shas = []
    for i in range(7):
        body = commit_body(
            full,
            message=("feat: widget number %d" if i % 2 else "chore: tidy %d") % i,
            author_email="ada@example.com" if i < 4 else "bob@example.com",
            # two commits share a timestamp: the keyset must still cover both
            timestamp=(base + timedelta(hours=min(i, 5))).isoformat(),
            branch="main" if i < 5 else "dev",
        )
        shas.append(ok(operator.post("/api/commits", json=body), 201)["sha"])
    seen, cursor = [], None
    while True:
        q = {"repository": full, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = ok(viewer.get("/api/commits", query_string=q))
        seen += [c["sha"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(shas) and len(seen) == 7
    times = [
        c["committed_at"]
        for c in ok(viewer.get("/api/commits", query_string={"repository": full}))["items"]
    ]
    assert times == sorted(times, reverse=True)

    def count(**q):
        return len(ok(viewer.get("/api/commits", query_string={"repository": full, **q}))["items"])

    assert count(author="ADA@example.com") == 4
    assert (
        count(type="feat") == 3 and count(type=["feat", "chore"]) == 7 and count(type="none") == 0
    )
    assert count(branch="dev") == 2
    assert count(q="widget") == 3 and count(q="widget number") == 3 and count(q="gadget") == 0
    assert (
        count(
            since=(base + timedelta(hours=2)).isoformat(),
            until=(base + timedelta(hours=4)).isoformat(),
        )
        == 2
    )
    assert_problem(
        viewer.get(
            "/api/commits", query_string={"since": base.isoformat(), "until": base.isoformat()}
        ),
        422,
    )
    assert_problem(viewer.get("/api/commits", query_string={"cursor": "garbage"}), 400)
    assert_problem(viewer.get("/api/commits", query_string={"bogus": "1"}), 422)


def test_statistics_per_repository_author_day_and_type(manager, operator, viewer):
    a, b = new_repo(manager), new_repo(manager)
    day = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=2)
    rows = [
        (a, "feat: one", "ada@example.com", 0, 10, 1, ["a.py", "b.py"]),
        (a, "fix: two", "ada@example.com", 0, 3, 2, ["a.py"]),
        (a, "plain three", "bob@example.com", 1, 7, 0, ["c.py"]),
        (b, "feat(x): four", "bob@example.com", 1, 1, 1, []),
    ]
    for repo, msg, email, plus_days, adds, dels, files in rows:
        ok(
            operator.post(
                "/api/commits",
                json=commit_body(
                    repo["full_name"],
                    message=msg,
                    author_email=email,
                    timestamp=(day + timedelta(days=plus_days)).isoformat(),
                    additions=adds,
                    deletions=dels,
                    modified=files,
                ),
            ),
            201,
        )
    stats = ok(
        viewer.get(
            "/api/commits/statistics",
            query_string={
                "repository": [a["full_name"], b["full_name"]],
            },
        )
    )
    assert stats["total"] == {"commits": 4, "additions": 21, "deletions": 4, "files_changed": 4}
    by_repo = {r["repository"]: r["commits"] for r in stats["by_repository"]}
    assert by_repo == {a["full_name"]: 3, b["full_name"]: 1}
    by_author = {r["author"]: (r["commits"], r["additions"]) for r in stats["by_author"]}
    assert by_author == {"ada@example.com": (2, 13), "bob@example.com": (2, 8)}
    assert [(d["day"], d["commits"]) for d in stats["by_day"]] == [
        (day.date().isoformat(), 2),
        ((day + timedelta(days=1)).date().isoformat(), 2),
    ]
    by_type = {t["type"]: t["commits"] for t in stats["by_type"]}
    assert by_type == {"feat": 2, "fix": 1, "none": 1}
    only_a = ok(
        viewer.get(
            "/api/commits/statistics",
            query_string={
                "repository": a["full_name"],
                "type": "feat",
            },
        )
    )
    assert only_a["total"]["commits"] == 1 and only_a["total"]["files_changed"] == 2
    old = ok(
        viewer.get(
            "/api/commits/statistics",
            query_string={
                "repository": a["full_name"],
                "until": (day - timedelta(days=1)).isoformat(),
            },
        )
    )
    assert old["total"]["commits"] == 0 and old["by_day"] == []
    assert_problem(viewer.get("/api/commits/statistics", query_string={"top": 0}), 422)


def test_deleting_a_repository_takes_its_commits(manager, operator, viewer):
    repo = new_repo(manager)
    body = commit_body(repo["full_name"])
    ok(operator.post("/api/commits", json=body), 201)
    assert manager.delete(f"/api/repositories/{repo['full_name']}").status_code == 204
    assert_problem(viewer.get(f"/api/commits/{body['sha']}"), 404)
    assert settings().env == "test"


def analysis_event(full, sha, at, **over):
    from shared.events import Received

    data = {
        "analysis_id": str(uuid.uuid4()),
        "kind": "commit",
        "repository": full,
        "sha": sha,
        "status": "completed",
        "commit_type": "fix",
        "risk_score": 72,
        "risk_level": "high",
        "secrets": 2,
        "findings": 4,
        "top_severity": "critical",
        "summary": "fix(db): high risk (72): 2 secrets in added lines",
        "error": None,
        **over,
    }
    return Received(
        event_type="analysis.completed",
        event_id=str(uuid.uuid4()),
        schema_version=1,
        source="agents",
        occurred_at=at,
        actor="system",
        request_id="",
        traceparent="",
        data=data,
    )


def test_analysis_completed_puts_the_newest_headline_on_the_commit(manager, operator, viewer):
    from functions.source import service
    from functions.source.events import AnalysisFacts

    repo = new_repo(manager)
    full = repo["full_name"]
    risky = ok(operator.post("/api/commits", json=commit_body(full)), 201)
    calm = ok(operator.post("/api/commits", json=commit_body(full, message="docs: typo")), 201)
    assert risky["analysis"] is None
    t0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    first = analysis_event(full, risky["sha"], t0)
    assert ingest.handle(first) == "kept"
    assert ingest.handle(first) == "kept"  # a redelivery: the same values again

    low = analysis_event(
        full, calm["sha"], t0, risk_level="low", risk_score=5, secrets=0, commit_type="docs"
    )
    assert service.record_analysis(low.parse(AnalysisFacts), t0) == "kept"
    got = ok(viewer.get(f"/api/commits/{risky['sha']}"))["analysis"]
    assert got["id"] == first.data["analysis_id"] and got["status"] == "completed"
    assert (got["risk_level"], got["risk_score"], got["secrets"], got["type"]) == (
        "high",
        72,
        2,
        "fix",
    )
    assert got["findings"] == 4 and got["analyzed_at"] == "2026-11-21T09:00:00Z"
    # an older analysis does not replace a newer one; a failure never hides a completed one
    older = analysis_event(full, risky["sha"], t0 - timedelta(hours=1), risk_level="low")
    assert service.record_analysis(older.parse(AnalysisFacts), older.occurred_at) == "unchanged"
    failed = analysis_event(
        full, risky["sha"], t0 + timedelta(hours=1), status="failed", risk_level=None
    )
    assert service.record_analysis(failed.parse(AnalysisFacts), failed.occurred_at) == "unchanged"
    newer = analysis_event(full, risky["sha"], t0 + timedelta(hours=2), risk_level="medium")
    assert service.record_analysis(newer.parse(AnalysisFacts), newer.occurred_at) == "kept"
    assert ok(viewer.get(f"/api/commits/{risky['sha']}"))["analysis"]["risk_level"] == "medium"
    # not a tracked commit: skipped
    stray = analysis_event("no/where", risky["sha"], t0)
    assert service.record_analysis(stray.parse(AnalysisFacts), t0) == "skipped"
    bare = analysis_event(None, None, t0, kind="code")
    assert service.record_analysis(bare.parse(AnalysisFacts), t0) == "skipped"

    def shas(**q):
        page = ok(viewer.get("/api/commits", query_string={"repository": full, **q}))
        return {c["sha"] for c in page["items"]}

    assert shas(risk="medium") == {risky["sha"]}
    assert shas(risk=["low", "medium"]) == {risky["sha"], calm["sha"]}
    assert shas(risk="high") == set()
    assert shas(secrets="true") == {risky["sha"]} and shas(secrets="false") == {calm["sha"]}
    unrated = ok(operator.post("/api/commits", json=commit_body(full, message="chore: x")), 201)
    assert shas(risk="none") == {unrated["sha"]}
    assert_problem(viewer.get("/api/commits", query_string={"risk": "extreme"}), 422)


def test_statistics_from_the_daily_rollup_equal_a_scan_of_the_commits(manager, operator, viewer):
    repo = new_repo(manager)
    other = new_repo(manager)
    base = datetime(2026, 9, 1, 22, 30, tzinfo=UTC)
    rng = random.Random(5)
    for i in range(40):
        target = repo if i % 4 else other
        kind = rng.choice(["feat", "fix", "docs", None])
        body = commit_body(
            target["full_name"],
            message=f"{kind}: change {i}" if kind else f"change {i}",
            author_email=rng.choice(["a@example.com", "b@example.com", "c@example.com"]),
            timestamp=(base + timedelta(hours=rng.uniform(0, 24 * 9))).isoformat(),
            additions=rng.randint(0, 50),
            deletions=rng.choice([None, rng.randint(0, 20)]),
        )
        ok(operator.post("/api/commits", json=body), 201)
    ids = [repo["id"], other["id"]]
    day = timedelta(days=1)
    ranges = [
        (base, base + 9 * day),  # partial days at both ends
        (datetime(2026, 9, 2, tzinfo=UTC), datetime(2026, 9, 8, tzinfo=UTC)),  # whole days
        (base + timedelta(hours=3), base + timedelta(hours=10)),  # inside two days
        (base + timedelta(hours=5), None),
        (None, base + 4 * day),
        (None, None),
    ]
    with db.transaction() as tx:
        for since, until in ranges:
            for which in (ids, ids[:1]):
                kw = {"repository_ids": which, "since": since, "until": until}
                rolled = store.commit_statistics(tx, top=20, **kw)
                scanned = store.commit_statistics(tx, top=20, rollup=False, **kw)
                assert rolled == scanned, (since, until)
                assert rolled["total"]["commits"] > 0 or until is not None
        whole = store.commit_statistics(tx, top=20, repository_ids=ids)
        assert whole["total"]["commits"] == 40
        # a bulk load's rebuild gives the rollup the recorder maintained
        rows = tx.execute(
            select(store.commit_days).where(store.commit_days.c.repository_id == repo["id"])
        ).all()
        assert store.rebuild_commit_days(tx, repo["id"]) == len(rows)
        again = tx.execute(
            select(store.commit_days).where(store.commit_days.c.repository_id == repo["id"])
        ).all()
        assert sorted(map(tuple, again)) == sorted(map(tuple, rows))
    # through the API (the rollup path) the same figures as with a filter forcing the scan
    full = repo["full_name"]
    q = {"repository": full, "since": base.isoformat(), "until": (base + 9 * day).isoformat()}
    api = ok(viewer.get("/api/commits/statistics", query_string=q))
    with db.transaction() as tx:
        scan = store.commit_statistics(
            tx, top=20, rollup=False, repository_ids=[repo["id"]], since=base, until=base + 9 * day
        )
    assert api["total"] == scan["total"] and api["by_day"] == scan["by_day"]
    assert manager.delete(f"/api/repositories/{full}").status_code == 204
    with db.transaction() as tx:
        left = tx.execute(
            select(func.count())
            .select_from(store.commit_days)
            .where(store.commit_days.c.repository_id == repo["id"])
        ).scalar_one()
    assert left == 0


def test_statistics_filtered_by_type_from_the_rollups_equal_a_scan(manager, operator):
    repo = new_repo(manager)
    other = new_repo(manager)
    base = datetime(2026, 7, 10, 21, 45, tzinfo=UTC)
    rng = random.Random(48)
    for i in range(60):
        target = repo if i % 3 else other
        kind = rng.choice(["feat", "fix", None])
        body = commit_body(
            target["full_name"],
            message=f"{kind}: change {i}" if kind else f"change {i}",
            author_email=rng.choice(["a@example.com", "B@example.com", "c@example.com"]),
            timestamp=(base + timedelta(hours=rng.uniform(0, 24 * 130))).isoformat(),
            additions=rng.randint(0, 50),
            deletions=rng.choice([None, rng.randint(0, 20)]),
        )
        ok(operator.post("/api/commits", json=body), 201)
    ids = [repo["id"], other["id"]]
    ranges = [
        (base, base + timedelta(days=130)),  # partial days and months at both ends
        (datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)),  # whole months
        (datetime(2026, 8, 3, tzinfo=UTC), datetime(2026, 10, 29, 6, tzinfo=UTC)),
        (datetime(2026, 8, 3, 5, tzinfo=UTC), datetime(2026, 8, 20, tzinfo=UTC)),  # one month
        (base + timedelta(hours=5), base + timedelta(hours=20)),  # within a day or two
        (datetime(2026, 9, 14, 12, tzinfo=UTC), None),
        (None, datetime(2026, 10, 2, 3, tzinfo=UTC)),
        (None, None),
    ]
    filters = [
        {"types": ["feat"]},
        {"types": ["fix", "none"]},
        {"types": ["none"]},
        {"types": ["feat", "refactor"]},  # one with no commits
    ]
    with db.transaction() as tx:
        for since, until in ranges:
            for which in (ids, ids[:1], None):
                for f in filters:
                    kw = {"repository_ids": which, "since": since, "until": until, **f}
                    rolled = store.commit_statistics(tx, top=20, **kw)
                    scanned = store.commit_statistics(tx, top=20, rollup=False, **kw)
                    assert rolled == scanned, (since, until, which, f)
        # a bulk load's rebuild gives the monthly rollup the recorder maintained
        m = store.commit_months.c
        rows = tx.execute(select(store.commit_months).where(m.repository_id == repo["id"])).all()
        assert sum(r.commits for r in rows) == 40
        store.rebuild_commit_days(tx, repo["id"])
        again = tx.execute(select(store.commit_months).where(m.repository_id == repo["id"])).all()
        assert sorted(map(tuple, again)) == sorted(map(tuple, rows))
    assert manager.delete(f"/api/repositories/{repo['full_name']}").status_code == 204
    with db.transaction() as tx:
        left = tx.execute(
            select(func.count())
            .select_from(store.commit_months)
            .where(m.repository_id == repo["id"])
        ).scalar_one()
    assert left == 0
