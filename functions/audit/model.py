"""The audit trail's domain: one entry per event envelope, as recorded. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.errors import NotFound

FILTER_FIELDS = ("event_type", "actor", "source")  # equality filters (one at a time)


@dataclass(frozen=True)
class AuditEvent:
    """An event's envelope and payload, with when and on which attempt audit received it."""

    event_id: str
    event_type: str
    schema_version: int
    source: str
    occurred_at: datetime
    actor: str
    request_id: str
    traceparent: str
    data: dict[str, Any]
    received_at: datetime
    delivery_attempt: int


class EventNotFound(NotFound):
    def __init__(self, event_id: str) -> None:
        super().__init__(f"No audit event {event_id}.")
