"""GET /api/docs: Swagger UI (vendored, served by the gateway) renders the merged OpenAPI
document under the page's strict Content-Security-Policy, and "try it out" calls the API
through the gateway with the bearer token given under Authorize."""

from __future__ import annotations

import pytest
from browser_support import Problems

pytestmark = pytest.mark.e2e


def test_docs_render_every_api_and_try_it_uses_the_bearer_token(
    page, problems: Problems, api, stack, output_dir
):
    response = page.goto("/api/docs")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # the merged document is fetched from every deployment (cold ones start first)
    page.locator(".opblock").first.wait_for(timeout=90_000)
    spec = api("GET", "/api/openapi.json").json()
    rendered = set(page.locator(".opblock-summary-path").all_inner_texts())
    documented = set(spec["paths"])
    # every documented path has its operations on the page (the UI breaks long paths with
    # zero-width spaces; compare without them)
    assert {p.replace("\u200b", "") for p in rendered} == documented
    assert page.locator(".opblock").count() == sum(
        len([m for m in ops if m in ("get", "post", "put", "patch", "delete")])
        for ops in spec["paths"].values()
    )
    page.locator("section.models").wait_for()  # the schemas

    # authorize with a bearer token, then try GET /api/users/me
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input[type=text], input[type=password]").first.fill(api.token)
    dialog.locator("button.modal-btn.authorize").click()
    dialog.locator("button.modal-btn.btn-done").click()
    me = page.locator(".opblock-get", has=page.locator('[data-path="/api/users/me"]')).first
    me.locator(".opblock-summary").click()
    me.get_by_role("button", name="Try it out").click()
    me.get_by_role("button", name="Execute").click()
    status = me.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip().startswith("200")
    assert stack.admin_email in me.locator(".live-responses-table .microlight").first.inner_text()
    stored = page.evaluate(
        "() => JSON.stringify([Object.keys(localStorage), Object.keys(sessionStorage)])"
    )
    assert "authorized" not in stored  # the token stays in memory

    page.screenshot(path=str(output_dir / "api-docs.png"), full_page=False)
    assert problems.csp(page) == [], "Content-Security-Policy violations"
    assert problems.items == [], "errors in the browser console"
