"""Helpers of the browser tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import time
from typing import Any

import requests


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
    """Sign in through the console's login page and wait for the dashboard's layout."""
    page.goto("/")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#sign-out").wait_for()


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
