"""Ops use cases: dead letters (inspect, redrive), the state of every outbox, cleanup.

Dead letters are the messages kept by each topic's `<topic>.dead-letter--keep` pull
subscription. Listing pulls them and gives them back at once (ack deadline 0), so they stay for
the next look or a redrive. A redrive republishes each kept message to its ORIGINAL topic with
the same data and attributes (the same `event_id`): subscriptions that processed the event
already skip it (their processed marker), the one that failed gets it again. Only after the
publish is confirmed is the dead letter acked; a failed publish leaves it kept.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.ops import dumps, model, sqladmin, store
from shared import clients, db
from shared import events as sevents
from shared import logging as slog
from shared.config import settings
from shared.events import PROCESSED
from shared.manifests import catalog, dead_letter_subscription

_log = slog.get_logger("switchyard.ops")

PULL_BATCH = 100  # messages per pull
MAX_PULLS = 10  # pulls per subscription per request (at most 1000 letters at a time)
PUBLISH_TIMEOUT_S = 30.0


def _publish_time(msg: Any) -> datetime | None:
    value = getattr(msg, "publish_time", None)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    try:  # protobuf Timestamp
        return value.ToDatetime(tzinfo=UTC)
    except (AttributeError, TypeError):
        return None


def _pull(topic: str) -> list[model.Letter]:
    """Every message kept for `topic` (up to MAX_PULLS x PULL_BATCH), held until acked/nacked.

    A subscription that does not exist (topic never wired in this project) holds nothing.
    """
    from google.api_core.exceptions import NotFound

    sub = clients.subscriber()
    path = clients.subscription_path(dead_letter_subscription(topic))
    seen: dict[str, model.Letter] = {}
    for _ in range(MAX_PULLS):
        try:
            resp = sub.pull(
                request={
                    "subscription": path,
                    "max_messages": PULL_BATCH,
                    "return_immediately": True,
                },
                timeout=10,
            )
        except NotFound:
            _log.warning("no dead-letter subscription %s", path)
            return []
        fresh = 0
        for rm in resp.received_messages:
            m = rm.message
            if m.message_id not in seen:
                fresh += 1
            seen[m.message_id] = model.Letter(  # a redelivery replaces the older ack id
                topic=topic,
                ack_id=rm.ack_id,
                message_id=m.message_id,
                raw=bytes(m.data),
                attributes=dict(m.attributes),
                publish_time=_publish_time(m),
                delivery_attempt=rm.delivery_attempt or None,
            )
        if not fresh:
            break
    return sorted(seen.values(), key=lambda x: x.publish_time or datetime.min.replace(tzinfo=UTC))


def _release(topic: str, letters: list[model.Letter]) -> None:
    """Give held messages back at once (ack deadline 0): they stay kept."""
    if not letters:
        return
    try:
        clients.subscriber().modify_ack_deadline(
            request={
                "subscription": clients.subscription_path(dead_letter_subscription(topic)),
                "ack_ids": [x.ack_id for x in letters],
                "ack_deadline_seconds": 0,
            }
        )
    except Exception:  # they come back anyway when the ack deadline expires
        _log.warning("could not release %d dead letters of %s", len(letters), topic, exc_info=True)


def _check_topic(topic: str) -> None:
    if topic not in catalog().topics:
        raise model.UnknownTopic(topic)


def dead_letters(topic: str | None = None) -> model.DeadLetters:
    """The kept dead letters of every topic (or of `topic`) and the count per topic."""
    topics = [topic] if topic else list(catalog().topics)
    if topic:
        _check_topic(topic)
    items: list[model.Letter] = []
    counts: dict[str, int] = {}
    for t in topics:
        letters = _pull(t)
        _release(t, letters)
        counts[t] = len(letters)
        items += letters
    return model.DeadLetters(items=items, counts=counts)


def redrive(topic: str, event_ids: list[str] | None = None) -> model.Redrive:
    """Republish the kept dead letters of `topic` (all, or those of `event_ids`) to `topic`
    with the same data and attributes, then ack them. Returns the count redriven."""
    _check_topic(topic)
    letters = _pull(topic)
    wanted = set(event_ids) if event_ids is not None else None
    chosen = [x for x in letters if wanted is None or x.event_id in wanted]
    others = [x for x in letters if x not in chosen]
    _release(topic, others)
    done: list[model.Letter] = []
    failed: list[model.Letter] = []
    try:
        if chosen:
            clients.publish(
                clients.topic_path(topic),
                [(x.raw, x.attributes) for x in chosen],
                PUBLISH_TIMEOUT_S,
            )
    except Exception:
        _log.warning("redrive of %d dead letters of %s failed", len(chosen), topic, exc_info=True)
        failed = chosen
    else:
        done = chosen
    if done:
        clients.subscriber().acknowledge(
            request={
                "subscription": clients.subscription_path(dead_letter_subscription(topic)),
                "ack_ids": [x.ack_id for x in done],
            }
        )
    _release(topic, failed)
    _log.info("redrove %d dead letters of %s (%d failed)", len(done), topic, len(failed))
    return model.Redrive(
        redriven=len(done),
        event_ids=[x.event_id for x in done],
        failed=[x.event_id for x in failed],
        not_found=sorted(wanted - {x.event_id for x in chosen}) if wanted is not None else None,
    )


def outbox() -> list[model.OutboxState]:
    """Pending (and oldest pending) and published counts of every context's outbox."""
    return [
        model.OutboxState(st.schema, st.pending, st.oldest_pending_at, st.failing, st.published)
        for st in sevents.outbox_stats()
    ]


# --- database: statistics and tables --------------------------------------------------------

SQLITE_UNAVAILABLE = ["size_bytes (per table)", "index_bytes", "dead_tuples", "connections"]


def _schemas(schema: str | None = None) -> dict[str, str]:
    """{schema: context} of every context schema (or of `schema`: UnknownSchema if none)."""
    owners = {c.owns_schema: c.name for c in catalog().contexts if c.owns_schema}
    if schema is None:
        return dict(sorted(owners.items()))
    if schema not in owners:
        raise model.UnknownSchema(schema)
    return {schema: owners[schema]}


def _budget() -> int:
    return model.connection_budget(
        [(d.runtime.max_instances, d.db_pool) for d in catalog().deployments.values()]
    )


def tables(schema: str | None = None) -> list[model.TableStats]:
    """Every table of every context schema (or of `schema`), by schema then name."""
    with db.engine().connect() as conn:
        return store.tables(conn, list(_schemas(schema)))


def statistics() -> model.DatabaseStats:
    """Per context schema: tables, rows, size, dead tuples, index size; connections in use
    against the budget. On SQLite what SQLite cannot tell is None and named in `unavailable`."""
    owners = _schemas()
    with db.engine().connect() as conn:
        found = store.tables(conn, list(owners))
        schemas = []
        for schema, context in owners.items():
            stats = model.schema_stats(schema, context, [t for t in found if t.schema == schema])
            if conn.dialect.name == "sqlite":
                stats = replace(stats, size_bytes=store.sqlite_schema_bytes(conn, schema))
            schemas.append(stats)
        connections = store.connections(conn, _budget())
        dialect = conn.dialect.name
    unavailable = SQLITE_UNAVAILABLE if dialect == "sqlite" else []
    return model.DatabaseStats(dialect, schemas, connections, list(unavailable))


# --- database: backups -------------------------------------------------------------------------


def _bucket() -> str:
    s = settings()
    return s.backup_bucket or f"{s.project_id}-switchyard-backups"


def backup(actor: str) -> model.Backup:
    """Back the database up: a Cloud SQL export when the deployments use Cloud SQL (started
    here, finished by Cloud SQL: its status is read back at `backups()`), else `pg_dump` or a
    copy of the SQLite files (finished before this returns). The record is kept either way."""
    now = datetime.now(UTC)
    backup_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    if settings().instance_connection_name:
        uri = f"gs://{_bucket()}/switchyard/{backup_id}.sql.gz"
        operation = sqladmin.export(uri)
        status, error = model.backup_status(operation)
        record = model.Backup(
            id=backup_id,
            method="cloud-sql-export",
            status=status,
            location=uri,
            requested_by=actor,
            requested_at=now,
            operation=str(operation.get("name", "")),
            error=error,
            finished_at=datetime.now(UTC) if status in model.FINAL_STATUSES else None,
        )
        store.put_backup(record)
        _log.info("backup %s: Cloud SQL export to %s (%s)", backup_id, uri, record.operation)
        return record
    folder = dumps.backup_dir()
    sqlite = db.is_sqlite()
    target = folder / (backup_id if sqlite else f"{backup_id}.dump")
    if not sqlite:
        dumps.find_pg_dump()  # a missing tool is a 503 before anything is recorded
    record = model.Backup(
        id=backup_id,
        method="sqlite-copy" if sqlite else "pg_dump",
        status="running",
        location=str(target),
        requested_by=actor,
        requested_at=now,
    )
    store.put_backup(record)
    try:
        if sqlite:
            size = dumps.sqlite_copy(list(_schemas()), target)
        else:
            size = dumps.pg_dump(settings().database_url, target)
    except model.BackupFailed as exc:
        store.put_backup(
            replace(record, status="failed", error=exc.detail, finished_at=datetime.now(UTC))
        )
        raise
    record = replace(record, status="done", size_bytes=size, finished_at=datetime.now(UTC))
    store.put_backup(record)
    _log.info("backup %s: %s to %s (%d bytes)", backup_id, record.method, target, size)
    return record


def _refreshed(record: model.Backup) -> model.Backup:
    """A Cloud SQL export's record brought up to date from its operation (kept when final)."""
    if record.status in model.FINAL_STATUSES or not record.operation:
        return record
    try:
        operation = sqladmin.operation(record.operation)
    except model.OpsError:
        _log.warning("could not read operation %s of backup %s", record.operation, record.id)
        return record
    status, error = model.backup_status(operation)
    if status == record.status:
        return record
    final = status in model.FINAL_STATUSES
    fresh = replace(
        record, status=status, error=error, finished_at=datetime.now(UTC) if final else None
    )
    store.put_backup(fresh)
    return fresh


def backups(*, after: tuple[datetime, str] | None, limit: int) -> list[model.Backup]:
    """Backups newest first; exports still running are checked with Cloud SQL first."""
    return [_refreshed(b) for b in store.list_backups(after=after, limit=limit)]


def get_backup(backup_id: str) -> model.Backup:
    found = store.get_backup(backup_id)
    if found is None:
        raise model.BackupNotFound(backup_id)
    return _refreshed(found)


# --- database: cleanup (retention rules) ------------------------------------------------------

OUTBOX_KEEP = timedelta(days=7)
BUILTIN_RULES = (
    model.RetentionRule(
        kind="outbox",
        store="sql",
        keep=OUTBOX_KEEP,
        description="Outbox rows published more than 7 days ago, in every context schema.",
    ),
    model.RetentionRule(
        kind="processed",
        store="firestore",
        keep=timedelta(0),
        collection=PROCESSED,
        timestamp_field="expires_at",
        description=(
            "Processed-event markers past their 7-day expiry (Firestore's TTL policy removes "
            "them in the cloud, the emulator never does)."
        ),
    ),
)


def rules() -> list[model.RetentionRule]:
    """The built-in rules, then the rules contexts declare in their manifest (`retention`:
    kind, collection, timestamp_field, keep_days) for the Firestore collections they own."""
    declared = []
    for m in catalog().contexts:
        for r in m.retention:
            declared.append(
                model.RetentionRule(
                    kind=r.kind,
                    store="firestore",
                    keep=timedelta(days=r.keep_days),
                    collection=r.collection,
                    timestamp_field=r.timestamp_field,
                    description=r.description,
                    context=m.name,
                )
            )
    return [*BUILTIN_RULES, *declared]


def _apply(rule: model.RetentionRule, dry_run: bool, now: datetime) -> model.CleanupResult:
    cutoff = now - rule.keep
    if rule.store == "sql":
        schemas = list(_schemas())
        with db.engine().connect() as conn:
            matched = store.published_before(conn, schemas, cutoff)
        removed = (
            {k: 0 for k in matched} if dry_run else sevents.purge_published(older_than=rule.keep)
        )
        return model.CleanupResult(
            kind=rule.kind,
            description=rule.description,
            cutoff=cutoff,
            matched=sum(matched.values()),
            removed=sum(removed.values()),
            by_schema=matched if dry_run else removed,
        )
    assert rule.collection and rule.timestamp_field
    matched_docs = store.count_older(rule.collection, rule.timestamp_field, cutoff)
    gone = 0 if dry_run else store.delete_older(rule.collection, rule.timestamp_field, cutoff)
    return model.CleanupResult(rule.kind, rule.description, cutoff, matched_docs, gone)


def cleanup_database(
    *,
    dry_run: bool = True,
    kinds: list[str] | None = None,
    using: list[model.RetentionRule] | None = None,
) -> model.CleanupReport:
    """Apply the retention rules (`kinds` of them, default all; `using` replaces the
    registered rules): a dry run (the default) reports what each would remove."""
    chosen = model.check_kinds(kinds, list(using) if using is not None else rules())
    now = datetime.now(UTC)
    results = [_apply(rule, dry_run, now) for rule in chosen]
    _log.info(
        "cleanup%s: %s",
        " (dry run)" if dry_run else "",
        {r.kind: r.matched if dry_run else r.removed for r in results},
    )
    return model.CleanupReport(dry_run=dry_run, results=results)


def cleanup() -> dict[str, Any]:
    """ops-cleanup: apply every retention rule. `deleted` is the outbox per schema (as
    before), `removed` what each rule removed."""
    report = cleanup_database(dry_run=False)
    outbox_rows = next(r for r in report.results if r.kind == "outbox")
    deleted = outbox_rows.by_schema or {}
    return {
        "deleted": deleted,
        "total": sum(deleted.values()),
        "removed": {r.kind: r.removed for r in report.results},
    }
