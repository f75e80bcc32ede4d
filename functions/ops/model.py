"""Ops' domain in plain Python: dead letters and their redrive, the outbox of every context,
database statistics, backups and retention rules, and the context's errors. No I/O here.

ops owns no schema: it reads the other contexts' schemas through the database's own catalog
(statistics), copies the database (backups) and deletes what a retention rule says is old
(cleanup). Backups are `local` (`pg_dump`, or a copy of the SQLite files, into
`.local/backups/`) or `cloud-sql` (a Cloud SQL export to Cloud Storage through the SQL Admin
API); their status is a `BackupStatus` whatever ran them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.errors import NotFound, Problem, ServiceUnavailable, Unprocessable

BackupStatus = Literal["pending", "running", "done", "failed"]
BackupMethod = Literal["pg_dump", "sqlite-copy", "cloud-sql-export"]
Store = Literal["sql", "firestore"]
FINAL_STATUSES: frozenset[str] = frozenset({"done", "failed"})

# SQL Admin operation status -> ours (SQL_OPERATION_STATUS_UNSPECIFIED reads as pending).
SQLADMIN_STATUS: dict[str, BackupStatus] = {
    "PENDING": "pending",
    "RUNNING": "running",
    "DONE": "done",
}


# --- errors ------------------------------------------------------------------------------


class OpsError(Problem):
    """Base of every error the ops context raises (problem+json via shared.http)."""


class UnknownTopic(OpsError, NotFound):
    def __init__(self, topic: str) -> None:
        super().__init__(f"No topic {topic!r}: topics are the event types of the manifests.")


class UnknownSchema(OpsError, NotFound):
    def __init__(self, schema: str) -> None:
        super().__init__(f"No schema {schema!r}: schemas are the contexts' `owns_schema`.")


class ToolMissing(OpsError, ServiceUnavailable):
    """A program the local backup needs is not installed."""

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"{tool} is not installed on this machine: {hint}", tool=tool)


class BackupFailed(OpsError, ServiceUnavailable):
    """The backup could not be started (the reason is in the detail; nothing was kept)."""


class UnknownKinds(OpsError, Unprocessable):
    def __init__(self, unknown: list[str], known: list[str]) -> None:
        message = f"unknown kinds {unknown}; kinds are {', '.join(known)}"
        super().__init__(
            f"No retention rule for {', '.join(unknown)}.",
            errors=[{"field": "kinds", "message": message, "type": "value_error"}],
        )


class BackupNotFound(OpsError, NotFound):
    def __init__(self, backup_id: str) -> None:
        super().__init__(f"No backup {backup_id}.")


# --- dead letters and the outbox ---------------------------------------------------------


@dataclass(frozen=True)
class Letter:
    """A dead letter kept for `topic`, held under `ack_id` until acked or released."""

    topic: str
    ack_id: str
    message_id: str
    raw: bytes
    attributes: dict[str, str]
    publish_time: datetime | None
    delivery_attempt: int | None

    @property
    def event_id(self) -> str:
        return self.attributes.get("event_id", "")

    @property
    def event_type(self) -> str:
        return self.attributes.get("event_type", self.topic)

    @property
    def data(self) -> Any:
        """The payload as JSON, or `{"base64": ...}` when it is not JSON."""
        try:
            return json.loads(self.raw or b"null")
        except (ValueError, UnicodeDecodeError):
            return {"base64": base64.b64encode(self.raw).decode()}


@dataclass(frozen=True)
class DeadLetters:
    items: list[Letter]
    counts: dict[str, int]


@dataclass(frozen=True)
class Redrive:
    redriven: int
    event_ids: list[str]
    failed: list[str]
    not_found: list[str] | None  # None when no event ids were asked for


@dataclass(frozen=True)
class OutboxState:
    schema: str
    pending: int
    oldest_pending_at: datetime | None
    failing: int
    published: int


# --- database statistics -------------------------------------------------------------------


@dataclass(frozen=True)
class TableStats:
    """One table. On SQLite `rows` is exact and the sizes, dead tuples and vacuum times are
    None (SQLite keeps no such statistics); on PostgreSQL `rows` is the planner's live-tuple
    estimate (`n_live_tup`: counting 1M rows would take seconds)."""

    schema: str
    name: str
    rows: int
    size_bytes: int | None  # table + TOAST + indexes
    table_bytes: int | None
    index_bytes: int | None
    dead_tuples: int | None
    last_vacuum: datetime | None
    last_analyze: datetime | None


@dataclass(frozen=True)
class SchemaStats:
    schema: str
    context: str
    tables: int
    rows: int
    size_bytes: int | None
    index_bytes: int | None
    dead_tuples: int | None


@dataclass(frozen=True)
class Connections:
    """Connections to this database now, against what the deployments may open (`budget`:
    per sql deployment, max instances x (pool size + overflow), as Terraform checks it)."""

    in_use: int | None
    by_state: dict[str, int] | None
    max_connections: int | None
    reserved: int | None  # kept for superusers
    budget: int


@dataclass(frozen=True)
class DatabaseStats:
    dialect: str
    schemas: list[SchemaStats]
    connections: Connections
    unavailable: list[str] = field(default_factory=list)  # what this dialect cannot say


def schema_stats(schema: str, context: str, tables: list[TableStats]) -> SchemaStats:
    """A schema's totals from its tables (None when the dialect has no such figure)."""

    def total(values: list[int | None]) -> int | None:
        return None if any(v is None for v in values) else sum(v for v in values if v)

    return SchemaStats(
        schema=schema,
        context=context,
        tables=len(tables),
        rows=sum(t.rows for t in tables),
        size_bytes=total([t.size_bytes for t in tables]),
        index_bytes=total([t.index_bytes for t in tables]),
        dead_tuples=total([t.dead_tuples for t in tables]),
    )


def connection_budget(deployments: list[tuple[int, int]]) -> int:
    """Worst case: every instance of every sql deployment, (max_instances, pool) each, holds
    its full pool (the figure Terraform's `sql_connection_budget` check counts, decision
    0040; without an environment's `max_instances_cap`, which only Terraform knows)."""
    return sum(n * pool for n, pool in deployments)


# --- backups -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backup:
    id: str
    method: BackupMethod
    status: BackupStatus
    location: str  # gs://bucket/object, or a path under the local directory
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None = None
    size_bytes: int | None = None
    operation: str | None = None  # the SQL Admin operation name (cloud-sql-export)
    error: str | None = None


def backup_status(operation: dict[str, Any]) -> tuple[BackupStatus, str | None]:
    """Our status and error of a SQL Admin `Operation` (a DONE one with `error` failed)."""
    status = SQLADMIN_STATUS.get(str(operation.get("status", "")), "pending")
    errors = (operation.get("error") or {}).get("errors") or []
    if status == "done" and errors:
        return "failed", "; ".join(str(e.get("message") or e.get("code")) for e in errors)
    return status, None


# --- retention -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionRule:
    """What cleanup removes: in `store` sql, outbox rows published more than `keep` ago, in
    every schema; in firestore, the documents of `collection` whose `timestamp_field` is more
    than `keep` ago. A context registers a rule for a collection it owns (webhook deliveries,
    run logs) by naming the collection and the field; ops needs no code for it."""

    kind: str
    store: Store
    keep: timedelta
    description: str
    collection: str | None = None
    timestamp_field: str | None = None
    context: str = "ops"


@dataclass(frozen=True)
class CleanupResult:
    kind: str
    description: str
    cutoff: datetime
    matched: int  # what is (dry run) or was old enough
    removed: int  # 0 on a dry run
    by_schema: dict[str, int] | None = None  # the outbox, per schema


@dataclass(frozen=True)
class CleanupReport:
    dry_run: bool
    results: list[CleanupResult]

    @property
    def total(self) -> int:
        return sum(r.matched if self.dry_run else r.removed for r in self.results)


def check_kinds(asked: list[str] | None, rules: list[RetentionRule]) -> list[RetentionRule]:
    """The rules of the `asked` kinds (all when None); UnknownKinds names an unknown kind."""
    if asked is None:
        return rules
    known = {r.kind: r for r in rules}
    unknown = sorted(set(asked) - set(known))
    if unknown:
        raise UnknownKinds(unknown, sorted(known))
    return [known[k] for k in dict.fromkeys(asked)]
