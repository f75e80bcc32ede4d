"""Entry points of the auth context. The event and schedule deployments do not load the HTTP
routes (`api.py`), and nothing loads the service (its store, SQLAlchemy's ORM, the event
schemas) before the entry point that runs it: the health answer of an event or schedule
deployment needs none of it (cold starts, decision 0052)."""

import flask
import functions_framework

from shared.events import Received, handler
from shared.http import Tick, dispatch, scheduled


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    from functions.auth.api import app

    return dispatch(app, request)


@functions_framework.http
@handler
def on_user_event(event: Received) -> None:
    from functions.auth import service

    service.apply_user_event(event)


@functions_framework.http
@scheduled
def cleanup(tick: Tick) -> dict[str, int]:
    from functions.auth import service

    return service.cleanup()
