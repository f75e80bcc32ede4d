"""auth: refresh-token families end at an absolute time (family_expires_at, inherited by every
rotation), and each token remembers the access token issued with it (access_jti,
access_expires_at) so that reuse of a family revokes its access tokens too (decision 0032).
Existing families end when their current token expires.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "auth"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "refresh_tokens", sa.Column("family_expires_at", TS, nullable=True), schema=SCHEMA
    )
    op.add_column(
        "refresh_tokens", sa.Column("access_jti", sa.String(64), nullable=True), schema=SCHEMA
    )
    op.add_column(
        "refresh_tokens", sa.Column("access_expires_at", TS, nullable=True), schema=SCHEMA
    )
    tokens = sa.table(
        "refresh_tokens",
        sa.column("family_expires_at", TS),
        sa.column("expires_at", TS),
        schema=SCHEMA,
    )
    op.execute(tokens.update().values(family_expires_at=tokens.c.expires_at))
    with op.batch_alter_table("refresh_tokens", schema=SCHEMA) as batch:
        batch.alter_column("family_expires_at", existing_type=TS, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens", schema=SCHEMA) as batch:
        batch.drop_column("access_expires_at")
        batch.drop_column("access_jti")
        batch.drop_column("family_expires_at")
