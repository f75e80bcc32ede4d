"""The transactional outbox: `emit(session, event)`, `emit_many(session, events)` and the
publish right after commit.

`emit` validates the event against its schema, checks the running deployment declares it in its
manifest (`publishes`), and inserts it into the publishing context's `outbox` table inside the
caller's transaction. `emit_many` does the same for a batch in one statement per outbox (a scan
batch, a push's commits: decisions 0047, 0048); `emit` is `emit_many` of one event. The
committed row is the durability: right after commit it is handed to the process's sender
(`_Sender`), which publishes it off the request thread and marks it published in batches, so the
request does not wait on Pub/Sub (decision 0041). On Cloud Run, where CPU is throttled once the
response is sent, the request waits up to `outbox_wait_s` for its own rows (`OUTBOX_WAIT_S`, 2 s
there, 0 elsewhere), else they would wait for the relay's next tick. A failed publish, a full
queue or a crash leaves the row pending for `relay()` (`ops-outbox-relay`, every minute), so
nothing is lost. Traces (`shared.tracing`): each event's publish is a producer span, child of
the span that emitted it, open from `emit` until Pub/Sub accepts the message; the event's
`traceparent` attribute names that span, so each consumer's span is its child in the same trace.
A relayed row's publish is a new producer span under the stored traceparent (the first one died
unexported with its process, or was never ended). `flush()` waits for this process's rows (a CLI
before it exits; atexit does it too). `outbox_table` is the one definition of the table;
`create_outbox` creates it from a context's first Alembic revision.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

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
    update,
)
from sqlalchemy import text as sa_text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from shared import db, tracing
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
    or `system`. `emit_many` with one event: one code path.
    """
    return emit_many(session, [event], actor=actor)[0]


SQLITE_ROWS_PER_STATEMENT = 500  # 7 columns a row: well under SQLite's 32,766 variables


def emit_many(session: Session, events: Iterable[Event], *, actor: str | None = None) -> list[str]:
    """Add `events` to the outbox in `session`'s transaction, in order; published after
    commit. Returns their event ids, in order.

    What `emit` does for one event, for many at a time: every event is checked first (a
    registered `Event`, declared in the running deployment's `publishes`, its payload
    round-tripped through its model), so an invalid one raises before anything is written;
    then each gets its id, `occurred_at`, envelope attributes and its own producer span (its
    `traceparent` names it, as with `emit`), the rows go to each outbox table in one
    statement (PostgreSQL: the rows as one JSON parameter read by `json_to_recordset`;
    SQLite: multi-row VALUES in chunks), and all of them are handed to the sender in the one
    after-commit hand-over of the session. A batch of thousands of events (a scan batch, a
    push's commits) costs one statement instead of one each (decisions 0047, 0048).
    """
    batch = list(events)
    if not batch:
        return []
    s = settings()
    declared: frozenset[str] | None = None
    if s.deployment:
        from shared.manifests import catalog

        dep = catalog().deployments.get(s.deployment)
        if dep is not None:
            declared = frozenset(dep.publishes)
    checked: list[tuple[type[Event], str, str]] = []  # (class, its type, its payload as JSON)
    for event in batch:
        if not isinstance(event, Event) or not type(event).event_type:
            raise EventError(f"{event!r} is not a registered Event")
        cls = type(event)
        etype = cls.event_type
        if declared is not None and etype not in declared:
            raise EventError(f"{s.deployment} does not declare {etype} in `publishes`")
        # Round-trip through the model: an invalid payload raises here, before any row.
        payload = cls.model_validate(event.model_dump()).model_dump(mode="json")
        checked.append((cls, etype, json.dumps(payload, separators=(",", ":"))))
    tables = {etype: _outbox_of(_publisher_schema(etype)) for _, etype, _ in checked}

    from shared.clients import topic_path

    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    source = s.deployment or "local"
    request_id = slog.current("request_id")
    inherited = slog.current("traceparent")
    who = actor or _current_actor()
    topics = {etype: topic_path(etype) for etype in tables}
    raw = os.urandom(16 * len(checked))  # one read of the system's randomness, not one an id
    ids: list[str] = []
    rows: dict[Table, list[dict[str, Any]]] = {}
    pending: list[_Pending] = []
    for n, (cls, etype, body) in enumerate(checked):
        event_id = str(uuid.UUID(bytes=raw[16 * n : 16 * n + 16], version=4))
        occurred = utcnow()
        span = tracing.producer(
            f"publish {etype}",
            attributes={
                "messaging.system": "gcp_pubsub",
                "messaging.destination.name": etype,
                "switchyard.event_id": event_id,
            },
        )
        attributes = {
            "event_type": etype,
            "event_id": event_id,
            "schema_version": str(cls.schema_version),
            "source": source,
            "occurred_at": rfc3339(occurred),
            "request_id": request_id,
            "traceparent": tracing.format_traceparent(span) if span else inherited,
            "actor": who,
        }
        table = tables[etype]
        rows.setdefault(table, []).append(
            {
                "id": event_id,
                "event_type": etype,
                "schema_version": cls.schema_version,
                "payload": body,
                "attributes": json.dumps(attributes),
                "created_at": occurred,
                "attempts": 0,
            }
        )
        pending.append(
            _Pending(
                engine,
                table,
                event_id,
                topics[etype],
                body.encode(),
                {k: v for k, v in attributes.items() if v},
                span=span,
            )
        )
        ids.append(event_id)
    try:
        for table, table_rows in rows.items():
            _insert_rows(session, table, table_rows)
    except BaseException as exc:
        for row in pending:  # never published: their spans end here, failed
            tracing.end(row.span, f"outbox insert failed: {type(exc).__name__}")
        raise
    queued: list[_Pending] | None = session.info.get(_PENDING)
    if queued is None:
        queued = session.info[_PENDING] = []
        db.after_commit(session, lambda: _hand_over(list(queued)))
    queued.extend(pending)
    return ids


_PENDING = "switchyard.outbox.pending"  # session.info: this transaction's rows, all tables


def _insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """`rows` into the outbox `table` in one statement (SQLite: chunks of
    `SQLITE_ROWS_PER_STATEMENT`). PostgreSQL gets one parameter, the rows as JSON, read back
    by `json_to_recordset` with the columns' types (timestamps in ISO 8601 with their offset:
    exact): compiling a VALUES parameter per column and row, then pg8000 rewriting each, was
    most of a large batch's time (decision 0048)."""
    if session.get_bind().dialect.name == "postgresql":
        for row in rows:
            row["created_at"] = row["created_at"].isoformat()
        session.execute(_pg_insert(table), {"rows": json.dumps(rows)})
        return
    for i in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
        session.execute(table.insert().values(rows[i : i + SQLITE_ROWS_PER_STATEMENT]))


_COLUMNS = ("id", "event_type", "schema_version", "payload", "attributes", "created_at", "attempts")


@functools.cache
def _pg_insert(table: Table) -> TextClause:
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    cols = ", ".join(_COLUMNS)
    record = ", ".join(f"{n} {table.c[n].type.compile(dialect=dialect)}" for n in _COLUMNS)
    return sa_text(
        f"INSERT INTO {table.fullname} ({cols}) SELECT {cols} "  # noqa: S608 - column names
        f"FROM json_to_recordset(CAST(:rows AS json)) AS r({record})"
    )


def _current_actor() -> str:
    if flask.has_request_context():
        claims = getattr(flask.g, "claims", None)
        if claims is not None:
            return str(claims.sub)
    return "system"


class _Pending(NamedTuple):
    """A committed outbox row on its way to Pub/Sub (what the publish needs, no re-read)."""

    engine: Engine
    table: Table
    id: str
    topic: str
    payload: bytes
    attributes: dict[str, str]
    waiter: _Waiter | None = None
    span: Any = None  # its producer span (shared.tracing), ended once Pub/Sub answers


class _Waiter:
    """Counts down the rows of one commit as the sender marks (or gives up on) each."""

    def __init__(self, rows: int) -> None:
        self._left = rows
        self._cv = threading.Condition()

    def done(self) -> None:
        with self._cv:
            self._left -= 1
            if self._left <= 0:
                self._cv.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self._left <= 0, timeout)


MAX_QUEUED = 10_000  # rows waiting for their publish per process; beyond, the relay's turn
MARK_GATHER_S = 0.05  # the marker gathers publishes this long into one UPDATE
PUBLISH_GATHER = 1000  # rows the sender takes from its queue at once (one Publish per topic)


class _Sender:
    """Publishes committed outbox rows off the request thread, then marks them published.

    The request that committed only hands its rows over (`offer`, never blocks): the row is
    the durability, so nothing in its response path waits on Pub/Sub. One thread publishes
    what is queued when it looks, one `Publish` call per topic (`shared.clients.publish`: no
    thread or future per message; each call bounded by `publish_timeout_s`, retries included,
    and the rows queued behind it wait for it), a second marks what Pub/Sub accepted with one
    UPDATE per batch. Bounded: at most `MAX_QUEUED` rows per process
    wait or are in flight; a row beyond that, a failed publish, a crash or a failed mark stays
    pending and `relay()` publishes it after its grace (a mark that failed after a publish
    that worked means one more publish: consumers de-duplicate, decision 0001)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._rows: queue.Queue[_Pending] = queue.Queue()
        self._marks: queue.Queue[tuple[_Pending, str | None]] = queue.Queue()
        self._slots = threading.BoundedSemaphore(MAX_QUEUED)
        self._idle = threading.Condition()
        self._open = 0  # rows offered and not yet marked (or given up)
        for target, name in (
            (self._publish_loop, "outbox-publish"),
            (self._mark_loop, "outbox-mark"),
        ):
            threading.Thread(target=target, name=name, daemon=True).start()

    def offer(self, rows: list[_Pending]) -> None:
        for row in rows:
            if not self._slots.acquire(blocking=False):
                _log.warning("outbox publish queue full; %s waits for the relay", row.id)
                tracing.end(row.span, "publish queue full: left to the relay")
                if row.waiter is not None:
                    row.waiter.done()
                continue
            with self._idle:
                self._open += 1
            self._rows.put(row)

    def flush(self, timeout: float) -> bool:
        """Wait (up to `timeout`) until every offered row is published and marked."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._open:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _done(self, n: int) -> None:
        with self._idle:
            self._open -= n
            if not self._open:
                self._idle.notify_all()
        for _ in range(n):
            self._slots.release()

    def _publish_loop(self) -> None:
        while True:
            rows = [self._rows.get()]
            while len(rows) < PUBLISH_GATHER:  # what else waits now: one call per topic
                try:
                    rows.append(self._rows.get_nowait())
                except queue.Empty:
                    break
            by_topic: dict[str, list[_Pending]] = {}
            for row in rows:
                by_topic.setdefault(row.topic, []).append(row)
            for topic, batch in by_topic.items():
                try:
                    outcome = self._publish(topic, batch)
                except Exception as exc:  # noqa: BLE001 - this thread lives on; the relay's turn
                    _log.exception("publishing %d outbox rows failed", len(batch))
                    outcome = [(row, str(exc) or type(exc).__name__) for row in batch]
                for row, error in outcome:
                    self._marks.put((row, error))

    def _publish(self, topic: str, batch: list[_Pending]) -> list[tuple[_Pending, str | None]]:
        """Publish `batch` in one call (per Pub/Sub's limits): each row with its error or None."""
        from shared.clients import publish

        try:
            ids = publish(
                topic, [(r.payload, r.attributes) for r in batch], settings().publish_timeout_s
            )
        except Exception as exc:  # noqa: BLE001 - the rows stay pending for the relay
            error = str(exc) or type(exc).__name__
            for row in batch:
                tracing.end(row.span, error)
            return [(row, error) for row in batch]
        for row, message_id in zip(batch, ids, strict=True):
            if row.span is not None:
                row.span.set_attribute("messaging.message.id", message_id)
                tracing.end(row.span)
        return [(row, None) for row in batch]

    def _mark_loop(self) -> None:
        while True:
            batch = [self._marks.get()]
            # Gather for up to MARK_GATHER_S (none when a request waits on a row: Cloud Run's
            # OUTBOX_WAIT_S): one UPDATE, one pooled connection, per ~5 publishes at 100/s
            # instead of one per publish, taken from the pool the requests use (decision 0054).
            until = time.monotonic() + MARK_GATHER_S
            while len(batch) < 500 and batch[-1][0].waiter is None:
                try:
                    batch.append(self._marks.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            try:
                _mark(batch)
            except Exception:  # noqa: BLE001 - left pending: the relay publishes them again
                _log.warning(
                    "marking %d outbox rows failed; the relay will", len(batch), exc_info=True
                )
            finally:
                for row, _ in batch:
                    if row.waiter is not None:
                        row.waiter.done()
                self._done(len(batch))


def _mark(batch: list[tuple[_Pending, str | None]]) -> None:
    by_target: dict[tuple[Engine, Table], list[tuple[_Pending, str | None]]] = {}
    for row, error in batch:
        by_target.setdefault((row.engine, row.table), []).append((row, error))
    for (engine, table), rows in by_target.items():
        ok = [row.id for row, error in rows if error is None]
        with engine.begin() as conn:
            if ok:
                conn.execute(
                    update(table)
                    .where(table.c.id.in_(ok), table.c.published_at.is_(None))
                    .values(published_at=utcnow(), attempts=table.c.attempts + 1, last_error=None)
                )
            for row, error in rows:
                if error is not None:
                    _log.warning("publish of %s failed: %s", row.id, error)
                    conn.execute(
                        update(table)
                        .where(table.c.id == row.id)
                        .values(attempts=table.c.attempts + 1, last_error=error[:2000])
                    )


_sender_lock = threading.Lock()
_sender_now: _Sender | None = None


def _sender() -> _Sender:
    global _sender_now
    with _sender_lock:
        if _sender_now is None or _sender_now.pid != os.getpid():  # a forked child: its own
            _sender_now = _Sender()
            atexit.register(_sender_now.flush, settings().publish_timeout_s)
        return _sender_now


def flush(timeout: float | None = None) -> bool:
    """Wait until the rows this process committed are published (or given to the relay):
    a CLI that emits then exits, a test that reads `published_at`. True when all were."""
    return _sender_now is None or _sender_now.flush(
        settings().publish_timeout_s if timeout is None else timeout
    )


def _hand_over(rows: list[_Pending]) -> None:
    """After commit: hand the committed rows to the sender; the request goes on at once, or,
    with `outbox_wait_s` (Cloud Run), once they are published and marked or that time passed."""
    fault_point("after-commit")  # fault suite only (local): die between commit and publish
    wait_s = settings().outbox_wait_s
    if wait_s <= 0:
        _sender().offer(rows)
        return
    waiter = _Waiter(len(rows))
    _sender().offer([row._replace(waiter=waiter) for row in rows])
    if not waiter.wait(wait_s):
        _log.info("%d events not yet published after %.1f s; the relay's turn", len(rows), wait_s)


def _publish_rows(session: Session, table: Table, rows: Sequence[Any]) -> int:
    """Publish `rows` (the relay's, locked by `session`) and mark them in `session`, one
    `Publish` call per topic; waits for Pub/Sub at most `publish_timeout_s` in all, whatever
    the number of rows (the topics left when it has passed stay pending for the next run)."""
    from shared.clients import publish, topic_path

    by_topic: dict[str, list[tuple[Any, Any, dict[str, str]]]] = {}
    for row in rows:
        attrs = {k: v for k, v in json.loads(row.attributes).items() if v}
        span = tracing.producer(
            f"publish {row.event_type}",
            traceparent=attrs.get("traceparent", ""),
            attributes={
                "messaging.system": "gcp_pubsub",
                "messaging.destination.name": row.event_type,
                "switchyard.event_id": row.id,
                "switchyard.relayed": True,
            },
        )
        if span is not None:  # the consumers continue the relay's publish, same trace
            attrs["traceparent"] = tracing.format_traceparent(span)
        by_topic.setdefault(row.event_type, []).append((row, span, attrs))
    published = 0
    deadline = time.monotonic() + settings().publish_timeout_s
    for event_type, batch in by_topic.items():
        left = deadline - time.monotonic()
        if left <= 0:
            for _, span, _ in batch:
                tracing.end(span, "the relay's publish time ran out: left for its next run")
            continue
        try:
            publish(
                topic_path(event_type),
                [(row.payload.encode(), attrs) for row, _, attrs in batch],
                left,
            )
        except Exception as exc:
            error = (str(exc) or type(exc).__name__)[:2000]
            _log.warning("publish of %d %s events failed: %s", len(batch), event_type, exc)
            for _, span, _ in batch:
                tracing.end(span, error)
            session.execute(
                update(table)
                .where(table.c.id.in_([row.id for row, _, _ in batch]))
                .values(attempts=table.c.attempts + 1, last_error=error)
            )
            continue
        for _, span, _ in batch:
            tracing.end(span)
        session.execute(
            update(table)
            .where(table.c.id.in_([row.id for row, _, _ in batch]))
            .values(published_at=utcnow(), attempts=table.c.attempts + 1, last_error=None)
        )
        published += len(batch)
    return published
