"""Entry points of the automation context (the runner and the tick never import api.py)."""

import flask
import functions_framework

from shared.events import Received, handler
from shared.http import Tick, dispatch, scheduled


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    from functions.automation.api import app

    return dispatch(app, request)


@functions_framework.http
@handler
def runner(event: Received) -> None:
    from functions.automation import runner as run

    run.execute(str(event.data["run_id"]))


@functions_framework.http
@scheduled
def tick(t: Tick) -> dict:
    from functions.automation import service

    return service.run_due_schedules(t.schedule_time)
