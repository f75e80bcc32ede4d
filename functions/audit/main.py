"""Entry points of the audit context. The ingest deployment does not load the HTTP routes
(`api.py`): each entry point imports only what it runs (cold starts)."""

import flask
import functions_framework

from functions.audit import service
from shared.events import Received, handler
from shared.http import dispatch


@functions_framework.http
@handler(atomic=True)  # its one effect is a write in the delivery's batch (decision 0041)
def ingest(event: Received) -> None:
    service.record(event)


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    from functions.audit.api import app

    return dispatch(app, request)
