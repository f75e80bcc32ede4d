"""HTTP for every context: a Flask app per context, problem+json errors, bodies, pagination.

`create_app(context)` builds the context's Flask app with: request ids and W3C trace context
bound to the logs, JWT authentication of every route that the manifests do not declare public
(`shared.auth`), the health route and OpenAPI document (`shared.openapi`) of each of the
context's deployments, a body size limit, and one error mapping: every error path answers
RFC 9457 problem+json (`type`, `title`, `status`, `detail`, `errors` for field problems,
`request_id`), and an unexpected exception is logged with its stack but answered as a bare 500
without internals. `dispatch(app, request)` serves the app from a functions-framework entry
point; `scheduled(fn)` does the same for Cloud Scheduler targets. Request bodies are pydantic
v2 models that reject unknown fields (`ApiModel`, `body()`); lists use keyset pagination
(`page_params()`, `page()`).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from werkzeug.exceptions import HTTPException

from shared import logging as slog
from shared.config import settings

PROBLEM_JSON = "application/problem+json"
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_log = slog.get_logger("switchyard.http")

M = TypeVar("M", bound=BaseModel)


# --- errors -------------------------------------------------------------------------------


class Problem(Exception):
    """An error answered as problem+json. Subclass per context; map here, nowhere else."""

    status = 500
    title = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title or self.title)
        self.detail = detail
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


class BadRequest(Problem):
    status, title = 400, "Bad Request"


class Unauthorized(Problem):
    status, title = 401, "Unauthorized"


class Forbidden(Problem):
    status, title = 403, "Forbidden"


class NotFound(Problem):
    status, title = 404, "Not Found"


class Conflict(Problem):
    status, title = 409, "Conflict"


class PayloadTooLarge(Problem):
    status, title = 413, "Payload Too Large"


class UnsupportedMediaType(Problem):
    status, title = 415, "Unsupported Media Type"


class Unprocessable(Problem):
    status, title = 422, "Unprocessable Content"


class TooManyRequests(Problem):
    status, title = 429, "Too Many Requests"


class BadGateway(Problem):
    status, title = 502, "Bad Gateway"


class ServiceUnavailable(Problem):
    status, title = 503, "Service Unavailable"


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> flask.Response:
    """A problem+json response (RFC 9457)."""
    body: dict[str, Any] = {
        "type": extra.pop("type", "about:blank"),
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body.update(extra)
    rid = request_id()
    if rid:
        body["request_id"] = rid
    resp = flask.Response(json.dumps(body, default=str), status=status, mimetype=PROBLEM_JSON)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as `{field, message, type}` entries (no input values echoed)."""
    out = []
    for e in exc.errors(include_url=False, include_input=False):
        out.append(
            {
                "field": ".".join(str(p) for p in e["loc"]) or "(body)",
                "message": e["msg"],
                "type": e["type"],
            }
        )
    return out


def _to_response(exc: BaseException) -> flask.Response:
    if isinstance(exc, Problem):
        return problem(
            exc.status, exc.title, exc.detail, errors=exc.errors, headers=exc.headers, **exc.extra
        )
    if isinstance(exc, ValidationError):
        return problem(
            422, "Unprocessable Content", "The request is not valid.", errors=validation_errors(exc)
        )
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        headers = {}
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        detail = {
            404: "No such resource.",
            405: "This method is not allowed here.",
            413: f"The body exceeds {settings().max_body_bytes} bytes.",
        }.get(status, exc.description if status < 500 else None)
        return problem(status, exc.name, detail, headers=headers)
    _log.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal Server Error", "An unexpected error occurred.")


# --- request context ----------------------------------------------------------------------


def client_ip() -> str:
    """The caller's IP: `X-Client-IP` as set by the gateway (which overwrites any client
    value), else the peer address (direct calls in local runs and tests)."""
    return flask.request.headers.get("X-Client-IP") or flask.request.remote_addr or ""


def describe(
    summary: str | None = None,
    *,
    request: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
) -> Callable[[Any], Any]:
    """Attach OpenAPI facts to a view (summary defaults to its docstring's first line).

    The context's spec at `<first route>/openapi.json` is generated from the Flask URL map and
    these facts; the gateway merges every context's spec at `/api/openapi.json`.
    """

    def wrap(view: Any) -> Any:
        view.__openapi__ = {
            "summary": summary,
            "request": request,
            "query": query,
            "response": response,
            "status": status,
        }
        return view

    return wrap


def request_id() -> str:
    if flask.has_request_context():
        return str(getattr(flask.g, "request_id", "") or "")
    return slog.current("request_id")


def _new_traceparent() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


def _begin() -> None:
    req = flask.request
    rid = req.headers.get("X-Request-ID", "")
    flask.g.request_id = rid if 0 < len(rid) <= 128 and rid.isprintable() else uuid.uuid4().hex
    tp = req.headers.get("traceparent", "")
    flask.g.traceparent = tp if _TRACEPARENT.match(tp) else _new_traceparent()
    flask.g.started = time.perf_counter()
    flask.g.log_token = slog.bind(request_id=flask.g.request_id, traceparent=flask.g.traceparent)


def _finish(resp: flask.Response) -> flask.Response:
    resp.headers.setdefault("X-Request-ID", request_id())
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Cache-Control", "no-store")
    started = getattr(flask.g, "started", None)
    if started is not None and not flask.request.path.endswith("/health"):
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


def _teardown(_exc: BaseException | None) -> None:
    token = getattr(flask.g, "log_token", None)
    if token is not None:
        slog.reset(token)
        flask.g.log_token = None


# --- app ----------------------------------------------------------------------------------


def create_app(context: str, *, authenticate: bool = True) -> flask.Flask:
    """The Flask app of a context, with the platform's hooks and health routes."""
    from shared import auth, health
    from shared.manifests import catalog

    # No static route: Flask's default would serve <cwd>/static/ and shadow /static/* paths.
    app = flask.Flask(f"switchyard.{context}", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings().max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False
    app.before_request(_begin)
    if authenticate:
        app.before_request(auth.authenticate_request)
    app.after_request(_finish)
    app.teardown_request(_teardown)
    app.register_error_handler(Exception, _to_response)

    from shared.openapi import spec_path

    for dep in catalog().context(context).deployments:
        if dep.trigger != "http":
            continue
        app.add_url_rule(
            dep.health_path,
            f"health:{dep.name}",
            functools.partial(_health_view, dep.name),
            methods=["GET"],
        )
        spec = spec_path(dep)
        if spec:
            app.add_url_rule(
                spec,
                f"openapi:{dep.name}",
                functools.partial(_openapi_view, app, context),
                methods=["GET"],
            )
    del health  # imported above so a broken health module fails at app creation
    return app


def _health_view(deployment: str) -> flask.Response:
    from shared import health

    status, body = health.report(deployment)
    return flask.Response(json.dumps(body), status=status, mimetype="application/json")


def _openapi_view(app: flask.Flask, context: str) -> flask.Response:
    """The context's OpenAPI document, generated once per instance (public)."""
    spec = app.extensions.get("switchyard.openapi")
    if spec is None:
        from shared.openapi import spec_for

        spec = app.extensions["switchyard.openapi"] = json.dumps(spec_for(app, context))
    resp = flask.Response(spec, mimetype="application/json")
    resp.headers["Cache-Control"] = "public, max-age=60"
    return resp


def dispatch(app: flask.Flask, request: flask.Request) -> flask.Response:
    """Serve `request` (from functions-framework) with the context's Flask app."""
    # functions-framework drains the body through its own request object after responding
    # (its after_request `read_request`). Both request objects must read one stream, or that
    # drain waits for bytes this app already consumed (werkzeug's server, where wsgi.input is
    # the socket: the response hangs until the client gives up). Under gunicorn it is a no-op.
    request.environ["wsgi.input"] = request.stream
    with app.request_context(request.environ):
        try:
            return app.full_dispatch_request()
        finally:
            _teardown(None)


# --- bodies and queries ---------------------------------------------------------------------


class ApiModel(BaseModel):
    """Base of every request model: unknown fields are an error, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def json_body() -> Any:
    """The request's JSON body: 415 when it is not JSON, 400 when it does not parse."""
    req = flask.request
    if not req.is_json:
        raise UnsupportedMediaType("Send the body as application/json.")
    raw = req.get_data(cache=True)
    if not raw:
        raise BadRequest("The request body is empty.")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Malformed JSON: {exc}") from None


def body(model: type[M]) -> M:
    """Parse and validate the JSON body into `model` (422 with field errors)."""
    data = json_body()
    if not isinstance(data, dict):
        raise Unprocessable("The body must be a JSON object.")
    return model.model_validate(data)


def query(model: type[M]) -> M:
    """Validate the query string into `model` (422 with field errors; unknown params too)."""
    args = flask.request.args
    data: dict[str, Any] = {}
    for key in args:
        values = args.getlist(key)
        data[key] = values if len(values) > 1 else values[0]
    return model.model_validate(data)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> flask.Response:
    resp = flask.Response(
        json.dumps(data, default=_json_default), status=status, mimetype="application/json"
    )
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


# --- keyset pagination ----------------------------------------------------------------------


class PageQuery(ApiModel):
    """Base for list queries: `?limit=&cursor=`; extend with the resource's filters.

    `limit` is capped at MAX_LIMIT (not an error: clients may ask for more than we give).
    """

    limit: int = Field(DEFAULT_LIMIT, ge=1)
    cursor: str | None = Field(None, max_length=2048)

    @field_validator("limit")
    @classmethod
    def _cap(cls, value: int) -> int:
        return min(value, MAX_LIMIT)

    def after(self) -> list[Any] | None:
        """The decoded cursor: the sort key of the last item of the previous page."""
        return decode_cursor(self.cursor) if self.cursor else None


def encode_cursor(key: Sequence[Any]) -> str:
    raw = json.dumps(list(key), default=_json_default, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (ValueError, json.JSONDecodeError):
        raise BadRequest(
            "The cursor is not valid.",
            errors=[{"field": "cursor", "message": "not a cursor from this API", "type": "cursor"}],
        ) from None
    if not isinstance(key, list):
        raise BadRequest("The cursor is not valid.")
    return key


def page(
    rows: Sequence[Any],
    limit: int,
    key: Callable[[Any], Sequence[Any]],
    shape: Callable[[Any], Any] = lambda r: r,
) -> dict[str, Any]:
    """`{items, next_cursor}` from `limit + 1` fetched rows sorted by `key`."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return {
        "items": [shape(r) for r in items],
        "next_cursor": encode_cursor(key(items[-1])) if more and items else None,
    }


# --- Cloud Scheduler targets -----------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """One Cloud Scheduler firing: job name and the time it was scheduled for."""

    job: str
    schedule_time: datetime
    from_scheduler: bool


def scheduled(fn: Callable[[Tick], Any]) -> Callable[[flask.Request], flask.Response]:
    """Wrap a scheduled job as a functions-framework HTTP entry point.

    Answers `GET /health`; runs `fn` on POST with a `Tick` built from Cloud Scheduler's headers
    (`X-CloudScheduler-JobName`, `X-CloudScheduler-ScheduleTime`). In the cloud only Cloud
    Scheduler's OIDC identity may invoke the function (invoker IAM), so no JWT is checked here.
    """
    app = flask.Flask(f"switchyard.schedule.{fn.__name__}", static_folder=None)
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(_teardown)
    app.register_error_handler(Exception, _to_response)

    @app.get("/health")
    def _health() -> flask.Response:
        from shared import health

        status, payload = health.report(settings().deployment)
        return flask.Response(json.dumps(payload), status=status, mimetype="application/json")

    @app.post("/")
    def _run() -> flask.Response:
        headers = flask.request.headers
        raw_time = headers.get("X-CloudScheduler-ScheduleTime", "")
        try:
            when = (
                datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
                if raw_time
                else datetime.now(UTC)
            )
        except ValueError:
            raise BadRequest("X-CloudScheduler-ScheduleTime is not RFC 3339.") from None
        tick = Tick(
            job=headers.get("X-CloudScheduler-JobName", settings().deployment or fn.__name__),
            schedule_time=when.astimezone(UTC),
            from_scheduler=headers.get("X-CloudScheduler") == "true",
        )
        result = fn(tick)
        return json_response(result if result is not None else {"ok": True})

    @functools.wraps(fn)
    def entry(request: flask.Request) -> flask.Response:
        return dispatch(app, request)

    return entry
