"""Entry points of the auth context. The event and schedule deployments do not load the HTTP
routes (`api.py`): each entry point imports only what it runs (cold starts)."""

import flask
import functions_framework

from functions.auth import service
from shared.events import Received, handler
from shared.http import Tick, dispatch, scheduled


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    from functions.auth.api import app

    return dispatch(app, request)


@functions_framework.http
@handler
def on_user_event(event: Received) -> None:
    service.apply_user_event(event)


@functions_framework.http
@scheduled
def cleanup(tick: Tick) -> dict[str, int]:
    return service.cleanup()
