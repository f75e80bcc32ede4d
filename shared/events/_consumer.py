"""Consuming events: `handler(fn)` turns a function of `Received` into an entry point.

The entry point accepts a raw Pub/Sub push body or a CloudEvent (binary or structured),
answers `GET /health`, skips an `event_id` its subscription already processed (Firestore
`processed/{subscription}:{event_id}`, created with `create()`, kept 7 days; its short lease is
heartbeated while the consumer runs, and a redelivery meeting a live claim waits for it to finish
or lapse rather than answering "busy"), handles each delivery in a consumer span
(`shared.tracing`: `process <event type>`, child of the publish span the event's `traceparent`
names, so it also stands for the push that carried it) bound to the logs, and answers non-2xx
on failure so Pub/Sub redelivers with backoff and finally dead-letters. An undecodable
delivery is a 400 (it can never succeed; Pub/Sub dead-letters it). Limits: at-least-once, no
ordering across events (consumers order by `occurred_at`).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import flask
from pydantic import BaseModel

from shared import logging as slog
from shared import tracing
from shared.config import settings
from shared.events._faults import fault_point, poisoned
from shared.events._schema import utcnow
from shared.identity import verify_delivery

_log = slog.get_logger("switchyard.events")
PROCESSED = "processed"
PROCESSED_TTL = timedelta(days=7)
LEASE_S = 10.0  # a claim's lease; renewed every LEASE_S / 3 while its delivery works
BUSY_POLL_S = 0.5  # how often a delivery waiting on another's claim looks again
HEARTBEAT_TICK_S = 1.0  # how often the heartbeat thread looks for leases due for renewal

E = TypeVar("E", bound=BaseModel)


@dataclass(frozen=True)
class Received:
    """An event as a consumer sees it: envelope attributes plus the JSON payload."""

    event_type: str
    event_id: str
    schema_version: int
    source: str
    occurred_at: datetime
    actor: str
    request_id: str
    traceparent: str
    data: dict[str, Any]
    attributes: dict[str, str] = field(default_factory=dict)
    message_id: str = ""
    subscription: str = ""
    delivery_attempt: int = 1
    delivery: _Delivery | None = field(default=None, repr=False, compare=False)

    def firestore_batch(self) -> Any | None:
        """A Firestore write batch the handler commits together with this delivery's claim
        marked done, in one atomic commit: the consumer's writes and "processed" land together
        or not at all, and the delivery costs one Firestore round trip less. None when the
        event is not being delivered by `handler` (a test, a script): write directly then."""
        return None if self.delivery is None else self.delivery.batch()

    def parse(self, model: type[E]) -> E:
        """The payload as the publisher's schema (extra fields of newer versions ignored)."""
        known = {f.alias or name for name, f in model.model_fields.items()}
        return model.model_validate({k: v for k, v in self.data.items() if k in known})


class _Delivery:
    """What one delivery shares between `handler` and its consumer: the lazily made batch."""

    def __init__(self) -> None:
        self._batch: Any = None

    def batch(self) -> Any:
        if self._batch is None:
            from shared.clients import firestore

            self._batch = firestore().batch()
        return self._batch

    @property
    def pending(self) -> Any | None:
        return self._batch


class PoisonMessage(ValueError):
    """A delivery that can never be processed (no envelope); left to dead-letter."""


def decode(request: flask.Request) -> tuple[dict[str, Any], str]:
    """The Pub/Sub message and subscription from a push body or CloudEvent (binary/structured)."""
    ctype = (request.content_type or "").split(";")[0].strip().lower()
    try:
        body = json.loads(request.get_data() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PoisonMessage("body is not JSON") from None
    if ctype == "application/cloudevents+json" and isinstance(body, dict):
        body = body.get("data")  # structured CloudEvent: the push body is its data
    # binary CloudEvent (ce-* headers): the body is the push body already
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        raise PoisonMessage("no Pub/Sub message in the body")
    return body["message"], str(body.get("subscription", ""))


def envelope(message: dict[str, Any], subscription: str, delivery_attempt: int = 1) -> Received:
    attrs = {str(k): str(v) for k, v in (message.get("attributes") or {}).items()}
    if not attrs.get("event_id") or not attrs.get("event_type"):
        raise PoisonMessage("message lacks event_id/event_type attributes")
    try:
        data = json.loads(base64.b64decode(message.get("data") or b"e30=") or b"{}")
    except (ValueError, json.JSONDecodeError):
        raise PoisonMessage("message data is not base64 JSON") from None
    if not isinstance(data, dict):
        raise PoisonMessage("message data is not a JSON object")
    try:
        occurred = datetime.fromisoformat(attrs.get("occurred_at", "").replace("Z", "+00:00"))
    except ValueError:
        occurred = utcnow()
    return Received(
        event_type=attrs["event_type"],
        event_id=attrs["event_id"],
        schema_version=int(attrs.get("schema_version", "1") or 1),
        source=attrs.get("source", ""),
        occurred_at=occurred,
        actor=attrs.get("actor", "system"),
        request_id=attrs.get("request_id", ""),
        traceparent=attrs.get("traceparent", ""),
        data=data,
        attributes=attrs,
        message_id=str(message.get("messageId") or message.get("message_id") or ""),
        subscription=subscription,
        delivery_attempt=delivery_attempt,
    )


class _Heartbeats:
    """One thread per process renews the lease of every claim held longer than `LEASE_S / 3`
    (a delivery shorter than that, the usual case, costs no thread and no renewal)."""

    def __init__(self) -> None:
        self._due: dict[str, tuple[_Claim, float]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, claim: _Claim) -> None:
        with self._lock:
            self._due[claim.owner] = (claim, time.monotonic() + claim.lease_s / 3)
            if self._thread is None or self._pid != os.getpid():  # none yet, or forked
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="leases", daemon=True)
                self._thread.start()

    def remove(self, claim: _Claim) -> None:
        with self._lock:
            self._due.pop(claim.owner, None)

    def _loop(self) -> None:
        while True:
            time.sleep(HEARTBEAT_TICK_S)
            now = time.monotonic()
            with self._lock:
                due = [c for c, at in self._due.values() if at <= now]
            for claim in due:
                try:
                    kept = claim.renew()
                except Exception:  # noqa: BLE001 - the next beat retries; the lease may lapse
                    _log.warning("could not renew the lease of %s", claim.key, exc_info=True)
                    kept = True
                with self._lock:
                    if claim.owner in self._due:
                        if kept:
                            self._due[claim.owner] = (claim, now + claim.lease_s / 3)
                        else:
                            del self._due[claim.owner]


_heartbeats = _Heartbeats()


class _Claim:
    """The processed-event marker: created before work, heartbeated while it runs, finished
    (`done`, `completions` + 1) or released (deleted) after.

    The lease is short and renewed every `LEASE_S / 3` (by the process's one heartbeat thread)
    while the delivery works, so a delivery whose process was killed frees its event within
    `LEASE_S`; a live one keeps it however long the work takes. `owner` names the delivery
    holding it."""

    def __init__(self, key: str, lease_s: float = 0.0) -> None:
        self.key = key
        self.lease_s = lease_s or LEASE_S
        self.owner = uuid.uuid4().hex

    def _doc(self) -> Any:
        from shared.clients import firestore

        return firestore().collection(PROCESSED).document(self.key)

    def acquire(self, event: Received) -> str:
        """'new' (go), 'done' (already processed: skip) or 'busy' (another delivery runs)."""
        from google.api_core.exceptions import AlreadyExists, FailedPrecondition

        now = utcnow()
        fields = {
            "state": "processing",
            "event_type": event.event_type,
            "owner": self.owner,
            "lease_until": now + timedelta(seconds=self.lease_s),
            "expires_at": now + PROCESSED_TTL,
            "attempt": event.delivery_attempt,
        }
        doc = self._doc()
        try:
            doc.create({**fields, "runs": 1, "completions": 0})
            return "new"
        except AlreadyExists:
            pass
        snap = doc.get()
        if not snap.exists:
            return "busy"
        current = snap.to_dict() or {}
        if current.get("state") == "done":
            return "done"
        lease = current.get("lease_until")
        if lease is not None and lease > now:
            return "busy"
        try:  # a crashed earlier delivery: take over its expired lease, exactly one wins
            from google.cloud.firestore_v1 import Client

            opt = Client.write_option(last_update_time=snap.update_time)
            doc.update({**fields, "runs": int(current.get("runs") or 1) + 1}, option=opt)
            return "new"
        except FailedPrecondition:
            return "busy"

    def wait_turn(self, event: Received, wait_s: float) -> str:
        """`acquire`, and while another delivery holds a live lease, wait (up to `wait_s`) for
        it to finish or lapse: a redelivery after a crash waits out the dead lease instead of
        answering 'busy' and spending one of the message's delivery attempts."""
        deadline = time.monotonic() + wait_s
        while True:
            state = self.acquire(event)
            if state != "busy" or time.monotonic() >= deadline:
                return state
            time.sleep(min(BUSY_POLL_S, max(0.0, deadline - time.monotonic())))

    def start_heartbeat(self) -> None:
        _heartbeats.add(self)

    def renew(self) -> bool:
        """Push `lease_until` forward while this delivery still holds the claim."""
        from google.api_core.exceptions import FailedPrecondition
        from google.cloud.firestore_v1 import Client

        doc = self._doc()
        snap = doc.get()
        current = snap.to_dict() or {}
        if not snap.exists or current.get("owner") != self.owner or current.get("state") == "done":
            return False
        until = utcnow() + timedelta(seconds=self.lease_s)
        try:
            opt = Client.write_option(last_update_time=snap.update_time)
            doc.update({"lease_until": until}, option=opt)
        except FailedPrecondition:
            return False
        return True

    def finish(self, batch: Any | None = None) -> None:
        """Mark the claim done; with the consumer's `batch`, in the same atomic commit."""
        from google.cloud.firestore_v1 import Increment

        _heartbeats.remove(self)
        done = {"state": "done", "finished_at": utcnow(), "completions": Increment(1)}
        if batch is None:
            self._doc().update(done)
        else:
            batch.update(self._doc(), done)
            batch.commit()

    def release(self) -> None:
        _heartbeats.remove(self)
        self._doc().delete()


def handler(fn: Callable[[Received], Any] | None = None, *, atomic: bool = False) -> Any:
    """Wrap an event consumer as a functions-framework HTTP entry point (design section 6).

    `@handler(atomic=True)`: the consumer's only effects are writes it adds to
    `event.firestore_batch()`. Then no claim is taken before the work: its writes and the
    processed marker (created `done`) are one atomic commit, one Firestore round trip per
    delivery instead of two, and a crash before it leaves nothing to wait out. A marker that
    already exists fails the commit, nothing is written, and the delivery goes the claimed way
    (duplicate, wait for a live claim, or take over); so on a redelivery the consumer may run
    once more, its writes refused."""
    if fn is None:
        return functools.partial(handler, atomic=atomic)
    consume = _consume_atomic if atomic else _consume

    @functools.wraps(fn)
    def entry(request: flask.Request) -> flask.Response:
        from shared.http import health_response, problem

        if request.method == "GET" and request.path.rstrip("/").endswith("health"):
            return health_response(settings().deployment)
        if request.method != "POST":
            return problem(
                405,
                "Method Not Allowed",
                "Deliver events with POST.",
                headers={"Allow": "GET, POST"},
            )
        try:
            message, sub = decode(request)
            attempt = int(
                request.headers.get("ce-deliveryattempt")
                or (request.get_json(silent=True) or {}).get("deliveryAttempt")
                or 1
            )
            event = envelope(message, sub, attempt)
        except PoisonMessage as exc:
            _log.error("undecodable delivery: %s", exc)
            return problem(400, "Bad Request", f"Undecodable event delivery: {exc}")
        refused = verify_delivery(request, event)  # push identity and event origin (0032)
        if refused is not None:
            return refused
        from shared.manifests import subscription_name

        subscription = subscription_name(settings().deployment or fn.__name__, event.event_type)
        if not tracing.enabled():
            token = slog.bind(
                request_id=event.request_id, traceparent=event.traceparent, event_id=event.event_id
            )
            try:
                return consume(fn, event, subscription)
            finally:
                slog.reset(token)
        token = slog.bind(request_id=event.request_id, event_id=event.event_id)
        scope = tracing.server(
            f"process {event.event_type}",
            event.traceparent,
            kind="consumer",
            attributes={
                "messaging.system": "gcp_pubsub",
                "messaging.destination.subscription.name": subscription,
                "messaging.message.id": event.message_id,
                "messaging.gcp_pubsub.message.delivery_attempt": event.delivery_attempt,
                "switchyard.event_id": event.event_id,
                "switchyard.request_id": event.request_id,
            },
        )
        try:
            resp = consume(fn, event, subscription)
            scope.set("http.response.status_code", resp.status_code)
            if resp.status_code >= 500:
                scope.fail("the consumer failed; Pub/Sub redelivers")
            return resp
        finally:
            scope.finish()  # before the delivery's log token: tokens reset in reverse order
            slog.reset(token)

    return entry


def _consume_atomic(
    fn: Callable[[Received], Any], event: Received, subscription: str
) -> flask.Response:
    """One commit: the consumer's batched writes and the marker created `done` (see `handler`).
    `runs` counts the delivery attempt: the attempts before it reached the consumer too."""
    from google.api_core.exceptions import AlreadyExists, Conflict

    from shared.http import json_response, problem

    delivery = _Delivery()
    claimed = dataclasses.replace(event, delivery=delivery)
    fault_point("consume")  # fault suite only (local): die with the delivery in flight
    try:
        if poisoned(event.event_id):  # fault suite only (local): a poison message
            raise RuntimeError("a poison message (armed by the fault suite)")
        fn(claimed)
    except Exception:
        _log.exception(
            "consumer failed on %s %s (attempt %d)",
            event.event_type,
            event.event_id,
            event.delivery_attempt,
        )
        return problem(500, "Internal Server Error", "The consumer failed; Pub/Sub will retry.")
    claim = _Claim(f"{subscription}:{event.event_id}")
    now = utcnow()
    batch = delivery.batch()
    batch.create(
        claim._doc(),
        {
            "state": "done",
            "event_type": event.event_type,
            "owner": claim.owner,
            "lease_until": now,
            "expires_at": now + PROCESSED_TTL,
            "attempt": event.delivery_attempt,
            "runs": max(1, event.delivery_attempt),
            "completions": 1,
            "finished_at": now,
        },
    )
    try:
        batch.commit()
    except (AlreadyExists, Conflict):  # a marker exists: done, being processed, or abandoned
        return _consume(fn, event, subscription)
    except Exception:
        _log.exception("could not store %s %s", event.event_type, event.event_id)
        return problem(
            500, "Internal Server Error", "Could not store the event; Pub/Sub will retry."
        )
    _log.info("processed %s %s", event.event_type, event.event_id)
    return json_response({"status": "processed", "event_id": event.event_id})


def _consume(fn: Callable[[Received], Any], event: Received, subscription: str) -> flask.Response:
    from shared.http import json_response, problem
    from shared.manifests import catalog

    dep = catalog().deployments.get(settings().deployment)
    timeout_s = float(dep.runtime.timeout_s) if dep else 60.0
    claim = _Claim(f"{subscription}:{event.event_id}")
    # wait for a claim held by another delivery, within the push deadline (the timeout)
    state = claim.wait_turn(event, max(LEASE_S * 1.5, timeout_s - 5.0))
    if state == "done":
        _log.info("skipped %s %s: already processed", event.event_type, event.event_id)
        return json_response({"status": "duplicate", "event_id": event.event_id})
    if state == "busy":
        return problem(409, "Conflict", "This event is being processed by another delivery.")
    claim.start_heartbeat()
    delivery = _Delivery()
    event = dataclasses.replace(event, delivery=delivery)
    fault_point("consume")  # fault suite only (local): die with the claim taken
    try:
        if poisoned(event.event_id):  # fault suite only (local): a poison message
            raise RuntimeError("a poison message (armed by the fault suite)")
        fn(event)
    except Exception:
        _log.exception(
            "consumer failed on %s %s (attempt %d)",
            event.event_type,
            event.event_id,
            event.delivery_attempt,
        )
        try:
            claim.release()
        except Exception:
            _log.warning("could not release claim %s", claim.key, exc_info=True)
        return problem(500, "Internal Server Error", "The consumer failed; Pub/Sub will retry.")
    try:
        claim.finish(delivery.pending)  # with the consumer's batched writes, if any
    except Exception:  # the claim's lease lapses (no heartbeat now): a redelivery takes over
        _log.exception("could not mark %s %s done", event.event_type, event.event_id)
        return problem(500, "Internal Server Error", "Could not record the event as processed.")
    _log.info("processed %s %s", event.event_type, event.event_id)
    return json_response({"status": "processed", "event_id": event.event_id})
