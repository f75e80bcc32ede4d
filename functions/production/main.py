"""Entry point of the production context."""

import flask
import functions_framework

from functions.production.api import app
from shared.http import dispatch


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    return dispatch(app, request)
