"""Demo repositories and commits for `make seed`, through the public API (gateway) as the
seeding admin: two tracked repositories (no polling: a seed never reaches GitHub), one of them
with a generated webhook secret that signs a demo `push` delivered to the webhook like GitHub
would, and a few commits tracked by hand. Idempotent: an existing repository (409) is skipped
with its commits and delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import requests

OWNER = "switchyard-demo"
COMMITS = [  # (message, author, email, files, additions, deletions, hours ago)
    (
        "feat(api): commit statistics per day",
        "Ada Lovelace",
        "ada@example.com",
        ["api/stats.py", "api/__init__.py"],
        120,
        8,
        50,
    ),
    (
        "fix(ingest): keep forced pushes' commits",
        "Grace Hopper",
        "grace@example.com",
        ["ingest.py"],
        14,
        6,
        30,
    ),
    (
        "docs: how the poller uses ETags",
        "Ada Lovelace",
        "ada@example.com",
        ["docs/poller.md"],
        40,
        0,
        20,
    ),
    (
        "chore(deps): bump requests",
        "Linus Torvalds",
        "linus@example.com",
        ["requirements.txt"],
        1,
        1,
        10,
    ),
    ("Merge branch 'release'", "Grace Hopper", "grace@example.com", [], 0, 0, 2),
]


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _push(full: str, now: datetime) -> bytes:
    commits = []
    for i, msg in enumerate(("feat(webhook): verify signatures", "test: signed push lands once")):
        sha = _sha(f"{full}:push:{i}")
        commits.append(
            {
                "id": sha,
                "tree_id": _sha(f"tree:{i}"),
                "distinct": True,
                "message": msg,
                "timestamp": (now - timedelta(minutes=30 - i)).isoformat(),
                "url": f"https://github.com/{full}/commit/{sha}",
                "author": {"name": "Ada Lovelace", "email": "ada@example.com", "username": "ada"},
                "committer": {
                    "name": "Ada Lovelace",
                    "email": "ada@example.com",
                    "username": "ada",
                },
                "added": [f"tests/test_{i}.py"],
                "removed": [],
                "modified": ["webhook.py"],
            }
        )
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "before": "0" * 40,
            "after": commits[-1]["id"],
            "created": False,
            "deleted": False,
            "forced": False,
            "base_ref": None,
            "compare": f"https://github.com/{full}/compare/main",
            "commits": commits,
            "head_commit": commits[-1],
            "repository": {"full_name": full, "name": full.split("/")[1], "default_branch": "main"},
            "pusher": {"name": "ada", "email": "ada@example.com"},
            "sender": {"login": "ada", "id": 1, "type": "User"},
        }
    ).encode()


def run(http: requests.Session, base_url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for name, with_webhook in (("commit-logger", True), ("platform", False)):
        full = f"{OWNER}/{name}"
        resp = http.post(
            f"{base_url}/api/repositories",
            timeout=30,
            json={"owner": OWNER, "name": name, "generate_webhook_secret": with_webhook},
        )
        if resp.status_code == 409:
            continue
        resp.raise_for_status()
        for i, (msg, author, email, files, plus, minus, hours) in enumerate(COMMITS):
            http.post(
                f"{base_url}/api/commits",
                timeout=30,
                json={
                    "repository": full,
                    "sha": _sha(f"{full}:{i}"),
                    "message": msg,
                    "author_name": author,
                    "author_email": email,
                    "timestamp": (now - timedelta(hours=hours)).isoformat(),
                    "branch": "main",
                    "modified": files,
                    "additions": plus,
                    "deletions": minus,
                },
            ).raise_for_status()
        if with_webhook:
            secret = resp.json()["webhook_secret"]
            body = _push(full, now)
            signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            requests.post(
                f"{base_url}/api/webhook/github",
                data=body,
                timeout=30,
                headers={
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": signature,
                },
            ).raise_for_status()
