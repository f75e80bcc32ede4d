"""maintenance: the active work orders by number, for the overdue list (issue 14 item 6)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

`?overdue=true` is a page, newest number first, of the orders still active and past their due
date. The newest orders are not due yet and most older ones are finished, so walking
`ux_work_orders_number` tested 40,000 rows for a page at 1M orders (10.5 ms in the database;
2.27x the 10k figure in the bench). A partial index of the active orders (a quarter of them)
by number, with the due date, walks only those: 10,000 rows, 3.5 ms. Built CONCURRENTLY on
PostgreSQL (no write lock on a live table); SQLite has no INCLUDE.
"""

import sqlalchemy as sa
from alembic import op

from shared.migrate import create_index_concurrently

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "maintenance"
NAME = "ix_work_orders_active_number"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        create_index_concurrently(
            op, SCHEMA, NAME, "work_orders (number) INCLUDE (due_date) WHERE resolved_at IS NULL"
        )
    else:
        where = sa.text("resolved_at IS NULL")
        op.create_index(NAME, "work_orders", ["number"], schema=SCHEMA, sqlite_where=where)


def downgrade() -> None:
    op.drop_index(NAME, "work_orders", schema=SCHEMA)
