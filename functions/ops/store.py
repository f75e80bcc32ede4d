"""What ops reads and writes: the database's own catalog (statistics of every context schema),
the outbox tables (what cleanup would remove), backup records and retention deletes in
Firestore. ops owns no schema and no table.

PostgreSQL statistics come from `pg_stat_user_tables` and the size functions (readable by
any role, no table is scanned: `rows` is the live-tuple estimate) and `pg_stat_activity`.
SQLite keeps no statistics: tables are listed from each attached schema's `sqlite_master`,
rows are counted exactly (local databases are small), the size is the file's pages. Backup
records live in the Firestore collection `ops_backups`, one document per backup id.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from sqlalchemy import MetaData, bindparam, column, func, select, table, text
from sqlalchemy.engine import Connection

from functions.ops import model
from shared.clients import firestore
from shared.db import utc
from shared.events import outbox_table

BACKUPS = "ops_backups"
DELETE_BATCH = 500  # Firestore's limit of writes per batch
_BACKUP_FIELDS = tuple(f.name for f in fields(model.Backup))


# --- statistics ------------------------------------------------------------------------------

_PG_TABLES = text(
    """
    SELECT s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup,
           pg_total_relation_size(s.relid), pg_relation_size(s.relid), pg_indexes_size(s.relid),
           GREATEST(s.last_vacuum, s.last_autovacuum),
           GREATEST(s.last_analyze, s.last_autoanalyze)
    FROM pg_stat_user_tables s
    WHERE s.schemaname IN :schemas
    ORDER BY s.schemaname, s.relname
    """
).bindparams(bindparam("schemas", expanding=True))

_PG_CONNECTIONS = text(
    """
    SELECT COALESCE(state, 'unknown'), count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND backend_type = 'client backend'
    GROUP BY 1
    """
)


def tables(conn: Connection, schemas: list[str]) -> list[model.TableStats]:
    """Every table of `schemas` with its figures, by schema then name."""
    if not schemas:
        return []
    if conn.dialect.name == "sqlite":
        return [t for schema in schemas for t in _sqlite_tables(conn, schema)]
    return [
        model.TableStats(
            schema=schema,
            name=name,
            rows=int(live),
            size_bytes=int(total),
            table_bytes=int(heap),
            index_bytes=int(indexes),
            dead_tuples=int(dead),
            last_vacuum=utc(vacuum),
            last_analyze=utc(analyze),
        )
        for schema, name, live, dead, total, heap, indexes, vacuum, analyze in conn.execute(
            _PG_TABLES, {"schemas": schemas}
        ).all()
    ]


def _sqlite_tables(conn: Connection, schema: str) -> list[model.TableStats]:
    master = table("sqlite_master", column("name"), column("type"), schema=schema)
    names = conn.execute(
        select(master.c.name)
        .where(master.c.type == "table", master.c.name.not_like("sqlite_%"))
        .order_by(master.c.name)
    ).scalars()
    out = []
    for name in list(names):
        rows = conn.execute(select(func.count()).select_from(table(name, schema=schema)))
        out.append(model.TableStats(schema, name, int(rows.scalar_one()), *([None] * 6)))
    return out


def _pragma(schema: str, name: str) -> str:
    """`PRAGMA "<schema>".<name>`; the schema is a manifest's owns_schema, quoted anyway."""
    return 'PRAGMA "' + schema.replace('"', '""') + '".' + name


def sqlite_schema_bytes(conn: Connection, schema: str) -> int:
    """The size of an attached SQLite schema's file (pages x page size)."""
    pages = conn.execute(text(_pragma(schema, "page_count"))).scalar_one()
    size = conn.execute(text(_pragma(schema, "page_size"))).scalar_one()
    return int(pages) * int(size)


def connections(conn: Connection, budget: int) -> model.Connections:
    if conn.dialect.name == "sqlite":
        return model.Connections(None, None, None, None, budget)
    by_state = {str(state): int(n) for state, n in conn.execute(_PG_CONNECTIONS).all()}
    max_connections = conn.execute(text("SHOW max_connections")).scalar_one()
    reserved = conn.execute(text("SHOW superuser_reserved_connections")).scalar_one()
    return model.Connections(
        in_use=sum(by_state.values()),
        by_state=by_state,
        max_connections=int(max_connections),
        reserved=int(reserved),
        budget=budget,
    )


# --- the outbox (cleanup's dry run) --------------------------------------------------------


def published_before(conn: Connection, schemas: list[str], cutoff: datetime) -> dict[str, int]:
    """Per schema, the outbox rows published before `cutoff` (what a purge would delete)."""
    out = {}
    for schema in schemas:
        t = outbox_table(MetaData(schema=schema))
        stmt = (
            select(func.count())
            .select_from(t)
            .where(t.c.published_at.is_not(None), t.c.published_at < utc(cutoff))
        )
        out[schema] = int(conn.execute(stmt).scalar_one())
    return out


# --- backup records (Firestore) ------------------------------------------------------------


def _backups() -> Any:
    return firestore().collection(BACKUPS)


def put_backup(backup: model.Backup) -> None:
    _backups().document(backup.id).set(asdict(backup))


def _backup(doc: dict[str, Any]) -> model.Backup:
    values: dict[str, Any] = {f: doc.get(f) for f in _BACKUP_FIELDS}
    return model.Backup(**values)


def get_backup(backup_id: str) -> model.Backup | None:
    snap = _backups().document(backup_id).get()
    return _backup(snap.to_dict() or {}) if snap.exists else None


def list_backups(*, after: tuple[datetime, str] | None, limit: int) -> list[model.Backup]:
    """Backups newest first (requested_at, id descending), after the keyset `after`."""
    from google.cloud.firestore_v1 import Query

    q = _backups().order_by("requested_at", direction=Query.DESCENDING)
    q = q.order_by("id", direction=Query.DESCENDING)
    if after is not None:
        q = q.start_after({"requested_at": after[0], "id": after[1]})
    return [_backup(s.to_dict() or {}) for s in q.limit(limit).stream()]


# --- retention in Firestore ----------------------------------------------------------------


def _older(collection: str, timestamp_field: str, cutoff: datetime) -> Any:
    from google.cloud.firestore_v1 import FieldFilter

    return (
        firestore()
        .collection(collection)
        .where(filter=FieldFilter(timestamp_field, "<", cutoff))
        .order_by(timestamp_field)
    )


def count_older(collection: str, timestamp_field: str, cutoff: datetime) -> int:
    """Documents of `collection` whose `timestamp_field` is before `cutoff`."""
    result = _older(collection, timestamp_field, cutoff).count().get()
    return int(result[0][0].value)


def delete_older(collection: str, timestamp_field: str, cutoff: datetime) -> int:
    """Delete them with every document under them (Firestore keeps a subcollection when its
    parent goes: a raw delivery's chunks), children before parents, DELETE_BATCH writes a
    batch: a crash part-way leaves a parent with fewer children, never an orphan. Returns
    how many matched."""
    client = firestore()
    removed = 0
    while True:
        snaps = list(_older(collection, timestamp_field, cutoff).limit(DELETE_BATCH).stream())
        if not snaps:
            return removed
        writes = _Deletes(client)
        for snap in snaps:
            _delete_tree(snap.reference, writes)
        writes.commit()
        removed += len(snaps)
        if len(snaps) < DELETE_BATCH:
            return removed


class _Deletes:
    """Deletes gathered into batches of DELETE_BATCH, committed in order."""

    def __init__(self, client: Any) -> None:
        self.client, self.batch, self.size = client, client.batch(), 0

    def add(self, ref: Any) -> None:
        self.batch.delete(ref)
        self.size += 1
        if self.size == DELETE_BATCH:
            self.commit()

    def commit(self) -> None:
        if self.size:
            self.batch.commit()
        self.batch, self.size = self.client.batch(), 0


def _delete_tree(ref: Any, writes: _Deletes) -> None:
    for sub in ref.collections():
        for child in sub.list_documents(page_size=DELETE_BATCH):
            _delete_tree(child, writes)
    writes.add(ref)
