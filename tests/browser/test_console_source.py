"""The console's Source pages in headless Chromium through the gateway: a repository registered
in the UI (a field error first, then its generated webhook secret shown once, with the webhook
URL and setup steps), a push delivered to the gateway's webhook as GitHub sends it (signed here
with HMAC-SHA256 under that secret), its commits and their analysis by the agents appearing in
the console (the repository page's refresh, the commit page by itself), the commit filters in
the hash URL, a secret found in a diff named by its detector (never its value), the webhook
deliveries, the monitor (start/stop for managers, read-only for a viewer) and the database
page (tables, a backup). Screenshots at 1440 and 375 px under test-output/browser/.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from browser_support import DEMO_PASSWORD, Problems, menu, nav_texts, sign_in, wait_for

# The first test carries the stack's start (about 30 deployments on a shared machine) and a
# whole webhook -> ingest -> agents -> source round trip: a bound, not a performance claim.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PUSH = Path(__file__).resolve().parents[1] / "data" / "github" / "push_several_commits.json"
AWS_KEY = "AKIAZ7QW3RTY5UIO2PLK"  # the agents tests' fake key (detect-secrets' AWS detector)


def assert_clean(page: Any, problems: Problems) -> None:
    assert problems.csp(page) == [], "Content-Security-Policy violations"
    assert problems.items == [], "errors in the browser console"


def sha() -> str:
    return hashlib.sha1(uuid.uuid4().bytes).hexdigest()  # noqa: S324 - an id, not security


def push_payload(full: str) -> tuple[dict[str, Any], list[str]]:
    """GitHub's documented push (tests/data/github) for `full`, with fresh SHAs and times."""
    data = json.loads(PUSH.read_text())
    owner, name = full.split("/")
    data["repository"].update(full_name=full, name=name)
    data["repository"]["owner"].update(name=owner, login=owner)
    now = datetime.now(UTC).replace(microsecond=0)
    files = [
        (["auth/login.py"], ["migrations/0007_users.py"], "feat(auth): sign in with passkeys"),
        ([], ["README.md"], "docs: explain the webhook setup"),
        (["ci/deploy.yml"], ["infra/main.tf"], "chore: deploy from CI"),
    ]
    shas = [sha() for _ in files]
    data["commits"] = data["commits"][:1] * len(files)
    data["commits"] = [
        {
            **data["commits"][0],
            "id": s,
            "message": message,
            "timestamp": (now - timedelta(minutes=10 * (len(files) - i))).isoformat(),
            "url": f"https://github.com/{full}/commit/{s}",
            "added": added,
            "modified": modified,
            "removed": [],
        }
        for i, (s, (added, modified, message)) in enumerate(zip(shas, files, strict=True))
    ]
    data["head_commit"] = data["commits"][-1]
    data["before"], data["after"] = sha(), shas[-1]
    return data, shas


def deliver(base: str, event: str, body: bytes, secret: str | None) -> requests.Response:
    """POST to the gateway's webhook the way GitHub does: raw JSON body, its HMAC-SHA256 under
    the repository's secret in X-Hub-Signature-256, a delivery id, the event name."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "109948940",
    }
    if secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Hub-Signature-256"] = f"sha256={digest}"
    return requests.post(f"{base}/api/webhook/github", data=body, headers=headers, timeout=30)


def shoot(open_page: Any, stack: Any, output_dir: Path, name: str, route: str, ready: str) -> None:
    """The route at 375 px wide (a phone), signed in as the admin; no sideways scrolling."""
    phone = open_page(375, 800)
    sign_in(phone, stack.admin_email, stack.admin_password)
    phone.goto(f"/#{route}")
    phone.locator(ready).first.wait_for(timeout=60_000)
    phone.wait_for_function("() => !document.querySelector('.loading-row')")
    phone.screenshot(path=str(output_dir / f"{name}-375.png"), full_page=True)
    overflow = phone.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{route} scrolls sideways on a phone by {overflow}px"


def test_register_deliver_a_signed_push_and_see_commits_and_analysis(
    seeded, page, problems, stack, output_dir, open_page
):
    sign_in(page, stack.admin_email, stack.admin_password)
    assert {"Repositories", "Commits", "Commit statistics", "Webhook deliveries", "Monitor"} <= set(
        nav_texts(page)
    )
    menu(page, "Source", "Repositories")
    page.locator("#repo-table").wait_for()

    # register: the API's field error next to the field, then the repository
    page.locator("#new-repo").click()
    form = page.locator("#repo-form")
    form.locator("[name=owner]").fill("not an owner!")
    form.locator("[name=name]").fill("hello-world")
    form.get_by_role("button", name="Register").click()
    page.locator("#repo-form [name=owner].is-invalid").wait_for()
    assert page.locator("#repo-form .invalid-feedback.from-api").count() >= 1
    problems.items.clear()  # the 422 is logged by the browser
    owner, name = f"octo-{uuid.uuid4().hex[:8]}", "hello-world"
    full = f"{owner}/{name}"
    form.locator("[name=owner]").fill(owner)
    form.get_by_role("button", name="Register").click()

    # the generated secret, shown once, with the webhook URL and the setup steps
    page.locator("#secret-once").wait_for()
    secret = page.locator("#webhook-secret").inner_text().strip()
    assert len(secret) >= 32
    assert page.locator("#webhook-url").inner_text() == f"{stack.gateway_url}/api/webhook/github"
    assert "Pushes" in page.locator("#webhook-setup").inner_text()
    assert page.url.endswith(f"#/repositories/{full}")
    page.screenshot(path=str(output_dir / "source-repository-secret.png"), full_page=True)

    # GitHub's ping, a wrong signature (refused: nothing stored), then the signed push
    ping = json.dumps({"zen": "Design for failure.", "hook_id": 109948940,
                       "repository": {"full_name": full}}).encode()  # fmt: skip
    assert deliver(stack.gateway_url, "ping", ping, secret).status_code == 200
    data, shas = push_payload(full)
    body = json.dumps(data).encode()
    refused = deliver(stack.gateway_url, "push", body, "not-" + secret)
    assert refused.status_code == 401, refused.text
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    sent = deliver(stack.gateway_url, "push", body, secret)
    assert sent.status_code == 202, sent.text

    # the repository page's refresh brings the commits; the secret is not shown again
    def commits_listed() -> bool:
        page.locator("#repo-refresh").click()
        page.locator("#repo-commits").wait_for()
        page.wait_for_function("() => !document.querySelector('#repo-commits .loading-row')")
        return page.locator("#repo-commits tbody tr[data-sha]").count() == len(shas)

    wait_for(commits_listed, timeout=90, interval=1)
    assert page.locator("#secret-once").count() == 0
    assert secret not in page.content()

    # the commits page, filtered by repository (in the hash URL), with the analysis inline
    menu(page, "Source", "Commits")
    page.locator("#commit-filters").wait_for()
    page.locator("#cf-repository").select_option(full)
    page.locator("#commit-filters").get_by_role("button", name="Filter").click()
    page.wait_for_url(f"**/#/commits?repository={full.replace('/', '%2F')}")

    def analysed() -> bool:
        # Refresh renders the page anew: its table is gone until the repositories are read
        # again, so wait for the new table, then for its rows (an empty outlet has no loading
        # row: counting then saw nothing, or the unfiltered list a superseded render left).
        page.locator("#commits-refresh").click()
        page.locator("#commit-table").wait_for()
        page.wait_for_function("() => !document.querySelector('#commit-table .loading-row')")
        rows = page.locator("#commit-table tbody tr[data-sha]")
        return rows.count() == len(shas) and page.locator(
            "#commit-table .commit-risk"
        ).count() == len(shas)

    wait_for(analysed, timeout=90, interval=1)
    risk = {
        s: page.locator(f"#commit-table tr[data-sha='{s}'] .commit-risk .badge").inner_text()
        for s in shas
    }
    assert risk[shas[1]] == risk[shas[2]] == "Low", risk  # README; CI and infra: 28
    assert risk[shas[0]] == "Medium", risk  # auth and migrations: 38
    assert (
        page.locator(f"#commit-table tr[data-sha='{shas[0]}'] .commit-type").inner_text() == "feat"
    )
    page.screenshot(path=str(output_dir / "source-commits.png"), full_page=True)

    # filters reflected in the hash: reload keeps them
    page.locator("#cf-risk").select_option("medium")
    page.locator("#commit-filters").get_by_role("button", name="Filter").click()
    page.wait_for_url("**risk=medium**")
    page.reload()
    page.locator("#commit-table tbody tr[data-sha]").first.wait_for()
    page.wait_for_function("() => !document.querySelector('#commit-table .loading-row')")
    shown = page.locator("#commit-table tbody tr[data-sha]").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.sha)"
    )
    assert shown == [shas[0]] and page.locator("#cf-risk").input_value() == "medium"

    # a diff with a key, analysed for the first commit: the newest analysis names the
    # detector, file and line on the commit page - which updates by itself - never the key
    page.goto(f"/#/commits/{shas[0]}?repository={full}")
    page.locator("#analysis").wait_for()
    page.locator("#analysis-risk").wait_for()
    diff = (
        "diff --git a/auth/login.py b/auth/login.py\nnew file mode 100644\n"
        "index 0000000..1111111\n--- /dev/null\n+++ b/auth/login.py\n@@ -0,0 +1,2 @@\n"
        f'+import os\n+AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n'
    )
    queued = seeded(
        "POST",
        "/api/agents/analyze/code",
        json={
            "diff": diff,
            "message": "feat(auth): sign in with passkeys",
            "repository": full,
            "sha": shas[0],
        },  # fmt: skip
    )
    assert queued.status_code == 202, queued.text

    def secret_named() -> bool:
        page.locator("#commit-refresh").click()
        page.locator("#analysis").wait_for()
        return page.locator("#findings .finding[data-code=secret_detected]").count() == 1

    wait_for(secret_named, timeout=90, interval=1)
    assert "AWS Access Key" in page.locator("#analysis-secrets").inner_text()
    assert "auth/login.py" in page.locator("#findings .secret-name").inner_text()
    assert AWS_KEY not in page.content()
    assert page.locator("#analysis-risk .badge").inner_text() == "High"
    page.screenshot(path=str(output_dir / "source-commit.png"), full_page=True)

    # the secrets filter finds it
    page.goto(f"/#/commits?repository={full}&secrets=true")
    page.locator("#commit-table tbody tr[data-sha]").first.wait_for()
    page.wait_for_function("() => !document.querySelector('#commit-table .loading-row')")
    assert page.locator("#commit-table tbody tr[data-sha]").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.sha)"
    ) == [shas[0]]
    assert page.locator("#commit-table .commit-secrets").inner_text() == "1 found"

    # statistics for the repository: the chart is drawn, the totals count the push
    page.goto(f"/#/commits/statistics?repository={full}")
    page.locator("#chart-commits-day").wait_for()
    assert page.locator("#stats-total").inner_text().startswith(f"{len(shas)} commits")
    page.screenshot(path=str(output_dir / "source-statistics.png"), full_page=True)

    # the deliveries: the ping and the push (the refused one left no row), and one of them
    page.goto(f"/#/deliveries?repository={full}")
    page.locator("#delivery-table tbody tr[data-id]").first.wait_for()
    page.wait_for_function("() => !document.querySelector('#delivery-table .loading-row')")
    events = page.locator("#delivery-table tbody tr[data-id] td:first-child code").all_inner_texts()
    assert sorted(events) == ["ping", "push"]
    page.locator("#delivery-stats").wait_for()
    page.screenshot(path=str(output_dir / "source-deliveries.png"), full_page=True)
    page.locator("#delivery-table tbody tr[data-id]", has_text="push").locator("a").click()
    page.locator("#delivery-status .badge", has_text="Processed").wait_for()
    assert "3" in page.locator("#delivery-summary, .card").first.inner_text()

    # the monitor: stop and start (admin), the repository listed
    menu(page, "Source", "Monitor")
    page.locator("#monitor-status").wait_for()
    state = page.locator("#monitor-status").get_attribute("data-state")
    if state != "PAUSED":
        page.locator("#monitor-stop").click()
        page.locator("#monitor-status[data-state=PAUSED]").wait_for()
        assert "Monitor stopped" in page.locator("#monitor-result").inner_text()
        assert page.locator("#monitor-stop").count() == 0
    page.locator("#monitor-start").click()
    page.locator("#monitor-status[data-state=ENABLED]").wait_for()
    assert "Monitor started" in page.locator("#monitor-result").inner_text()
    assert page.locator(f"#monitor-repos tr[data-repo='{full}']").count() == 1
    page.screenshot(path=str(output_dir / "source-monitor.png"), full_page=True)
    assert_clean(page, problems)

    for shot, route, ready in (
        ("source-repository", f"/repositories/{full}", "#repo-commits tbody tr[data-sha]"),
        ("source-commits", f"/commits?repository={full}", "#commit-table tbody tr[data-sha]"),
        ("source-commit", f"/commits/{shas[0]}?repository={full}", "#findings"),
        ("source-statistics", f"/commits/statistics?repository={full}", "#chart-commits-day"),
        ("source-deliveries", "/deliveries", "#delivery-table tbody tr[data-id]"),
        ("source-monitor", "/monitor", "#monitor-status"),
        ("database", "/ops/database", "#db-tables tbody tr[data-table]"),
    ):
        shoot(open_page, stack, output_dir, shot, route, ready)
    assert problems.items == [], "errors in the browser console"


def test_a_viewer_reads_but_cannot_register_or_run_the_monitor(seeded, page, problems, stack):
    sign_in(page, "vera.viewer@example.com", DEMO_PASSWORD)
    assert "Database" not in nav_texts(page)
    menu(page, "Source", "Repositories")
    page.locator("#repo-table").wait_for()
    assert page.locator("#new-repo").count() == 0
    page.goto("/#/repositories/new")
    page.locator("#forbidden").wait_for()
    menu(page, "Source", "Monitor")
    page.locator("#monitor-status").wait_for()
    assert page.locator("#monitor-controls").count() == 0
    assert "Managers and administrators" in page.locator("#monitor-status").inner_text()
    page.goto("/#/ops/database")
    page.locator("#forbidden").wait_for()
    assert_clean(page, problems)


def test_database_statistics_tables_and_a_backup(seeded, page, problems, stack, output_dir):
    sign_in(page, stack.admin_email, stack.admin_password)
    menu(page, "Admin", "Database")
    page.locator("#db-schemas tr[data-schema='source']").wait_for()
    page.locator("#db-tables tbody tr[data-table]").first.wait_for()  # every schema, paged
    # one schema's tables, in the hash URL
    page.locator("#tf-schema").select_option("source")
    page.locator("#table-filters").get_by_role("button", name="Show").click()
    page.wait_for_url("**/#/ops/database?schema=source")
    page.wait_for_function("() => !document.querySelector('#db-tables .loading-row')")
    page.locator("#db-tables tbody tr[data-table^='source.']").first.wait_for()
    names = page.locator("#db-tables tbody tr[data-table]").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.table)"
    )
    assert names and all(n.startswith("source.") for n in names)
    assert "source.commits" in names
    before = page.locator("#backup-table tbody tr[data-id]").count()
    page.locator("#backup-start").click()
    wait_for(lambda: page.locator("#backup-table tbody tr[data-id]").count() == before + 1, 90)
    assert page.locator("#backup-table tbody tr[data-id] .backup-status").first.inner_text() in {
        "Done", "Pending", "Running"}  # fmt: skip
    page.locator("#cleanup-dry-run").click()
    page.locator("#cleanup-report table").wait_for()
    page.screenshot(path=str(output_dir / "database.png"), full_page=True)
    assert_clean(page, problems)
