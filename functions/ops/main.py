"""Entry points of the ops context."""

import flask
import functions_framework

from functions.ops import service
from functions.ops.api import app
from shared.events import relay
from shared.http import Tick, dispatch, scheduled


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    return dispatch(app, request)


@functions_framework.http
@scheduled
def outbox_relay(tick: Tick) -> dict:
    return {"published": relay()}


@functions_framework.http
@scheduled
def cleanup(tick: Tick) -> dict:
    return service.cleanup()
