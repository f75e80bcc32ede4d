"""The audit trail in Firestore: collection `audit_events`, one document per event id.

Writes are `set()` on the document named by the event id, so a redelivered event overwrites
its own document and never adds a second one. Reads are keyset pages ordered by
`occurred_at DESC, __name__ DESC` with at most one equality filter (`event_type`, `actor` or
`source`) plus a time range on `occurred_at`; each equality filter needs the composite index
(<field> ASC, occurred_at DESC) that Terraform declares (`__name__ DESC` is implicit in it).
A payload Firestore cannot hold as a map (nested arrays, empty keys) is kept as JSON text in
`data_json` instead, so no event is ever refused by the store.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from functions.audit.model import FILTER_FIELDS, AuditEvent
from shared.clients import firestore

COLLECTION = "audit_events"
_FIELDS = tuple(f.name for f in fields(AuditEvent))
_INT64 = (-(2**63), 2**63 - 1)


def _collection() -> Any:
    return firestore().collection(COLLECTION)


def storable(value: Any, *, in_array: bool = False) -> bool:
    """True when Firestore can store `value` as is (no arrays in arrays, keys, int64)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and k and storable(v) for k, v in value.items())
    if isinstance(value, list):
        return not in_array and all(storable(v, in_array=True) for v in value)
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return True
    if isinstance(value, int):
        return _INT64[0] <= value <= _INT64[1]
    return False


def put(event: AuditEvent, batch: Any | None = None) -> None:
    """Store (or overwrite) the event's document; in `batch` (committed by its owner) if given."""
    doc = asdict(event)
    if not storable(event.data):
        doc = {**doc, "data": None, "data_json": json.dumps(event.data)}
    ref = _collection().document(event.event_id)
    if batch is None:
        ref.set(doc)
    else:
        batch.set(ref, doc)


def _loaded(snapshot: Any) -> AuditEvent:
    doc = snapshot.to_dict() or {}
    raw = doc.pop("data_json", None)
    if raw is not None:
        doc["data"] = json.loads(raw)
    doc.setdefault("event_id", snapshot.id)
    values: dict[str, Any] = {f: doc.get(f) for f in _FIELDS}
    return AuditEvent(**values)


def get(event_id: str) -> AuditEvent | None:
    snap = _collection().document(event_id).get()
    return _loaded(snap) if snap.exists else None


def query(
    *,
    field: str | None = None,
    value: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 21,
) -> list[AuditEvent]:
    """Events newest first: optional `field == value`, `since <= occurred_at < until`, after
    the (occurred_at, event_id) keyset cursor; at most `limit` documents."""
    from google.cloud.firestore_v1 import FieldFilter, Query

    q = _collection()
    if field is not None:
        if field not in FILTER_FIELDS:
            raise ValueError(f"cannot filter on {field!r}")
        q = q.where(filter=FieldFilter(field, "==", value))
    if since is not None:
        q = q.where(filter=FieldFilter("occurred_at", ">=", since))
    if until is not None:
        q = q.where(filter=FieldFilter("occurred_at", "<", until))
    q = q.order_by("occurred_at", direction=Query.DESCENDING).order_by(
        "__name__", direction=Query.DESCENDING
    )
    if after is not None:
        q = q.start_after([after[0], after[1]])
    return [_loaded(snap) for snap in q.limit(limit).stream()]
