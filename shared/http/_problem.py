"""problem+json (RFC 9457): the one place where errors become HTTP answers.

`problem()` builds a response; `to_response()` maps any exception raised by a view: a
`shared.errors.Problem` keeps its status, a pydantic `ValidationError` is a 422 with field
`errors` (input values never echoed), a werkzeug `HTTPException` keeps its code, and anything
else is logged with its stack and answered as a bare 500 without internals.
"""

from __future__ import annotations

import json
from typing import Any

import flask
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from shared import logging as slog
from shared.config import settings
from shared.errors import Problem

PROBLEM_JSON = "application/problem+json"
_log = slog.get_logger("switchyard.http")


def request_id() -> str:
    """The id of the request being served (or of the event being consumed), else ''."""
    if flask.has_request_context():
        return str(getattr(flask.g, "request_id", "") or "")
    return slog.current("request_id")


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
    """Pydantic errors as `{field, message, type}` entries (no input values echoed).

    A field typed `X | SkipJsonSchema[None]` (absent or a value, never null) fails in both
    members of its union, and pydantic names the member after the field (`title.none`,
    `title.constrained-str`): the `none` member's error is dropped and the member's name
    left out, so the client reads the field's own error under the field's name."""
    errors = exc.errors(include_url=False, include_input=False)
    unions = {tuple(e["loc"][:-1]) for e in errors if e["loc"] and e["loc"][-1] == "none"}
    out = []
    for e in errors:
        loc = tuple(e["loc"])
        if loc and loc[:-1] in unions:
            if loc[-1] == "none":
                continue
            loc = loc[:-1]
        out.append(
            {
                "field": ".".join(str(p) for p in loc) or "(body)",
                "message": e["msg"],
                "type": e["type"],
            }
        )
    return out


def to_response(exc: BaseException) -> flask.Response:
    """The problem+json answer for an exception raised while serving a request."""
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
        valid_methods = getattr(exc, "valid_methods", None)
        if status == 405 and valid_methods:
            headers["Allow"] = ", ".join(valid_methods)
        detail = {
            404: "No such resource.",
            405: "This method is not allowed here.",
            413: f"The body exceeds {settings().max_body_bytes} bytes.",
        }.get(status, exc.description if status < 500 else None)
        return problem(status, exc.name, detail, headers=headers)
    _log.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal Server Error", "An unexpected error occurred.")
