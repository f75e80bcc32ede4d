"""HTTP route of source-webhook (`POST /api/webhook/github`), public: GitHub cannot send a
bearer token, the per-repository HMAC signature authenticates each delivery instead
(`intake`). Its own Flask app so the public deployment serves nothing but this route and
loads nothing of source-api. The body limit here is GitHub's 25 MB cap, not the platform's
1 MiB: the route reads the body only after the length check (413 without reading further),
and only once this instance's budget of body bytes in flight has room for it (`BodyBudget`,
decision 0048: 503 with `Retry-After` when it has none within a few seconds).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import flask
from pydantic import BaseModel, ConfigDict, Field

from functions.source import intake, model
from shared.http import create_app, describe, json_response
from shared.openapi import responds

app = create_app("source")
app.config["MAX_CONTENT_LENGTH"] = model.MAX_PAYLOAD_BYTES


class DeliveryRepository(BaseModel):
    model_config = ConfigDict(extra="allow")

    full_name: str = Field(
        min_length=1,
        max_length=140,
        description="`owner/name`: the tracked repository whose webhook secret verifies the "
        "delivery (any case).",
    )


class GithubDelivery(BaseModel):
    """A GitHub webhook payload as the intake reads it: the repository it names (everything
    else is GitHub's, kept as sent). Form-encoded deliveries (`payload=<the JSON>`) are taken
    too; the signature is over the raw body either way."""

    model_config = ConfigDict(extra="allow")

    repository: DeliveryRepository


# The request headers the intake reads (intake.receive). GitHub sends all four; a missing
# or over-long event or delivery id is 400, a missing or wrong signature 401.
_TOKEN = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[!-~]+$"}
HEADERS = {
    "X-GitHub-Event": {
        "required": True,
        "description": "The event (`push`, `pull_request`, `ping`, ...).",
        "schema": _TOKEN,
    },
    "X-GitHub-Delivery": {
        "required": True,
        "description": "The delivery's GUID: a redelivery keeps it, and is answered 200 "
        "`duplicate` without being stored again.",
        "schema": _TOKEN,
    },
    "X-Hub-Signature-256": {
        "required": True,
        "description": "`sha256=` and the hex HMAC-SHA256 of the raw body under the "
        "repository's webhook secret (401 when missing or wrong).",
        "schema": {"type": "string", "pattern": "^sha256=[0-9a-fA-F]{64}$"},
    },
    "X-GitHub-Hook-ID": {
        "required": False,
        "description": "The webhook's id, kept with the raw delivery.",
        "schema": {"type": "string", "maxLength": 64},
    },
}


class WebhookAnswer(BaseModel):
    status: str
    delivery_id: str
    event: str


# Memory sizing of one source-webhook instance (decision 0048). While a delivery is handled
# it costs about BODY_COST times its body at the peak: the body, its parsed JSON (~4x for a
# 2048-commit push: many small strings, dicts and lists), the compressed segments and
# Firestore's copies of them (measured 5.0x for a 19 MB push, 4.9x for incompressible data;
# rounded up). The instance holds at most IN_FLIGHT_BODY_BYTES of bodies at once: four at
# GitHub's 25 MB cap, or all 20 requests of its concurrency when they are 5 MB or less (a
# typical push is some KB). tests/unit/test_source_webhook_sizing.py checks that this fits
# the manifest's runtime.memory with BASELINE_MIB and HEADROOM.
BODY_COST = 6
BASELINE_MIB = 200  # the container before a request: gunicorn master ~45, worker ~126 MiB
HEADROOM = 0.2  # of the memory: allocator fragmentation, garbage not yet collected
IN_FLIGHT_BODY_BYTES = 4 * model.MAX_PAYLOAD_BYTES
BUDGET_WAIT_S = 5.0  # GitHub waits 10 s for the answer; a 20 MB delivery takes ~0.3-1 s
RETRY_AFTER_S = 5


class BodyBudget:
    """Bytes of request bodies this instance may hold at once. A request reserves its
    Content-Length (GitHub's cap when it sends none) before reading a byte, waiting up to
    `wait_s` for others to finish; none left by then: `model.IntakeBusy` (503)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._room = threading.Condition()

    @contextmanager
    def hold(self, size: int, wait_s: float) -> Iterator[None]:
        size = min(size, self.limit)
        with self._room:
            if not self._room.wait_for(lambda: self.used + size <= self.limit, wait_s):
                raise model.IntakeBusy(RETRY_AFTER_S)
            self.used += size
        try:
            yield
        finally:
            with self._room:
                self.used -= size
                self._room.notify_all()


BUDGET = BodyBudget(IN_FLIGHT_BODY_BYTES)


def _body(req: flask.Request) -> bytes:
    data = req.stream.read(model.MAX_PAYLOAD_BYTES + 1)
    if len(data) > model.MAX_PAYLOAD_BYTES:
        raise model.DeliveryTooLarge(None)
    return data


@app.post("/api/webhook/github")
@describe(
    "Receive a GitHub webhook delivery (signed)",
    request=GithubDelivery,
    response=WebhookAnswer,
    status=202,
)
@responds(400, 401, headers=HEADERS)
def github() -> flask.Response:
    """GitHub's webhook, verified and de-duplicated, then ingested asynchronously.

    Verified with `X-Hub-Signature-256` against the secret of the repository the payload
    names (401 when the signature is missing or wrong, or the repository is not tracked or
    has no secret: nothing is stored), de-duplicated on `X-GitHub-Delivery` (a redelivery
    answers 200 `duplicate`), `ping` answered 200 `pong`, `push` and `pull_request` accepted
    (202) and ingested asynchronously, other events stored and ignored (200). 400 when
    `X-GitHub-Event` or `X-GitHub-Delivery` is missing or over 64 characters, or the body is
    not a GitHub JSON payload; 413 over 25 MB; 503 with `Retry-After` when this instance has
    too many bodies in flight."""
    req = flask.request
    length = req.content_length
    if length is not None and length > model.MAX_PAYLOAD_BYTES:
        raise model.DeliveryTooLarge(length)
    with BUDGET.hold(model.MAX_PAYLOAD_BYTES if length is None else length, BUDGET_WAIT_S):
        receipt = intake.receive(
            event=req.headers.get("X-GitHub-Event"),
            delivery_id=req.headers.get("X-GitHub-Delivery"),
            signature=req.headers.get("X-Hub-Signature-256"),
            body=_body(req),
            content_type=(req.mimetype or "application/json").lower(),
            hook_id=req.headers.get("X-GitHub-Hook-ID"),
        )
    status = 202 if receipt.status == "accepted" else 200
    return json_response(
        {"status": receipt.status, "delivery_id": receipt.delivery_id, "event": receipt.event},
        status,
    )
