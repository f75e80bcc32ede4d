"""Entry point of the console context."""

import flask
import functions_framework

from functions.console.api import app
from shared.http import dispatch


@functions_framework.http
def web(request: flask.Request) -> flask.Response:
    return dispatch(app, request)
