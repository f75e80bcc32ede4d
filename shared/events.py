"""Events: typed schemas, the transactional outbox, the relay and the consumer handler.

Publishing: an event is a frozen pydantic model subclassing `Event` with a class-level
`event_type` (`<entity>.<past-tense verb>`, one Pub/Sub topic each) and `schema_version`.
`emit(session, event)` validates it, checks the running deployment declares it in its manifest,
and inserts it into the publishing context's `outbox` table inside the caller's transaction;
right after commit the row is published and marked. `relay()` (deployment `ops-outbox-relay`,
every minute) publishes rows still pending, so a crash between commit and publish loses
nothing. Consumers may see an event twice and must not care: `handler(fn)` turns a function of
`Received` into an HTTP entry point that accepts a raw Pub/Sub push body or a CloudEvent
(binary or structured), skips an `event_id` its subscription already processed (Firestore
`processed/{subscription}:{event_id}`, created with `create()`, leased while processing, kept 7
days), binds the propagated trace to the logs, and answers non-2xx on failure so Pub/Sub
redelivers with backoff and finally dead-letters. Envelope attributes are design section 6.
Limits: no ordering across events (consumers order by `occurred_at`); at-least-once delivery.
"""

from __future__ import annotations

import base64
import functools
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import flask
from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)
from sqlalchemy.orm import Session

from shared import db
from shared import logging as slog
from shared.config import settings

_log = slog.get_logger("switchyard.events")
PROCESSED = "processed"
PROCESSED_TTL = timedelta(days=7)
RELAY_GRACE = timedelta(seconds=10)
_registry: dict[str, type[Event]] = {}

E = TypeVar("E", bound="Event")


class EventError(RuntimeError):
    """Publishing an invalid or undeclared event: a bug in the caller."""


class Event(BaseModel):
    """Base of every event schema. Subclasses set `event_type` and `schema_version`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.event_type:
            other = _registry.get(cls.event_type)
            if other is not None and other.__qualname__ != cls.__qualname__:
                raise EventError(f"{cls.event_type} is defined twice")
            _registry[cls.event_type] = cls


def registry() -> dict[str, type[Event]]:
    return dict(_registry)


# --- outbox ------------------------------------------------------------------------------


def outbox_table(metadata: MetaData) -> Table:
    """The outbox of the context whose tables live in `metadata` (one per schema)."""
    name = f"{metadata.schema}.outbox" if metadata.schema else "outbox"
    if name in metadata.tables:
        return metadata.tables[name]
    return Table(
        "outbox",
        metadata,
        Column("id", String(36), primary_key=True),  # = event_id
        Column("event_type", String(200), nullable=False),
        Column("schema_version", Integer, nullable=False),
        Column("payload", Text, nullable=False),
        Column("attributes", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=True),
        Index(
            "ix_outbox_pending",
            "created_at",
            postgresql_where=Column("published_at").is_(None),
            sqlite_where=Column("published_at").is_(None),
        ),
    )


def create_outbox(op: Any, schema: str) -> None:
    """Alembic: create the outbox of `schema` (call from the context's first revision)."""
    import sqlalchemy as sa

    op.create_table(
        "outbox",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        schema=schema,
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["created_at"],
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )


@functools.cache
def _outbox_of(schema: str) -> Table:
    return outbox_table(MetaData(schema=schema))


@functools.cache
def _publisher_schema(event_type: str) -> str:
    from shared.manifests import catalog

    for dep in catalog().deployments.values():
        if event_type in dep.publishes and dep.owns_schema:
            return dep.owns_schema
    raise EventError(f"{event_type} is published by no deployment that owns a schema")


def _now() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def emit(session: Session, event: Event, *, actor: str | None = None) -> str:
    """Add `event` to the outbox in `session`'s transaction; published after commit.

    Returns the event id. `actor` defaults to the authenticated user of the current request,
    or `system`.
    """
    if not isinstance(event, Event) or not type(event).event_type:
        raise EventError(f"{event!r} is not a registered Event")
    etype = type(event).event_type
    s = settings()
    if s.deployment:
        from shared.manifests import catalog

        dep = catalog().deployments.get(s.deployment)
        if dep is not None and etype not in dep.publishes:
            raise EventError(f"{s.deployment} does not declare {etype} in `publishes`")
    # Round-trip through the model: an invalid payload raises here, inside the transaction.
    payload = type(event).model_validate(event.model_dump()).model_dump(mode="json")
    event_id = str(uuid.uuid4())
    occurred = _now()
    attributes = {
        "event_type": etype,
        "event_id": event_id,
        "schema_version": str(type(event).schema_version),
        "source": s.deployment or "local",
        "occurred_at": rfc3339(occurred),
        "request_id": slog.current("request_id"),
        "traceparent": slog.current("traceparent"),
        "actor": actor or _current_actor(),
    }
    table = _outbox_of(_publisher_schema(etype))
    session.execute(
        table.insert().values(
            id=event_id,
            event_type=etype,
            schema_version=type(event).schema_version,
            payload=json.dumps(payload, separators=(",", ":")),
            attributes=json.dumps(attributes),
            created_at=occurred,
            attempts=0,
        )
    )
    pending: list[str] = session.info.setdefault(f"switchyard.outbox.{table.fullname}", [])
    if not pending:
        db.after_commit(session, lambda: _publish_ids(table, list(pending)))
    pending.append(event_id)
    return event_id


def _current_actor() -> str:
    if flask.has_request_context():
        claims = getattr(flask.g, "claims", None)
        if claims is not None:
            return str(claims.sub)
    return "system"


def _publish_ids(table: Table, ids: list[str]) -> None:
    """Publish just-committed rows; on any failure leave them to the relay."""
    try:
        with db.transaction() as s:
            rows = s.execute(
                select(table).where(table.c.id.in_(ids), table.c.published_at.is_(None))
            ).all()
            _publish_rows(s, table, rows)
    except Exception:
        _log.warning("immediate publish failed; the relay will retry", exc_info=True)


def _publish_rows(session: Session, table: Table, rows: Sequence[Any]) -> int:
    from shared.clients import publisher, topic_path

    pub = publisher()
    futures = []
    for row in rows:
        attrs = {k: v for k, v in json.loads(row.attributes).items() if v}
        futures.append(
            (row, pub.publish(topic_path(row.event_type), row.payload.encode(), **attrs))
        )
    published = 0
    timeout = settings().publish_timeout_s
    for row, fut in futures:
        try:
            fut.result(timeout=timeout)
        except Exception as exc:
            session.execute(
                update(table)
                .where(table.c.id == row.id)
                .values(attempts=table.c.attempts + 1, last_error=str(exc)[:2000])
            )
            _log.warning("publish of %s %s failed: %s", row.event_type, row.id, exc)
        else:
            session.execute(
                update(table)
                .where(table.c.id == row.id)
                .values(published_at=_now(), attempts=table.c.attempts + 1, last_error=None)
            )
            published += 1
    return published


def relay(*, grace: timedelta = RELAY_GRACE, batch: int = 500) -> int:
    """Publish outbox rows of every context still pending after `grace`; returns the count."""
    from shared.manifests import catalog

    total = 0
    cutoff = _now() - grace
    failed: list[str] = []
    for schema in catalog().schemas:
        table = _outbox_of(schema)
        try:  # one broken outbox must not hold back the other contexts' events
            with db.transaction() as s:
                rows = s.execute(
                    select(table)
                    .where(table.c.published_at.is_(None), table.c.created_at <= cutoff)
                    .order_by(table.c.created_at)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                ).all()
                if rows:
                    total += _publish_rows(s, table, rows)
        except Exception:
            _log.exception("relay failed on the outbox of %s", schema)
            failed.append(schema)
    if failed:
        raise EventError(f"relay failed on {', '.join(failed)} (published {total} elsewhere)")
    if total:
        _log.info("relay published %d pending events", total)
    return total


@dataclass(frozen=True)
class OutboxStats:
    """The state of one context's outbox (ops-api's `GET /api/ops/outbox`)."""

    schema: str
    pending: int
    oldest_pending_at: datetime | None
    published: int
    failing: int  # pending rows whose last publish attempt failed


def outbox_stats() -> list[OutboxStats]:
    """Pending and published counts of every context's outbox (read-only), one per schema."""
    from sqlalchemy import case, func

    from shared.manifests import catalog

    out = []
    for schema in catalog().schemas:
        t = _outbox_of(schema)
        pending = t.c.published_at.is_(None)
        with db.engine().connect() as conn:
            row = conn.execute(
                select(
                    func.count().filter(pending),
                    func.min(case((pending, t.c.created_at))),
                    func.count().filter(t.c.published_at.is_not(None)),
                    func.count().filter(pending, t.c.last_error.is_not(None)),
                ).select_from(t)
            ).one()
        oldest = row[1]
        if isinstance(oldest, str):  # SQLite returns MIN over a CASE untyped
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        out.append(OutboxStats(schema, int(row[0]), oldest, int(row[2]), int(row[3])))
    return out


def purge_published(*, older_than: timedelta, batch: int = 1000) -> dict[str, int]:
    """Delete outbox rows published more than `older_than` ago, in every schema, `batch` rows
    per transaction (short locks); returns the count deleted per schema. Pending rows stay."""
    from sqlalchemy import delete

    from shared.manifests import catalog

    cutoff = _now() - older_than
    counts: dict[str, int] = {}
    failed: list[str] = []
    for schema in catalog().schemas:
        t = _outbox_of(schema)
        counts[schema] = 0
        try:
            while True:
                with db.transaction() as s:
                    ids = (
                        s.execute(
                            select(t.c.id)
                            .where(t.c.published_at.is_not(None), t.c.published_at < cutoff)
                            .limit(batch)
                        )
                        .scalars()
                        .all()
                    )
                    if ids:
                        s.execute(delete(t).where(t.c.id.in_(ids)))
                counts[schema] += len(ids)
                if len(ids) < batch:
                    break
        except Exception:
            _log.exception("purge failed on the outbox of %s", schema)
            failed.append(schema)
    if failed:
        raise EventError(f"purge failed on {', '.join(failed)} (deleted {counts})")
    return counts


# --- consuming ---------------------------------------------------------------------------


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

    def parse(self, model: type[E]) -> E:
        """The payload as the publisher's schema (extra fields of newer versions ignored)."""
        known = {f.alias or name for name, f in model.model_fields.items()}
        return model.model_validate({k: v for k, v in self.data.items() if k in known})


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
        occurred = _now()
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


class _Claim:
    """The processed-event marker: created before work, finished or released after."""

    def __init__(self, key: str, lease_s: float) -> None:
        self.key = key
        self.lease_s = lease_s

    def _doc(self) -> Any:
        from shared.clients import firestore

        return firestore().collection(PROCESSED).document(self.key)

    def acquire(self, event: Received) -> str:
        """'new' (go), 'done' (already processed: skip) or 'busy' (another delivery runs)."""
        from google.api_core.exceptions import AlreadyExists, FailedPrecondition

        now = _now()
        fields = {
            "state": "processing",
            "event_type": event.event_type,
            "lease_until": now + timedelta(seconds=self.lease_s),
            "expires_at": now + PROCESSED_TTL,
            "attempt": event.delivery_attempt,
        }
        doc = self._doc()
        try:
            doc.create(fields)
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
            doc.update(fields, option=opt)
            return "new"
        except FailedPrecondition:
            return "busy"

    def finish(self) -> None:
        self._doc().update({"state": "done", "finished_at": _now()})

    def release(self) -> None:
        self._doc().delete()


def handler(fn: Callable[[Received], Any]) -> Callable[[flask.Request], flask.Response]:
    """Wrap an event consumer as a functions-framework HTTP entry point (design section 6)."""

    @functools.wraps(fn)
    def entry(request: flask.Request) -> flask.Response:
        from shared.http import json_response, problem

        if request.method == "GET" and request.path.rstrip("/").endswith("health"):
            from shared import health

            status, payload = health.report(settings().deployment)
            return json_response(payload, status)
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
        from shared.manifests import subscription_name

        subscription = subscription_name(settings().deployment or fn.__name__, event.event_type)
        token = slog.bind(
            request_id=event.request_id, traceparent=event.traceparent, event_id=event.event_id
        )
        try:
            return _consume(fn, event, subscription)
        finally:
            slog.reset(token)

    return entry


def _consume(fn: Callable[[Received], Any], event: Received, subscription: str) -> flask.Response:
    from shared.http import json_response, problem
    from shared.manifests import catalog

    dep = catalog().deployments.get(settings().deployment)
    lease = float(dep.runtime.timeout_s + 30) if dep else 90.0
    claim = _Claim(f"{subscription}:{event.event_id}", lease)
    state = claim.acquire(event)
    if state == "done":
        _log.info("skipped %s %s: already processed", event.event_type, event.event_id)
        return json_response({"status": "duplicate", "event_id": event.event_id})
    if state == "busy":
        return problem(409, "Conflict", "This event is being processed by another delivery.")
    try:
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
    claim.finish()
    _log.info("processed %s %s", event.event_type, event.event_id)
    return json_response({"status": "processed", "event_id": event.event_id})
