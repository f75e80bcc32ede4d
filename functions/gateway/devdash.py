"""Local only: `/_dev/` is the dev dashboard of `make dev`, forwarded to the supervisor.

The dashboard is part of the local supervisor (`emulators/_dashboard.py`), never deployed. The
gateway forwards `/_dev` and `/_dev/...` to it only when `SWITCHYARD_ENV=local`, the
supervisor gave its address (`SWITCHYARD_DEV_DASHBOARD_URL`) and the client is on this machine;
anywhere else the path is as unknown as any other (404). It runs before the gateway's guard:
the dashboard is a local tool, not an API of the platform (decision 0034).
"""

from __future__ import annotations

import os

import flask

from shared.config import settings
from shared.errors import NotFound, ServiceUnavailable

PREFIX = "/_dev"
URL_ENV = "SWITCHYARD_DEV_DASHBOARD_URL"
_PASS_UP = ("Content-Type", "Origin", "Sec-Fetch-Site", "X-Dev-Token", "Accept")
_PASS_DOWN = ("Content-Type", "Cache-Control", "Location", "Content-Security-Policy")
_LOOPBACK = ("127.0.0.1", "::1")


def _target() -> str | None:
    s = settings()
    url = os.environ.get(URL_ENV, "")
    if not url or not s.is_local or s.in_cloud:
        return None
    return url.rstrip("/")


def _forward() -> flask.Response | None:
    req = flask.request
    if req.path != PREFIX and not req.path.startswith(PREFIX + "/"):
        return None
    base = _target()
    if base is None or req.remote_addr not in _LOOPBACK:
        raise NotFound("No API serves this path.")
    import requests  # local only: never loaded in the cloud

    headers = {k: v for k, v in req.headers.items() if k in _PASS_UP}
    headers["Host"] = req.host  # the dashboard answers local hosts only
    try:
        resp = requests.request(
            req.method,
            base + req.full_path.rstrip("?"),
            headers=headers,
            data=req.get_data(),
            timeout=60,
            allow_redirects=False,
        )
    except requests.RequestException:
        raise ServiceUnavailable("The dev dashboard is not answering.") from None
    out = flask.Response(resp.content, status=resp.status_code)
    for key in _PASS_DOWN:
        if key in resp.headers:
            out.headers[key] = resp.headers[key]
    return out


def install(app: flask.Flask) -> None:
    """Register the forward; call it before the guard's `before_request`."""
    app.before_request(_forward)
