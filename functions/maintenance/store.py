"""Maintenance's tables (schema `maintenance`) and the queries on them. PostgreSQL and SQLite.

Queries return the domain objects of `model`: rows go through `_values` (`shared.db.as_dict`,
timestamps back in UTC as SQLite keeps them naive, plus due dates as calendar dates and the
users copy's roles from JSON). Work-order numbers come from a one-row counter (`counters`), so
they are dense and human-friendly on both databases. Lists are keyset-paginated on a unique
sort key and take the decoded cursor tuple. The `users` table is the local copy of the users
context's users, fed by its events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    case,
    cast,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from functions.maintenance import model
from functions.maintenance.model import ACTIVE
from shared import db, trigram
from shared.db import as_dict, insert
from shared.events import outbox_table

SCHEMA = "maintenance"
metadata = db.metadata(SCHEMA)
TS = DateTime(timezone=True)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("name", String(200), nullable=False),
    Column("roles", Text, nullable=False),  # JSON list
    Column("active", Boolean, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("version", Integer, nullable=False),  # the users-context version applied
    Column("updated_at", TS, nullable=False),
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", Integer, nullable=False),
)

assets = Table(
    "assets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tag", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("category", String(100), nullable=True),
    Column("location", String(200), nullable=True),
    Column("parent_id", String(36), nullable=True),
    Column("status", String(20), nullable=False),
    Column("criticality", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("retired_at", TS, nullable=True),
    Index("ux_assets_tag", "tag", unique=True),
    Index("ix_assets_parent", "parent_id", "tag"),
    Index("ix_assets_status", "status", "tag"),
    Index("ix_assets_category", "category", "tag"),
    Index("ix_assets_location", "location", "tag"),
    Index("ix_assets_criticality", "criticality", "tag"),
)

work_orders = Table(
    "work_orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("number", Integer, nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("asset_id", String(36), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("due_date", Date, nullable=True),
    Column("assignee_id", String(36), nullable=True),
    Column("labour_notes", Text, nullable=True),
    Column("pm_schedule_id", String(36), nullable=True),
    Column("created_by", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("completed_at", TS, nullable=True),
    Column("closed_at", TS, nullable=True),
    Column("cancelled_at", TS, nullable=True),
    # When the order left the active set (completed or cancelled); NULL while work remains.
    Column("resolved_at", TS, nullable=True),
    Index("ux_work_orders_number", "number", unique=True),
    Index("ix_work_orders_status", "status", "number"),
    Index("ix_work_orders_status_priority", "status", "priority"),
    Index("ix_work_orders_priority", "priority", "number"),
    Index("ix_work_orders_asset", "asset_id", "number"),
    Index("ix_work_orders_assignee", "assignee_id", "number"),
    # INCLUDE: the stats read these indexes only (index-only scans on PostgreSQL)
    Index(
        "ix_work_orders_type_completed", "type", "completed_at", postgresql_include=["created_at"]
    ),
    Index("ix_work_orders_created", "created_at"),
    Index("ix_work_orders_completed", "completed_at"),
    Index("ix_work_orders_resolved", "resolved_at", postgresql_include=["due_date", "created_at"]),
    # the overdue list walks the active orders only (migration 0005)
    Index(
        "ix_work_orders_active_number",
        "number",
        postgresql_include=["due_date"],
        postgresql_where=Column("resolved_at").is_(None),
        sqlite_where=Column("resolved_at").is_(None),
    ),
    Index(
        "ix_work_orders_due_active",
        "due_date",
        postgresql_include=["created_at"],
        postgresql_where=Column("resolved_at").is_(None),
        sqlite_where=Column("resolved_at").is_(None),
    ),
)

work_order_log = Table(
    "work_order_log",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("work_order_id", String(36), nullable=False),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("reason", Text, nullable=True),
    Column("actor_id", String(64), nullable=False),
    Column("at", TS, nullable=False),
    Index("ix_work_order_log_order", "work_order_id", "at"),
)

parts = Table(
    "parts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("unit", String(20), nullable=False),
    Column("stock", Integer, nullable=False),
    Column("reorder_point", Integer, nullable=False),
    Column("location", String(200), nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    CheckConstraint("stock >= 0", name="ck_parts_stock_not_negative"),
    CheckConstraint("reorder_point >= 0", name="ck_parts_reorder_point_not_negative"),
    Index("ux_parts_sku", "sku", unique=True),
)

part_movements = Table(
    "part_movements",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("part_id", String(36), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("quantity", Integer, nullable=False),  # as entered
    Column("delta", Integer, nullable=False),  # signed effect on stock
    Column("stock_after", Integer, nullable=False),
    Column("note", Text, nullable=True),
    Column("work_order_id", String(36), nullable=True),
    Column("actor_id", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Index("ix_part_movements_part", "part_id", "created_at", "id"),
    Index("ix_part_movements_work_order", "work_order_id", "created_at"),
)

pm_schedules = Table(
    "pm_schedules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("asset_id", String(36), nullable=False),
    Column("interval_days", Integer, nullable=True),
    Column("cron", String(100), nullable=True),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("priority", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("next_due_at", TS, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("last_generated_at", TS, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_pm_schedules_due", "active", "next_due_at"),
    Index("ix_pm_schedules_next", "next_due_at", "id"),
    Index("ix_pm_schedules_asset", "asset_id"),
)

# One row per (schedule, due time) handled: the key that makes pm-tick create each order once.
pm_runs = Table(
    "pm_runs",
    metadata,
    Column("schedule_id", String(36), primary_key=True),
    Column("due_at", TS, primary_key=True),
    Column("work_order_id", String(36), nullable=False),
    Column("created_at", TS, nullable=False),
)

outbox = outbox_table(metadata)

# Referential integrity (created on PostgreSQL only: SQLite cannot reference another attached
# database) and the trigram index of `?q=` on titles (PostgreSQL with pg_trgm); the migration
# creates the same, tests/integration/test_schema_drift.py keeps the two equal.
for _name, _table, _column, _target in (
    ("fk_assets_parent", assets, "parent_id", assets),
    ("fk_work_orders_asset", work_orders, "asset_id", assets),
    ("fk_work_order_log_order", work_order_log, "work_order_id", work_orders),
    ("fk_part_movements_part", part_movements, "part_id", parts),
    ("fk_part_movements_order", part_movements, "work_order_id", work_orders),
    ("fk_pm_schedules_asset", pm_schedules, "asset_id", assets),
    ("fk_pm_runs_schedule", pm_runs, "schedule_id", pm_schedules),
):
    _table.append_constraint(ForeignKeyConstraint([_column], [_target.c.id], name=_name))
TITLE_TRGM = Index(
    "ix_work_orders_title_trgm",
    func.lower(work_orders.c.title).label("lower_title"),
    postgresql_using="gin",
    postgresql_ops={"lower_title": "gin_trgm_ops"},
)

# Rollups of what the stats aggregate, kept on PostgreSQL by statement-level triggers in the
# writing transaction (migration 0002, docs/decisions/0042); empty on SQLite, where the stats
# aggregate the orders.
order_counts = Table(
    "work_order_counts",
    metadata,
    Column("status", String(20), primary_key=True),
    Column("priority", String(20), primary_key=True),
    Column("n", BigInteger, nullable=False),
)
active_due = Table(  # orders not resolved, per due date
    "active_due",
    metadata,
    Column("due_date", Date, primary_key=True),
    Column("n", BigInteger, nullable=False),
)
repair_totals = Table(  # completed orders per type, hours from creation to completion
    "repair_totals",
    metadata,
    Column("type", String(20), primary_key=True),
    Column("n", BigInteger, nullable=False),
    Column("hours", Float, nullable=False),
)
daily_orders = Table(  # per UTC day: orders created, orders completed
    "daily_orders",
    metadata,
    Column("day", Date, primary_key=True),
    Column("created", BigInteger, nullable=False),
    Column("completed", BigInteger, nullable=False),
)
overdue_changes = Table(  # change of the overdue count at the end of each day
    "overdue_changes",
    metadata,
    Column("day", Date, primary_key=True),
    Column("delta", BigInteger, nullable=False),
)
ROLLUP_TABLES = (order_counts, active_due, repair_totals, daily_orders, overdue_changes)

# The triggers' statements (the migration holds a frozen copy): `{src}` yields work-order
# rows with a `sign` (+1 added, -1 removed); each applies the grouped sums.
_DAY = "((w.{col} AT TIME ZONE 'UTC')::date)"
_START = f"greatest(w.due_date + 1, {_DAY.format(col='created_at')})"
_RESOLVED = _DAY.format(col="resolved_at")
ROLLUPS = [
    """
INSERT INTO maintenance.work_order_counts AS r (status, priority, n)
SELECT w.status, w.priority, sum(w.sign) FROM ({src}) AS w
GROUP BY 1, 2 HAVING sum(w.sign) <> 0 ORDER BY 1, 2
ON CONFLICT (status, priority) DO UPDATE SET n = r.n + excluded.n
""",
    """
INSERT INTO maintenance.active_due AS r (due_date, n)
SELECT w.due_date, sum(w.sign) FROM ({src}) AS w
WHERE w.resolved_at IS NULL AND w.due_date IS NOT NULL
GROUP BY 1 HAVING sum(w.sign) <> 0 ORDER BY 1
ON CONFLICT (due_date) DO UPDATE SET n = r.n + excluded.n
""",
    """
INSERT INTO maintenance.repair_totals AS r (type, n, hours)
SELECT w.type, sum(w.sign),
       sum(w.sign * EXTRACT(EPOCH FROM (w.completed_at - w.created_at)) / 3600.0)
FROM ({src}) AS w WHERE w.completed_at IS NOT NULL
GROUP BY 1 HAVING sum(w.sign) <> 0
    OR sum(w.sign * EXTRACT(EPOCH FROM (w.completed_at - w.created_at))) <> 0
ORDER BY 1
ON CONFLICT (type) DO UPDATE SET n = r.n + excluded.n, hours = r.hours + excluded.hours
""",
    f"""
INSERT INTO maintenance.daily_orders AS r (day, created, completed)
SELECT day, sum(c), sum(d) FROM (
    SELECT {_DAY.format(col="created_at")} AS day, w.sign AS c, 0 AS d FROM ({{src}}) AS w
    UNION ALL
    SELECT {_DAY.format(col="completed_at")}, 0, w.sign FROM ({{src}}) AS w
    WHERE w.completed_at IS NOT NULL
) AS x
GROUP BY 1 HAVING sum(c) <> 0 OR sum(d) <> 0 ORDER BY 1
ON CONFLICT (day) DO UPDATE SET
    created = r.created + excluded.created, completed = r.completed + excluded.completed
""",  # noqa: S608 - constants only
    f"""
INSERT INTO maintenance.overdue_changes AS r (day, delta)
SELECT day, sum(delta) FROM (
    SELECT {_START} AS day, w.sign AS delta FROM ({{src}}) AS w
    WHERE w.due_date IS NOT NULL AND (w.resolved_at IS NULL OR {_RESOLVED} > {_START})
    UNION ALL
    SELECT {_RESOLVED}, -w.sign FROM ({{src}}) AS w
    WHERE w.due_date IS NOT NULL AND w.resolved_at IS NOT NULL AND {_RESOLVED} > {_START}
) AS x
GROUP BY 1 HAVING sum(delta) <> 0 ORDER BY 1
ON CONFLICT (day) DO UPDATE SET delta = r.delta + excluded.delta
""",  # noqa: S608 - constants only
]

WORK_ORDER_COUNTER = "work_orders"


# --- helpers -----------------------------------------------------------------------------------


def _day(value: Any) -> date | None:
    """A calendar date, whatever the dialect hands back for a DATE column."""
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value)[:10])


def _values(row: Row[Any]) -> dict[str, Any]:
    """A row's values (`shared.db.as_dict`: timestamps in UTC) plus maintenance's own
    conversions: `due_date` as a calendar date, `roles` from its JSON text."""
    out = as_dict(row)
    if "due_date" in out:
        out["due_date"] = _day(out["due_date"])
    if isinstance(out.get("roles"), str):
        out["roles"] = tuple(json.loads(out["roles"]))
    return out


def _columns(table: Table, obj: Any, **extra: Any) -> dict[str, Any]:
    """The values of `table`'s columns taken from a domain object (and `extra`)."""
    values = {**asdict(obj), **extra}
    return {c.name: values[c.name] for c in table.columns if c.name in values}


def _by_id(
    session: Session, table: Table, row_id: str, *, lock: bool = False, skip_locked: bool = False
) -> Row[Any] | None:
    """One row of `table` by its id; with `lock`, locked (FOR UPDATE) until commit."""
    stmt = select(table).where(table.c.id == row_id)
    if lock:
        stmt = stmt.with_for_update(skip_locked=skip_locked)
    return session.execute(stmt).first()


def _taken(session: Session, column: Any, value: str, other_than: str | None) -> bool:
    """Whether another row (not `other_than`) holds `value` in `column`, case-insensitively."""
    stmt = select(column.table.c.id).where(func.lower(column) == value.lower())
    if other_than is not None:
        stmt = stmt.where(column.table.c.id != other_than)
    return session.execute(stmt.limit(1)).first() is not None


def _contains(column: Any, needle: str) -> ColumnElement[bool]:
    return func.lower(column).contains(needle.lower(), autoescape=True)


def _in_or_eq(column: Any, values: Sequence[str] | None) -> ColumnElement[bool] | None:
    if not values:
        return None
    return column == values[0] if len(values) == 1 else column.in_(list(values))


# --- users copy --------------------------------------------------------------------------------


def upsert_user(
    session: Session,
    *,
    id: str,
    email: str,
    name: str,
    roles: list[str],
    active: bool,
    deleted: bool,
    version: int,
    now: datetime,
) -> bool:
    """Store these facts unless a newer version is held (equal: re-applied, idempotent).
    Returns whether the row was written."""
    values = {
        "id": id,
        "email": email,
        "name": name,
        "roles": json.dumps(sorted(roles)),
        "active": active,
        "deleted": deleted,
        "version": version,
        "updated_at": now,
    }
    stmt = insert(session, users).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[users.c.id],
        set_={k: stmt.excluded[k] for k in values if k != "id"},
        where=users.c.version <= stmt.excluded.version,
    ).returning(users.c.id)
    return session.execute(stmt).first() is not None


def user(session: Session, user_id: str) -> model.User | None:
    row = _by_id(session, users, user_id)
    return model.User(**_values(row)) if row is not None else None


# --- assets ------------------------------------------------------------------------------------


def asset(session: Session, asset_id: str, *, lock: bool = False) -> model.Asset | None:
    row = _by_id(session, assets, asset_id, lock=lock)
    return model.Asset(**_values(row)) if row is not None else None


def tag_taken(session: Session, tag: str, *, other_than: str | None = None) -> bool:
    return _taken(session, assets.c.tag, tag, other_than)


def insert_asset(session: Session, asset: model.Asset) -> None:
    session.execute(assets.insert().values(**_columns(assets, asset)))


def change_asset(session: Session, asset_id: str, **values: Any) -> None:
    session.execute(update(assets).where(assets.c.id == asset_id).values(**values))


_HIERARCHY_LOCK = 0x6D61696E  # any constant shared by every hierarchy change


def lock_hierarchy(session: Session) -> None:
    """Serialise re-parenting until commit, so two concurrent moves cannot each pass the cycle
    check and together make a cycle. (SQLite serialises every writer anyway.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_HIERARCHY_LOCK)))


def ancestors(session: Session, asset_id: str, limit: int) -> list[str]:
    """Ids above `asset_id` (parent first), at most `limit` (+1 to detect overflow)."""
    chain: list[str] = []
    current = asset_id
    for _ in range(limit + 1):
        parent = session.execute(select(assets.c.parent_id).where(assets.c.id == current)).scalar()
        if parent is None or parent in chain:
            break
        chain.append(parent)
        current = parent
    return chain


def active_work_orders_of(session: Session, asset_id: str) -> int:
    return session.execute(
        select(func.count())
        .select_from(work_orders)
        .where(work_orders.c.asset_id == asset_id, work_orders.c.status.in_(sorted(ACTIVE)))
    ).scalar_one()


def live_children_of(session: Session, asset_id: str) -> int:
    return session.execute(
        select(func.count())
        .select_from(assets)
        .where(assets.c.parent_id == asset_id, assets.c.retired_at.is_(None))
    ).scalar_one()


def search_assets(
    session: Session,
    *,
    statuses: Sequence[str] | None,
    category: str | None,
    location: str | None,
    parent_id: str | None,
    roots: bool,
    criticality: Sequence[str] | None,
    q: str | None,
    after: tuple[str] | None,
    limit: int,
) -> list[model.Asset]:
    """Assets in tag order after the keyset `after`. Retired assets only when asked for by
    `statuses`."""
    stmt = select(assets)
    cond = _in_or_eq(assets.c.status, statuses)
    stmt = stmt.where(cond if cond is not None else assets.c.status != "retired")
    if category:
        stmt = stmt.where(assets.c.category == category)
    if location:
        stmt = stmt.where(assets.c.location == location)
    if roots:
        stmt = stmt.where(assets.c.parent_id.is_(None))
    elif parent_id:
        stmt = stmt.where(assets.c.parent_id == parent_id)
    crit = _in_or_eq(assets.c.criticality, criticality)
    if crit is not None:
        stmt = stmt.where(crit)
    if q:
        stmt = stmt.where(or_(_contains(assets.c.tag, q), _contains(assets.c.name, q)))
    if after is not None:
        stmt = stmt.where(assets.c.tag > after[0])
    rows = session.execute(stmt.order_by(assets.c.tag).limit(limit)).all()
    return [model.Asset(**_values(r)) for r in rows]


# --- work orders -------------------------------------------------------------------------------


def next_number(session: Session) -> int:
    """The next work-order number (the counter row is locked until commit)."""
    value = session.execute(
        update(counters)
        .where(counters.c.name == WORK_ORDER_COUNTER)
        .values(value=counters.c.value + 1)
        .returning(counters.c.value)
    ).scalar()
    if value is None:  # first order ever (the migration seeds the row; be safe anyway)
        session.execute(
            insert(session, counters)
            .values(name=WORK_ORDER_COUNTER, value=0)
            .on_conflict_do_nothing(index_elements=[counters.c.name])
        )
        return next_number(session)
    return int(value)


_assignee = users.alias("assignee")


def _with_names(page: Any) -> Any:
    """A page of work-order rows joined to its asset's tag/name and its assignee's name.
    The page (filter, order, limit) is cut first, so the joins touch at most `limit` rows."""
    return select(
        page,
        assets.c.tag.label("asset_tag"),
        assets.c.name.label("asset_name"),
        _assignee.c.name.label("assignee_name"),
    ).select_from(
        page.outerjoin(assets, assets.c.id == page.c.asset_id).outerjoin(
            _assignee, _assignee.c.id == page.c.assignee_id
        )
    )


def work_order(session: Session, wo_id: str, *, lock: bool = False) -> model.WorkOrder | None:
    if lock:  # lock the order's row only (not the joined asset and user rows)
        session.execute(
            select(work_orders.c.id).where(work_orders.c.id == wo_id).with_for_update()
        ).first()
    one = select(work_orders).where(work_orders.c.id == wo_id).subquery("wo")
    row = session.execute(_with_names(one)).first()
    return model.WorkOrder(**_values(row)) if row is not None else None


def insert_work_order(session: Session, new: model.NewWorkOrder, **values: Any) -> None:
    """A new order from `new` and the fields the service sets (id, number, status, ...)."""
    session.execute(work_orders.insert().values(**_columns(work_orders, new, **values)))


def change_work_order(session: Session, wo_id: str, **values: Any) -> None:
    session.execute(update(work_orders).where(work_orders.c.id == wo_id).values(**values))


def log_transition(session: Session, **values: Any) -> None:
    session.execute(work_order_log.insert().values(**values))


def transitions_of(session: Session, wo_id: str) -> list[model.Transition]:
    rows = session.execute(
        select(work_order_log)
        .where(work_order_log.c.work_order_id == wo_id)
        .order_by(work_order_log.c.at, work_order_log.c.id)
    ).all()
    return [model.Transition(**_values(r)) for r in rows]


def overdue_condition(today: date) -> ColumnElement[bool]:
    return and_(work_orders.c.resolved_at.is_(None), work_orders.c.due_date < today)


def search_work_orders(
    session: Session,
    *,
    statuses: Sequence[str] | None,
    priorities: Sequence[str] | None,
    types: Sequence[str] | None,
    asset_id: str | None,
    assignee_id: str | None,
    overdue: bool | None,
    q: str | None,
    today: date,
    after: tuple[int] | None,
    limit: int,
) -> list[model.WorkOrder]:
    """Work orders newest first (number descending) after the keyset `after`."""
    wo = work_orders
    stmt = select(wo)
    for cond in (
        _in_or_eq(wo.c.status, statuses),
        _in_or_eq(wo.c.priority, priorities),
        _in_or_eq(wo.c.type, types),
    ):
        if cond is not None:
            stmt = stmt.where(cond)
    if asset_id:
        stmt = stmt.where(wo.c.asset_id == asset_id)
    if assignee_id:
        stmt = stmt.where(wo.c.assignee_id == assignee_id)
    if overdue is True:
        stmt = stmt.where(overdue_condition(today))
    elif overdue is False:
        stmt = stmt.where(
            or_(wo.c.resolved_at.is_not(None), wo.c.due_date.is_(None), wo.c.due_date >= today)
        )
    found = None
    if q:
        needle = q.strip().upper().removeprefix("WO-")
        found = trigram.match(session, func.lower(wo.c.title), q.lower(), index=TITLE_TRGM)
        cond = found.cond
        if needle.isdigit() and len(needle) < 10:
            cond = or_(cond, wo.c.number == int(needle))
        stmt = stmt.where(cond)
    if after is not None:
        stmt = stmt.where(wo.c.number < after[0])
    gather = found is not None and found.rare
    page = db.newest_first(stmt, [wo.c.number], limit, gather=gather).subquery("page")
    rows = session.execute(_with_names(page).order_by(page.c.number.desc())).all()
    return [model.WorkOrder(**_values(r)).as_of(today) for r in rows]


# --- parts -------------------------------------------------------------------------------------


def part(session: Session, part_id: str, *, lock: bool = False) -> model.Part | None:
    row = _by_id(session, parts, part_id, lock=lock)
    return model.Part(**_values(row)) if row is not None else None


def sku_taken(session: Session, sku: str, *, other_than: str | None = None) -> bool:
    return _taken(session, parts.c.sku, sku, other_than)


def insert_part(session: Session, part: model.Part) -> None:
    session.execute(parts.insert().values(**_columns(parts, part)))


def change_part(session: Session, part_id: str, **values: Any) -> None:
    session.execute(update(parts).where(parts.c.id == part_id).values(**values))


def move_stock(session: Session, part_id: str, delta: int, now: datetime) -> model.Part | None:
    """Apply `delta` to the stock atomically, only if it stays >= 0; the part after the
    change, or None when the stock does not allow it (or the part does not exist).

    One conditional UPDATE: concurrent movements serialise on the row, and each re-checks
    the condition against the committed stock, so stock never goes negative."""
    row = session.execute(
        update(parts)
        .where(parts.c.id == part_id, parts.c.stock + delta >= 0)
        .values(stock=parts.c.stock + delta, version=parts.c.version + 1, updated_at=now)
        .returning(*parts.c)
    ).first()
    return model.Part(**_values(row)) if row is not None else None


def insert_movement(session: Session, movement: model.Movement) -> None:
    session.execute(part_movements.insert().values(**_columns(part_movements, movement)))


def movements(
    session: Session,
    *,
    part_id: str | None = None,
    work_order_id: str | None = None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[model.Movement]:
    """Movements newest first, of one part or one work order."""
    m = part_movements
    stmt = select(m, parts.c.sku.label("sku"), parts.c.name.label("part_name")).select_from(
        m.outerjoin(parts, parts.c.id == m.c.part_id)
    )
    if part_id is not None:
        stmt = stmt.where(m.c.part_id == part_id)
    if work_order_id is not None:
        stmt = stmt.where(m.c.work_order_id == work_order_id)
    if after is not None:
        at, last_id = after
        stmt = stmt.where(or_(m.c.created_at < at, and_(m.c.created_at == at, m.c.id < last_id)))
    rows = session.execute(stmt.order_by(m.c.created_at.desc(), m.c.id.desc()).limit(limit)).all()
    return [model.Movement(**_values(r)) for r in rows]


def search_parts(
    session: Session,
    *,
    low_stock: bool | None,
    q: str | None,
    location: str | None,
    after: tuple[str] | None,
    limit: int,
) -> list[model.Part]:
    stmt = select(parts)
    if low_stock is True:
        stmt = stmt.where(parts.c.stock <= parts.c.reorder_point)
    elif low_stock is False:
        stmt = stmt.where(parts.c.stock > parts.c.reorder_point)
    if q:
        stmt = stmt.where(or_(_contains(parts.c.sku, q), _contains(parts.c.name, q)))
    if location:
        stmt = stmt.where(parts.c.location == location)
    if after is not None:
        stmt = stmt.where(parts.c.sku > after[0])
    rows = session.execute(stmt.order_by(parts.c.sku).limit(limit)).all()
    return [model.Part(**_values(r)) for r in rows]


# --- PM schedules ------------------------------------------------------------------------------


def schedule(
    session: Session, schedule_id: str, *, lock: bool = False, skip_locked: bool = False
) -> model.Schedule | None:
    row = _by_id(session, pm_schedules, schedule_id, lock=lock, skip_locked=skip_locked)
    return model.Schedule(**_values(row)) if row is not None else None


def insert_schedule(session: Session, schedule: model.Schedule) -> None:
    session.execute(pm_schedules.insert().values(**_columns(pm_schedules, schedule)))


def change_schedule(session: Session, schedule_id: str, **values: Any) -> None:
    session.execute(update(pm_schedules).where(pm_schedules.c.id == schedule_id).values(**values))


def due_schedule_ids(session: Session, now: datetime, limit: int) -> list[str]:
    rows = session.execute(
        select(pm_schedules.c.id)
        .where(pm_schedules.c.active.is_(True), pm_schedules.c.next_due_at <= now)
        .order_by(pm_schedules.c.next_due_at, pm_schedules.c.id)
        .limit(limit)
    ).all()
    return [r.id for r in rows]


def claim_run(
    session: Session, schedule_id: str, due_at: datetime, work_order_id: str, now: datetime
) -> bool:
    """Record that (schedule, due time) is handled; False when it already was."""
    stmt = (
        insert(session, pm_runs)
        .values(schedule_id=schedule_id, due_at=due_at, work_order_id=work_order_id, created_at=now)
        .on_conflict_do_nothing(index_elements=[pm_runs.c.schedule_id, pm_runs.c.due_at])
        .returning(pm_runs.c.schedule_id)
    )
    return session.execute(stmt).first() is not None


def search_schedules(
    session: Session,
    *,
    asset_id: str | None,
    active: bool | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[model.Schedule]:
    s = pm_schedules
    stmt = select(s)
    if asset_id:
        stmt = stmt.where(s.c.asset_id == asset_id)
    if active is not None:
        stmt = stmt.where(s.c.active.is_(active))
    if after is not None:
        at, last_id = after
        stmt = stmt.where(or_(s.c.next_due_at > at, and_(s.c.next_due_at == at, s.c.id > last_id)))
    rows = session.execute(stmt.order_by(s.c.next_due_at, s.c.id).limit(limit)).all()
    return [model.Schedule(**_values(r)) for r in rows]


# --- stats -------------------------------------------------------------------------------------


def _hours_between(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0


def count_by(session: Session, column: Any, *where: ColumnElement[bool]) -> dict[str, int]:
    stmt = select(column, func.count()).group_by(column)
    for cond in where:
        stmt = stmt.where(cond)
    return {str(k): int(n) for k, n in session.execute(stmt).all()}


def live_work_order_counts(session: Session) -> list[tuple[str, str, int]]:
    """(status, priority, count) counted in the table."""
    wo = work_orders
    rows = session.execute(
        select(wo.c.status, wo.c.priority, func.count()).group_by(wo.c.status, wo.c.priority)
    ).all()
    return [(str(s), str(p), int(n)) for s, p, n in rows]


def live_overdue_count(session: Session, today: date) -> int:
    """Counted on the partial index of active orders by due date."""
    return session.execute(
        select(func.count()).select_from(work_orders).where(overdue_condition(today))
    ).scalar_one()


def live_mean_time_to_repair(session: Session) -> tuple[float | None, int]:
    """Mean hours from creation to completion of completed corrective orders, and how many
    (from the (type, completed_at) index, which carries created_at)."""
    wo = work_orders
    hours = _hours_between(session, wo.c.created_at, wo.c.completed_at)
    mean, n = session.execute(
        select(func.avg(cast(hours, Float)), func.count()).where(
            wo.c.type == "corrective", wo.c.completed_at.is_not(None)
        )
    ).one()
    return (round(float(mean), 2) if mean is not None else None), int(n)


def _per_day(
    session: Session, bounds: list[datetime], measure: Any, *where: ColumnElement[bool]
) -> list[int]:
    cols = [
        func.coalesce(func.sum(case((and_(measure >= lo, measure < hi), 1), else_=0)), 0)
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    stmt = select(*cols).select_from(work_orders).where(*where)
    return [int(v) for v in session.execute(stmt).one()]


def _overdue_per_day(
    session: Session,
    first_day: date,
    ends: list[datetime],
    *where: ColumnElement[bool],
    resolved: bool,
) -> list[int]:
    wo = work_orders
    cols = []
    for i, end in enumerate(ends):
        cond = and_(wo.c.due_date < first_day + timedelta(days=i), wo.c.created_at < end)
        if resolved:
            cond = and_(cond, wo.c.resolved_at >= end)
        cols.append(func.coalesce(func.sum(case((cond, 1), else_=0)), 0))
    return [int(v) for v in session.execute(select(*cols).select_from(wo).where(*where)).one()]


def live_daily_trend(session: Session, first_day: date, days: int) -> list[model.TrendDay]:
    """Per day: orders created, orders completed, and orders overdue at the end of the day
    (due before that day, created by its end, not completed or cancelled by its end).

    Conditional sums, each over an index range that carries the columns it needs: created_at,
    completed_at, active orders by due date (+created_at), orders resolved in the window
    (+due_date, created_at). Overdue = still active now + resolved after that day's end."""
    wo = work_orders
    starts = [
        datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC) + timedelta(days=i)
        for i in range(days + 1)
    ]
    window, ends = starts[0], starts[1:]
    last_day = first_day + timedelta(days=days - 1)
    created = _per_day(session, starts, wo.c.created_at, wo.c.created_at >= window)
    completed = _per_day(session, starts, wo.c.completed_at, wo.c.completed_at >= window)
    active = _overdue_per_day(
        session,
        first_day,
        ends,
        wo.c.resolved_at.is_(None),
        wo.c.due_date < last_day,
        resolved=False,
    )
    resolved = _overdue_per_day(
        session,
        first_day,
        ends,
        wo.c.resolved_at >= window,
        wo.c.due_date < last_day,
        resolved=True,
    )
    return [
        model.TrendDay(
            date=first_day + timedelta(days=i),
            created=created[i],
            completed=completed[i],
            overdue=active[i] + resolved[i],
        )
        for i in range(days)
    ]


# --- stats from the rollups (PostgreSQL) --------------------------------------------------------


def _rolled_up(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def work_order_counts(session: Session) -> list[tuple[str, str, int]]:
    """(status, priority, count) of every order now."""
    if not _rolled_up(session):
        return live_work_order_counts(session)
    c = order_counts.c
    rows = session.execute(select(c.status, c.priority, c.n).where(c.n != 0)).all()
    return [(str(st), str(p), int(n)) for st, p, n in rows]


def overdue_count(session: Session, today: date) -> int:
    """Orders not resolved whose due date is before `today`."""
    if not _rolled_up(session):
        return live_overdue_count(session, today)
    c = active_due.c
    return int(
        session.execute(
            select(func.coalesce(func.sum(c.n), 0)).where(c.due_date < today)
        ).scalar_one()
    )


def mean_time_to_repair(session: Session) -> tuple[float | None, int]:
    """Mean hours from creation to completion of completed corrective orders, and how many."""
    if not _rolled_up(session):
        return live_mean_time_to_repair(session)
    c = repair_totals.c
    row = session.execute(select(c.n, c.hours).where(c.type == "corrective")).first()
    if row is None or not row.n:
        return None, 0
    return round(float(row.hours) / int(row.n), 2), int(row.n)


def daily_trend(session: Session, first_day: date, days: int) -> list[model.TrendDay]:
    """Per day: orders created, orders completed, and orders overdue at the end of the day
    (due before that day, created by its end, not completed or cancelled by its end): the
    day's row of `daily_orders`, and the sum of `overdue_changes` up to the day."""
    if not _rolled_up(session):
        return live_daily_trend(session, first_day, days)
    last_day = first_day + timedelta(days=days - 1)
    d = daily_orders.c
    per_day = {
        day: (int(c), int(k))
        for day, c, k in session.execute(
            select(d.day, d.created, d.completed).where(d.day >= first_day, d.day <= last_day)
        ).all()
    }
    o = overdue_changes.c
    before = session.execute(
        select(func.coalesce(func.sum(o.delta), 0)).where(o.day < first_day)
    ).scalar_one()
    changes = dict(
        session.execute(select(o.day, o.delta).where(o.day >= first_day, o.day <= last_day)).all()
    )
    out, overdue = [], int(before)
    for i in range(days):
        day = first_day + timedelta(days=i)
        overdue += int(changes.get(day, 0))
        created, completed = per_day.get(day, (0, 0))
        out.append(model.TrendDay(date=day, created=created, completed=completed, overdue=overdue))
    return out


def rebuild_rollups(session: Session) -> None:
    """Recount the rollups from `work_orders` (PostgreSQL): after a bulk load done with the
    triggers disabled, or to repair. Lock the table against writes first if writers run."""
    for table in ROLLUP_TABLES:
        session.execute(table.delete())
    for stmt in ROLLUPS:
        session.execute(text(stmt.format(src="SELECT *, 1 AS sign FROM maintenance.work_orders")))


def assets_by_status(session: Session) -> dict[str, int]:
    return count_by(session, assets.c.status)


def low_stock(session: Session, limit: int) -> tuple[int, list[model.Part]]:
    """Parts at or below their reorder point: how many, and the `limit` furthest below."""
    low = parts.c.stock <= parts.c.reorder_point
    count = session.execute(select(func.count()).select_from(parts).where(low)).scalar_one()
    rows = session.execute(
        select(parts)
        .where(low)
        .order_by((parts.c.stock - parts.c.reorder_point), parts.c.sku)
        .limit(limit)
    ).all()
    return int(count), [model.Part(**_values(r)) for r in rows]
