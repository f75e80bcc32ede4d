"""HTTP routes of ops-api (/api/ops): dead letters and their redrive, the outbox of every
context, and the database: statistics, tables, backups, cleanup. Admins only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import flask
from pydantic import Field, field_serializer

from functions.ops import model, service
from shared import auth as sauth
from shared.http import (
    ApiModel,
    OutModel,
    Page,
    PageQuery,
    body,
    create_app,
    describe,
    json_response,
    page,
    query,
)
from shared.openapi import responds

app = create_app("ops")


class DeadLetterQuery(ApiModel):
    topic: str | None = Field(None, max_length=200)


class RedriveRequest(ApiModel):
    event_ids: list[str] | None = Field(None, max_length=1000)


class TablesQuery(PageQuery):
    schema_: str | None = Field(
        None, alias="schema", max_length=63, description="Only this context schema."
    )


class BackupIn(ApiModel):
    """No options yet: the whole database is backed up."""


class CleanupIn(ApiModel):
    dry_run: bool = Field(True, description="Report what would be removed, remove nothing.")
    kinds: list[str] | None = Field(
        None, min_length=1, max_length=50, description="Only these kinds (default: every rule)."
    )


# --- responses -------------------------------------------------------------------------------


class LetterOut(OutModel):
    topic: str
    message_id: str
    event_id: str
    event_type: str
    attributes: dict[str, str]
    data: Any
    publish_time: datetime | None
    delivery_attempt: int | None


class DeadLettersOut(OutModel):
    items: list[LetterOut]
    counts: dict[str, int]


class RedriveOut(OutModel):
    redriven: int
    event_ids: list[str]
    failed: list[str]
    not_found: list[str] | None = Field(description="Asked-for event ids not kept (or null).")


class OutboxOut(OutModel):
    schema_: str = Field(validation_alias="schema", serialization_alias="schema")
    pending: int
    oldest_pending_at: datetime | None
    failing: int
    published: int


class OutboxList(OutModel):
    items: list[OutboxOut]


class TableOut(OutModel):
    schema_: str = Field(validation_alias="schema", serialization_alias="schema")
    name: str
    rows: int = Field(description="PostgreSQL: the live-tuple estimate; SQLite: exact.")
    size_bytes: int | None
    table_bytes: int | None
    index_bytes: int | None
    dead_tuples: int | None
    last_vacuum: datetime | None
    last_analyze: datetime | None


class SchemaOut(OutModel):
    schema_: str = Field(validation_alias="schema", serialization_alias="schema")
    context: str
    tables: int
    rows: int
    size_bytes: int | None
    index_bytes: int | None
    dead_tuples: int | None


class ConnectionsOut(OutModel):
    in_use: int | None
    by_state: dict[str, int] | None
    max_connections: int | None
    reserved: int | None
    budget: int = Field(description="Max instances x pool of every sql deployment.")


class StatisticsOut(OutModel):
    dialect: str
    schemas: list[SchemaOut]
    connections: ConnectionsOut
    unavailable: list[str] = Field(description="Figures this database cannot give (null).")


class BackupOut(OutModel):
    id: str
    method: model.BackupMethod
    status: model.BackupStatus
    location: str
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None
    size_bytes: int | None
    operation: str | None = Field(description="The Cloud SQL Admin operation, if any.")
    error: str | None


class CleanupResultOut(OutModel):
    kind: str
    description: str
    cutoff: datetime
    matched: int = Field(description="Old enough to go (what a dry run would remove).")
    removed: int
    by_schema: dict[str, int] | None


class CleanupOut(OutModel):
    dry_run: bool
    total: int
    results: list[CleanupResultOut]


class RulesOut(OutModel):
    items: list[RuleOut]


class RuleOut(OutModel):
    kind: str
    store: model.Store
    collection: str | None
    timestamp_field: str | None
    keep: timedelta
    context: str
    description: str

    @field_serializer("keep")
    def _days(self, value: timedelta) -> float:
        return value.total_seconds() / 86400


def _dump(out: type[OutModel], obj: Any) -> dict[str, Any]:
    return out.model_validate(obj).model_dump(mode="json", by_alias=True)


# --- dead letters and the outbox -----------------------------------------------------------


@app.get("/api/ops/dead-letters")
@responds(404)  # `topic` names no event type of the manifests
@sauth.require_roles("admin")
@describe(
    "Dead letters kept for each topic (peeked: they stay kept)",
    query=DeadLetterQuery,
    response=DeadLettersOut,
)
def dead_letters() -> flask.Response:
    q = query(DeadLetterQuery)
    return json_response(_dump(DeadLettersOut, service.dead_letters(q.topic)))


@app.post("/api/ops/dead-letters/<topic>/redrive")
@sauth.require_roles("admin")
@describe(
    "Republish kept dead letters of a topic to the topic, then drop them",
    request=RedriveRequest,
    response=RedriveOut,
)
def redrive(topic: str) -> flask.Response:
    event_ids = None
    if flask.request.get_data(cache=True):
        event_ids = body(RedriveRequest).event_ids
    return json_response(_dump(RedriveOut, service.redrive(topic, event_ids)))


@app.get("/api/ops/outbox")
@sauth.require_roles("admin")
@describe("Pending and published events in the outbox of every context", response=OutboxList)
def outbox() -> flask.Response:
    return json_response(_dump(OutboxList, {"items": service.outbox()}))


# --- the database ----------------------------------------------------------------------------


@app.get("/api/ops/database/statistics")
@sauth.require_roles("admin")
@describe("Database statistics per context schema and connections", response=StatisticsOut)
def statistics() -> flask.Response:
    """Per context schema: tables, rows, size, index size and dead tuples; connections in
    use against max_connections and the deployments' budget. On SQLite the figures SQLite
    does not keep are null and listed in `unavailable`."""
    return json_response(_dump(StatisticsOut, service.statistics()))


@app.get("/api/ops/database/tables")
@responds(404)  # `schema` is no context's schema
@sauth.require_roles("admin")
@describe("Every table of the context schemas", query=TablesQuery, response=Page[TableOut])
def tables() -> flask.Response:
    """Tables by schema and name, with rows, sizes, dead tuples and vacuum/analyze times."""
    q = query(TablesQuery)
    after = q.keyset(str, str)
    found = [t for t in service.tables(q.schema_) if after is None or (t.schema, t.name) > after]
    shape = lambda t: _dump(TableOut, t)  # noqa: E731
    return json_response(page(found, q.limit, key=lambda t: (t.schema, t.name), shape=shape))


@app.post("/api/ops/database/backup")
@sauth.require_roles("admin")
@describe("Back the database up", request=BackupIn, response=BackupOut, status=201)
def backup() -> flask.Response:
    """With Cloud SQL: starts an export to the backup bucket (status pending or running;
    follow it at GET /api/ops/database/backups). Locally: pg_dump (or a copy of the SQLite
    files) into .local/backups/, done when this answers; 503 names a missing pg_dump."""
    if flask.request.get_data(cache=True):
        body(BackupIn)
    made = service.backup(sauth.current_user().sub)
    return json_response(
        _dump(BackupOut, made), 201, headers={"Location": f"/api/ops/database/backups/{made.id}"}
    )


@app.get("/api/ops/database/backups")
@sauth.require_roles("admin")
@describe("Backups and their status, newest first", query=PageQuery, response=Page[BackupOut])
def backups() -> flask.Response:
    q = query(PageQuery)
    found = service.backups(after=q.keyset(datetime, str), limit=q.limit + 1)
    shape = lambda b: _dump(BackupOut, b)  # noqa: E731
    return json_response(page(found, q.limit, key=lambda b: (b.requested_at, b.id), shape=shape))


@app.get("/api/ops/database/backups/<backup_id>")
@sauth.require_roles("admin")
@describe("One backup and its status", response=BackupOut)
def get_backup(backup_id: str) -> flask.Response:
    return json_response(_dump(BackupOut, service.get_backup(backup_id)))


@app.get("/api/ops/database/cleanup")
@sauth.require_roles("admin")
@describe("The retention rules cleanup applies", response=RulesOut)
def cleanup_rules() -> flask.Response:
    """Every retention rule: its kind (to name in `kinds`), store, collection and field, how
    long it keeps (days) and the context that declared it."""
    return json_response(_dump(RulesOut, {"items": service.rules()}))


@app.post("/api/ops/database/cleanup")
@sauth.require_roles("admin")
@describe("Apply the retention rules (dry run by default)", request=CleanupIn, response=CleanupOut)
def cleanup() -> flask.Response:
    """Each rule (outbox rows published over 7 days ago, processed-event markers past their
    expiry, and what contexts declare) reports what it matched; with `dry_run: false` it
    also removes them and reports what it removed."""
    data = body(CleanupIn) if flask.request.get_data(cache=True) else CleanupIn.model_validate({})
    report = service.cleanup_database(dry_run=data.dry_run, kinds=data.kinds)
    return json_response(_dump(CleanupOut, report))
