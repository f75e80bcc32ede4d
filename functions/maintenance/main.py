"""Entry points of the maintenance context."""

from dataclasses import asdict

import flask
import functions_framework

from functions.maintenance import service
from functions.maintenance.api import app
from shared.events import Received, handler
from shared.http import Tick, dispatch, scheduled


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    return dispatch(app, request)


@functions_framework.http
@handler
def on_user_event(event: Received) -> None:
    service.apply_user_event(event)


@functions_framework.http
@scheduled
def pm_tick(tick: Tick) -> dict:
    return asdict(service.run_due_schedules(tick.schedule_time))
