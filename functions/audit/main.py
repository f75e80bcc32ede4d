"""Entry points of the audit context."""

import flask
import functions_framework

from functions.audit import service
from functions.audit.api import app
from shared.events import Received, handler
from shared.http import dispatch


@functions_framework.http
@handler
def ingest(event: Received) -> None:
    service.record(event)


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    return dispatch(app, request)
