"""maintenance: a 1,000-value ANALYZE sample of the title, `q`'s column (decision 0059)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

1,000 values instead of 100 (shared/trigram.py: which trigrams to leave out of the index
condition, and whether a needle is rare enough to read its matches through the index).
The column's, not its trigram index expression's: `pg_stats` shows an index's sample to
the table's owner only, and the deployments' database users are not. PostgreSQL only.
"""

from alembic import op

from shared.migrate import set_statistics

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TARGET = "TABLE maintenance.work_orders ALTER COLUMN title"


def upgrade() -> None:
    set_statistics(op, TARGET, 1000, analyze="maintenance.work_orders")


def downgrade() -> None:
    set_statistics(op, TARGET, -1)
