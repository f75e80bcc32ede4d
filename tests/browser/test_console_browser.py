"""The web console in headless Chromium against the whole local stack, through the gateway.

Sign in as the bootstrap admin, create a work order in the UI on an asset made through the API,
move it to completed, and watch the dashboard count change; the session never leaves a token
where scripts could read it, survives a reload (the refresh cookie), and ends on sign-out.
Every page is checked for console errors and Content-Security-Policy violations.
"""

from __future__ import annotations

import re
import uuid

import pytest
from browser_support import Problems, sign_in, wait_for

pytestmark = pytest.mark.e2e


def new_asset(api) -> dict:
    tag = f"PUMP-{uuid.uuid4().hex[:6].upper()}"
    resp = api(
        "POST",
        "/api/assets",
        json={
            "tag": tag,
            "name": "Cooling water pump",
            "category": "pumps",
            "location": "Hall B",
            "criticality": "high",
        },
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def new_operator(api) -> dict:
    """An operator the maintenance context knows (its copy of users is fed by events)."""
    email = f"op-{uuid.uuid4().hex[:8]}@example.com"
    resp = api(
        "POST", "/api/users", json={"email": email, "name": "Olga Operator", "roles": ["operator"]}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def maintenance_knows(api, user_id: str, asset_id: str) -> bool:
    """Whether user.created reached maintenance: a throwaway order assigned to the user is
    accepted (and cancelled again at once)."""
    resp = api(
        "POST",
        "/api/work-orders",
        json={"title": "probe", "asset_id": asset_id, "assignee_id": user_id},
    )
    if resp.status_code != 201:
        return False
    api(
        "POST",
        f"/api/work-orders/{resp.json()['id']}/transitions",
        json={"status": "cancelled", "reason": "probe"},
    )
    return True


def kpi(page, name: str) -> int:
    return int(page.locator(f"#kpi-{name}").inner_text())


def assert_clean(page, problems: Problems) -> None:
    assert problems.csp(page) == [], "Content-Security-Policy violations"
    assert problems.items == [], "errors in the browser console"


def test_work_order_lifecycle_moves_the_dashboard(page, problems, api, stack, output_dir):
    asset = new_asset(api)
    operator = new_operator(api)
    # more to draw: a degraded asset and a part below its reorder point
    assert (
        api("PUT", f"/api/assets/{new_asset(api)['id']}", json={"status": "degraded"}).status_code
        == 200
    )
    assert (
        api(
            "POST",
            "/api/parts",
            json={
                "sku": f"BRG-{uuid.uuid4().hex[:6]}",
                "name": "Bearing 6204",
                "stock": 2,
                "reorder_point": 6,
            },
        ).status_code
        == 201
    )
    wait_for(lambda: maintenance_knows(api, operator["id"], asset["id"]), timeout=30)

    # a wrong password shows the API's problem detail, then the right one gets in
    response = page.goto("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    page.locator("#email").fill(stack.admin_email)
    page.locator("#password").fill("definitely-not-it")
    page.get_by_role("button", name="Sign in").click()
    alert = page.locator("#login-problem .alert-danger")
    alert.wait_for()
    assert alert.locator(".problem-detail").inner_text().strip()
    problems.items.clear()  # the browser logs the 401 of that attempt as a console error
    page.locator("#password").fill(stack.admin_password)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#sign-out").wait_for()
    page.locator("#kpi-completed").wait_for()
    completed_before = kpi(page, "completed")
    active_before = kpi(page, "active")

    # no token where scripts can read it: not in storage, not in document.cookie
    stored = page.evaluate(
        "JSON.stringify([Object.entries(localStorage), "
        "Object.entries(sessionStorage), document.cookie])"
    )
    assert stored == '[[],[],""]', stored
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["sy_refresh"]["httpOnly"] and cookies["sy_refresh"]["sameSite"] == "Strict"
    assert cookies["sy_refresh"]["path"] == "/session"

    # create a work order in the UI
    page.goto("/#/work-orders/new")
    form = page.locator("#wo-form")
    title = f"Replace the seal {uuid.uuid4().hex[:6]}"
    form.locator("[name=title]").fill(title)
    form.locator("[name=description]").fill("Leaking at the shaft seal.\nCheck the bearing too.")
    form.locator("[name=asset_id]").select_option(asset["id"])
    form.locator("[name=priority]").select_option("high")
    form.locator("[name=due_date]").fill("2030-01-31")
    form.get_by_role("button", name="Create work order").click()
    page.wait_for_url(re.compile(r"#/work-orders/[0-9a-f-]{36}$"))
    page.locator("#wo-status .badge").wait_for()
    assert page.locator("#wo-status .badge").inner_text() == "Open"
    assert title in page.locator("h1").inner_text()

    # a validation problem is shown with its field errors (title cannot be empty)
    edit = page.locator("#wo-edit")
    edit.locator("[name=title]").fill("")
    edit.get_by_role("button", name="Save changes").click()
    edit_alert = page.locator(".alert-danger").first
    edit_alert.wait_for()
    assert "title" in edit_alert.inner_text()
    assert edit.locator("[name=title].is-invalid").count() == 1
    problems.items.clear()  # the 422 is logged by the browser

    # open -> assigned (to the operator) -> in progress -> completed
    page.locator("#wo-assign-to").select_option(operator["id"])
    for to, shown in (
        ("assigned", "Assigned"),
        ("in_progress", "In progress"),
        ("completed", "Completed"),
    ):
        page.locator(f"#wo-moves button[data-to={to}]").click()
        page.locator("#wo-status .badge", has_text=shown).wait_for()
    assert page.locator("#wo-history li").count() >= 4  # created + three moves
    assert page.locator("#wo-moves button[data-to=closed]").count() == 1

    # the dashboard counts it
    page.locator("a.nav-link", has_text="Dashboard").click()
    page.locator("#kpi-completed").wait_for()
    assert kpi(page, "completed") == completed_before + 1
    assert kpi(page, "active") == active_before
    page.locator("#chart-status").wait_for()
    # (functions, not expression strings: Playwright evaluates those with eval, which the
    # page's CSP forbids)
    page.wait_for_function(
        "() => document.querySelectorAll('canvas').length === 4 && "
        "[...document.querySelectorAll('canvas')].every(c => c.width > 0)"
    )
    page.wait_for_function("() => !document.querySelector('#toasts .toast')", timeout=10_000)
    page.screenshot(path=str(output_dir / "dashboard.png"), full_page=True)
    assert_clean(page, problems)


def test_lists_and_details_render(page, problems, api, stack):
    asset = new_asset(api)
    part = api(
        "POST",
        "/api/parts",
        json={
            "sku": f"SEAL-{uuid.uuid4().hex[:6]}",
            "name": "Shaft seal 40 mm",
            "stock": 3,
            "reorder_point": 5,
            "location": "Store A",
        },
    ).json()
    sign_in(page, stack.admin_email, stack.admin_password)

    page.goto(f"/#/assets?q={asset['tag']}")
    page.locator(f"#asset-table a:text('{asset['tag']}')").click()
    page.locator("#asset-history").wait_for()
    assert asset["name"] in page.locator("h1").inner_text()

    page.goto(f"/#/parts?q={part['sku']}")
    row = page.locator(f"#part-table tr[data-id='{part['id']}']")
    row.wait_for()
    assert "low-stock" in (row.get_attribute("class") or "")
    row.locator("a").click()
    move = page.locator("#movement-form")
    move.locator("[name=kind]").select_option("receive")
    move.locator("[name=quantity]").fill("10")
    move.locator("[name=note]").fill("Delivery 4711")
    move.get_by_role("button", name="Record movement").click()
    page.locator("#part-stock", has_text="13").wait_for()
    assert page.locator("#movements tbody tr").count() == 2  # initial stock + receive
    # taking more than the stock is refused with the API's detail
    move = page.locator("#movement-form")
    move.locator("[name=kind]").select_option("consume")
    move.locator("[name=quantity]").fill("99")
    move.get_by_role("button", name="Record movement").click()
    page.locator(".alert-danger", has_text="Conflict").wait_for()
    problems.items.clear()

    # a move that became impossible meanwhile: the API's 409 and its `allowed` list are shown
    wo = api("POST", "/api/work-orders", json={"title": "Stale page", "asset_id": asset["id"]})
    assert wo.status_code == 201, wo.text
    page.goto(f"/#/work-orders/{wo.json()['id']}")
    page.locator("#wo-moves button[data-to=cancelled]").wait_for()
    assert (
        api(
            "POST",
            f"/api/work-orders/{wo.json()['id']}/transitions",
            json={"status": "cancelled", "reason": "duplicate"},
        ).status_code
        == 200
    )
    page.locator("#wo-reason").fill("no longer needed")
    page.locator("#wo-moves button[data-to=cancelled]").click()
    conflict = page.locator(".alert-danger", has_text="Allowed next")
    conflict.wait_for()
    assert "none (terminal)" in conflict.inner_text()
    assert "cannot move from cancelled" in conflict.inner_text()
    problems.items.clear()

    page.goto("/#/work-orders?status=completed")
    page.locator("#wo-table").wait_for()
    assert page.locator("#f-status").input_value() == "completed"
    page.goto("/#/no/such/page")
    page.get_by_text("Page not found").wait_for()
    assert_clean(page, problems)


def test_reload_keeps_the_session_and_sign_out_ends_it(page, problems, stack, api):
    sign_in(page, stack.admin_email, stack.admin_password)
    page.goto("/#/work-orders")
    page.reload()
    page.locator("#sign-out").wait_for()  # signed in again from the cookie, no login page
    page.locator("#wo-table").wait_for()
    assert page.locator("#email").count() == 0

    # the access token the page holds now (module state: no storage to read it from)
    token = page.evaluate("""async () => {
        const app = document.querySelector('script[type=module]').src;
        return (await import(app.replace('/app.js', '/session.js'))).token();
    }""")
    assert token and token.count(".") == 2
    page.locator("#sign-out").click()
    page.locator("#email").wait_for()
    assert "sy_refresh" not in {c["name"] for c in page.context.cookies()}
    page.reload()
    page.locator("#email").wait_for()  # still signed out after a reload
    # the access token the page held is revoked at the gateway (within its 2 s cache)
    wait_for(
        lambda: (
            api.http.get(
                f"{stack.gateway_url}/api/users/me",
                timeout=10,
                headers={"Authorization": f"Bearer {token}"},
            ).status_code
            == 401
        ),
        timeout=10,
    )
    assert_clean(page, problems)


def test_tabs_sharing_the_cookie_refresh_one_at_a_time(context, problems, stack):
    """Two tabs reloading together both present the refresh cookie; auth rotates it on each use
    and treats a second use as theft, so the console serializes refreshes across tabs (Web
    Locks). Both tabs must stay signed in."""
    first = problems.watch(context.new_page())
    sign_in(first, stack.admin_email, stack.admin_password)
    second = problems.watch(context.new_page())
    second.goto("/#/parts")
    second.locator("#sign-out").wait_for()
    for _ in range(3):
        first.reload(wait_until="commit")
        second.reload(wait_until="commit")
        for tab in (first, second):
            tab.locator("#sign-out").wait_for()
    assert first.locator("#email").count() == 0 and second.locator("#email").count() == 0
    assert_clean(first, problems)
