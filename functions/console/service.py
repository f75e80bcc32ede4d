"""Browser sessions of the console: auth-api's token pair split between a cookie and memory.

The console never hands the refresh token to JavaScript. `login` and `refresh` call auth-api
(`shared.clients.call`, straight to the deployment, with the browser's client IP so login
throttling stays per client) and return the pair; the web layer puts the refresh token in an
HttpOnly cookie and only the access token in the JSON answer (docs/decisions/0012). `logout`
revokes the refresh token's family and the access token; when the access token is missing or
no longer accepted it first rotates the refresh token once to obtain one, so a logout always
revokes server-side when the cookie is still good. auth-api's client errors (401, 422, 429)
are passed through as they are; its outages become 502/503. No state is kept here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from shared import logging as slog
from shared.clients import ServiceCallError, call
from shared.errors import BadGateway, Problem, ServiceUnavailable

LOGIN = "/api/auth/login"
REFRESH = "/api/auth/refresh"
LOGOUT = "/api/auth/logout"
TIMEOUT_S = 10.0
_PASSED_HEADERS = ("Retry-After", "WWW-Authenticate")
_log = slog.get_logger("switchyard.console")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class AuthRejected(Problem):
    """auth-api answered with a client error; carried back to the browser unchanged."""


def _post(path: str, payload: dict[str, Any], headers: dict[str, str]) -> requests.Response:
    try:
        # POSTs are never retried by `call`: a refresh sent twice would look like token theft.
        return call("POST", path, json=payload, headers=headers, timeout=TIMEOUT_S)
    except ServiceCallError:
        _log.warning("auth-api is unreachable for %s", path, exc_info=True)
        raise ServiceUnavailable(
            "Sign-in is unavailable right now; try again shortly.", headers={"Retry-After": "2"}
        ) from None


def _rejected(resp: requests.Response) -> Problem:
    """auth-api's problem as ours: 4xx as sent, anything else as a 502 without internals."""
    if resp.status_code >= 500 or resp.status_code < 400:
        _log.warning("auth-api answered %s", resp.status_code)
        return BadGateway("Sign-in failed on the server; try again shortly.")
    try:
        problem = resp.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    extra = {
        k: v
        for k, v in problem.items()
        if k not in ("title", "status", "detail", "errors", "request_id", "headers")
    }
    return AuthRejected(
        problem.get("detail") or None,
        status=resp.status_code,
        title=str(problem.get("title") or "Sign-in failed"),
        errors=problem.get("errors") if isinstance(problem.get("errors"), list) else None,
        headers={h: resp.headers[h] for h in _PASSED_HEADERS if h in resp.headers},
        **extra,
    )


def _pair(resp: requests.Response) -> TokenPair:
    if resp.status_code != 200:
        raise _rejected(resp)
    try:
        data = resp.json()
        return TokenPair(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            expires_in=int(data["expires_in"]),
        )
    except (ValueError, KeyError, TypeError):
        _log.warning("auth-api answered a token pair without the expected fields")
        raise BadGateway("Sign-in failed on the server; try again shortly.") from None


def login(email: str, password: str, forwarded: dict[str, str]) -> TokenPair:
    """Exchange email and password for a token pair (auth-api's 401/429 passed through)."""
    return _pair(_post(LOGIN, {"email": email, "password": password}, forwarded))


def refresh(refresh_token: str, forwarded: dict[str, str]) -> TokenPair:
    """Rotate the refresh token (auth-api's 401 passed through: the session is over)."""
    return _pair(_post(REFRESH, {"refresh_token": refresh_token}, forwarded))


def logout(refresh_token: str, access_token: str | None, forwarded: dict[str, str]) -> None:
    """Revoke the session; raises only when auth-api could not be reached or failed."""

    def revoke(access: str, rt: str) -> requests.Response:
        return _post(
            LOGOUT, {"refresh_token": rt}, {**forwarded, "Authorization": f"Bearer {access}"}
        )

    if access_token:
        resp = revoke(access_token, refresh_token)
        if resp.status_code == 204:
            return
        if resp.status_code != 401:
            raise _rejected(resp)
    # No usable access token: rotate once to get one (an already dead refresh token means
    # there is nothing left to revoke), then revoke the new pair's family.
    try:
        pair = refresh(refresh_token, forwarded)
    except AuthRejected as exc:
        if exc.status == 401:
            return
        raise
    resp = revoke(pair.access_token, pair.refresh_token)
    if resp.status_code != 204:
        raise _rejected(resp)
