"""Entry points of the agents context."""

import flask
import functions_framework

from shared.events import Received, handler
from shared.http import dispatch


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    from functions.agents.api import app

    return dispatch(app, request)


@functions_framework.http
@handler
def worker(event: Received) -> None:
    from functions.agents import service

    service.handle(event)
