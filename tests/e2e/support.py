"""Helpers of the end-to-end tests: a client of the gateway, polling, problem checks."""

from __future__ import annotations

from typing import Any

import requests

from tests.waiting import wait_for

__all__ = ["ADMIN", "PASSWORD", "Api", "assert_problem", "ok", "wait_for"]

ADMIN = ("admin@switchyard.local", "switchyard-local-admin")
PASSWORD = "a-long-password-1"


class Api:
    """A client of the gateway, as a user of the platform would be."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def req(self, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def pair(self, email: str, password: str) -> dict:
        """Log in: the token pair (the login must succeed)."""
        resp = self.req("POST", "/api/auth/login", json={"email": email, "password": password})
        assert resp.status_code == 200, resp.text
        return resp.json()

    def login(self, email: str, password: str) -> str | None:
        """Log in: the access token, or None when the login is refused."""
        resp = self.req("POST", "/api/auth/login", json={"email": email, "password": password})
        return resp.json()["access_token"] if resp.status_code == 200 else None


def assert_problem(resp: requests.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["title"]
    return body


def ok(resp: requests.Response, status: int = 200) -> Any:
    """The JSON body of a response that must have `status`."""
    assert resp.status_code == status, resp.text
    return resp.json()
