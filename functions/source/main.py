"""Entry points of the source context. Each loads only what its deployment needs: the API
app, the webhook app, the ingest or the poller (cold starts)."""

from __future__ import annotations

import flask
import functions_framework

from shared.events import Received, handler
from shared.http import Tick, dispatch, scheduled


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    from functions.source.api import app

    return dispatch(app, request)


@functions_framework.http
def webhook(request: flask.Request) -> flask.Response:
    from functions.source.webhook import app

    return dispatch(app, request)


@functions_framework.http
@handler
def ingest(event: Received) -> None:
    from functions.source import ingest as work

    work.handle(event)


@functions_framework.http
@scheduled
def monitor(tick: Tick) -> dict:
    from functions.source import monitor as poller

    run = poller.poll("schedule", tick.schedule_time)
    return {
        "run_id": run.id,
        "repositories_checked": run.repositories_checked,
        "commits_found": run.commits_found,
        "stopped_early": run.stopped_early,
    }
