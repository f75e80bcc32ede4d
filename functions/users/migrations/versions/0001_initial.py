"""users: users, outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from shared.events import create_outbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "users"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("roles", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        schema=SCHEMA,
    )
    # Unique among live users only: a deleted user's email may be used again.
    op.create_index("ux_users_email_live", "users", ["email"], unique=True, schema=SCHEMA,
                    postgresql_where=sa.text("deleted_at IS NULL"),
                    sqlite_where=sa.text("deleted_at IS NULL"))
    op.create_index("ix_users_created", "users", ["created_at", "id"], schema=SCHEMA)
    create_outbox(op, SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("users", schema=SCHEMA)
