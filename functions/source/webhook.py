"""HTTP route of source-webhook (`POST /api/webhook/github`), public: GitHub cannot send a
bearer token, the per-repository HMAC signature authenticates each delivery instead
(`intake`). Its own Flask app so the public deployment serves nothing but this route and
loads nothing of source-api. The body limit here is GitHub's 25 MB cap, not the platform's
1 MiB: the route reads the body only after the length check (413 without reading further).
"""

from __future__ import annotations

import flask
from pydantic import BaseModel

from functions.source import intake, model
from shared.http import create_app, describe, json_response

app = create_app("source")
app.config["MAX_CONTENT_LENGTH"] = model.MAX_PAYLOAD_BYTES


class WebhookAnswer(BaseModel):
    status: str
    delivery_id: str
    event: str


def _body(req: flask.Request) -> bytes:
    length = req.content_length
    if length is not None and length > model.MAX_PAYLOAD_BYTES:
        raise model.DeliveryTooLarge(length)
    data = req.stream.read(model.MAX_PAYLOAD_BYTES + 1)
    if len(data) > model.MAX_PAYLOAD_BYTES:
        raise model.DeliveryTooLarge(None)
    return data


@app.post("/api/webhook/github")
@describe("Receive a GitHub webhook delivery (signed)", response=WebhookAnswer, status=202)
def github() -> flask.Response:
    """GitHub's webhook: verified with `X-Hub-Signature-256` (the repository's secret; 401
    when missing or wrong, nothing stored), de-duplicated on `X-GitHub-Delivery` (a
    redelivery answers 200 `duplicate`), `ping` answered 200 `pong`, `push` and
    `pull_request` accepted (202) and ingested asynchronously, other events stored and
    ignored (200). Bodies over 25 MB: 413."""
    req = flask.request
    body = _body(req)
    receipt = intake.receive(
        event=req.headers.get("X-GitHub-Event"),
        delivery_id=req.headers.get("X-GitHub-Delivery"),
        signature=req.headers.get("X-Hub-Signature-256"),
        body=body,
        content_type=(req.mimetype or "application/json").lower(),
        hook_id=req.headers.get("X-GitHub-Hook-ID"),
    )
    status = 202 if receipt.status == "accepted" else 200
    return json_response(
        {"status": receipt.status, "delivery_id": receipt.delivery_id, "event": receipt.event},
        status,
    )
