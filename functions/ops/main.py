"""Entry points of the ops context. The schedule deployments do not load the HTTP routes
(`api.py`), and the relay not even the service (dumps, SQL Admin, Firestore): each entry
point imports only what it runs (cold starts)."""

from typing import Any

import flask
import functions_framework

from shared.http import Tick, dispatch, scheduled


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    from functions.ops.api import app

    return dispatch(app, request)


@functions_framework.http
@scheduled
def outbox_relay(tick: Tick) -> dict[str, int]:
    from shared.events import relay  # the outbox and SQLAlchemy's ORM: the relay only

    return {"published": relay()}


@functions_framework.http
@scheduled
def cleanup(tick: Tick) -> dict[str, Any]:
    from functions.ops import service

    return service.cleanup()
