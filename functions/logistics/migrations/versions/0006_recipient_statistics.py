"""logistics: a 1,000-value ANALYZE sample of the recipient search's expression (decision 0059)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

1,000 values instead of 100 (shared/trigram.py: which trigrams to leave out of the index
condition, and whether a needle is rare enough to read its matches through the index).
PostgreSQL only.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TARGET = "INDEX logistics.ix_packages_recipient_trgm ALTER COLUMN 1"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER {TARGET} SET STATISTICS 1000")
    op.execute("ANALYZE logistics.packages")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER {TARGET} SET STATISTICS -1")
