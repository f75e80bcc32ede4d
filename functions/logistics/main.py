"""Entry point of the logistics context."""

import flask
import functions_framework

from functions.logistics.api import app
from shared.http import dispatch


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    return dispatch(app, request)
