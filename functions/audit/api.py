"""HTTP routes of audit-api (/api/audit): read the trail (managers and admins)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import flask
from pydantic import AwareDatetime, Field, field_serializer, model_validator

from functions.audit import model, service
from shared.auth import require_roles
from shared.events import rfc3339
from shared.http import OutModel, Page, PageQuery, create_app, describe, json_response, page, query

app = create_app("audit")
_EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


class EventsQuery(PageQuery):
    """Filters of the audit trail: at most one of event_type, actor, source; a time range."""

    event_type: str | None = Field(
        None, min_length=1, max_length=200, description="Only events of this type."
    )
    actor: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Only events caused by this user id (or `system`).",
    )
    source: str | None = Field(
        None, min_length=1, max_length=100, description="Only events published by this deployment."
    )
    since: AwareDatetime | None = Field(None, description="occurred_at >= since (RFC 3339).")
    until: AwareDatetime | None = Field(None, description="occurred_at < until (RFC 3339).")

    @model_validator(mode="after")
    def _one_filter(self) -> EventsQuery:
        given = [name for name in model.FILTER_FIELDS if getattr(self, name)]
        if len(given) > 1:
            raise ValueError(
                f"combine at most one of event_type, actor, source (got {', '.join(given)})"
            )
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    def filters(self) -> dict[str, str]:
        return {name: value for name in model.FILTER_FIELDS if (value := getattr(self, name))}


class AuditEventOut(OutModel):
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

    @field_serializer("occurred_at", "received_at")
    def _rfc3339(self, value: datetime) -> str:
        return rfc3339(value)  # always with microseconds, as the envelope spells it


def _out(event: model.AuditEvent) -> dict[str, Any]:
    return AuditEventOut.model_validate(event).model_dump(mode="json")


@app.get("/api/audit/events")
@describe(query=EventsQuery, response=Page[AuditEventOut])
@require_roles("manager")
def list_events() -> flask.Response:
    """List audit events, newest first.

    Keyset pagination: pass `next_cursor` back as `cursor`. Combine at most one of
    `event_type`, `actor` and `source` with the `since`/`until` range. Managers and admins.
    """
    q = query(EventsQuery)
    events = service.list_events(
        filters=q.filters(),
        since=q.since,
        until=q.until,
        after=q.keyset(datetime, str),
        limit=q.limit + 1,
    )
    return json_response(
        page(events, q.limit, key=lambda e: (e.occurred_at, e.event_id), shape=_out)
    )


@app.get("/api/audit/events/<event_id>")
@describe(response=AuditEventOut)
@require_roles("manager")
def get_event(event_id: str) -> flask.Response:
    """One audit event by its event id. Managers and admins."""
    if not _EVENT_ID.match(event_id):
        raise model.EventNotFound(event_id)
    return json_response(_out(service.get_event(event_id)))
