"""Entry points of the maintenance context."""

from dataclasses import asdict

import flask
import functions_framework

from functions.maintenance import service
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
    service.apply_user_event(event)


@functions_framework.http
@scheduled
def pm_tick(tick: Tick) -> dict:
    return asdict(service.run_due_schedules(tick.schedule_time))
