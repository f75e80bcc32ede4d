"""Production's tables (schema `production`) and the queries on them; PostgreSQL and SQLite.

`batches` holds one row per batch with a `version` that every change bumps through a guarded
`UPDATE ... WHERE id = :id AND version = :seen` (`change`), so of two concurrent writers exactly
one wins and the other learns it from the row count. `batch_transitions` is the append-only
lifecycle record (creation included) the history and the cycle-time metrics read. Metrics are
computed in SQL with GROUP BY over index ranges; the two dialect-specific bits (seconds
between two timestamps, the UTC day of a timestamp) are small compiled constructs.
Datetimes are UTC; SQLite keeps them naive (its storage drops the offset), so values are bound
in UTC and read back through `shared.db.utc()`. Queries return `model` objects (never rows).
Indexes follow the filters and sort orders used here.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, CursorResult, Row
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.selectable import Select

from functions.production import model
from shared import db, trigram
from shared.db import as_dict, utc
from shared.events import outbox_table

SCHEMA = "production"
metadata = db.metadata(SCHEMA)
TS = DateTime(timezone=True)

batches = Table(
    "batches",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("batch_number", String(40), nullable=False),
    Column("product", String(200), nullable=False),
    Column("planned_quantity", Float, nullable=False),
    Column("actual_quantity", Float, nullable=True),
    Column("unit", String(20), nullable=False),
    Column("stage", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("notes", Text, nullable=True),
    Column("planned_start", TS, nullable=True),
    Column("started_at", TS, nullable=True),
    Column("completed_at", TS, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ux_batches_number", "batch_number", unique=True),
    Index("ix_batches_created", "created_at", "id"),
    Index("ix_batches_status", "status", "created_at", "id"),
    Index("ix_batches_stage", "stage", "created_at", "id"),
    Index("ix_batches_product", "product", "created_at", "id"),
    Index("ix_batches_planned_start", "planned_start"),
    Index("ix_batches_completed", "completed_at"),
)

transitions = Table(
    "batch_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", String(36), ForeignKey("production.batches.id"), nullable=False),
    Column("kind", String(10), nullable=False),  # status | stage
    Column("from_value", String(20), nullable=True),  # null: the batch was created
    Column("to_value", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", TS, nullable=False),
    # On a row that ends a stage visit (stage change, or the release ending packaging): when
    # that visit began. Cycle times are then one aggregate over a time range of rows instead
    # of a self-join (see docs/decisions/0010).
    Column("stage_entered_at", TS, nullable=True),
    Index("ix_transitions_batch", "batch_id", "at", "id"),
    Index("ix_transitions_at", "at"),
)

# search: part of the batch number (`q`), a trigram index (PostgreSQL's pg_trgm; SQLite has
# none), with the trigrams of a shared prefix left out of its condition (shared/trigram.py)
NUMBER_TRGM = Index(
    "ix_batches_number_trgm",
    batches.c.batch_number,
    postgresql_using="gin",
    postgresql_ops={"batch_number": "gin_trgm_ops"},
)

# Rollups of what the metrics aggregate, kept on PostgreSQL by statement-level triggers in the
# writing transaction (migration 0002, docs/decisions/0042); empty on SQLite, where the metrics
# aggregate the source tables.
batch_counts = Table(
    "batch_counts",
    metadata,
    Column("product", String(200), primary_key=True),
    Column("status", String(20), primary_key=True),
    Column("stage", String(20), primary_key=True),
    Column("n", BigInteger, nullable=False),
)
daily_output = Table(  # per UTC day of completion and product
    "daily_output",
    metadata,
    Column("day", Date, primary_key=True),
    Column("product", String(200), primary_key=True),
    Column("completed", BigInteger, nullable=False),
    Column("with_yield", BigInteger, nullable=False),
    Column("yield_sum", Float, nullable=False),
    Column("yield_min", Float, nullable=True),
    Column("yield_max", Float, nullable=True),
)
daily_stage_time = Table(  # per UTC day a stage visit ended, product and stage
    "daily_stage_time",
    metadata,
    Column("day", Date, primary_key=True),
    Column("product", String(200), primary_key=True),
    Column("stage", String(20), primary_key=True),
    Column("visits", BigInteger, nullable=False),
    Column("seconds", Float, nullable=False),
)

outbox = outbox_table(metadata)


def _bind(values: dict[str, Any]) -> dict[str, Any]:
    """Datetimes in UTC before they are bound (SQLite stores the wall time, dropping offsets)."""
    return {k: utc(v) if isinstance(v, datetime) else v for k, v in values.items()}


def _batch(row: Row[Any]) -> model.Batch:
    return model.Batch(**as_dict(row))


# --- batches -------------------------------------------------------------------------------


def get(session: Session, batch_id: str) -> model.Batch | None:
    row = session.execute(select(batches).where(batches.c.id == batch_id)).first()
    return _batch(row) if row is not None else None


def number_taken(session: Session, batch_number: str, *, other_than: str | None = None) -> bool:
    stmt = select(batches.c.id).where(batches.c.batch_number == batch_number)
    if other_than is not None:
        stmt = stmt.where(batches.c.id != other_than)
    return session.execute(stmt.limit(1)).first() is not None


def add(session: Session, batch: model.Batch) -> None:
    session.execute(batches.insert().values(**_bind(asdict(batch))))


def change(session: Session, batch_id: str, seen_version: int, **values: Any) -> bool:
    """Apply `values` if the row still has `seen_version` (bump it); False when it changed."""
    result = session.execute(
        update(batches)
        .where(batches.c.id == batch_id, batches.c.version == seen_version)
        .values(**_bind(values), version=seen_version + 1)
    )
    return cast(CursorResult[Any], result).rowcount == 1


def search(
    session: Session,
    *,
    q: str | None,
    statuses: list[str] | None,
    stages: list[str] | None,
    product: str | None,
    planned_from: datetime | None,
    planned_to: datetime | None,
    created_from: datetime | None,
    created_to: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[model.Batch]:
    """Batches matching the filters, newest first (created_at desc, id desc), after the keyset
    `after`; fetches `limit` rows (callers ask for one more than a page)."""
    b = batches.c
    stmt = select(batches)
    found = trigram.match(session, b.batch_number, q.upper(), index=NUMBER_TRGM) if q else None
    if found is not None:
        stmt = stmt.where(found.cond)
    if statuses:
        stmt = stmt.where(b.status.in_(statuses))
    if stages:
        stmt = stmt.where(b.stage.in_(stages))
    if product:
        stmt = stmt.where(b.product == product)
    for col, low, high in (
        (b.planned_start, planned_from, planned_to),
        (b.created_at, created_from, created_to),
    ):
        if low is not None:
            stmt = stmt.where(col >= utc(low))
        if high is not None:
            stmt = stmt.where(col < utc(high))
    if after is not None:
        when, last_id = utc(after[0]), after[1]
        stmt = stmt.where(or_(b.created_at < when, and_(b.created_at == when, b.id < last_id)))
    gather = found is not None and found.rare
    page = db.newest_first(stmt, [b.created_at, b.id], limit, gather=gather)
    rows = session.execute(page).all()
    return [_batch(r) for r in rows]


# --- transitions ---------------------------------------------------------------------------


def record(
    session: Session,
    *,
    batch_id: str,
    kind: str,
    from_value: str | None,
    to_value: str,
    reason: str,
    actor: str,
    at: datetime,
    stage_entered_at: datetime | None = None,
) -> None:
    session.execute(
        transitions.insert().values(
            batch_id=batch_id,
            kind=kind,
            from_value=from_value,
            to_value=to_value,
            reason=reason,
            actor=actor,
            at=utc(at),
            stage_entered_at=utc(stage_entered_at),
        )
    )


def entered_at(
    session: Session, batch_id: str, kind: str, from_value: str | None, to_value: str
) -> datetime | None:
    """When the batch made the transition (kind, from, to) (the latest, if several)."""
    t = transitions.c
    stmt = select(func.max(t.at)).where(
        t.batch_id == batch_id, t.kind == kind, t.to_value == to_value
    )
    if from_value is not None:
        stmt = stmt.where(t.from_value == from_value)
    return utc(session.execute(stmt).scalar())


def history(
    session: Session, batch_id: str, *, after: tuple[datetime, int] | None, limit: int
) -> list[model.Transition]:
    """Transitions of a batch in the order they happened (at, id), after the keyset `after`."""
    t = transitions.c
    stmt: Select[Any] = select(
        t.id, t.kind, t.from_value, t.to_value, t.reason, t.actor, t.at
    ).where(t.batch_id == batch_id)
    if after is not None:
        when, last_id = utc(after[0]), after[1]
        stmt = stmt.where(or_(t.at > when, and_(t.at == when, t.id > last_id)))
    rows = session.execute(stmt.order_by(t.at, t.id).limit(limit)).all()
    return [model.Transition(**as_dict(r)) for r in rows]


# --- metrics -------------------------------------------------------------------------------


def _product_scope(
    stmt: Select[Any], batch_id: ColumnElement[Any], product: str | None
) -> Select[Any]:
    if product is None:
        return stmt
    return stmt.where(batch_id.in_(select(batches.c.id).where(batches.c.product == product)))


def _rolled_up(session: Session) -> bool:
    """The rollups exist and are kept (PostgreSQL) or the source tables are aggregated."""
    return session.get_bind().dialect.name == "postgresql"


def count_by_status_and_stage(session: Session, product: str | None) -> dict[tuple[str, str], int]:
    """Number of batches per (status, stage), now (from the rollup on PostgreSQL)."""
    if not _rolled_up(session):
        return live_counts(session, product)
    c = batch_counts.c
    stmt = select(c.status, c.stage, func.sum(c.n)).group_by(c.status, c.stage)
    if product is not None:
        stmt = stmt.where(c.product == product)
    return {(st, sg): int(n) for st, sg, n in session.execute(stmt).all() if n}


def yield_by_product(
    session: Session, start: datetime, end: datetime, product: str | None
) -> list[model.ProductYield]:
    """Per product, over batches completed in [start, end) (UTC day bounds): count and
    mean/min/max yield."""
    if not _rolled_up(session):
        return live_yield_by_product(session, start, end, product)
    o = daily_output.c
    stmt = (
        select(
            o.product,
            func.sum(o.completed),
            func.sum(o.yield_sum) / func.nullif(func.sum(o.with_yield), 0),
            func.min(o.yield_min),
            func.max(o.yield_max),
        )
        .where(o.day >= _day(start), o.day < _day(end))
        .group_by(o.product)
        .order_by(o.product)
    )
    if product is not None:
        stmt = stmt.where(o.product == product)
    return [
        model.ProductYield(p, int(n), float(avg), float(lo), float(hi))
        for p, n, avg, lo, hi in session.execute(stmt).all()
    ]


def cycle_times(
    session: Session, start: datetime, end: datetime, product: str | None
) -> dict[str, tuple[int, float]]:
    """Per stage: (visits, mean seconds in the stage) over the visits that ended in
    [start, end) (UTC day bounds); see live_cycle_times."""
    if not _rolled_up(session):
        return live_cycle_times(session, start, end, product)
    t = daily_stage_time.c
    stmt = (
        select(t.stage, func.sum(t.visits), func.sum(t.seconds))
        .where(t.day >= _day(start), t.day < _day(end))
        .group_by(t.stage)
    )
    if product is not None:
        stmt = stmt.where(t.product == product)
    return {
        name: (int(n), float(secs) / int(n)) for name, n, secs in session.execute(stmt).all() if n
    }


def completed_per_day(
    session: Session, start: datetime, end: datetime, product: str | None
) -> dict[date, int]:
    if not _rolled_up(session):
        return live_completed_per_day(session, start, end, product)
    o = daily_output.c
    stmt = (
        select(o.day, func.sum(o.completed))
        .where(o.day >= _day(start), o.day < _day(end))
        .group_by(o.day)
    )
    if product is not None:
        stmt = stmt.where(o.product == product)
    return {day: int(n) for day, n in session.execute(stmt).all() if n}


def rebuild_rollups(session: Session | Connection) -> None:
    """Recount the rollups from the source tables (PostgreSQL): after a bulk load done with
    the triggers disabled, or to repair. Lock the source tables against writes first if
    writers run."""
    t = transitions.c
    b = batches.c
    ratio = b.actual_quantity / b.planned_quantity
    for table in (batch_counts, daily_output, daily_stage_time):
        session.execute(table.delete())
    session.execute(
        batch_counts.insert().from_select(
            ["product", "status", "stage", "n"],
            select(b.product, b.status, b.stage, func.count()).group_by(
                b.product, b.status, b.stage
            ),
        )
    )
    day = db.utc_day(b.completed_at)
    session.execute(
        daily_output.insert().from_select(
            ["day", "product", "completed", "with_yield", "yield_sum", "yield_min", "yield_max"],
            select(
                day,
                b.product,
                func.count(),
                func.count(b.actual_quantity),
                func.coalesce(func.sum(ratio), 0),
                func.min(ratio),
                func.max(ratio),
            )
            .where(b.completed_at.is_not(None))
            .group_by(day, b.product),
        )
    )
    stage = case(
        (t.kind == literal_column("'stage'"), t.from_value), else_=literal_column("'packaging'")
    )
    at_day = db.utc_day(t.at)
    session.execute(
        daily_stage_time.insert().from_select(
            ["day", "product", "stage", "visits", "seconds"],
            select(
                at_day,
                b.product,
                stage,
                func.count(),
                func.sum(db.seconds_between(t.at, t.stage_entered_at)),
            )
            .select_from(transitions.join(batches, batches.c.id == t.batch_id))
            .where(t.stage_entered_at.is_not(None))
            .group_by(at_day, b.product, stage),
        )
    )


def _day(bound: datetime) -> date:
    """The UTC day a range bound (a UTC midnight) starts."""
    return utc(bound).date()  # type: ignore[union-attr]


# --- metrics from the source tables (SQLite; the reference the rollups are tested against) ---


def live_counts(session: Session, product: str | None) -> dict[tuple[str, str], int]:
    """Number of batches per (status, stage), now, counted in the table: one scan serves both
    breakdowns."""
    b = batches.c
    stmt = select(b.status, b.stage, func.count()).group_by(b.status, b.stage)
    if product is not None:
        stmt = stmt.where(b.product == product)
    return {(status, stage): int(n) for status, stage, n in session.execute(stmt).all()}


def live_yield_by_product(
    session: Session, start: datetime, end: datetime, product: str | None
) -> list[model.ProductYield]:
    """Per product, over batches completed in [start, end): count and mean/min/max yield."""
    b = batches.c
    ratio = b.actual_quantity / b.planned_quantity
    stmt = (
        select(b.product, func.count(), func.avg(ratio), func.min(ratio), func.max(ratio))
        .where(b.completed_at >= utc(start), b.completed_at < utc(end))
        .group_by(b.product)
        .order_by(b.product)
    )
    if product is not None:
        stmt = stmt.where(b.product == product)
    return [
        model.ProductYield(p, int(n), float(avg), float(lo), float(hi))
        for p, n, avg, lo, hi in session.execute(stmt).all()
    ]


def live_cycle_times(
    session: Session, start: datetime, end: datetime, product: str | None
) -> dict[str, tuple[int, float]]:
    """Per stage: (visits, mean seconds) from entering the stage to leaving it, over the
    visits that ended in [start, end). The row ending a visit (a stage change leaves its old
    stage, the release leaves packaging) carries when the visit began (`stage_entered_at`);
    time on QA hold within a stage counts toward that stage."""
    t = transitions.c
    # Inline literals: with bound parameters PostgreSQL cannot tell that the grouped CASE and
    # the selected one are the same expression.
    stage = case(
        (t.kind == literal_column("'stage'"), t.from_value), else_=literal_column("'packaging'")
    ).label("stage")
    stmt = (
        select(stage, func.count(), func.avg(db.seconds_between(t.at, t.stage_entered_at)))
        .where(t.at >= utc(start), t.at < utc(end), t.stage_entered_at.is_not(None))
        .group_by(stage)
    )
    stmt = _product_scope(stmt, t.batch_id, product)
    return {name: (int(n), float(avg)) for name, n, avg in session.execute(stmt).all()}


def live_completed_per_day(
    session: Session, start: datetime, end: datetime, product: str | None
) -> dict[date, int]:
    b = batches.c
    day = db.utc_day(b.completed_at).label("day")
    stmt = (
        select(day, func.count())
        .where(b.completed_at >= utc(start), b.completed_at < utc(end))
        .group_by(day)
    )
    if product is not None:
        stmt = stmt.where(b.product == product)
    out: dict[date, int] = {}
    for value, n in session.execute(stmt).all():
        key = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
        out[key] = int(n)
    return out
