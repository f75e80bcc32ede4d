"""maintenance: dashboard rollups kept by triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

The stats count every work order (by status and priority, the overdue ones, the mean time to
repair, the daily trend); at 1M orders those aggregates read hundreds of thousands of index
entries per request. These rollup tables hold the same sums, so a stats request reads a few
hundred rows whatever the history (docs/decisions/0042):

- `work_order_counts` (status, priority): orders now;
- `active_due` (due_date): orders not resolved, per due date (overdue = those due before today);
- `repair_totals` (type): completed orders and the hours from creation to completion;
- `daily_orders` (UTC day): orders created and completed that day;
- `overdue_changes` (day): an order is overdue at the end of each day from
  max(due_date + 1, the day it was created) until the day before it was resolved: +1 on the
  first such day, -1 on the day it was resolved. Overdue at the end of day d is the sum of the
  changes up to d (one row per day of history).

Every rollup is a sum, so one statement-level trigger per event (insert, update, delete) on
`work_orders` applies old rows with -1 and new rows with +1, grouped, zero groups dropped (an
edit that moves no figure writes no rollup row), in key order (no deadlock between two
writers). PostgreSQL only; SQLite (the local fallback, small data) aggregates the orders. The
backfill and the triggers are created with the table locked against writes.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "maintenance"
TS = sa.DateTime(timezone=True)

TABLES: list[tuple[str, list[sa.Column[Any]]]] = [
    (
        "work_order_counts",
        [
            sa.Column("status", sa.String(20), primary_key=True),
            sa.Column("priority", sa.String(20), primary_key=True),
            sa.Column("n", sa.BigInteger, nullable=False),
        ],
    ),
    (
        "active_due",
        [
            sa.Column("due_date", sa.Date, primary_key=True),
            sa.Column("n", sa.BigInteger, nullable=False),
        ],
    ),
    (
        "repair_totals",
        [
            sa.Column("type", sa.String(20), primary_key=True),
            sa.Column("n", sa.BigInteger, nullable=False),
            sa.Column("hours", sa.Float, nullable=False),
        ],
    ),
    (
        "daily_orders",
        [
            sa.Column("day", sa.Date, primary_key=True),
            sa.Column("created", sa.BigInteger, nullable=False),
            sa.Column("completed", sa.BigInteger, nullable=False),
        ],
    ),
    (
        "overdue_changes",
        [
            sa.Column("day", sa.Date, primary_key=True),
            sa.Column("delta", sa.BigInteger, nullable=False),
        ],
    ),
]

# {src}: rows of work_orders with a column `sign` (+1 / -1). Frozen copy of store.ROLLUPS.
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
SELECT w.type, sum(w.sign), sum(w.sign * EXTRACT(EPOCH FROM (w.completed_at - w.created_at)) / 3600.0)
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
""",
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
""",
]

SOURCES = {
    "inserted": "SELECT *, 1 AS sign FROM new_rows",
    "updated": "SELECT *, -1 AS sign FROM old_rows UNION ALL SELECT *, 1 AS sign FROM new_rows",
    "deleted": "SELECT *, -1 AS sign FROM old_rows",
}
TRANSITION = {
    "inserted": ("INSERT", "NEW TABLE AS new_rows"),
    "updated": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    "deleted": ("DELETE", "OLD TABLE AS old_rows"),
}


def upgrade() -> None:
    for name, columns in TABLES:
        op.create_table(name, *columns, schema=SCHEMA)
    if op.get_bind().dialect.name != "postgresql":
        return
    # No write may land between the backfill and the triggers; reads go on.
    op.execute("LOCK TABLE maintenance.work_orders IN SHARE ROW EXCLUSIVE MODE")
    for stmt in ROLLUPS:
        op.execute(stmt.format(src="SELECT *, 1 AS sign FROM maintenance.work_orders"))
    for event, src in SOURCES.items():
        body = "".join(stmt.format(src=src).strip() + ";\n" for stmt in ROLLUPS)
        op.execute(
            f"CREATE FUNCTION maintenance.rollup_work_orders_{event}() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$\nBEGIN\n{body}RETURN NULL;\nEND $$"
        )
        what, tables = TRANSITION[event]
        op.execute(
            f"CREATE TRIGGER rollup_{event} AFTER {what} ON maintenance.work_orders "
            f"REFERENCING {tables} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION maintenance.rollup_work_orders_{event}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for event in SOURCES:
            op.execute(f"DROP TRIGGER IF EXISTS rollup_{event} ON maintenance.work_orders")
            op.execute(f"DROP FUNCTION IF EXISTS maintenance.rollup_work_orders_{event}()")
    for name, _ in reversed(TABLES):
        op.drop_table(name, schema=SCHEMA)
