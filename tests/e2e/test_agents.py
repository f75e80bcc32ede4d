"""agents end to end: the whole local stack through the gateway. A package is created and
scanned in logistics; its events feed the agents' read model (Pub/Sub -> agents-worker); an
anomaly investigation finds the impossible speed between its two scans. A diff carrying a fake
AWS key is analysed: the finding names the file, line and kind, never the key. Roles hold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.support import PASSWORD, Api, assert_problem, ok, wait_for

pytestmark = pytest.mark.e2e

AWS_KEY = "AKIAZ7QW3RTY5UIO2PLK"
DIFF = f"""diff --git a/deploy/settings.py b/deploy/settings.py
index 1111111..2222222 100644
--- a/deploy/settings.py
+++ b/deploy/settings.py
@@ -1,2 +1,4 @@
 import os
+AWS_ACCESS_KEY_ID = "{AWS_KEY}"
+REGION = "eu-west-1"
 NAME = "app"
"""


@pytest.fixture(scope="module")
def tokens(api, admin) -> dict[str, str]:
    out = {}
    for role in ("operator", "viewer"):
        email = f"agents-{role}-{uuid.uuid4().hex[:8]}@example.com"
        resp = api.req(
            "POST",
            "/api/users",
            admin,
            json={"email": email, "name": f"Agents {role}", "roles": [role], "password": PASSWORD},
        )
        assert resp.status_code == 201, resp.text
        out[role] = api.login(email, PASSWORD)
        assert out[role], f"{role} cannot log in"
    return out


def finished(api: Api, token: str, path: str) -> dict:
    def done() -> dict | None:
        doc = ok(api.req("GET", path, token))
        return doc if doc["status"] in ("completed", "failed") else None

    return wait_for(done, timeout=60)


def test_anomaly_investigation_finds_an_impossible_speed(api, tokens):
    operator, viewer = tokens["operator"], tokens["viewer"]
    package = ok(
        api.req(
            "POST",
            "/api/packages",
            operator,
            json={
                "sender": "Atelier Paris",
                "recipient": "Ada in New York",
                "origin": {"address": "Paris", "lat": 48.8566, "lon": 2.3522, "region": "FR"},
                "destination": {
                    "address": "New York",
                    "lat": 40.7128,
                    "lon": -74.006,
                    "region": "US",
                },
                "weight_kg": 1.2,
            },
        ),
        201,
    )
    pid = package["id"]
    t0 = datetime.now(UTC) - timedelta(hours=2)
    for kind, where, lat, lon, at in (
        ("pickup", "Paris", 48.8566, 2.3522, t0),
        ("arrival", "New York JFK", 40.6413, -73.7781, t0 + timedelta(minutes=30)),
    ):
        ok(
            api.req(
                "POST",
                f"/api/packages/{pid}/events",
                operator,
                json={
                    "kind": kind,
                    "location": where,
                    "lat": lat,
                    "lon": lon,
                    "occurred_at": at.isoformat(),
                    "idempotency_key": f"e2e-{uuid.uuid4().hex}",
                },
            ),
            201,
        )

    def known() -> dict | None:
        resp = api.req("GET", f"/api/agents/packages/{pid}", viewer)
        return resp.json() if resp.status_code == 200 and len(resp.json()["scans"]) == 2 else None

    view = wait_for(known, timeout=60)
    assert view["lane"] == "FR->US"

    assert_problem(
        api.req(
            "POST",
            "/api/agents/investigations",
            viewer,
            json={"kind": "anomaly", "package_id": pid},
        ),
        403,
    )
    resp = api.req(
        "POST", "/api/agents/investigations", operator, json={"kind": "anomaly", "package_id": pid}
    )
    queued = ok(resp, 202)
    assert resp.headers["Location"] == f"/api/agents/investigations/{queued['id']}"
    done = finished(api, viewer, f"/api/agents/investigations/{queued['id']}")
    assert done["status"] == "completed", done
    speed = [f for f in done["findings"] if f["code"] == "impossible_speed"]
    assert len(speed) == 1 and speed[0]["severity"] == "critical", done["findings"]
    assert "Paris" in speed[0]["message"] and "New York JFK" in speed[0]["message"]
    assert speed[0]["evidence"]["distance_km"] > 5000

    listed = ok(api.req("GET", "/api/agents/investigations", viewer, params={"package_id": pid}))
    assert [i["id"] for i in listed["items"]] == [queued["id"]]
    seen = ok(api.req("GET", "/api/agents/interactions", viewer, params={"package_id": pid}))
    assert seen["items"][0]["status"] == "completed"
    assert seen["items"][0]["top_severity"] == "critical"


def test_diff_with_a_fake_aws_key_gives_the_secret_finding_without_its_value(api, tokens):
    operator, viewer = tokens["operator"], tokens["viewer"]
    resp = api.req(
        "POST",
        "/api/agents/analyze/code",
        operator,
        json={"diff": DIFF, "message": "chore(deploy): credentials for the bucket"},
    )
    queued = ok(resp, 202)
    path = resp.headers["Location"]
    done = finished(api, viewer, path)
    assert done["status"] == "completed", done
    secrets = [f for f in done["findings"] if f["code"] == "secret_detected"]
    assert len(secrets) == 1
    assert secrets[0]["evidence"] == {
        "file": "deploy/settings.py",
        "line": 2,
        "secret_type": "AWS Access Key",
    }
    assert done["result"]["sensitive"] == ["infra"]
    assert done["result"]["risk_level"] in ("medium", "high")
    raw = api.req("GET", path, viewer).text
    assert AWS_KEY not in raw
    listing = api.req("GET", "/api/agents/interactions", viewer, params={"kind": "code"}).text
    assert AWS_KEY not in listing
    status = ok(api.req("GET", "/api/agents/status", viewer))
    assert status["analyses"]["completed"] >= 1 and status["queue_depth"] >= 0
    assert queued["id"] in [
        i["id"]
        for i in ok(
            api.req(
                "GET", "/api/agents/interactions", viewer, params={"kind": "code", "limit": 100}
            )
        )["items"]
    ]
    assert_problem(
        api.req("POST", "/api/agents/analyze/code", operator, json={"diff": "nothing to see"}),
        422,
    )


def test_a_commit_recorded_by_source_is_analysed_automatically(api, admin, tokens):
    operator, viewer = tokens["operator"], tokens["viewer"]
    owner, name = "agents-e2e", f"repo-{uuid.uuid4().hex[:8]}"
    ok(api.req("POST", "/api/repositories", admin, json={"owner": owner, "name": name}), 201)
    sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    ok(
        api.req(
            "POST",
            "/api/commits",
            operator,
            json={
                "repository": f"{owner}/{name}",
                "sha": sha,
                "message": "fix(auth)!: refuse expired refresh tokens",
                "author_name": "Ada",
                "timestamp": "2026-11-30T10:00:00Z",
                "modified": ["functions/auth/service.py", "infra/main.tf"],
                "additions": 40,
                "deletions": 12,
            },
        ),
        201,
    )

    def analysed() -> dict | None:
        items = ok(
            api.req(
                "GET", "/api/agents/interactions", viewer, params={"repository": f"{owner}/{name}"}
            )
        )["items"]
        return items[0] if items and items[0]["status"] == "completed" else None

    auto = wait_for(analysed, timeout=60)
    assert auto["sha"] == sha and auto["kind"] == "commit"
    doc = ok(api.req("GET", f"/api/agents/analyses/{auto['id']}", viewer))
    assert doc["origin"] == "commit.recorded"
    assert doc["result"]["type"] == "fix" and doc["result"]["breaking"] is True
    assert doc["result"]["sensitive"] == ["auth", "infra"]
    again = ok(
        api.req(
            "POST",
            "/api/agents/analyze/commit",
            operator,
            json={"repository": f"{owner}/{name}", "sha": sha},
        ),
        202,
    )
    redone = finished(api, viewer, f"/api/agents/analyses/{again['id']}")
    assert redone["result"]["risk_score"] == doc["result"]["risk_score"]
