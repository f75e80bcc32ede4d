"""source end to end: the whole local stack through the gateway, GitHub played by signed
deliveries (tests/data/github/) and by a local fake of its REST API. A signed push lands once
(webhook -> Firestore + outbox -> Pub/Sub -> source-ingest -> commits), a replay is a no-op,
a bad or missing signature is 401 with nothing stored, ping is answered, and the poller
(run once through the API) and the webhook together store each commit once. The monitor's
schedule is paused and resumed through the local scheduler."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import requests

from functions.source.model import sign
from tests.e2e.support import PASSWORD, Api, assert_problem

try:  # the one wait helper is moving to tests/waiting.py (in progress in the tree)
    from tests.waiting import wait_for
except ImportError:  # pragma: no cover - until that lands
    from tests.e2e.support import wait_for  # type: ignore[attr-defined,no-redef]
from tests.integration.test_source_fakegithub import FakeGitHub, rest_commit

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data" / "github"
SECRET = "e2e-webhook-secret-0123456789"
POLLING_DEPLOYMENTS = ("source-api", "source-monitor")


@pytest.fixture(scope="module")
def tokens(api, admin) -> dict[str, str]:
    out = {}
    for role in ("manager", "viewer"):
        email = f"source-{role}-{uuid.uuid4().hex[:8]}@example.com"
        resp = api.req(
            "POST",
            "/api/users",
            admin,
            json={"email": email, "name": f"Source {role}", "roles": [role], "password": PASSWORD},
        )
        assert resp.status_code == 201, resp.text
        out[role] = api.login(email, PASSWORD)
        assert out[role]
    return out


@pytest.fixture(scope="module")
def fake_github(stack):
    """A fake GitHub for the deployments that poll: they are restarted pointing at it, and
    restarted again without it at the end (no test ever reaches the real GitHub)."""
    with FakeGitHub() as gh:
        stack.extra_env["GITHUB_API_URL"] = gh.url
        _restart(stack)
        try:
            yield gh
        finally:
            stack.extra_env.pop("GITHUB_API_URL", None)
            _restart(stack)


def _restart(stack) -> None:
    for name in POLLING_DEPLOYMENTS:
        stack.stop_deployment(name)
        stack.start_deployment(name)


@pytest.fixture()
def repo(api, tokens):
    """A repository with polling and a webhook secret, deleted after the test."""
    owner = f"e2e-{uuid.uuid4().hex[:8]}"
    resp = api.req(
        "POST",
        "/api/repositories",
        tokens["manager"],
        json={"owner": owner, "name": "hello-world", "polling": True, "webhook_secret": SECRET},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert "webhook_secret" not in body and body["has_webhook_secret"]
    yield body
    api.req("DELETE", f"/api/repositories/{body['full_name']}", tokens["manager"])


def payload(name: str, full_name: str) -> dict:
    data = json.loads((DATA / name).read_text())
    data["repository"]["full_name"] = full_name
    return data


def deliver(
    api: Api, event: str, data: dict, *, delivery: str, signature=None
) -> requests.Response:
    body = json.dumps(data).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "User-Agent": "GitHub-Hookshot/e2e",
    }
    if signature is not False:
        headers["X-Hub-Signature-256"] = signature or sign(SECRET.encode(), body)
    return api.req("POST", "/api/webhook/github", data=body, headers=headers)  # no bearer


def commits(api: Api, token: str, full: str) -> list[dict]:
    resp = api.req("GET", f"/api/repositories/{full}/commits", token, params={"limit": 100})
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def deliveries(api: Api, token: str, full: str) -> list[dict]:
    resp = api.req("GET", "/api/webhook/events", token, params={"repository": full, "limit": 100})
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def test_signed_push_lands_once_and_a_replay_is_a_no_op(api, tokens, repo):
    viewer, full = tokens["viewer"], repo["full_name"]
    data = payload("push_several_commits.json", full)
    delivery = str(uuid.uuid4())
    resp = deliver(api, "push", data, delivery=delivery)
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "accepted"
    landed = wait_for(lambda: len(commits(api, viewer, full)) == 3 and commits(api, viewer, full))
    assert [c["sha"][:7] for c in landed] == ["3c4d5e6", "2b3c4d5", "1a2b3c4"]
    assert {c["source"] for c in landed} == {"webhook"}
    assert [c["conventional_type"] for c in landed] == ["docs", "fix", "feat"]
    wait_for(lambda: [d["status"] for d in deliveries(api, viewer, full)] == ["processed"])

    replay = deliver(api, "push", data, delivery=delivery)
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert len(deliveries(api, viewer, full)) == 1 and len(commits(api, viewer, full)) == 3

    stats = api.req("GET", "/api/webhook/statistics", viewer).json()
    assert stats["latency"]["processed"] >= 1
    # the test payloads' SHAs may be tracked in other repositories too (forks): name ours
    sha = landed[-1]["sha"]
    one = api.req("GET", f"/api/commits/{sha}?repository={full}", viewer).json()
    assert one["branches"] == ["main"] and one["repository"] == full


def test_bad_or_missing_signature_is_401_and_nothing_is_stored(api, tokens, repo):
    full = repo["full_name"]
    data = payload("push_forced.json", full)
    body = json.dumps(data).encode()
    for signature in (False, sign(b"not-the-secret-at-all", body), "sha256=" + "0" * 64):
        resp = deliver(api, "push", data, delivery=str(uuid.uuid4()), signature=signature)
        assert_problem(resp, 401)
    assert deliveries(api, tokens["viewer"], full) == []
    assert commits(api, tokens["viewer"], full) == []


def test_ping_is_answered(api, tokens, repo):
    full = repo["full_name"]
    resp = deliver(api, "ping", payload("ping.json", full), delivery=str(uuid.uuid4()))
    assert resp.status_code == 200 and resp.json()["status"] == "pong"
    (ping,) = deliveries(api, tokens["viewer"], full)
    assert (ping["event"], ping["status"]) == ("ping", "processed")


def test_poller_and_webhook_together_store_each_commit_once(api, tokens, repo, fake_github):
    manager, viewer, full = tokens["manager"], tokens["viewer"], repo["full_name"]
    owner, name = full.split("/")
    push = payload("push_several_commits.json", full)
    rest = [
        rest_commit(c["id"], c["message"], datetime.fromisoformat(c["timestamp"]), owner=owner)
        for c in push["commits"]
    ]
    missed = rest_commit(
        "6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192",
        "perf(stats): cache the day buckets",
        datetime.fromisoformat("2026-11-30T11:30:00+01:00"),
        owner=owner,
        files=[("stats.py", "modified", 12, 3)],
    )
    fake_github.add(owner, name, *rest, missed)

    assert deliver(api, "push", push, delivery=str(uuid.uuid4())).status_code == 202
    wait_for(lambda: len(commits(api, viewer, full)) == 3)

    run = api.req("POST", "/api/source/monitor/run-once", manager)
    assert run.status_code == 200, run.text
    assert run.json()["commits_found"] >= 1
    after = commits(api, viewer, full)
    assert sorted(c["sha"][:7] for c in after) == ["1a2b3c4", "2b3c4d5", "3c4d5e6", "6f70819"]
    polled = next(c for c in after if c["sha"].startswith("6f70819"))
    assert (polled["source"], polled["additions"], polled["deletions"]) == ("poll", 12, 3)

    # the webhook brings the same push again (a new delivery), the poller runs again: still 4
    again = str(uuid.uuid4())
    assert deliver(api, "push", push, delivery=again).status_code == 202
    wait_for(
        lambda: any(
            d["id"] == again and d["status"] == "processed" for d in deliveries(api, viewer, full)
        )
    )
    second = api.req("POST", "/api/source/monitor/run-once", manager).json()
    assert second["commits_found"] == 0
    assert len(commits(api, viewer, full)) == 4

    status = api.req("GET", "/api/source/monitor/status", viewer).json()
    assert status["last_run"]["id"] == second["id"]
    assert status["rate_limit_remaining"] == fake_github.remaining


def test_the_monitor_schedule_is_paused_and_resumed(api, tokens):
    manager, viewer = tokens["manager"], tokens["viewer"]
    assert_problem(api.req("POST", "/api/source/monitor/stop", viewer), 403)
    paused = api.req("POST", "/api/source/monitor/stop", manager)
    assert paused.status_code == 200, paused.text
    try:
        assert paused.json()["state"] == "PAUSED"
        status = api.req("GET", "/api/source/monitor/status", viewer).json()
        assert status["state"] == "PAUSED" and status["next_run"] is None
    finally:
        resumed = api.req("POST", "/api/source/monitor/start", manager)
    assert resumed.status_code == 200 and resumed.json()["state"] == "ENABLED"
    assert api.req("GET", "/api/source/monitor/status", viewer).json()["next_run"]


def test_seed_loads_demo_repositories_and_commits_once(api, admin):
    from functions.source import seed

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {admin}"
    seed.run(http, api.base)
    seed.run(http, api.base)  # again: existing repositories are skipped
    logger = f"{seed.OWNER}/commit-logger"
    found = wait_for(lambda: len(commits(api, admin, logger)) == len(seed.COMMITS) + 2 and 1)
    assert found
    made = commits(api, admin, logger)
    assert {c["source"] for c in made} == {"manual", "webhook"}
    assert len(commits(api, admin, f"{seed.OWNER}/platform")) == len(seed.COMMITS)
    stats = api.req("GET", "/api/commits/statistics", admin, params={"repository": logger}).json()
    assert stats["total"]["commits"] == len(seed.COMMITS) + 2
    assert {t["type"] for t in stats["by_type"]} >= {"feat", "fix", "docs", "chore", "none"}
