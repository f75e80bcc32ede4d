"""Entry point of the gateway deployment."""

import flask
import functions_framework

from functions.gateway.api import app
from shared.http import dispatch


@functions_framework.http
def gateway(request: flask.Request) -> flask.Response:
    return dispatch(app, request)
