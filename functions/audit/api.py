"""Audit API: read the trail (managers and admins)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import flask
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from shared.auth import require_roles
from shared.http import NotFound, PageQuery, create_app, describe, json_response, query

from . import service

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
        given = [name for name in ("event_type", "actor", "source") if getattr(self, name)]
        if len(given) > 1:
            raise ValueError(
                f"combine at most one of event_type, actor, source (got {', '.join(given)})"
            )
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    def filters(self) -> dict[str, str]:
        return {
            name: value
            for name in ("event_type", "actor", "source")
            if (value := getattr(self, name))
        }


class AuditEventOut(BaseModel):
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


class AuditEventPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


@app.get("/api/audit/events")
@describe(query=EventsQuery, response=AuditEventPage)
@require_roles("manager")
def list_events() -> flask.Response:
    """List audit events, newest first.

    Keyset pagination: pass `next_cursor` back as `cursor`. Combine at most one of
    `event_type`, `actor` and `source` with the `since`/`until` range. Managers and admins.
    """
    q = query(EventsQuery)
    return json_response(
        service.list_events(
            filters=q.filters(),
            since=q.since,
            until=q.until,
            after=q.after(),
            limit=q.limit,
        )
    )


@app.get("/api/audit/events/<event_id>")
@describe(response=AuditEventOut)
@require_roles("manager")
def get_event(event_id: str) -> flask.Response:
    """One audit event by its event id. Managers and admins."""
    doc = service.get_event(event_id) if _EVENT_ID.match(event_id) else None
    if doc is None:
        raise NotFound(f"No audit event {event_id}.")
    return json_response(doc)
