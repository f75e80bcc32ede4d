"""Entry points of the maintenance context. Each entry point imports what it runs: the health
answer of the event and schedule deployments needs neither the routes nor the service
(cold starts, decisions 0040 and 0052)."""

from dataclasses import asdict

import flask
import functions_framework

from shared.events import Received, handler
from shared.http import Tick, dispatch, scheduled


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    # Imported here, not above: the event and schedule deployments load this module too and
    # never need the HTTP app (cold starts). Python caches it after the first request.
    from functions.maintenance.api import app

    return dispatch(app, request)


@functions_framework.http
@handler
def on_user_event(event: Received) -> None:
    from functions.maintenance import service

    service.apply_user_event(event)


@functions_framework.http
@scheduled
def pm_tick(tick: Tick) -> dict:
    from functions.maintenance import service

    return asdict(service.run_due_schedules(tick.schedule_time))
