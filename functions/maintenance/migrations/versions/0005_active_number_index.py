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

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "maintenance"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(
            "ix_work_orders_active_number",
            "work_orders",
            ["number"],
            schema=SCHEMA,
            sqlite_where=sa.text("resolved_at IS NULL"),
        )
        return
    with op.get_context().autocommit_block():
        # Alembic asked pg8000 for the isolation level before switching to autocommit, which
        # opened a (read-only) transaction on the driver's connection: end it, or PostgreSQL
        # refuses CONCURRENTLY "inside a transaction block".
        op.get_bind().connection.dbapi_connection.rollback()  # type: ignore[union-attr]
        # a build that failed half-way leaves an invalid index behind: start clean
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS maintenance.ix_work_orders_active_number")
        op.execute(
            "CREATE INDEX CONCURRENTLY ix_work_orders_active_number ON maintenance.work_orders "
            "(number) INCLUDE (due_date) WHERE resolved_at IS NULL"
        )


def downgrade() -> None:
    op.drop_index("ix_work_orders_active_number", "work_orders", schema=SCHEMA)
