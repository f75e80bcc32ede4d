"""Accessibility of the console: axe-core (vendored from npm for these tests only, injected by
the test outside the page's CSP) finds no WCAG 2 A/AA violation on each page, badge colour
contrast included; the menus and tables are usable from the keyboard alone, with the focus
visible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser_support import Problems, sign_in

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
AXE_RUN = """async () => {
  const result = await window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  });
  return result.violations.map((v) => `${v.id}: ${v.nodes.slice(0, 3)
    .map((n) => n.target.join(' ')).join(' | ')}`);
}"""
# (hash route, what shows it is rendered)
PAGES = [
    ("/", "#chart-status"),
    ("/work-orders", "#wo-table tbody tr"),
    ("/assets", "#asset-table"),
    ("/parts", "#part-table"),
    ("/batches", "#batch-table tbody tr[data-id]"),
    ("/batches/new", "#batch-form"),
    ("/batches/metrics", "#chart-batch-status"),
    ("/users", "#user-table tbody tr[data-id]"),
    ("/users/new", "#user-form"),
    ("/profile", "#password-form"),
    ("/audit", "#audit-table tbody tr[data-id]"),
    ("/ops", "#outbox"),
    ("/packages", "#pkg-table tbody tr[data-id]"),
    ("/packages/new", "#pkg-form"),
    ("/logistics/live", "#chart-live-status"),
    ("/logistics/map", "#map .leaflet-overlay-pane svg"),
    ("/logistics/investigations", "#inv-table"),
    ("/logistics/investigations/new", "#inv-form"),
    ("/targets", "#target-table"),
    ("/targets/new", "#target-form"),
    ("/jobs", "#job-table"),
    ("/jobs/new", "#job-form"),
    ("/runs", "#run-table"),
    ("/schedules", "#schedule-table"),
    ("/schedules/new", "#schedule-form"),
    ("/repositories", "#repo-table"),
    ("/repositories/new", "#repo-form"),
    ("/commits", "#commit-table"),
    ("/commits/statistics", "#chart-commits-day, #stats-empty"),
    ("/deliveries", "#delivery-table"),
    ("/monitor", "#monitor-status"),
    ("/ops/database", "#db-tables"),
]


def axe(page: Any) -> list[str]:
    return page.evaluate(AXE_RUN)


def test_every_page_passes_axe(seeded, page, problems: Problems, stack):
    page.context.add_init_script(path=str(AXE))
    page.goto("/")
    page.locator("#email").wait_for()
    assert axe(page) == [], "sign-in page"
    sign_in(page, stack.admin_email, stack.admin_password)
    found = {}
    for route, ready in PAGES:
        page.goto(f"/#{route}")
        page.locator(ready).first.wait_for(timeout=60_000)
        page.wait_for_function(
            "() => !document.querySelector('.loading-row, [role=status] .spinner-border')"
        )
        found[route] = axe(page)
    assert {r: v for r, v in found.items() if v} == {}
    assert problems.csp(page) == []


def focused(page: Any) -> dict[str, Any]:
    return page.evaluate("""() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return { text: (el.textContent || '').trim(), href: el.getAttribute('href'),
        tag: el.tagName, outline: style.outlineStyle, width: parseFloat(style.outlineWidth),
        inTable: !!el.closest('table'), visible: el.matches(':focus-visible') };
    }""")


def tab_until(page: Any, ok: Any, limit: int = 60) -> dict[str, Any]:
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if ok(now):
            return now
    raise AssertionError("not reached with the keyboard")


def test_menus_and_tables_by_keyboard_with_visible_focus(seeded, page, problems, stack):
    sign_in(page, stack.admin_email, stack.admin_password)
    page.locator("#chart-status").wait_for()
    page.keyboard.press("Tab")
    first = focused(page)
    assert first["text"] == "Skip to content" and first["outline"] != "none", first
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    page.locator("body").focus()
    toggle = tab_until(page, lambda f: f["text"] == "Production")
    assert toggle["outline"] != "none" and toggle["width"] >= 2  # the focus is visible
    page.keyboard.press("Enter")  # opens the system's menu
    page.keyboard.press("ArrowDown")
    link = focused(page)
    assert link["text"] == "Batches" and link["outline"] != "none", link
    page.keyboard.press("Enter")
    page.wait_for_url("**/#/batches")
    page.locator("#batch-table tbody tr[data-id]").first.wait_for()
    row = tab_until(page, lambda f: f["inTable"] and f["tag"] == "A")
    assert row["outline"] != "none"
    page.keyboard.press("Enter")
    page.locator("#batch-status").wait_for()
    assert "#/batches/" in page.url
    # the phone menu opens from the keyboard too
    page.set_viewport_size({"width": 375, "height": 800})
    page.locator(".navbar-toggler").focus()
    page.keyboard.press("Enter")
    page.locator("#nav .dropdown-toggle", has_text="Admin").wait_for()
    assert problems.csp(page) == [] and problems.items == []
