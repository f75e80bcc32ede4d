"""Logistics' tables (schema `logistics`) and the queries on them; PostgreSQL and SQLite.

`packages` holds one row per package with a `version` every change bumps through a guarded
`UPDATE ... WHERE id = :id AND version = :seen` (`change`); scans lock their packages first
(`lock`, `SELECT ... FOR UPDATE` in id order, so two batches touching the same packages never
deadlock). `tracking_events` is the append-only scan record: each row keeps what the scan did
to its package when it was recorded (`status_from`, `status_to`, `out_of_order`), so a re-sent
scan (same `idempotency_key`, unique) is answered exactly as the first time. The package row
carries the facts the lists and stats read (`picked_up_at`, `delivered_at`, `last_scan_at`), so
the stats are aggregates over index ranges of one table, never a join over the scans.
Datetimes are UTC (SQLite keeps them naive: values are bound in UTC and read back through
`db.utc`). The export reads through a server-side cursor (`export`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from typing import cast as typed

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    cast,
    func,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.selectable import Select

from functions.logistics.model import Package, Scan
from shared import db, trigram
from shared.db import as_dict, utc
from shared.events import outbox_table

SCHEMA = "logistics"
metadata = db.metadata(SCHEMA)
TS = DateTime(timezone=True)
NOT_LATE = ("returned", "cancelled")  # never late: they are not expected anywhere any more
# the same as SQL literals: a partial index's predicate must appear as such in the query
_NOT_LATE_SQL = "status NOT IN ('returned', 'cancelled')"

packages = Table(
    "packages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tracking_number", String(40), nullable=False),
    Column("sender", String(200), nullable=False),
    Column("recipient", String(200), nullable=False),
    Column("origin_address", String(500), nullable=False),
    Column("origin_lat", Float, nullable=False),
    Column("origin_lon", Float, nullable=False),
    Column("origin_region", String(40), nullable=False),
    Column("destination_address", String(500), nullable=False),
    Column("destination_lat", Float, nullable=False),
    Column("destination_lon", Float, nullable=False),
    Column("destination_region", String(40), nullable=False),
    Column("service_level", String(20), nullable=False),
    Column("weight_kg", Float, nullable=False),
    Column("promised_by", TS, nullable=True),
    Column("status", String(20), nullable=False),
    Column("picked_up_at", TS, nullable=True),
    Column("delivered_at", TS, nullable=True),
    Column("last_scan_at", TS, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("version", Integer, nullable=False),
    CheckConstraint("weight_kg > 0", name="ck_packages_weight"),
    # the list is newest first (created_at desc, id desc), alone or under one filter
    Index("ux_packages_tracking_number", "tracking_number", unique=True),
    Index("ix_packages_created", "created_at", "id"),
    Index("ix_packages_status", "status", "created_at", "id"),
    Index("ix_packages_service_level", "service_level", "created_at", "id"),
    Index("ix_packages_origin_region", "origin_region", "created_at", "id"),
    Index("ix_packages_destination_region", "destination_region", "created_at", "id"),
    Index("ix_packages_promised", "promised_by"),
    # stats: deliveries in a time range (on-time rate, transit per lane and service level),
    # covering what those aggregates read, so they are index-only scans
    Index(
        "ix_packages_delivered",
        "delivered_at",
        postgresql_include=[
            "picked_up_at",
            "promised_by",
            "origin_region",
            "destination_region",
            "service_level",
        ],
    ),
    # stats: packages still on their way past their promise (the late ones), a small set;
    # with the status in it, counting them is an index-only scan
    Index(
        "ix_packages_open_promised",
        "promised_by",
        postgresql_include=["status"],
        postgresql_where=Column("delivered_at").is_(None),
        sqlite_where=Column("delivered_at").is_(None),
    ),
    # stats: counts by status, an index-only scan of a small deduplicated index (the wider
    # ix_packages_status serves the list)
    Index("ix_packages_status_count", "status"),
    # the late list (late=true), newest first: the two kinds of late package, each a page of
    # its own partial index, merged (search)
    Index(
        "ix_packages_late_delivered",
        "created_at",
        "id",
        postgresql_where=text(f"delivered_at > promised_by AND {_NOT_LATE_SQL}"),
        sqlite_where=text(f"delivered_at > promised_by AND {_NOT_LATE_SQL}"),
    ),
    Index(
        "ix_packages_open_created",
        "created_at",
        "id",
        postgresql_include=["promised_by"],
        postgresql_where=text(
            f"delivered_at IS NULL AND promised_by IS NOT NULL AND {_NOT_LATE_SQL}"
        ),
        sqlite_where=text(f"delivered_at IS NULL AND promised_by IS NOT NULL AND {_NOT_LATE_SQL}"),
    ),
)

# search: part of the recipient (`q`), a trigram index (PostgreSQL's pg_trgm; SQLite has none)
# with the trigrams in most recipients left out of its condition (shared/trigram.py)
RECIPIENT_TRGM = Index(
    "ix_packages_recipient_trgm",
    func.lower(packages.c.recipient).label("lower_recipient"),
    postgresql_using="gin",
    postgresql_ops={"lower_recipient": "gin_trgm_ops"},
)

tracking_events = Table(
    "tracking_events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("package_id", String(36), ForeignKey("logistics.packages.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("location", String(200), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("note", Text, nullable=True),
    Column("occurred_at", TS, nullable=False),  # the scanner's clock
    Column("recorded_at", TS, nullable=False),  # ours
    Column("idempotency_key", String(100), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("status_from", String(20), nullable=False),
    Column("status_to", String(20), nullable=True),  # null: the scan did not move the status
    Column("out_of_order", Boolean, nullable=False),
    Index("ux_tracking_events_key", "idempotency_key", unique=True),
    # the timeline of a package in time order
    Index("ix_tracking_events_package", "package_id", "occurred_at", "id"),
    # stats: exceptions per day
    Index("ix_tracking_events_kind", "kind", "occurred_at"),
)

outbox = outbox_table(metadata)


def _bind(values: dict[str, Any]) -> dict[str, Any]:
    """Datetimes in UTC before they are bound (SQLite stores the wall time, dropping offsets)."""
    return {k: utc(v) if isinstance(v, datetime) else v for k, v in values.items()}


# --- packages ------------------------------------------------------------------------------


def get(session: Session, package_id: str) -> Package | None:
    row = session.execute(select(packages).where(packages.c.id == package_id)).first()
    return Package.of(as_dict(row)) if row is not None else None


def lock(session: Session, *, ids: list[str], numbers: list[str]) -> list[Package]:
    """The packages with these ids or tracking numbers, locked for update in id order."""
    p = packages.c
    clauses = []
    if ids:
        clauses.append(p.id.in_(ids))
    if numbers:
        clauses.append(p.tracking_number.in_(numbers))
    if not clauses:
        return []
    stmt = select(packages).where(or_(*clauses)).order_by(p.id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return [Package.of(as_dict(r)) for r in session.execute(stmt).all()]


def number_taken(session: Session, number: str) -> bool:
    stmt = select(packages.c.id).where(packages.c.tracking_number == number).limit(1)
    return session.execute(stmt).first() is not None


def insert(session: Session, package: Package) -> None:
    values = {k: getattr(package, k) for k in Package.__dataclass_fields__}
    session.execute(packages.insert().values(**_bind(values)))


def change(
    session: Session, package_id: str, seen_version: int, *, bump: int = 1, **values: Any
) -> bool:
    """Apply `values` if the row still has `seen_version` (add `bump` to it); False when it
    changed meanwhile."""
    result = typed(
        CursorResult[Any],
        session.execute(
            update(packages)
            .where(packages.c.id == package_id, packages.c.version == seen_version)
            .values(**_bind(values), version=seen_version + bump)
        ),
    )
    return result.rowcount == 1


def change_many(session: Session, changes: list[dict[str, Any]]) -> bool:
    """Apply each change (`id`, `seen` version, new `version` and the same other columns in
    every one) if its row still has `seen`: on PostgreSQL one `UPDATE ... FROM
    json_to_recordset` (the rollup triggers fire once for the whole batch), elsewhere one
    guarded UPDATE per row. False when any row changed meanwhile."""
    if not changes:
        return True
    if session.get_bind().dialect.name != "postgresql":
        return all(
            change(
                session,
                c["id"],
                c["seen"],
                bump=c["version"] - c["seen"],
                **{k: v for k, v in c.items() if k not in ("id", "seen", "version")},
            )
            for c in changes
        )
    names = [k for k in changes[0] if k not in ("id", "seen")]
    record = _record_type(packages, ["id", *names]) + ", seen integer"
    sets = ", ".join(f"{n} = v.{n}" for n in names)
    stmt = text(
        f"UPDATE {packages.fullname} AS p SET {sets} "  # noqa: S608 - column names
        f"FROM json_to_recordset(CAST(:rows AS json)) AS v({record}) "
        "WHERE p.id = v.id AND p.version = v.seen"
    )
    payload = json.dumps([{k: _json_value(v) for k, v in c.items()} for c in changes])
    result = typed(CursorResult[Any], session.execute(stmt, {"rows": payload}))
    return int(result.rowcount) == len(changes)


def _filtered(
    conn: Session | Connection,
    stmt: Select[Any],
    *,
    q: str | None = None,
    statuses: list[str] | None = None,
    service_levels: list[str] | None = None,
    origin_region: str | None = None,
    destination_region: str | None = None,
    promised_after: datetime | None = None,
    promised_before: datetime | None = None,
    late: bool | None = None,
    now: datetime | None = None,
    recipient: trigram.Match | None = None,
) -> Select[Any]:
    """`stmt` with the filters; `recipient` is `_recipient(conn, q)` when the caller has it."""
    p = packages.c
    if q:
        found = recipient or _recipient(conn, q)
        stmt = stmt.where(or_(p.tracking_number == q.upper(), found.cond))
    if statuses:
        stmt = stmt.where(p.status.in_(statuses))
    if service_levels:
        stmt = stmt.where(p.service_level.in_(service_levels))
    if origin_region:
        stmt = stmt.where(p.origin_region == origin_region)
    if destination_region:
        stmt = stmt.where(p.destination_region == destination_region)
    if promised_after is not None:
        stmt = stmt.where(p.promised_by >= utc(promised_after))
    if promised_before is not None:
        stmt = stmt.where(p.promised_by < utc(promised_before))
    if late is not None:
        assert now is not None
        stmt = stmt.where(late_clause(now) if late else ~late_clause(now))
    return stmt


def late_clause(now: datetime) -> ColumnElement[bool]:
    """Late (model.is_late in SQL): delivered after the promise, or open past it."""
    p = packages.c
    return and_(
        p.promised_by.is_not(None),
        p.status.not_in(NOT_LATE),
        or_(
            and_(p.delivered_at.is_not(None), p.delivered_at > p.promised_by),
            and_(p.delivered_at.is_(None), p.promised_by < utc(now)),
        ),
    )


def _recipient(conn: Session | Connection, q: str) -> trigram.Match:
    return trigram.match(conn, func.lower(packages.c.recipient), q.lower(), index=RECIPIENT_TRGM)


def search(
    session: Session, *, after: tuple[datetime, str] | None, limit: int, **filters: Any
) -> list[Package]:
    """Packages matching the filters, newest first (created_at desc, id desc), after the keyset
    `after`; fetches `limit` rows (callers ask for one more than a page)."""
    p = packages.c
    q = filters.get("q")
    found = _recipient(session, q) if q else None
    filters["recipient"] = found  # one match for every statement below
    stmt = _filtered(session, select(packages), **filters)
    if after is not None:
        when, last_id = utc(after[0]), after[1]
        stmt = stmt.where(or_(p.created_at < when, and_(p.created_at == when, p.id < last_id)))
    if filters.get("late") is True and session.get_bind().dialect.name == "postgresql":
        return _late_page(session, after=after, limit=limit, **filters)
    # A promise window of a few weeks holds few packages, but they were created around it, deep
    # in the created_at order: the planner, assuming the two columns independent, walks
    # ix_packages_created from the newest and reads most of the table before it finds a page (5 s
    # at 1M). The window is read through ix_packages_promised first, then sorted; so is a rare
    # recipient through its trigram index.
    gather = session.get_bind().dialect.name == "postgresql" and (
        _narrow_promise(filters) or (found is not None and found.rare)
    )
    page = db.newest_first(stmt, [p.created_at, p.id], limit, gather=gather)
    return [Package.of(as_dict(r)) for r in session.execute(page).all()]


def _late_page(
    session: Session, *, after: tuple[datetime, str] | None, limit: int, **filters: Any
) -> list[Package]:
    """late=true on PostgreSQL: the keys (created_at, id) of a page of delivered-late packages
    (ix_packages_late_delivered) and of a page of open ones past their promise
    (ix_packages_open_created, the promise read from the index), newest first under the
    other filters, merged and cut to the page, then those packages' rows. Through the one
    late_clause the planner only had ix_packages_created to walk, reading every package
    (most are on time) until a page of late ones; and the open branch skips the newest open
    packages (not due yet) on index entries alone, without a heap fetch per skipped one."""
    p = packages.c
    now = filters.pop("now")
    filters.pop("late")
    branches: list[Any] = [
        text(f"delivered_at > promised_by AND {_NOT_LATE_SQL}"),
        and_(
            text(f"delivered_at IS NULL AND promised_by IS NOT NULL AND {_NOT_LATE_SQL}"),
            p.promised_by < utc(now),
        ),
    ]
    parts = []
    for branch in branches:
        stmt = _filtered(session, select(p.created_at, p.id), now=now, **filters).where(branch)
        if after is not None:
            when, last_id = utc(after[0]), after[1]
            stmt = stmt.where(or_(p.created_at < when, and_(p.created_at == when, p.id < last_id)))
        parts.append(stmt.order_by(p.created_at.desc(), p.id.desc()).limit(limit))
    keys = union_all(*parts).subquery("late")
    k = keys.c
    rows = session.execute(
        select(packages)
        .join(keys, p.id == k.id)
        .order_by(k.created_at.desc(), k.id.desc())
        .limit(limit)
    ).all()
    return [Package.of(as_dict(r)) for r in rows]


NARROW_PROMISE = timedelta(days=31)


def _narrow_promise(filters: dict[str, Any]) -> bool:
    low, high = filters.get("promised_after"), filters.get("promised_before")
    return low is not None and high is not None and high - low <= NARROW_PROMISE


EXPORT_BATCH = 2_000


_TIMESTAMPS = [c.name for c in packages.columns if isinstance(c.type, DateTime)]


def export(conn: Connection, **filters: Any) -> Iterator[Package]:
    """Every package matching the filters, newest first, read through a server-side cursor
    `EXPORT_BATCH` rows at a time: memory stays flat whatever the number of rows. On
    PostgreSQL timestamps are read as epoch seconds (pg8000 parses timestamptz text with
    strptime: that was most of the export's CPU) and turned back into UTC datetimes."""
    p = packages.c
    epoch = conn.dialect.name == "postgresql"
    cols = [
        cast_epoch(c).label(c.name) if epoch and c.name in _TIMESTAMPS else c
        for c in packages.columns
    ]
    stmt = _filtered(conn, select(*cols), **filters).order_by(p.created_at.desc(), p.id.desc())
    result = conn.execution_options(stream_results=True, yield_per=EXPORT_BATCH).execute(stmt)
    for row in result:
        values = dict(row._mapping)
        for name in _TIMESTAMPS:
            v = values[name]
            if v is None:
                continue
            values[name] = datetime.fromtimestamp(v, UTC) if epoch else utc(v)
        yield Package.of(values)


def cast_epoch(col: ColumnElement[Any]) -> ColumnElement[float]:
    """`col` (a timestamp) as seconds since the epoch, a double (exact to the microsecond)."""
    return cast(func.extract("epoch", col), Float)


# --- tracking events -----------------------------------------------------------------------


def scans_by_key(session: Session, keys: list[str]) -> dict[str, Scan]:
    if not keys:
        return {}
    t = tracking_events.c
    rows = session.execute(select(tracking_events).where(t.idempotency_key.in_(keys))).all()
    return {r.idempotency_key: Scan.of(as_dict(r)) for r in rows}


SCANS_PER_INSERT = 2_000  # 14 parameters a row: under pg8000's 32,767 per statement


class KeyRace(Exception):
    """An idempotency key this batch is storing was stored meanwhile by a concurrent writer
    (ON CONFLICT skipped it): the batch must be evaluated again."""


def insert_scans(session: Session, scans: list[Scan]) -> None:
    """On PostgreSQL one `INSERT ... SELECT FROM json_to_recordset ... ON CONFLICT
    (idempotency_key) DO NOTHING` for the whole batch (one parameter: pg8000's parameter
    handling and SQLAlchemy's multi-row VALUES compile were most of a batch's time); a key
    skipped there was stored by a concurrent writer after this batch read the known keys:
    `KeyRace`. Elsewhere one multi-row INSERT per 2,000 scans."""
    rows = [{k: getattr(s, k) for k in Scan.__dataclass_fields__} for s in scans]
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        stored = insert_rows(session, tracking_events, rows, conflict="idempotency_key")
        if stored != len(rows):
            raise KeyRace()
        return
    rows = [_bind(r) for r in rows]
    for i in range(0, len(rows), SCANS_PER_INSERT):
        session.execute(tracking_events.insert().values(rows[i : i + SCANS_PER_INSERT]))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()  # type: ignore[union-attr]
    return value


def _record_type(table: Table, names: list[str]) -> str:
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    return ", ".join(f"{n} {table.c[n].type.compile(dialect=dialect)}" for n in names)


def insert_rows(
    session: Session, table: Table, rows: list[dict[str, Any]], *, conflict: str | None = None
) -> int:
    """PostgreSQL: insert `rows` (all with the same keys) in one statement whose only
    parameter is the rows as JSON, read back by `json_to_recordset` with the table's column
    types (timestamps as ISO 8601 with their offset, floats as their shortest repr: both
    exact). With `conflict`, rows whose `conflict` column is taken are skipped. Returns the
    number of rows inserted."""
    names = list(rows[0])
    cols = ", ".join(names)
    on = f" ON CONFLICT ({conflict}) DO NOTHING" if conflict else ""
    stmt = text(
        f"INSERT INTO {table.fullname} ({cols}) SELECT {cols} "  # noqa: S608 - column names
        f"FROM json_to_recordset(CAST(:rows AS json)) AS r({_record_type(table, names)}){on}"
    )
    payload = json.dumps([{k: _json_value(v) for k, v in r.items()} for r in rows])
    result = typed(CursorResult[Any], session.execute(stmt, {"rows": payload}))
    return int(result.rowcount)


def timeline(
    session: Session, package_id: str, *, after: tuple[datetime, str] | None, limit: int
) -> list[Scan]:
    """Scans of a package in the order they happened (occurred_at, id), after `after`."""
    t = tracking_events.c
    stmt = select(tracking_events).where(t.package_id == package_id)
    if after is not None:
        when, last_id = utc(after[0]), after[1]
        stmt = stmt.where(or_(t.occurred_at > when, and_(t.occurred_at == when, t.id > last_id)))
    rows = session.execute(stmt.order_by(t.occurred_at, t.id).limit(limit)).all()
    return [Scan.of(as_dict(r)) for r in rows]


# Rollups of the stats' counts of now, kept on PostgreSQL by statement-level triggers on
# `packages` in the writing transaction (migration 0003, docs/decisions/0042), in 16 shards per
# key (a hash of the package id) so concurrent scans moving packages rarely wait on one row;
# empty on SQLite, where the stats count the table.
package_counts = Table(
    "package_counts",
    metadata,
    Column("status", String(20), primary_key=True),
    Column("shard", SmallInteger, primary_key=True),
    Column("n", BigInteger, nullable=False),
)
open_promised = Table(  # not delivered, promised, not returned/cancelled: per UTC hour promised
    "open_promised",
    metadata,
    Column("hour", TS, primary_key=True),
    Column("shard", SmallInteger, primary_key=True),
    Column("n", BigInteger, nullable=False),
)


# Rollups of the stats' range figures (migration 0005, docs/decisions/0047): per grain (a UTC
# day, or the month starting on `period`) and key, the delivered packages' counts and transit
# sums and extremes; a range reads its whole months from month rows, its end days from day
# rows. Kept by the same triggers on `packages`; exceptions per day by triggers on
# `tracking_events`. Empty on SQLite (the stats aggregate the tables there).
def _range_figures() -> list[Column[Any]]:
    return [
        Column("delivered", BigInteger, nullable=False),
        Column("promised", BigInteger, nullable=False),
        Column("on_time", BigInteger, nullable=False),
        Column("transit_n", BigInteger, nullable=False),
        Column("transit_sum", Numeric, nullable=False),
        Column("transit_min", Float, nullable=True),
        Column("transit_max", Float, nullable=True),
    ]


lane_deliveries = Table(
    "lane_deliveries",
    metadata,
    Column("grain", String(5), primary_key=True),  # day | month
    Column("period", Date, primary_key=True),
    Column("origin_region", String(40), primary_key=True),
    Column("destination_region", String(40), primary_key=True),
    *_range_figures(),
)
level_deliveries = Table(  # sharded like the counts: 4 levels, every delivery touches one
    "level_deliveries",
    metadata,
    Column("grain", String(5), primary_key=True),
    Column("period", Date, primary_key=True),
    Column("service_level", String(20), primary_key=True),
    Column("shard", SmallInteger, primary_key=True),
    *_range_figures(),
)
exception_days = Table(
    "exception_days",
    metadata,
    Column("day", Date, primary_key=True),
    Column("n", BigInteger, nullable=False),
)
ROLLUP_TABLES = (package_counts, open_promised, lane_deliveries, level_deliveries, exception_days)
_SHARD = "mod(abs(hashtext(p.id)), 16)"
# `{src}` yields package rows with a `sign` (+1 added, -1 removed).
_COUNTS = [
    f"""
INSERT INTO logistics.package_counts AS r (status, shard, n)
SELECT p.status, {_SHARD}, sum(p.sign) FROM ({{src}}) AS p
GROUP BY 1, 2 HAVING sum(p.sign) <> 0 ORDER BY 1, 2
ON CONFLICT (status, shard) DO UPDATE SET n = r.n + excluded.n
""",  # noqa: S608 - constants only
    f"""
INSERT INTO logistics.open_promised AS r (hour, shard, n)
SELECT date_trunc('hour', p.promised_by AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', {_SHARD},
       sum(p.sign)
FROM ({{src}}) AS p
WHERE p.delivered_at IS NULL AND p.promised_by IS NOT NULL
  AND p.status NOT IN ('returned', 'cancelled')
GROUP BY 1, 2 HAVING sum(p.sign) <> 0 ORDER BY 1, 2
ON CONFLICT (hour, shard) DO UPDATE SET n = r.n + excluded.n
""",  # noqa: S608 - constants only
]


_TRANSIT = "EXTRACT(EPOCH FROM (p.delivered_at - p.picked_up_at))"
_PERIOD_END = (
    "(k.period + CASE k.grain WHEN 'day' THEN interval '1 day' ELSE interval '1 month' END)"
)


def _facts(keys: list[str], exprs: list[str], *, removed: bool) -> str:
    """Delivered packages of `{src}` per grain (day, month), period, `keys`, and the facts
    the figures read, netted: a row that an UPDATE left as it was counts -1 and +1 and drops
    out; `removed` keeps only what left (net < 0, with a transit), else what changed."""
    having = f"sum(p.sign) < 0 AND {_TRANSIT} IS NOT NULL" if removed else "sum(p.sign) <> 0"
    cols = ", ".join(f"{e} AS {k}" for k, e in zip(keys, exprs, strict=True))
    group = ", ".join(str(i) for i in range(1, len(keys) + 6))
    return f"""
SELECT g.grain, CAST(date_trunc(g.grain, p.delivered_at AT TIME ZONE 'UTC') AS date) AS period,
       {cols}, p.promised_by IS NOT NULL AS promised, p.delivered_at <= p.promised_by AS on_time,
       {_TRANSIT} AS transit, sum(p.sign) AS net
FROM ({{src}}) AS p CROSS JOIN (VALUES ('day'), ('month')) AS g(grain)
WHERE p.delivered_at IS NOT NULL
GROUP BY {group} HAVING {having}"""  # noqa: S608 - constants only


def range_rollup(table: str, keys: list[str], key_exprs: list[str]) -> list[str]:
    """The upsert of `table` (sums, and the extremes of what was added) and the recount of
    the extremes of the groups that lost their minimum or maximum."""
    names = ", ".join(keys)
    pk = f"grain, period, {names}"
    upsert = f"""
INSERT INTO logistics.{table} AS r
  ({pk}, delivered, promised, on_time, transit_n, transit_sum, transit_min, transit_max)
SELECT {pk}, sum(d.net), coalesce(sum(d.net) FILTER (WHERE d.promised), 0),
       coalesce(sum(d.net) FILTER (WHERE d.on_time), 0),
       coalesce(sum(d.net) FILTER (WHERE d.transit IS NOT NULL), 0),
       coalesce(sum(d.net * d.transit), 0),
       min(d.transit) FILTER (WHERE d.net > 0), max(d.transit) FILTER (WHERE d.net > 0)
FROM ({_facts(keys, key_exprs, removed=False)}) AS d
GROUP BY {pk} ORDER BY {pk}
ON CONFLICT ({pk}) DO UPDATE SET
  delivered = r.delivered + excluded.delivered, promised = r.promised + excluded.promised,
  on_time = r.on_time + excluded.on_time, transit_n = r.transit_n + excluded.transit_n,
  transit_sum = r.transit_sum + excluded.transit_sum,
  transit_min = least(r.transit_min, excluded.transit_min),
  transit_max = greatest(r.transit_max, excluded.transit_max)
"""  # noqa: S608 - constants only
    match = " AND ".join(f"q.{k} = k.{k}" for k in keys if k != "shard")
    if "shard" in keys:
        match += " AND mod(abs(hashtext(q.id)), 16) = k.shard"
    extremes = f"""
UPDATE logistics.{table} AS r SET transit_min = m.lo, transit_max = m.hi
FROM (SELECT DISTINCT d.grain, d.period, {", ".join("d." + k for k in keys)}
      FROM ({_facts(keys, key_exprs, removed=True)}) AS d
      JOIN logistics.{table} AS c USING ({pk})
      WHERE d.transit <= c.transit_min OR d.transit >= c.transit_max) AS k
CROSS JOIN LATERAL (
  SELECT min({_TRANSIT.replace("p.", "q.")}) AS lo, max({_TRANSIT.replace("p.", "q.")}) AS hi
  FROM logistics.packages AS q
  WHERE q.delivered_at >= CAST(k.period AS timestamp) AT TIME ZONE 'UTC'
    AND q.delivered_at < {_PERIOD_END} AT TIME ZONE 'UTC'
    AND q.picked_up_at IS NOT NULL AND {match}) AS m
WHERE ({", ".join("r." + c for c in ["grain", "period", *keys])})
    = ({", ".join("k." + c for c in ["grain", "period", *keys])})
"""  # noqa: S608 - constants only
    return [upsert, extremes]


LANES = range_rollup(
    "lane_deliveries",
    ["origin_region", "destination_region"],
    ["p.origin_region", "p.destination_region"],
)
LEVELS = range_rollup("level_deliveries", ["service_level", "shard"], ["p.service_level", _SHARD])
# The triggers' statements on `packages` (the migrations hold frozen copies): the counts,
# then per range rollup its upsert and the recount of the extremes it lost.
ROLLUPS = [*_COUNTS, *LANES, *LEVELS]
UPSERTS = [*_COUNTS, LANES[0], LEVELS[0]]  # what a recount from scratch runs
# ... and on `tracking_events`: `{src}` yields scan rows with a `sign`.
SCAN_ROLLUPS = [
    """
INSERT INTO logistics.exception_days AS r (day, n)
SELECT CAST(e.occurred_at AT TIME ZONE 'UTC' AS date), sum(e.sign) FROM ({src}) AS e
WHERE e.kind = 'exception'
GROUP BY 1 HAVING sum(e.sign) <> 0 ORDER BY 1
ON CONFLICT (day) DO UPDATE SET n = r.n + excluded.n
"""
]


def _rolled_up(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def rebuild_rollups(session: Session) -> None:
    """Recount the rollups from `packages` and `tracking_events` (PostgreSQL): after a bulk
    load done with the triggers disabled, or to repair. Lock the tables against writes first
    if writers run."""
    for table in ROLLUP_TABLES:
        session.execute(table.delete())
    for stmt in UPSERTS:
        session.execute(text(stmt.format(src="SELECT *, 1 AS sign FROM logistics.packages")))
    for stmt in SCAN_ROLLUPS:
        session.execute(text(stmt.format(src="SELECT *, 1 AS sign FROM logistics.tracking_events")))


# --- stats ---------------------------------------------------------------------------------


def count_by_status(session: Session) -> dict[str, int]:
    if _rolled_up(session):
        c = package_counts.c
        rows = session.execute(select(c.status, func.sum(c.n)).group_by(c.status)).all()
        return {status: int(n) for status, n in rows if n}
    return live_count_by_status(session)


def live_count_by_status(session: Session) -> dict[str, int]:
    p = packages.c
    stmt = select(p.status, func.count()).group_by(p.status)
    return {status: int(n) for status, n in session.execute(stmt).all()}


def count_late_open(session: Session, now: datetime) -> int:
    """Packages still on their way past their promise: on PostgreSQL the rollup's hours before
    the current one, plus the current hour's packages promised before now (a one-hour range
    of ix_packages_open_promised)."""
    if not _rolled_up(session):
        return live_count_late_open(session, now)
    now = utc(now)  # type: ignore[assignment]
    hour = now.replace(minute=0, second=0, microsecond=0)
    c, p = open_promised.c, packages.c
    before = session.execute(
        select(func.coalesce(func.sum(c.n), 0)).where(c.hour < hour)
    ).scalar_one()
    current = session.execute(
        select(func.count()).where(
            p.delivered_at.is_(None),
            p.promised_by >= hour,
            p.promised_by < now,
            p.status.not_in(NOT_LATE),
        )
    ).scalar_one()
    return int(before) + int(current)


def live_count_late_open(session: Session, now: datetime) -> int:
    """Counted on ix_packages_open_promised."""
    p = packages.c
    stmt = select(func.count()).where(
        p.delivered_at.is_(None), p.promised_by < utc(now), p.status.not_in(NOT_LATE)
    )
    return int(session.execute(stmt).scalar() or 0)


def _whole_days(start: datetime, end: datetime) -> tuple[date, date] | None:
    """start..end as UTC days [first, last] when both are UTC midnights, else None."""
    start, end = utc(start), utc(end)  # type: ignore[assignment]
    if any(t.time() != datetime.min.time() for t in (start, end)):
        return None
    return start.date(), end.date() - timedelta(days=1)


def range_periods(first: date, last: date) -> list[tuple[str, date, date]]:
    """The rollup rows covering the UTC days first..last: (grain, from, until) with `period`
    in [from, until): the whole months inside, from their month rows, and the days before
    and after them from day rows."""
    end = last + timedelta(days=1)
    month_lo = first if first.day == 1 else _next_month(first)
    month_hi = end.replace(day=1)
    if month_lo >= month_hi:
        return [("day", first, end)]
    out = [("month", month_lo, month_hi)]
    if first < month_lo:
        out.append(("day", first, month_lo))
    if month_hi < end:
        out.append(("day", month_hi, end))
    return out


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _in_periods(table: Table, first: date, last: date) -> ColumnElement[bool]:
    c = table.c
    return or_(
        *(
            and_(c.grain == grain, c.period >= lo, c.period < hi)
            for grain, lo, hi in range_periods(first, last)
        )
    )


def deliveries(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Over packages delivered in [start, end): how many, how many had a promise, how many
    of those kept it. Whole UTC days on PostgreSQL: from the service-level rollup (64 rows a
    period, fewer than the lanes' 144 when the network is busy)."""
    days = _whole_days(start, end)
    if days is None or not _rolled_up(session):
        return live_deliveries(session, start, end)
    c = level_deliveries.c
    stmt = select(
        func.coalesce(func.sum(c.delivered), 0),
        func.coalesce(func.sum(c.promised), 0),
        func.coalesce(func.sum(c.on_time), 0),
    ).where(_in_periods(level_deliveries, *days))
    total, promised, on_time = session.execute(stmt).one()
    return {"delivered": int(total), "promised": int(promised), "on_time": int(on_time)}


def live_deliveries(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """deliveries() counted on the covering ix_packages_delivered."""
    p = packages.c
    stmt = select(
        func.count(),
        func.count().filter(p.promised_by.is_not(None)),
        func.count().filter(p.delivered_at <= p.promised_by),
    ).where(p.delivered_at >= utc(start), p.delivered_at < utc(end))
    total, promised, on_time = session.execute(stmt).one()
    return {"delivered": int(total), "promised": int(promised), "on_time": int(on_time)}


_TRANSIT_ROLLUPS = {
    ("origin_region", "destination_region"): lane_deliveries,
    ("service_level",): level_deliveries,
}


def transit_by(
    session: Session, start: datetime, end: datetime, *keys: str
) -> list[tuple[tuple[str, ...], int, float, float, float]]:
    """Per value of the `keys` columns, over packages delivered in [start, end) with a known
    pickup: (key values, packages, mean, min, max transit seconds), ordered by the keys.
    Whole UTC days on PostgreSQL: from the lane or the service-level rollup."""
    days = _whole_days(start, end)
    table = _TRANSIT_ROLLUPS.get(keys)
    if days is None or table is None or not _rolled_up(session):
        return live_transit_by(session, start, end, *keys)
    c = table.c
    cols = [c[k] for k in keys]
    n = func.sum(c.transit_n)
    stmt = (
        select(*cols, n, func.sum(c.transit_sum), func.min(c.transit_min), func.max(c.transit_max))
        .where(_in_periods(table, *days))
        .group_by(*cols)
        .having(n > 0)
        .order_by(*cols)
    )
    out = []
    for row in session.execute(stmt).all():
        values = tuple(row[: len(keys)])
        count, total, lo, hi = row[len(keys) :]
        out.append((values, int(count), float(total) / int(count), float(lo), float(hi)))
    return out


def live_transit_by(
    session: Session, start: datetime, end: datetime, *keys: str
) -> list[tuple[tuple[str, ...], int, float, float, float]]:
    """transit_by() aggregated on the covering ix_packages_delivered."""
    p = packages.c
    cols = [p[k] for k in keys]
    transit = db.seconds_between(p.delivered_at, p.picked_up_at)
    stmt = (
        select(*cols, func.count(), func.avg(transit), func.min(transit), func.max(transit))
        .where(p.delivered_at >= utc(start), p.delivered_at < utc(end), p.picked_up_at.is_not(None))
        .group_by(*cols)
        .order_by(*cols)
    )
    out = []
    for row in session.execute(stmt).all():
        values = tuple(row[: len(keys)])
        n, avg, lo, hi = row[len(keys) :]
        out.append((values, int(n), float(avg), float(lo), float(hi)))
    return out


def exceptions_per_day(session: Session, start: datetime, end: datetime) -> dict[date, int]:
    """Exception scans per UTC day of `occurred_at` in [start, end); whole UTC days on
    PostgreSQL from the exception_days rollup."""
    days = _whole_days(start, end)
    if days is None or not _rolled_up(session):
        return live_exceptions_per_day(session, start, end)
    c = exception_days.c
    stmt = select(c.day, c.n).where(c.day >= days[0], c.day <= days[1], c.n != 0)
    return {day: int(n) for day, n in session.execute(stmt).all()}


def live_exceptions_per_day(session: Session, start: datetime, end: datetime) -> dict[date, int]:
    """Counted on ix_tracking_events_kind."""
    t = tracking_events.c
    day = db.utc_day(t.occurred_at).label("day")
    stmt = (
        select(day, func.count())
        .where(t.kind == "exception", t.occurred_at >= utc(start), t.occurred_at < utc(end))
        .group_by(day)
    )
    out: dict[date, int] = {}
    for value, n in session.execute(stmt).all():
        key = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
        out[key] = int(n)
    return out
