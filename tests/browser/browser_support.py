"""Helpers of the browser tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import importlib
import time
from typing import Any

import requests

# Contexts whose `seed.py` loads `make seed`'s demo data through the public API (users first:
# the others refer to demo users). Every seed is idempotent.
SEEDS = ("users", "maintenance", "production", "logistics")
DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - the seeds' documented local-only password


class Problems:
    """Console errors, uncaught exceptions and CSP violations seen by a page."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def watch(self, page: Any) -> Any:
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.items.append(f"pageerror: {e}"))
        return page

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        # Expected: a page load without a session asks /session/refresh and gets 401.
        if url.endswith("/session/refresh") and "status of 401" in message.text:
            return
        self.items.append(f"console: {message.text} ({url})")

    def csp(self, page: Any) -> list[str]:
        return page.evaluate("window.__csp || []")


# Runs before the page's own scripts (Playwright injects it outside the page's CSP).
CSP_SPY = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def sign_in(page: Any, email: str, password: str) -> None:
    """Sign in through the console's login page and wait for the console's layout (the
    sign-out button is attached; on a phone it sits in the collapsed menu)."""
    page.goto("/")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#sign-out").wait_for(state="attached")
    page.locator("#main").wait_for()


def menu(page: Any, section: str, item: str) -> None:
    """Open a page from the navbar: the system's menu, then its entry (on a phone, the
    collapsed navbar is opened first)."""
    toggler = page.locator(".navbar-toggler")
    if toggler.is_visible() and toggler.get_attribute("aria-expanded") != "true":
        toggler.click()
    page.locator("#nav .dropdown-toggle", has_text=section).click()
    page.locator("#nav .dropdown-item", has_text=item).first.click()


# dom.js label(): how the console shows an API value ('qa_hold' -> 'QA hold'); its WORDS copied.
LABEL_WORDS = {
    "qa": "QA", "eta": "ETA", "sla": "SLA", "ssh": "SSH", "http": "HTTP", "https": "HTTPS",
    "winrm": "WinRM", "url": "URL", "id": "ID", "api": "API", "sql": "SQL", "pm": "PM",
}  # fmt: skip


def label(value: str) -> str:
    text = " ".join(LABEL_WORDS.get(w, w) for w in value.split("_"))
    return text[:1].upper() + text[1:]


def nav_texts(page: Any) -> list[str]:
    """Every page the navbar offers (menu entries included, opened or not) and API docs."""
    return [
        t.strip()
        for t in page.locator("#nav .navbar-nav a:not(.dropdown-toggle)").all_text_contents()
    ]


def seed(api: Api) -> None:
    """`make seed`'s demo data, loaded as `make seed` loads it (each context's `seed.run`)."""
    for name in SEEDS:
        importlib.import_module(f"functions.{name}.seed").run(api.http_as_admin(), api.base)


def can_log_in(base: str, email: str, password: str) -> bool:
    resp = requests.post(
        f"{base}/api/auth/login", json={"email": email, "password": password}, timeout=30
    )
    return resp.status_code == 200


# What a chart was given and what it drew, read from the page's Chart.js instance (a function,
# not an expression string: Playwright would eval a string, which the page's CSP forbids).
CHART_STATE = """(id) => {
  const canvas = document.getElementById(id);
  const chart = canvas && window.Chart && window.Chart.getChart(canvas);
  if (!chart) return null;
  const type = chart.config.type;
  const out = {
    type, width: chart.width, height: chart.height, area: chart.chartArea,
    labels: chart.data.labels.map(String),
    datasets: chart.data.datasets.map((d) => ({ label: d.label || null,
      data: d.data.map(Number) })),
    legend: chart.options.plugins.legend.position,
    drawn: [], expected: [],
  };
  chart.data.datasets.forEach((d, i) => {
    const meta = chart.getDatasetMeta(i);
    if (type === 'doughnut') {
      out.drawn.push(meta.data.map((e) => ({ outer: e.outerRadius, inner: e.innerRadius,
        circumference: e.circumference, x: e.x, y: e.y })));
      return;
    }
    const horizontal = chart.options.indexAxis === 'y';
    const index = chart.scales[horizontal ? 'y' : 'x'];
    const value = chart.scales[horizontal ? 'x' : 'y'];
    out.band = (horizontal ? chart.chartArea.height : chart.chartArea.width) / d.data.length;
    out.drawn.push(meta.data.map((e) => ({ at: horizontal ? e.y : e.x,
      end: horizontal ? e.x : e.y })));
    out.expected.push(d.data.map((v, j) => ({ at: index.getPixelForValue(j),
      end: value.getPixelForValue(Number(v)) })));
  });
  return out;
}"""

# Take the chart's box out of the document and put it back (Chart.js lays the chart out at
# width 0 on detach, then again on attach), and read the chart in the frame it is laid out
# again: what it draws right after a layout change, before any animation could finish.
CHART_REATTACHED = (
    """async (id) => {
  const read = """
    + CHART_STATE
    + """;
  const canvas = document.getElementById(id);
  const box = canvas.parentElement;
  const home = box.parentElement;
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  const until = async (ok) => {
    for (let i = 0; i < 600 && !ok(); i += 1) await frame();
    return ok();
  };
  box.remove();
  if (!(await until(() => window.Chart.getChart(canvas).width === 0))) return 'not detached';
  home.prepend(box);
  if (!(await until(() => window.Chart.getChart(canvas).width > 0))) return 'not attached';
  return read(id);
}"""
)


class Api:
    """The public API through the gateway, as the bootstrap admin."""

    def __init__(self, base: str, email: str, password: str) -> None:
        self.base = base
        self.http = requests.Session()
        deadline = time.monotonic() + 30
        while True:
            resp = self.http.post(
                f"{base}/api/auth/login", timeout=30, json={"email": email, "password": password}
            )
            if resp.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert resp.status_code == 200, resp.text
        self.token = resp.json()["access_token"]

    def http_as_admin(self) -> requests.Session:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {self.token}"
        return http

    def __call__(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kw)


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
