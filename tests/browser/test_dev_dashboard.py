"""The dev dashboard of `make dev` at <gateway>/_dev/ (emulators/_dashboard.py), in Chromium.

The session stack runs it as `make dev` does. A user created through the API shows in the
event feed as one `user.created` processed by each of its three consumers, found by the
request id of the API call; every deployment is listed with its health and port; dead letters
are listed per topic with a redrive button; scheduler jobs are paused, resumed and run now.
Also: it answers local clients only, a POST needs the page's token, and no CSP violation.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import requests

from tests.browser.browser_support import Api, Problems, wait_for


def _consumers_of(stack: Any, topic: str) -> list[str]:
    return sorted(d.name for d, t in stack.catalog.subscriptions() if t == topic)


def test_deployments_are_listed_with_health_and_port(
    page: Any, stack: Any, problems: Problems, output_dir: Path
) -> None:
    page.goto("/_dev/")
    rows = page.locator("#deployment-rows tr")
    wait_for(lambda: rows.count() == len(stack.deployments))
    users = page.locator('#deployment-rows tr[data-name="users-api"]')
    assert users.locator("td").nth(1).inner_text() == str(stack.port_of["users-api"])
    wait_for(lambda: page.locator("#deployment-rows .text-bg-success").count() > 0)
    # a row opens its recent requests
    requests.get(stack.gateway_url + "/api/docs", timeout=30)  # not a /_dev/ request
    page.locator('#deployment-rows tr[data-name="gateway"]').click()
    page.locator("#detail-title").wait_for()
    assert "gateway" in page.locator("#detail-title").inner_text()
    wait_for(lambda: page.locator("#detail-requests tr").count() >= 1)
    page.screenshot(path=str(output_dir / "dev-dashboard-deployments.png"), full_page=True)
    assert problems.items == [] and problems.csp(page) == []


def test_a_user_created_flows_to_its_three_consumers(
    page: Any, stack: Any, api: Api, problems: Problems, output_dir: Path
) -> None:
    consumers = _consumers_of(stack, "user.created")
    assert len(consumers) == 3, consumers
    email = f"dash-{secrets.token_hex(4)}@example.com"
    resp = api(
        "POST", "/api/users", json={"email": email, "name": "Dora Dash", "roles": ["operator"]}
    )
    assert resp.status_code == 201, resp.text
    rid = resp.headers["X-Request-ID"]
    page.goto("/_dev/?tab=events")
    page.locator("#event-q").fill(rid)
    row = page.locator("#event-rows tr[data-event-id]")
    wait_for(lambda: row.count() == 1, timeout=60)
    cells = row.locator("td")
    assert cells.nth(1).inner_text() == "user.created"
    wait_for(lambda: cells.nth(2).inner_text() == "users-api")  # the tap saw the publish
    assert cells.nth(4).inner_text() == rid
    for name in consumers:
        badge = row.locator(f'[data-consumer="{name}"]')
        wait_for(lambda b=badge: b.count() == 1 and "processed" in b.inner_text(), timeout=60)
        assert "1 attempt" in badge.inner_text() and " ms" in badge.inner_text()
    # the same event is found by its event_id
    event_id = row.get_attribute("data-event-id")
    page.locator("#event-q").fill(event_id or "")
    wait_for(lambda: page.locator(f'#event-rows tr[data-event-id="{event_id}"]').count() == 1)
    page.screenshot(path=str(output_dir / "dev-dashboard-events.png"), full_page=True)
    assert problems.items == [] and problems.csp(page) == []


def test_dead_letters_are_listed_per_topic_with_a_redrive_button(
    page: Any, stack: Any, problems: Problems, output_dir: Path
) -> None:
    page.goto("/_dev/?tab=dead-letters")
    rows = page.locator("#dead-rows tr")
    wait_for(lambda: rows.count() == len(stack.catalog.topics), timeout=60)
    row = page.locator('#dead-rows tr[data-topic="user.created"]')
    button = row.get_by_role("button", name="Redrive the dead letters of user.created")
    count = row.locator("td").first.inner_text()
    assert button.is_disabled() == (count == "0")
    page.screenshot(path=str(output_dir / "dev-dashboard-dead-letters.png"), full_page=True)
    assert problems.items == [] and problems.csp(page) == []


def test_scheduler_jobs_pause_resume_and_run_now(
    page: Any, stack: Any, problems: Problems, output_dir: Path
) -> None:
    job = "ops-outbox-relay"
    page.goto("/_dev/?tab=scheduler")
    row = page.locator(f'#job-rows tr[data-job="{job}"]')
    row.wait_for()
    assert row.locator("td").nth(2).inner_text() != "–"  # its next fire time
    row.get_by_role("button", name=f"Pause {job}").click()
    wait_for(lambda: row.locator("td").nth(1).inner_text() == "PAUSED")
    assert stack.scheduler.jobs[job].paused
    row.get_by_role("button", name=f"Resume {job}").click()
    wait_for(lambda: row.locator("td").nth(1).inner_text() == "ENABLED")
    assert not stack.scheduler.jobs[job].paused
    row.get_by_role("button", name=f"Run {job} now").click()
    wait_for(lambda: row.locator("td").nth(4).inner_text() == "200", timeout=60)
    page.screenshot(path=str(output_dir / "dev-dashboard-scheduler.png"), full_page=True)
    assert problems.items == [] and problems.csp(page) == []


def test_it_answers_local_clients_only_and_posts_need_its_token(stack: Any) -> None:
    direct = stack.dashboard.url
    assert requests.get(direct, headers={"Host": "example.com"}, timeout=10).status_code == 403
    job_url = stack.gateway_url + "/_dev/api/jobs/ops-cleanup/pause"
    refused = requests.post(job_url, timeout=10)
    assert refused.status_code == 403
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    cross = requests.post(
        job_url,
        headers={"X-Dev-Token": stack.dashboard.token, "Sec-Fetch-Site": "cross-site"},
        timeout=10,
    )
    assert cross.status_code == 403
    assert not stack.scheduler.jobs["ops-cleanup"].paused
    unknown = requests.post(
        stack.gateway_url + "/_dev/api/dead-letters/no.such.topic/redrive",
        headers={"X-Dev-Token": stack.dashboard.token},
        timeout=10,
    )
    assert unknown.status_code == 404
    page = requests.get(stack.gateway_url + "/_dev/", timeout=10)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
