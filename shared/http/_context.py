"""The request context: request id, W3C trace context and the access log of every request.

`install(app)` adds the hooks that every Switchyard Flask app has (HTTP, schedule and event
deployments alike): a request id (`X-Request-ID`, kept when sane, else new) and a
`traceparent` (kept when valid, else new) bound to the logs, one access-log line in Cloud
Logging's `httpRequest` shape (health checks excluded), the platform's response headers, and
the problem+json error mapping.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import flask

from shared import logging as slog
from shared.http._problem import request_id, to_response

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_log = slog.get_logger("switchyard.http")


def client_ip() -> str:
    """The caller's IP: `X-Client-IP` as set by the gateway (which overwrites any client
    value), else the peer address (direct calls in local runs and tests)."""
    return flask.request.headers.get("X-Client-IP") or flask.request.remote_addr or ""


def new_traceparent() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


def _begin() -> None:
    req = flask.request
    rid = req.headers.get("X-Request-ID", "")
    flask.g.request_id = rid if 0 < len(rid) <= 128 and rid.isprintable() else uuid.uuid4().hex
    tp = req.headers.get("traceparent", "")
    flask.g.traceparent = tp if _TRACEPARENT.match(tp) else new_traceparent()
    flask.g.started = time.perf_counter()
    flask.g.log_token = slog.bind(request_id=flask.g.request_id, traceparent=flask.g.traceparent)


def _finish(resp: flask.Response) -> flask.Response:
    resp.headers.setdefault("X-Request-ID", request_id())
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Cache-Control", "no-store")
    started = getattr(flask.g, "started", None)
    if (
        started is not None
        and _log.isEnabledFor(logging.INFO)  # the line is not even built when it is not logged
        and not flask.request.path.endswith("/health")
    ):
        _log.info(
            "%s %s %s",
            flask.request.method,
            flask.request.path,
            resp.status_code,
            extra={
                "httpRequest": {
                    "requestMethod": flask.request.method,
                    "requestUrl": flask.request.path,
                    "status": resp.status_code,
                    "latency": f"{time.perf_counter() - started:.6f}s",
                    "userAgent": flask.request.headers.get("User-Agent", ""),
                }
            },
        )
    return resp


def teardown(_exc: BaseException | None = None) -> None:
    token = getattr(flask.g, "log_token", None)
    if token is not None:
        slog.reset(token)
        flask.g.log_token = None


def install(app: flask.Flask) -> None:
    """The platform's request hooks and error mapping on `app`."""
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(teardown)
    app.register_error_handler(Exception, to_response)
