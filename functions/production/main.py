"""Entry point of the production context. The routes (`api.py`) load with the first request, as in
every context: the server listens as soon as functions-framework is up (cold starts)."""

import flask
import functions_framework

from shared.http import dispatch


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    from functions.production.api import app

    return dispatch(app, request)
