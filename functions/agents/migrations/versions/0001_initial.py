"""agents: outbox (investigations, analyses and the read model live in Firestore)

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from alembic import op

from shared.events import create_outbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "agents"


def upgrade() -> None:
    create_outbox(op, SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
