"""logistics: a 1,000-value ANALYZE sample of the recipient, `q`'s column (decision 0059)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

1,000 values instead of 100 (shared/trigram.py: which trigrams to leave out of the index
condition, and whether a needle is rare enough to read its matches through the index).
The column's, not its trigram index expression's: `pg_stats` shows an index's sample to
the table's owner only, and the deployments' database users are not. PostgreSQL only.
"""

from alembic import op

from shared.migrate import set_statistics

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TARGET = "TABLE logistics.packages ALTER COLUMN recipient"


def upgrade() -> None:
    set_statistics(op, TARGET, 1000, analyze="logistics.packages")


def downgrade() -> None:
    set_statistics(op, TARGET, -1)
