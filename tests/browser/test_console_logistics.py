"""The console's logistics pages in headless Chromium through the gateway: a package created in
the form (the API's field errors next to the fields), scans recorded on its page (the timeline
in time order, the exception highlighted), a manual lifecycle move, the list's filters in the
URL; the live dashboard and the map, open in other tabs, follow those scans without a reload
(realtime streams opened with tickets); an anomaly investigation of an impossible-speed scan
pair started from the package, watched until it completes, and its finding shown. Roles hide
what the API would refuse. Every page is checked for console errors and Content-Security-Policy
violations (Leaflet included) and screenshotted at 1440 and 375 px under test-output/browser/.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from browser_support import (
    CHART_STATE,
    DEMO_PASSWORD,
    Problems,
    can_log_in,
    menu,
    sign_in,
    wait_for,
)

pytestmark = pytest.mark.e2e

STATUSES = ["created", "picked_up", "in_transit", "out_for_delivery", "delivered", "exception",
            "returned", "cancelled"]  # fmt: skip


def assert_clean(page: Any, problems: Problems) -> None:
    assert problems.csp(page) == [], "Content-Security-Policy violations"
    assert problems.items == [], "errors in the browser console"


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def live(page: Any, badge: str) -> None:
    """The page's stream is open (its state badge says Live)."""
    page.locator(f"#{badge}[data-state=live]").wait_for(timeout=60_000)


def kpi(page: Any, id: str) -> int:
    text = page.locator(f"#{id}").inner_text().strip()
    return int(text) if text.isdigit() else -1


def status_bars(page: Any) -> dict[str, int]:
    state = page.evaluate(CHART_STATE, "chart-live-status")
    return dict(zip(STATUSES, [int(v) for v in state["datasets"][0]["data"]], strict=True))


def shoot(page: Any, output_dir: Any, name: str) -> None:
    page.screenshot(path=str(output_dir / f"logistics-{name}.png"), full_page=True)


def test_a_package_is_created_scanned_and_followed_live(
    seeded, page, open_page, problems, stack, output_dir
):
    sign_in(page, stack.admin_email, stack.admin_password)
    # the dashboard and the map in other tabs, both live before anything happens
    dash = open_page(1440)
    sign_in(dash, stack.admin_email, stack.admin_password)
    menu(dash, "Logistics", "Live dashboard")
    live(dash, "live-state")
    dash.locator("#live-updated", has_text="Updated").wait_for()
    scans_before = kpi(dash, "kpi-scans")
    bars_before = status_bars(dash)
    assert scans_before >= 0 and sum(bars_before.values()) > 0  # the seed's packages
    shoot(dash, output_dir, "live-1440")
    map_page = open_page(1440)
    sign_in(map_page, stack.admin_email, stack.admin_password)
    map_page.goto("/#/logistics/map")
    live(map_page, "map-state")
    map_page.locator("#map path.pkg-marker").first.wait_for()  # the seed's positions
    countries = map_page.locator("#map .leaflet-overlay-pane path:not(.pkg-marker)")
    assert countries.count() > 150  # Natural Earth 110m: 177 countries, out of view ones too
    shoot(map_page, output_dir, "map-1440")
    for tab in (dash, map_page):
        tab.evaluate("() => { window.__sameDocument = true; }")

    # a new package: the API's field errors first, then created
    menu(page, "Logistics", "Packages")
    page.locator("#pkg-table tbody tr[data-id]").first.wait_for()
    page.locator("#new-package").click()
    form = page.locator("#pkg-form")
    form.locator("[name=sender]").fill("Browser Sender GmbH")
    form.locator("[name=recipient]").fill("Browser Recipient")
    form.locator("#f-origin-hub").select_option("Berlin")
    form.locator("[name='weight_kg']").fill("2.5")
    form.get_by_role("button", name="Create package").click()
    page.locator("#pkg-form [name='destination.address'].is-invalid").wait_for()
    assert page.locator("#pkg-form .is-invalid").count() >= 3  # destination's fields
    problems.items.clear()  # the 422 is logged by the browser
    form.locator("#f-destination-hub").select_option("Paris")
    form.locator("[name=service_level]").select_option("express")
    form.get_by_role("button", name="Create package").click()
    page.locator("#pkg-status .badge", has_text="Created").wait_for()
    page.locator("#pkg-timeline-empty").wait_for()
    pid = page.url.rsplit("/", 1)[-1]
    tracking = page.locator("h1").inner_text().strip()
    assert tracking.startswith("SY") and tracking.endswith("SW")
    live(page, "pkg-live")

    # three scans from the form: pickup, departure, an exception with its note
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    scans = [
        ("pickup", "Berlin", now - timedelta(hours=3), None),
        ("departure", "Frankfurt", now - timedelta(hours=2), None),
        ("exception", "Frankfurt", now - timedelta(hours=1), "Label damaged"),
    ]
    for n, (kind, hub, at, note) in enumerate(scans, start=1):
        scan = page.locator("#scan-form")
        scan.locator("#scan-kind").select_option(kind)
        scan.locator("#scan-hub").select_option(hub)
        scan.locator("#scan-when").fill(at.strftime("%Y-%m-%dT%H:%M"))
        if note:
            scan.locator("#scan-note").fill(note)
        scan.get_by_role("button", name="Record scan").click()
        page.locator("#pkg-timeline li").nth(n - 1).wait_for()
    timeline = page.locator("#pkg-timeline li")
    assert [timeline.nth(i).get_attribute("data-kind") for i in range(3)] == [
        "pickup", "departure", "exception"]  # fmt: skip
    assert page.locator("#pkg-timeline li.scan-exception", has_text="Label damaged").count() == 1
    page.locator("#pkg-status .badge", has_text="Exception").wait_for()

    # a scan dated before the latest one: kept, marked, the status stays
    scan = page.locator("#scan-form")
    scan.locator("#scan-kind").select_option("arrival")
    scan.locator("#scan-hub").select_option("Hamburg")
    scan.locator("#scan-when").fill(
        (now - timedelta(hours=2, minutes=30)).strftime("%Y-%m-%dT%H:%M")
    )
    scan.get_by_role("button", name="Record scan").click()
    page.locator("#pkg-timeline li").nth(3).wait_for()
    assert timeline.nth(1).get_attribute("data-kind") == "arrival"  # in time order
    assert "Arrived late" in timeline.nth(1).inner_text()
    assert page.locator("#pkg-status .badge").first.inner_text() == "Exception"
    shoot(page, output_dir, "package-1440")

    # the dashboard followed the moves (and the scans counted with them), the map shows the
    # package, neither page was reloaded. (A scan that moves nothing changes the scans counter
    # without a dashboard event, so the dashboard sees it with the next move: not counted here.)
    wait_for(
        lambda: status_bars(dash)["exception"] >= bars_before["exception"] + 1,
        timeout=60,
        interval=0.5,
    )
    wait_for(lambda: kpi(dash, "kpi-scans") > scans_before, timeout=60, interval=0.5)
    wait_for(lambda: map_page.locator(f"#map path.pkg-{pid}").count() == 1, timeout=60)
    marker = map_page.locator(f"#map path.pkg-{pid}")
    wait_for(lambda: marker.get_attribute("data-status") == "exception", timeout=60)
    map_page.locator(f"#map-table tr[data-id='{pid}']", has_text=tracking).wait_for()
    for tab in (dash, map_page):
        assert tab.evaluate("() => window.__sameDocument === true"), "the page was reloaded"
    shoot(dash, output_dir, "live-updated-1440")
    shoot(map_page, output_dir, "map-updated-1440")

    # a manager's move: clear the exception (the admin passes), back in transit
    page.locator("#pkg-moves button[data-to=in_transit]").click()
    page.locator("#pkg-status .badge", has_text="In transit").wait_for()
    assert page.locator("#pkg-moves button[data-to=cancelled]").count() == 0  # after pickup

    # the list: search by tracking number and a status filter, both kept in the URL
    page.goto(f"/#/packages?q={tracking}")
    page.locator(f"#pkg-table tbody tr[data-id='{pid}']").wait_for()
    assert page.locator("#pkg-table tbody tr[data-id]").count() == 1
    page.goto("/#/packages")
    page.locator("#f-status").select_option("delivered")
    page.locator("#pkg-filters").get_by_role("button", name="Filter").click()
    page.wait_for_url("**/#/packages?status=delivered")
    page.locator("#pkg-table tbody tr[data-id]").first.wait_for()
    shown = page.locator("#pkg-table .pkg-status .badge:not(.late-badge)").all_inner_texts()
    assert set(shown) == {"Delivered"}
    page.reload()
    assert page.locator("#f-status").input_value() == "delivered"
    page.goto("/#/packages?q=NO-SUCH-PARCEL")
    page.locator("#pkg-table .empty-row", has_text="No packages match").wait_for()
    page.goto("/#/packages")
    page.locator("#pkg-table tbody tr[data-id]").first.wait_for()
    shoot(page, output_dir, "packages-1440")

    # phones: every page at 375 px
    phone = open_page(375, 800)
    sign_in(phone, stack.admin_email, stack.admin_password)
    for route, ready, name in (
        ("/packages", "#pkg-table tbody tr[data-id]", "packages-375"),
        (f"/packages/{pid}", "#pkg-timeline li", "package-375"),
        ("/packages/new", "#pkg-form", "package-new-375"),
        ("/logistics/live", "#live-state[data-state=live]", "live-375"),
        ("/logistics/map", "#map path.pkg-marker", "map-375"),
    ):
        phone.goto(f"/#{route}")
        phone.locator(ready).first.wait_for(timeout=60_000)
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= 375, route
        shoot(phone, output_dir, name)
    page.goto("/#/packages/new")
    page.locator("#pkg-form").wait_for()
    shoot(page, output_dir, "package-new-1440")
    for tab in (page, dash, map_page, phone):
        assert problems.csp(tab) == [], "Content-Security-Policy violations"
    assert problems.items == [], "errors in the browser console"


def test_an_anomaly_investigation_finds_the_impossible_speed(
    seeded, page, open_page, problems, stack, output_dir
):
    lyon = {"address": "Place Bellecour", "lat": 45.764, "lon": 4.836, "region": "FR-ARA"}
    rome = {"address": "Via del Corso", "lat": 41.903, "lon": 12.496, "region": "IT-LAZ"}
    created = seeded(
        "POST",
        "/api/packages",
        json={"sender": "Lyon Soieries", "recipient": "Roma Investigations", "origin": lyon,
              "destination": rome, "weight_kg": 1.0},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    pkg = created.json()
    t0 = datetime.now(UTC) - timedelta(hours=2)
    for kind, where, lat, lon, at in (
        ("pickup", "Lyon hub", 45.764, 4.836, t0),
        ("arrival", "Rome hub", 41.903, 12.496, t0 + timedelta(minutes=40)),  # ~750 km
    ):
        r = seeded(
            "POST",
            f"/api/packages/{pkg['id']}/events",
            json={"kind": kind, "location": where, "lat": lat, "lon": lon,
                  "occurred_at": iso(at), "idempotency_key": f"bt-{uuid.uuid4().hex}"},
        )  # fmt: skip
        assert r.status_code == 201, r.text

    # the agents analyse their own copy of the scans (fed by events): wait until it has both
    def known() -> bool:
        r = seeded("GET", f"/api/agents/packages/{pkg['id']}")
        return r.status_code == 200 and len(r.json()["scans"]) == 2

    wait_for(known, timeout=60, interval=0.5)

    sign_in(page, stack.admin_email, stack.admin_password)
    page.goto("/#/logistics/investigations")
    live(page, "inv-live")
    page.goto(f"/#/packages/{pkg['id']}")
    page.locator("#pkg-investigate a", has_text="Investigate anomaly").click()
    form = page.locator("#inv-form")
    assert form.locator("#inv-package").input_value() == pkg["tracking_number"]
    assert form.locator("#inv-kind").input_value() == "anomaly"
    form.get_by_role("button", name="Start investigation").click()
    page.wait_for_url("**/#/logistics/investigations/*")
    page.locator("#inv-status").wait_for()
    shoot(page, output_dir, "investigation-running-1440")
    page.locator("#inv-status[data-status=completed]").wait_for(timeout=90_000)
    finding = page.locator("#inv-findings li[data-code=impossible_speed]")
    finding.wait_for()
    assert finding.get_attribute("data-severity") == "critical"
    text = finding.locator(".finding-message").inner_text()
    assert "Lyon hub" in text and "Rome hub" in text and "km/h" in text
    assert page.locator("#inv-waiting").count() == 0
    facts = finding.locator(".evidence dt").all_inner_texts()
    assert {"Speed (km/h)", "Limit (km/h)", "Distance (km)"} <= set(facts), facts
    # the optional narrative, written by the stack's stand-in for Vertex AI (tests/vertex.py)
    narrative = page.locator("#inv-narrative")
    assert narrative.get_attribute("data-status") == "written"
    assert "750 km away" in narrative.locator("#inv-narrative-text").inner_text()
    assert "Written by gemini-test" in narrative.inner_text()
    shoot(page, output_dir, "investigation-1440")
    inv_url = page.url.split("#", 1)[1]

    # the list shows it completed, and a route investigation from the form
    page.goto("/#/logistics/investigations")
    row = page.locator("#inv-table tbody tr[data-status=completed]").first
    row.wait_for()
    page.locator("#new-investigation").click()
    page.locator("#inv-kind").select_option("route")
    page.locator("#inv-stops").fill("Depot, 52.52, 13.405\nPotsdam, 52.391, 13.064\nnot a stop")
    page.locator("#inv-form").get_by_role("button", name="Start investigation").click()
    page.locator("#inv-stops.is-invalid").wait_for()
    page.locator("#inv-stops").fill(
        "Depot, 52.52, 13.405\nPotsdam, 52.391, 13.064\nSpandau, 52.535, 13.2"
    )
    page.locator("#inv-form").get_by_role("button", name="Start investigation").click()
    page.locator("#inv-status[data-status=completed]").wait_for(timeout=90_000)
    page.locator("#inv-findings li[data-code=route_plan]").wait_for()
    assert page.locator(".card", has_text="Route").locator("tbody tr").count() == 3
    page.goto("/#/logistics/investigations")
    page.locator("#inv-table tbody tr[data-id]").first.wait_for()
    shoot(page, output_dir, "investigations-1440")

    phone = open_page(375, 800)
    sign_in(phone, stack.admin_email, stack.admin_password)
    for route, ready, name in (
        ("/logistics/investigations", "#inv-table tbody tr[data-id]", "investigations-375"),
        ("/logistics/investigations/new", "#inv-form", "investigation-new-375"),
        (inv_url, "#inv-findings", "investigation-375"),
    ):
        phone.goto(f"/#{route}")
        phone.locator(ready).first.wait_for(timeout=60_000)
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= 375, route
        shoot(phone, output_dir, name)
    assert problems.csp(phone) == []
    assert_clean(page, problems)


def test_a_viewer_reads_but_is_not_offered_what_the_api_refuses(seeded, page, problems, stack):
    email = "vera.viewer@example.com"
    wait_for(lambda: can_log_in(stack.gateway_url, email, DEMO_PASSWORD), timeout=30)
    sign_in(page, email, DEMO_PASSWORD)
    menu(page, "Logistics", "Packages")
    page.locator("#pkg-table tbody tr[data-id]").first.wait_for()
    assert page.locator("#new-package").count() == 0
    page.locator("#pkg-table tbody tr[data-id] a").first.click()
    page.locator("#pkg-timeline, #pkg-timeline-empty").first.wait_for()
    assert page.locator("#scan-form").count() == 0
    assert page.locator("#pkg-moves").count() == 0
    assert page.locator("#pkg-investigate").count() == 0
    page.goto("/#/packages/new")
    page.locator("#forbidden").wait_for()
    page.goto("/#/logistics/investigations")
    page.locator("#inv-table").wait_for()
    assert page.locator("#new-investigation").count() == 0
    page.goto("/#/logistics/live")
    live(page, "live-state")  # reading streams needs no role
    assert_clean(page, problems)
