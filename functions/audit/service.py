"""Audit use cases: record an event's envelope; read the trail back, newest first.

`record` is idempotent (the document is named by the event id), so Pub/Sub's at-least-once
delivery never duplicates an entry. `list_events` pages with a keyset cursor over
(occurred_at, event_id) and accepts at most one of the equality filters, because every extra
equality filter would need another composite index in Firestore.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.events import Received, rfc3339
from shared.http import BadRequest, page

from . import store


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def record(event: Received) -> None:
    """Store the envelope of `event` (a redelivery overwrites the same document)."""
    store.put(
        {
            "event_type": event.event_type,
            "event_id": event.event_id,
            "schema_version": event.schema_version,
            "source": event.source,
            "occurred_at": _aware(event.occurred_at),
            "actor": event.actor,
            "request_id": event.request_id,
            "traceparent": event.traceparent,
            "data": event.data,
            "received_at": datetime.now(UTC),
            "delivery_attempt": event.delivery_attempt,
        }
    )


def shape(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as the API answers it (timestamps RFC 3339 UTC)."""
    out = dict(doc)
    for key in ("occurred_at", "received_at"):
        if isinstance(out.get(key), datetime):
            out[key] = rfc3339(out[key])
    return out


def _cursor_key(after: list[Any] | None) -> tuple[datetime, str] | None:
    if after is None:
        return None
    try:
        when, event_id = after
        return _aware(datetime.fromisoformat(str(when).replace("Z", "+00:00"))), str(event_id)
    except (TypeError, ValueError):
        raise BadRequest(
            "The cursor is not valid.",
            errors=[{"field": "cursor", "message": "not a cursor from this API", "type": "cursor"}],
        ) from None


def list_events(
    *,
    filters: dict[str, str],
    since: datetime | None,
    until: datetime | None,
    after: list[Any] | None,
    limit: int,
) -> dict[str, Any]:
    """`{items, next_cursor}`: events matching at most one equality filter and the range."""
    if len(filters) > 1:
        raise ValueError("at most one equality filter")
    field, value = next(iter(filters.items())) if filters else (None, None)
    rows = store.query(
        field=field,
        value=value,
        since=since,
        until=until,
        after=_cursor_key(after),
        limit=limit + 1,
    )
    return page(rows, limit, key=lambda r: (r["occurred_at"], r["event_id"]), shape=shape)


def get_event(event_id: str) -> dict[str, Any] | None:
    doc = store.get(event_id)
    return shape(doc) if doc is not None else None
