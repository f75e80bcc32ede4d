"""The console's pages for every context, in headless Chromium through the gateway: production
batches (list, filters, create, transitions with reasons, history, metrics charts), users (the
admin's list, search, create, roles, deactivate; everyone's profile and password change), the
audit trail (filters, one event's payload) and operations (dead letters with redrive, the
outbox report); menus follow the signed-in role and a page the role may not open says so.
Every page is checked for console errors and Content-Security-Policy violations, and
screenshotted under test-output/browser/.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from browser_support import (
    CHART_STATE,
    DEMO_PASSWORD,
    Problems,
    can_log_in,
    label,
    menu,
    nav_texts,
    sign_in,
    wait_for,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def assert_clean(page: Any, problems: Problems) -> None:
    assert problems.csp(page) == [], "Content-Security-Policy violations"
    assert problems.items == [], "errors in the browser console"


def test_batches_create_move_history_and_metrics(seeded, page, problems, stack, output_dir):
    sign_in(page, stack.admin_email, stack.admin_password)
    menu(page, "Production", "Batches")
    page.locator("#batch-table tbody tr[data-id]").first.wait_for()
    page.screenshot(path=str(output_dir / "batches.png"), full_page=True)

    # filters: the seeded rejected batch, by status
    page.locator("#bf-status").select_option("rejected")
    page.locator("#batch-filters").get_by_role("button", name="Filter").click()
    page.wait_for_url("**/#/batches?status=rejected")
    page.locator("#batch-table tbody tr[data-id]").first.wait_for()
    shown = page.locator("#batch-table .batch-status").all_inner_texts()
    assert shown and set(shown) == {"Rejected"}
    page.locator("#bf-q").fill("NO-SUCH-BATCH-42")
    page.locator("#batch-filters").get_by_role("button", name="Filter").click()
    page.locator("#batch-table .empty-row", has_text="No batches match.").wait_for()

    # create one in the UI; a bad number shows the API's field error
    page.goto("/#/batches/new")
    form = page.locator("#batch-form")
    form.locator("[name=batch_number]").fill("x")
    form.locator("[name=product]").fill("Browser test tablets")
    form.locator("[name=planned_quantity]").fill("1000")
    form.locator("[name=unit]").fill("tablets")
    form.get_by_role("button", name="Create batch").click()
    page.locator("#batch-form [name=batch_number].is-invalid").wait_for()
    problems.items.clear()  # the 422 is logged by the browser
    number = f"BT-{uuid.uuid4().hex[:8].upper()}"
    form.locator("[name=batch_number]").fill(number)
    form.get_by_role("button", name="Create batch").click()
    page.locator("#batch-status .badge", has_text="Planned").wait_for()
    assert number in page.locator("h1").inner_text()

    # a move needs its reason: the API's problem says so
    page.locator("#batch-moves button[data-to=in_progress]").click()
    page.locator(".alert-danger").wait_for()
    assert "reason" in page.locator(".alert-danger").inner_text()
    problems.items.clear()
    for to, reason in (("in_progress", "Line cleared"), ("granulation", "Dispensing done")):
        page.locator("#batch-reason").fill(reason)
        page.locator(f"#batch-moves button[data-to={to}]").click()
        page.locator("#batch-history li", has_text=reason).wait_for()
    assert page.locator("#batch-status .badge").inner_text() == "In progress"
    assert page.locator("#batch-stage").inner_text() == "Granulation"
    assert page.locator("#batch-stages li.current").inner_text().endswith("Granulation")
    assert page.locator("#batch-history li").count() == 3  # created, started, stage
    page.screenshot(path=str(output_dir / "batch-detail.png"), full_page=True)

    # metrics as charts, their data the API's
    page.goto("/#/batches/metrics")
    page.locator("#chart-batch-status").wait_for()
    metrics = seeded("GET", "/api/batches/metrics").json()
    status = page.evaluate(CHART_STATE, "chart-batch-status")
    assert status["labels"] == [label(k) for k in metrics["by_status"]]
    assert status["datasets"][0]["data"] == list(metrics["by_status"].values())
    stage = page.evaluate(CHART_STATE, "chart-batch-stage")
    assert stage["datasets"][0]["data"] == list(metrics["by_stage"].values())
    through = page.evaluate(CHART_STATE, "chart-throughput")
    assert through["datasets"][0]["data"] == [d["completed"] for d in metrics["throughput"]]
    page.screenshot(path=str(output_dir / "batch-metrics.png"), full_page=True)
    assert_clean(page, problems)


def test_users_admin_pages_and_own_profile(seeded, page, problems, stack, context, output_dir):
    sign_in(page, stack.admin_email, stack.admin_password)
    page.goto("/#/users")
    page.locator("#user-table tbody tr[data-id]").first.wait_for()
    page.locator("#uf-q").fill("olga.operator")
    page.locator("#user-filters").get_by_role("button", name="Search").click()
    # the unfiltered table may hold olga's row too until the search's page replaces it: wait
    # (retrying) for the filtered table, one row, hers
    rows = page.locator("#user-table tbody tr[data-id]")
    expect(rows).to_have_count(1)
    expect(rows).to_have_text([re.compile(r"olga\.operator@example\.com")])
    page.screenshot(path=str(output_dir / "users.png"), full_page=True)

    email = f"una-{uuid.uuid4().hex[:8]}@example.com"
    password = "first-password-123"
    page.goto("/#/users/new")
    form = page.locator("#user-form")
    form.get_by_label("Name").fill("Una User")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Viewer").uncheck()
    form.get_by_label("Operator").check()
    form.get_by_label("Initial password").fill(password)
    form.get_by_role("button", name="Create user").click()
    page.locator("#user-edit").wait_for()
    assert page.locator("h1").inner_text() == "Una User"
    edit = page.locator("#user-edit")
    edit.get_by_label("Manager").check()
    edit.get_by_role("button", name="Save changes").click()
    page.locator(".card", has_text="Summary").get_by_text("Manager").wait_for()

    # the user signs in (in another browser context), sees their profile, changes the password
    wait_for(lambda: can_log_in(stack.gateway_url, email, password), timeout=30)
    other = problems.watch(context.browser.new_context(base_url=stack.gateway_url).new_page())
    try:
        sign_in(other, email, password)
        assert "Audit" in nav_texts(other) and "Users" not in nav_texts(other)
        other.locator("#whoami").click()
        other.locator("#me-name", has_text="Una User").wait_for()
        other.get_by_label("Current password").fill("not-my-password-1")
        other.get_by_label("New password").fill("second-password-456")
        other.get_by_role("button", name="Change password").click()
        other.locator("#password-problem .alert-danger").wait_for()
        assert other.locator("#password-problem .problem-detail").inner_text().strip()
        problems.items.clear()
        other.get_by_label("Current password").fill(password)
        other.get_by_role("button", name="Change password").click()
        other.locator("#email").wait_for()  # signed out: every session ended
        sign_in(other, email, "second-password-456")
    finally:
        other.context.close()

    # deactivate: the user can no longer sign in
    edit.get_by_role("button", name="Deactivate").click()
    page.locator("#user-active", has_text="Inactive").wait_for()
    wait_for(lambda: not can_log_in(stack.gateway_url, email, "second-password-456"), timeout=30)
    problems.items.clear()  # the refused sign-ins above
    assert_clean(page, problems)


def publish_dead_letter(stack: Any, topic: str, payload: dict, attributes: dict) -> None:
    """Put a message in `<topic>.dead-letter`, as Pub/Sub does after the last attempt."""
    from google.cloud import pubsub_v1

    from shared.manifests import dead_letter_topic

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PUBSUB_EMULATOR_HOST", stack.env()["PUBSUB_EMULATOR_HOST"])
        pub = pubsub_v1.PublisherClient()
        path = pub.topic_path(stack.project, dead_letter_topic(topic))
        pub.publish(path, json.dumps(payload).encode(), **attributes).result(10)


def test_audit_trail_and_operations(seeded, page, problems, stack, output_dir):
    sign_in(page, stack.admin_email, stack.admin_password)
    page.goto("/#/audit")
    page.locator("#af-by").select_option("event_type")
    page.locator("#af-value").fill("batch.created")
    page.locator("#audit-filters").get_by_role("button", name="Filter").click()
    page.locator("#audit-table tbody tr[data-id]").first.wait_for()
    assert set(page.locator("#audit-table tbody td code").all_inner_texts()) == {"batch.created"}
    page.screenshot(path=str(output_dir / "audit.png"), full_page=True)
    page.locator("#audit-table tbody tr[data-id] a").first.click()
    payload = json.loads(page.locator("#audit-payload").inner_text())
    assert payload["batch_number"] and payload["status"] == "planned"
    page.goto("/#/audit?event_type=a.b&actor=c")
    page.locator(".alert-danger", has_text="at most one").wait_for()  # the API's detail
    problems.items.clear()

    topic = "part.stock.low"  # audit-ingest is its only subscriber
    event_id = str(uuid.uuid4())
    actor = f"console-ops-{uuid.uuid4().hex[:8]}"
    data = {"id": str(uuid.uuid4()), "sku": "SKU-UI-1", "name": "Bearing", "stock": 1,
            "reorder_point": 5, "work_order_id": None}  # fmt: skip
    publish_dead_letter(stack, topic, data, {
        "event_type": topic, "event_id": event_id, "schema_version": "1",
        "source": "maintenance-api", "occurred_at": "2026-11-22T10:00:00.000000Z",
        "request_id": f"req-{actor}", "actor": actor,
    })  # fmt: skip

    def listed() -> bool:
        page.goto("/#/ops")
        page.locator("#outbox").wait_for(timeout=60_000)
        return page.locator(f"#dead-letters tr[data-id='{event_id}']").count() == 1

    wait_for(listed, timeout=60, interval=1)
    assert page.locator("#outbox tr[data-schema=production]").count() == 1
    page.screenshot(path=str(output_dir / "operations.png"), full_page=True)
    page.locator(f"#dead-letters section[data-topic='{topic}'] button").click()
    page.locator("#redrive-result", has_text=f"1 redriven to {topic}").wait_for(timeout=60_000)
    assert page.locator(f"#dead-letters tr[data-id='{event_id}']").count() == 0
    assert_clean(page, problems)


@pytest.mark.parametrize(
    ("email", "admin_menu", "refused"),
    [
        ("vera.viewer@example.com", set(), ["/ops", "/users", "/audit"]),
        ("maria.manager@example.com", {"Audit"}, ["/ops", "/users"]),
        ("ada.admin@example.com", {"Audit", "Users", "Operations"}, []),
    ],
)
def test_menus_follow_the_role(seeded, page, problems, stack, email, admin_menu, refused):
    wait_for(lambda: can_log_in(stack.gateway_url, email, DEMO_PASSWORD), timeout=30)
    sign_in(page, email, DEMO_PASSWORD)
    shown = set(nav_texts(page))
    everyone = {"Dashboard", "Work orders", "Assets", "Parts", "Batches", "Batch metrics"}
    assert everyone | {"API docs"} <= shown
    assert shown & {"Audit", "Users", "Operations"} == admin_menu
    toggles = {t.strip() for t in page.locator("#nav .dropdown-toggle").all_text_contents()}
    assert {"Maintenance", "Production"} <= toggles
    assert ("Admin" in toggles) == bool(admin_menu)  # a menu with nothing to open is left out
    for path in refused:
        page.goto(f"/#{path}")
        page.locator("#forbidden", has_text="You cannot open this page").wait_for()
    assert_clean(page, problems)
