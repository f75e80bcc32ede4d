"""Entry points of the realtime context."""

import flask
import functions_framework

from shared.events import Received, handler
from shared.http import dispatch


@functions_framework.http
def stream(request: flask.Request) -> flask.Response:
    from functions.realtime.api import app

    return dispatch(app, request)


@functions_framework.http
@handler
def fanout(event: Received) -> None:
    from functions.realtime import service

    service.fan_out(event)
