"""The request context: request id, W3C trace context and the access log of every request.

`install(app)` adds the hooks that every Switchyard Flask app has (HTTP, schedule and event
deployments alike): a request id (`X-Request-ID`, kept when sane, else new) and the trace
context bound to the logs: the request's server span (`shared.tracing`), child of the
`traceparent` it came with, and `flask.g.traceparent` naming that span for the next hop
(tracing off: the incoming `traceparent` kept when valid, else new, as it is passed on). One
access-log line in Cloud Logging's `httpRequest` shape, the platform's response headers, and
the problem+json error mapping. Health checks have no span and no access-log line; the dev
dashboard's polling (`/_dev`) has no span.
"""

from __future__ import annotations

import logging
import time
import uuid

import flask

from shared import logging as slog
from shared import tracing
from shared.http._problem import request_id, to_response

_log = slog.get_logger("switchyard.http")


def client_ip() -> str:
    """The caller's IP: `X-Client-IP` as set by the gateway (which overwrites any client
    value), else the peer address (direct calls in local runs and tests)."""
    return flask.request.headers.get("X-Client-IP") or flask.request.remote_addr or ""


new_traceparent = tracing.new_traceparent


def _untraced(path: str) -> bool:
    return path.endswith("/health") or path == "/_dev" or path.startswith("/_dev/")


def _begin() -> None:
    req = flask.request
    rid = req.headers.get("X-Request-ID", "")
    flask.g.request_id = rid if 0 < len(rid) <= 128 and rid.isprintable() else uuid.uuid4().hex
    tp = req.headers.get("traceparent", "")
    incoming = tp if tracing.valid(tp) else ""
    flask.g.started = time.perf_counter()
    flask.g.trace_scope = None
    if tracing.enabled() and not _untraced(req.path):
        flask.g.log_token = slog.bind(request_id=flask.g.request_id)
        rule = req.url_rule.rule if req.url_rule is not None else req.path
        scope = flask.g.trace_scope = tracing.server(
            f"{req.method} {rule}",
            incoming,
            attributes={
                "http.request.method": req.method,
                "url.path": req.path,
                "http.route": rule,
                "switchyard.request_id": flask.g.request_id,
            },
        )
        flask.g.traceparent = scope.traceparent
        return
    flask.g.traceparent = incoming or new_traceparent()
    flask.g.log_token = slog.bind(request_id=flask.g.request_id, traceparent=flask.g.traceparent)


def _finish(resp: flask.Response) -> flask.Response:
    resp.headers.setdefault("X-Request-ID", request_id())
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Cache-Control", "no-store")
    scope = getattr(flask.g, "trace_scope", None)
    if scope is not None:
        scope.set("http.response.status_code", resp.status_code)
        if resp.status_code >= 500:
            scope.fail()
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
    scope = getattr(flask.g, "trace_scope", None)
    if scope is not None:
        scope.finish()  # before the request's own log token: tokens reset in reverse order
        flask.g.trace_scope = None
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
