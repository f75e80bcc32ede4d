"""The GitHub webhook intake use case (source-webhook): verify, de-duplicate, store, hand on.

In order, and nothing is stored until the signature holds:
1. `X-GitHub-Event` and `X-GitHub-Delivery` present (else 400); the body at most GitHub's
   25 MB cap (else 413, checked by the caller before reading) and admitted by the caller's
   budget of body bytes in flight (`webhook.BodyBudget`, else 503: decision 0048);
2. the payload parsed (JSON, or the `payload` field of a form-encoded delivery) for
   `repository.full_name`, which names the tracked repository and so its secret (unknown
   repository or none set: 401);
3. `X-Hub-Signature-256` checked against HMAC-SHA256 of the raw body (`hmac.compare_digest`;
   missing or wrong: 401);
4. a delivery id already in `deliveries` is a redelivery: 200, nothing done;
5. the raw body goes to Firestore (`rawstore`: compressed in parallel from step 2 on, the
   chunk batches committed concurrently, the header last), then one SQL transaction inserts the
   delivery row (its primary key is the de-duplication: a concurrent twin loses there) and,
   for `push` and `pull_request`, emits `github.delivery.received` through the outbox. `ping`
   is answered and recorded processed; any other event is recorded `ignored`.
The answer waits for nothing else: the commits are the ingest's (source-ingest, from the
outbox event), so a 25 MB push answers in well under GitHub's 10 s, and a crash after the
answer loses nothing (the body is in Firestore, the row and its event in one transaction).
Secrets are cached per (name, version) for a few minutes: a rotation writes a new version,
which the repository row then names, so it applies at once.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from functions.source import model, rawstore, store
from functions.source.events import GithubDeliveryReceived
from shared import db
from shared import logging as slog
from shared.errors import BadRequest
from shared.events import emit, rfc3339

_log = slog.get_logger(__name__)
SECRET_TTL_S = 300.0
_cache: dict[tuple[str, str], tuple[bytes, float]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Receipt:
    status: str  # accepted | ignored | pong | duplicate
    delivery_id: str
    event: str


def _secret(name: str, version: str) -> bytes:
    now = time.monotonic()
    with _lock:
        hit = _cache.get((name, version))
        if hit and hit[1] > now:
            return hit[0]
    from shared import secrets

    value = secrets.get(name, version).encode()
    with _lock:
        _cache[(name, version)] = (value, now + SECRET_TTL_S)
    return value


def forget_secrets() -> None:
    with _lock:
        _cache.clear()


def parse_body(body: bytes, content_type: str) -> Any:
    """The payload: JSON, or the `payload` field of application/x-www-form-urlencoded."""
    try:
        if content_type == "application/x-www-form-urlencoded":
            fields = urllib.parse.parse_qs(body.decode("utf-8"), max_num_fields=10)
            raw = (fields.get("payload") or [""])[0]
            return json.loads(raw)
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError):
        raise BadRequest("The delivery body is not a GitHub JSON payload.") from None


def receive(
    *,
    event: str | None,
    delivery_id: str | None,
    signature: str | None,
    body: bytes,
    content_type: str,
    hook_id: str | None = None,
) -> Receipt:
    if not event or not delivery_id:
        raise BadRequest("X-GitHub-Event and X-GitHub-Delivery are required.")
    if len(delivery_id) > 64 or len(event) > 64:
        raise BadRequest("X-GitHub-Event or X-GitHub-Delivery is too long.")
    if len(body) > model.MAX_PAYLOAD_BYTES:
        raise model.DeliveryTooLarge(len(body))
    if not signature:
        raise model.SignatureInvalid("X-Hub-Signature-256 is missing.")
    # Compression and the SHA-256 start now, on rawstore's pool, and overlap the parse and
    # the signature check (zlib and hashlib release the GIL); nothing is written before the
    # signature holds, and a refused delivery's packing is simply dropped.
    packing = rawstore.pack(body)
    payload = parse_body(body, content_type)
    full = model.repository_of(payload)
    if full is None:
        raise model.SignatureInvalid(
            "The payload names no repository whose secret could verify it."
        )
    with db.transaction() as tx:
        repo = store.repository_by_key(tx, full.lower())
        duplicate = store.delivery_exists(tx, delivery_id)
    if repo is None or not repo.has_webhook_secret:
        raise model.SignatureInvalid("No webhook secret is registered for this repository.")
    assert repo.webhook_secret_name is not None and repo.webhook_secret_version is not None
    secret = _secret(repo.webhook_secret_name, repo.webhook_secret_version)
    if not model.signature_valid(secret, body, signature):
        raise model.SignatureInvalid("X-Hub-Signature-256 does not match the payload.")
    if duplicate:
        return Receipt("duplicate", delivery_id, event)
    return _store(
        repo,
        payload,
        packing,
        event=event,
        delivery_id=delivery_id,
        hook_id=hook_id,
        content_type=content_type,
        full=full,
    )


def _store(
    repo: model.Repository,
    payload: Any,
    body: rawstore.Packed,
    *,
    event: str,
    delivery_id: str,
    hook_id: str | None,
    content_type: str,
    full: str,
) -> Receipt:
    now = datetime.now(UTC)
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    accepted = event in model.ACCEPTED_EVENTS
    if event == model.PING:
        status, summary = (
            "processed",
            {"hook_id": payload.get("hook_id"), "zen": payload.get("zen")},
        )
    elif accepted:
        status, summary = "received", None
    else:
        status, summary = "ignored", {"reason": f"{event} events are not ingested"}
    stored = rawstore.save(
        delivery_id,
        body,
        meta={
            "event": event,
            "action": action,
            "repository": full,
            "hook_id": hook_id,
            "content_type": content_type,
            "received_at": now,
        },
    )
    with db.transaction() as tx:
        inserted = store.insert_delivery(
            tx,
            id=delivery_id,
            event=event,
            action=action[:64] if action else None,
            repository=full[:140],
            repository_id=repo.id,
            status=status,
            received_at=now,
            processed_at=now if status != "received" else None,
            size_bytes=body.size_bytes,
            stored_bytes=stored.stored_bytes,
            chunks=stored.chunks,
            commits_recorded=0,
            attempts=0,
            error=None,
            summary=json.dumps(summary) if summary is not None else None,
        )
        if not inserted:  # a concurrent redelivery of the same id won the insert
            return Receipt("duplicate", delivery_id, event)
        if accepted:
            emit(
                tx,
                GithubDeliveryReceived(
                    delivery_id=delivery_id,
                    event=event,
                    action=action,
                    repository=full,
                    repository_id=repo.id,
                    size_bytes=body.size_bytes,
                    received_at=rfc3339(now),
                ),
                actor="github",
            )
    _log.info("delivery %s (%s) for %s: %s", delivery_id, event, full, status)
    receipt = "accepted" if accepted else ("pong" if event == model.PING else "ignored")
    return Receipt(receipt, delivery_id, event)
