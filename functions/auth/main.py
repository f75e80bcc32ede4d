"""Entry points of the auth context."""

import flask
import functions_framework

from functions.auth import service
from functions.auth.api import app
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
def cleanup(tick: Tick) -> dict:
    return service.cleanup()
