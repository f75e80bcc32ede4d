"""The dashboard's charts against `make seed`'s demo data: what each chart was given (read from
its Chart.js instance) equals the stats API, and what it drew stands where that data says: one
bar per status over its own label with its own height, a doughnut that fills its card, and the
low-stock bars with their lengths. Checked at a desktop and at a phone width, as a user who has
not asked for reduced motion sees it, and again right after the chart's box went through zero
width and came back (what a detached and re-attached box, a window shrunk to nothing or a
full-page capture does: the misdrawn charts of issue 15 were Chart.js replaying the data
animation from that collapsed layout).
Screenshots of each width go to test-output/browser/ for people to look at.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from browser_support import CHART_REATTACHED, CHART_STATE, Problems, label, sign_in, wait_for

pytestmark = pytest.mark.e2e

CHARTS = ("chart-status", "chart-trend", "chart-assets", "chart-low")


def day_label(iso: str) -> str:
    # fmtDay() in en-GB: "1 Dec"
    from datetime import date

    d = date.fromisoformat(iso)
    return f"{d.day} {d.strftime('%b')}"


def chart(page: Any, canvas_id: str) -> dict[str, Any]:
    state = page.evaluate(CHART_STATE, canvas_id)
    assert state is not None, f"no chart on #{canvas_id}"
    return state


def assert_given(page: Any, stats: dict[str, Any]) -> None:
    """Each chart's data per category equals the stats API's."""
    by_status = stats["work_orders_by_status"]
    status = chart(page, "chart-status")
    assert status["type"] == "bar"
    assert status["labels"] == [label(k) for k in by_status]
    assert [d["data"] for d in status["datasets"]] == [list(by_status.values())]

    trend = chart(page, "chart-trend")
    assert trend["labels"] == [day_label(d["date"]) for d in stats["trend"]]
    series = {d["label"]: d["data"] for d in trend["datasets"]}
    assert series == {
        "Overdue": [d["overdue"] for d in stats["trend"]],
        "Created": [d["created"] for d in stats["trend"]],
        "Completed": [d["completed"] for d in stats["trend"]],
    }

    assets = chart(page, "chart-assets")
    assert assets["type"] == "doughnut"
    assert assets["labels"] == [label(k) for k in stats["assets_by_status"]]
    assert [d["data"] for d in assets["datasets"]] == [list(stats["assets_by_status"].values())]

    low = chart(page, "chart-low")
    parts = stats["low_stock_parts"]
    assert low["labels"] == [p["sku"] for p in parts]
    assert {d["label"]: d["data"] for d in low["datasets"]} == {
        "Stock": [p["stock"] for p in parts],
        "Reorder point": [p["reorder_point"] for p in parts],
    }


def drawn_wrong(state: dict[str, Any]) -> list[str]:
    """Where the drawn elements differ from where the chart's own scales put its data."""
    wrong: list[str] = []
    if state["type"] == "doughnut":
        area = state["area"]
        room = min(area["right"] - area["left"], area["bottom"] - area["top"]) / 2
        values = state["datasets"][0]["data"]
        total = sum(values)
        for name, value, arc in zip(state["labels"], values, state["drawn"][0], strict=True):
            if arc["outer"] < 0.9 * room:
                wrong.append(f"{name}: radius {arc['outer']:.0f} of {room:.0f} px")
            share = 2 * math.pi * value / total if total else 0
            if abs(arc["circumference"] - share) > 0.01:
                wrong.append(f"{name}: arc {arc['circumference']:.2f} rad, not {share:.2f}")
        return wrong
    half_band = state["band"] / 2
    for i, (drawn, expected) in enumerate(zip(state["drawn"], state["expected"], strict=True)):
        for name, got, want in zip(state["labels"], drawn, expected, strict=True):
            if abs(got["at"] - want["at"]) > half_band:
                wrong.append(
                    f"dataset {i} {name}: at {got['at']:.0f}, its label at {want['at']:.0f}"
                )
            if abs(got["end"] - want["end"]) > 1.5:
                wrong.append(f"dataset {i} {name}: ends at {got['end']:.0f}, not {want['end']:.0f}")
    return wrong


def assert_drawn_right(page: Any) -> None:
    for canvas_id in CHARTS:
        state = chart(page, canvas_id)
        assert state["width"] > 0 and state["height"] > 0, canvas_id
        assert drawn_wrong(state) == [], canvas_id


def wait_drawn(page: Any) -> None:
    """The charts exist and the first appearance of their data has played out."""
    for canvas_id in CHARTS:
        page.locator(f"#{canvas_id}").wait_for()
    wait_for(
        lambda: all(drawn_wrong(chart(page, c)) == [] for c in CHARTS), timeout=10, interval=0.1
    )


def assert_relayout_draws_at_once(page: Any) -> None:
    """Right after a chart's box went through zero width and back, what it draws is already
    where its data says (no replay of the data animation from the collapsed layout)."""
    for c in CHARTS:
        before = chart(page, c)["width"]
        state = page.evaluate(CHART_REATTACHED, c)
        assert isinstance(state, dict), f"#{c}: {state}"
        assert state["width"] == before, c
        assert drawn_wrong(state) == [], c


def assert_clean(page: Any, problems: Problems) -> None:
    assert problems.csp(page) == [], "Content-Security-Policy violations"
    assert problems.items == [], "errors in the browser console"


@pytest.mark.parametrize(
    ("width", "height", "name"), [(1440, 1000, "desktop"), (375, 812, "phone")]
)
def test_dashboard_charts_draw_the_stats(
    seeded, open_page, problems, stack, output_dir, width, height, name
):
    page = open_page(width, height)
    sign_in(page, stack.admin_email, stack.admin_password)
    wait_drawn(page)
    resp = seeded("GET", "/api/maintenance/stats")
    assert resp.status_code == 200, resp.text
    stats = resp.json()
    # the demo data has something in every chart
    assert sum(stats["work_orders_by_status"].values()) >= 7
    assert len([n for n in stats["work_orders_by_status"].values() if n]) >= 5
    assert stats["low_stock_parts"] and stats["assets_by_status"]
    assert_given(page, stats)
    assert_drawn_right(page)
    assert_relayout_draws_at_once(page)

    # the layout fits the width: nothing wider than the viewport, the doughnut's legend under it
    # on a phone (beside it on a desktop), every chart as wide as its card
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    assets = chart(page, "chart-assets")
    assert assets["legend"] == ("bottom" if name == "phone" else "right")
    for canvas_id in CHARTS:
        box = page.locator(f"#{canvas_id}").bounding_box()
        card = page.locator(f"#{canvas_id}").locator(
            "xpath=ancestor::div[contains(@class,'card')][1]"
        )
        assert box["width"] >= card.bounding_box()["width"] - 40, canvas_id
    if width < 768:
        assert page.locator(".navbar-toggler").is_visible()
        assert not page.locator("#nav").is_visible()
    page.screenshot(path=str(output_dir / f"dashboard-{name}.png"), full_page=True)
    # the full-page capture itself resizes the page through a 1 px width: still drawn right
    assert_drawn_right(page)
    assert_clean(page, problems)
