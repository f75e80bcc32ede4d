"""HTTP routes of ops-api (/api/ops): dead letters and their redrive, the outbox of every
context. Admins only."""

from __future__ import annotations

from typing import Any

import flask
from pydantic import Field

from functions.ops import service
from shared import auth as sauth
from shared.http import ApiModel, NotFound, body, create_app, describe, json_response, query

app = create_app("ops")


class DeadLetterQuery(ApiModel):
    topic: str | None = Field(None, max_length=200)


class RedriveRequest(ApiModel):
    event_ids: list[str] | None = Field(None, max_length=1000)


def _unknown(topic: str) -> NotFound:
    return NotFound(f"No topic {topic!r}: topics are the event types of the manifests.")


@app.get("/api/ops/dead-letters")
@sauth.require_roles("admin")
@describe("Dead letters kept for each topic (peeked: they stay kept)", query=DeadLetterQuery)
def dead_letters() -> flask.Response:
    q = query(DeadLetterQuery)
    try:
        return json_response(service.dead_letters(q.topic))
    except service.UnknownTopic:
        raise _unknown(q.topic or "") from None


@app.post("/api/ops/dead-letters/<topic>/redrive")
@sauth.require_roles("admin")
@describe(
    "Republish kept dead letters of a topic to the topic, then drop them", request=RedriveRequest
)
def redrive(topic: str) -> flask.Response:
    req = flask.request
    event_ids = None
    if req.get_data(cache=True):
        event_ids = body(RedriveRequest).event_ids
    try:
        result: dict[str, Any] = service.redrive(topic, event_ids)
    except service.UnknownTopic:
        raise _unknown(topic) from None
    return json_response(result)


@app.get("/api/ops/outbox")
@sauth.require_roles("admin")
@describe("Pending and published events in the outbox of every context")
def outbox() -> flask.Response:
    return json_response(service.outbox())
