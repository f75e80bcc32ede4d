"""Audit use cases: record an event's envelope; read the trail back, newest first.

`record` is idempotent (the document is named by the event id), so Pub/Sub's at-least-once
delivery never duplicates an entry. `list_events` pages with a keyset cursor over
(occurred_at, event_id) and accepts at most one of the equality filters, because every extra
equality filter would need another composite index in Firestore.
"""

from __future__ import annotations

from datetime import UTC, datetime

from functions.audit import store
from functions.audit.model import AuditEvent, EventNotFound
from shared.events import Received


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def record(event: Received) -> None:
    """Store the envelope of `event` (a redelivery overwrites the same document). Delivered by
    `shared.events.handler`, the write is committed with the processed marker, atomically."""
    store.put(
        AuditEvent(
            event_type=event.event_type,
            event_id=event.event_id,
            schema_version=event.schema_version,
            source=event.source,
            occurred_at=_aware(event.occurred_at),
            actor=event.actor,
            request_id=event.request_id,
            traceparent=event.traceparent,
            data=event.data,
            received_at=datetime.now(UTC),
            delivery_attempt=event.delivery_attempt,
        ),
        batch=event.firestore_batch(),
    )


def list_events(
    *,
    filters: dict[str, str],
    since: datetime | None,
    until: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[AuditEvent]:
    """Up to `limit` events matching at most one equality filter and the range, newest first,
    after the keyset (occurred_at, event_id) `after`."""
    if len(filters) > 1:
        raise ValueError("at most one equality filter")
    field, value = next(iter(filters.items())) if filters else (None, None)
    return store.query(
        field=field,
        value=value,
        since=since,
        until=until,
        after=(_aware(after[0]), after[1]) if after else None,
        limit=limit,
    )


def get_event(event_id: str) -> AuditEvent:
    found = store.get(event_id)
    if found is None:
        raise EventNotFound(event_id)
    return found
