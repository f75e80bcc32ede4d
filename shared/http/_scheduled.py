"""Cloud Scheduler targets: `scheduled(fn)` turns a job function into an HTTP entry point.

The entry point answers `GET /health` and runs `fn` on POST with a `Tick` built from Cloud
Scheduler's headers (`X-CloudScheduler-JobName`, `X-CloudScheduler-ScheduleTime`). No JWT is
checked here: outside local the request's OIDC token must be Cloud Scheduler's service account
(`shared.identity.require_caller`, on top of the invoker IAM; skipped locally). Jobs must be
idempotent per `schedule_time`: Cloud Scheduler may fire twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import flask

from shared.config import settings
from shared.errors import BadRequest
from shared.http._app import dispatch, health_response
from shared.http._bodies import json_response
from shared.http._context import install
from shared.identity import SCHEDULER_INVOKER, require_caller


@dataclass(frozen=True)
class Tick:
    """One Cloud Scheduler firing: job name and the time it was scheduled for."""

    job: str
    schedule_time: datetime
    from_scheduler: bool


def scheduled(fn: Callable[[Tick], Any]) -> Callable[[flask.Request], flask.Response]:
    """Wrap a scheduled job as a functions-framework HTTP entry point (see module doc)."""
    app = flask.Flask(f"switchyard.schedule.{fn.__name__}", static_folder=None)
    install(app)

    @app.get("/health")
    def _health() -> flask.Response:
        return health_response(settings().deployment)

    @app.post("/")
    def _run() -> flask.Response:
        headers = flask.request.headers
        require_caller(headers, SCHEDULER_INVOKER)  # Cloud Scheduler's OIDC identity (0032)
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
