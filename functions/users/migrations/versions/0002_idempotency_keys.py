"""users: the idempotency_keys table (Idempotency-Key on creating POSTs, decision 0045)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

from shared.db import IDEMPOTENCY_KEYS, create_idempotency_keys

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "users"


def upgrade() -> None:
    create_idempotency_keys(op, SCHEMA)


def downgrade() -> None:
    op.drop_table(IDEMPOTENCY_KEYS, schema=SCHEMA)
