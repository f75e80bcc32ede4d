"""auth: credentials, refresh tokens, login throttling, outbox

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

SCHEMA = "auth"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("roles", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=True),
        sa.Column("password_changed_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ux_credentials_email", "credentials", ["email"], unique=True,
                    schema=SCHEMA)
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("family_id", sa.String(36), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        schema=SCHEMA,
    )
    op.create_index("ux_refresh_tokens_hash", "refresh_tokens", ["token_hash"], unique=True,
                    schema=SCHEMA)
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family_id"], schema=SCHEMA)
    op.create_index("ix_refresh_tokens_user", "refresh_tokens", ["user_id"], schema=SCHEMA)
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_start", TS, nullable=False),
        schema=SCHEMA,
    )
    create_outbox(op, SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("login_failures", schema=SCHEMA)
    op.drop_table("refresh_tokens", schema=SCHEMA)
    op.drop_table("credentials", schema=SCHEMA)
