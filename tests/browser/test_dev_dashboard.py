"""The dev dashboard of `make dev` at <gateway>/_dev/ (emulators/_dashboard.py), in Chromium.

The session stack runs it as `make dev` does. A user created through the API shows in the
event feed as one `user.created` processed by each of its three consumers, found by the
request id of the API call; the same request is one trace, drawn as a waterfall, from the
gateway through users-api, its SQL and the publish to each consumer; every deployment is
listed with its health and port; dead letters are listed per topic with a redrive button;
scheduler jobs are paused, resumed and run now.
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


def test_one_trace_runs_from_the_gateway_to_the_three_consumers(
    page: Any, stack: Any, api: Api, problems: Problems, output_dir: Path
) -> None:
    consumers = _consumers_of(stack, "user.created")
    email = f"trace-{secrets.token_hex(4)}@example.com"
    resp = api(
        "POST", "/api/users", json={"email": email, "name": "Tracy Trace", "roles": ["operator"]}
    )
    assert resp.status_code == 201, resp.text
    rid = resp.headers["X-Request-ID"]
    # the events feed links the event to its trace
    page.goto("/_dev/?tab=events")
    page.locator("#event-q").fill(rid)
    link = page.locator("#event-rows tr[data-event-id] [data-trace-link]")
    wait_for(lambda: link.count() == 1, timeout=60)
    event_id = page.locator("#event-rows tr[data-event-id]").get_attribute("data-event-id")
    link.click()
    assert page.locator("#trace-q").input_value() == event_id
    rows = page.locator("#trace-waterfall .span-row")

    def spans() -> list[tuple[str, str, str]]:
        return [
            (
                r.get_attribute("data-deployment"),
                r.get_attribute("data-kind"),
                r.get_attribute("data-name"),
            )
            for r in rows.all()
        ]

    def complete() -> bool:
        got = spans()
        return (
            ("gateway", "server", "POST /api/users") in got
            and ("gateway", "client", "POST users-api") in got
            and ("users-api", "server", "POST /api/users") in got
            and any(d == "users-api" and n.startswith("INSERT users.") for d, _, n in got)
            and ("users-api", "producer", "publish user.created") in got
            and all((c, "consumer", "process user.created") in got for c in consumers)
        )

    wait_for(complete, timeout=60)
    assert page.locator("#trace-rows tr[data-trace-id]").count() == 1
    trace_id = page.locator("#trace-rows tr[data-trace-id]").get_attribute("data-trace-id")
    got = spans()
    # a waterfall in tree order: the gateway's request first, the publish before its consumers
    assert got[0] == ("gateway", "server", "POST /api/users")
    publish = got.index(("users-api", "producer", "publish user.created"))
    assert all(got.index((c, "consumer", "process user.created")) > publish for c in consumers)
    # read in one go: the view redraws every 2 s, and a row replaced between two reads has no
    # computed style (NaN)
    depth = {
        (deployment, name): pad
        for deployment, name, pad in page.eval_on_selector_all(
            "#trace-waterfall .span-row",
            """rows => rows.map(r => [r.dataset.deployment, r.dataset.name,
              parseFloat(getComputedStyle(r.querySelector('.span-label')).paddingLeft)])""",
        )
    }
    assert depth[("gateway", "POST /api/users")] < depth[("users-api", "POST /api/users")]
    assert (
        depth[("users-api", "publish user.created")] < depth[(consumers[0], "process user.created")]
    )
    # every bar lies inside its track (read in one go: the view redraws every 2 s)
    boxes = page.eval_on_selector_all(
        "#trace-waterfall .span-row",
        """rows => rows.map(r => {
          const b = r.querySelector('.span-bar').getBoundingClientRect();
          const t = r.querySelector('.span-track').getBoundingClientRect();
          return [b.left, b.right, t.left, t.right];
        })""",
    )
    assert len(boxes) == len(got)
    for bar_left, bar_right, track_left, track_right in boxes:
        assert track_left - 1 <= bar_left < bar_right <= track_right + 3
    # a span opens its attributes: the statement's text has placeholders, never values
    page.locator("#trace-waterfall .span-row[data-name^='INSERT users.']").first.click()
    detail = page.locator("#span-detail")
    wait_for(lambda: "db.query.text" in detail.inner_text())
    assert email not in detail.inner_text()
    page.screenshot(path=str(output_dir / "dev-dashboard-trace.png"), full_page=True)
    # the same trace is found by the request id, and the requests list links to it
    page.locator("#trace-q").fill(rid)
    wait_for(
        lambda: (
            page.locator(f'#trace-rows tr[data-trace-id="{trace_id}"]').count() == 1
            and page.locator("#trace-rows tr[data-trace-id]").count() == 1
        )
    )
    page.locator("#tab-deployments").click()
    page.locator('#deployment-rows tr[data-name="users-api"]').click()
    request_link = page.locator(f'#detail-requests [data-trace-link="{rid}"]')
    wait_for(lambda: request_link.count() == 1)
    request_link.click()
    wait_for(lambda: page.locator("#trace-waterfall .span-row").count() >= 7)
    assert page.locator("#trace-q").input_value() == rid
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
