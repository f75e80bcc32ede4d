"""The transactional outbox: `emit(session, event)` and the publish right after commit.

`emit` validates the event against its schema, checks the running deployment declares it in
its manifest (`publishes`), and inserts it into the publishing context's `outbox` table inside
the caller's transaction; right after commit the row is published and marked. A failed publish
leaves the row pending for `relay()` (`ops-outbox-relay`, every minute), so a crash between
commit and publish loses nothing. `outbox_table` is the one definition of the table;
`create_outbox` creates it from a context's first Alembic revision.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from typing import Any

import flask
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
from sqlalchemy import text as sa_text
from sqlalchemy.orm import Session

from shared import db
from shared import logging as slog
from shared.config import settings
from shared.events._faults import fault_point
from shared.events._schema import Event, EventError, rfc3339, utcnow

_log = slog.get_logger("switchyard.events")


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
    """Alembic: create the outbox of `schema` (call from the context's first revision).

    Built from `outbox_table`, the one definition of the outbox's columns and index."""
    table = outbox_table(MetaData(schema=schema))
    op.create_table("outbox", *(c._copy() for c in table.columns), schema=schema)
    for index in table.indexes:
        op.create_index(
            index.name,
            "outbox",
            [c.name for c in index.columns],
            schema=schema,
            postgresql_where=sa_text("published_at IS NULL"),
            sqlite_where=sa_text("published_at IS NULL"),
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
    occurred = utcnow()
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
    fault_point("after-commit")  # fault suite only (local): die between commit and publish
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
                .values(published_at=utcnow(), attempts=table.c.attempts + 1, last_error=None)
            )
            published += 1
    return published
