"""production: a 1,000-value ANALYZE sample of the batch number, `q`'s column (decision 0059)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

1,000 values instead of 100 (shared/trigram.py: which trigrams to leave out of the index
condition, and whether a needle is rare enough to read its matches through the index).
PostgreSQL only.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TARGET = "TABLE production.batches ALTER COLUMN batch_number"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER {TARGET} SET STATISTICS 1000")
    op.execute("ANALYZE production.batches")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER {TARGET} SET STATISTICS -1")
