"""source: commit_months, the monthly rollup of commits per repository, conventional type and
author together (decision 0048), filled from the commits already recorded

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "source"
MEASURES = ["commits", "additions", "deletions", "files_changed"]


def upgrade() -> None:
    op.create_table(
        "commit_months",
        sa.Column(
            "repository_id",
            sa.String(36),
            sa.ForeignKey(f"{SCHEMA}.repositories.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("author", sa.String(320), nullable=False),
        sa.Column("commits", sa.Integer, nullable=False),
        sa.Column("additions", sa.BigInteger, nullable=False),
        sa.Column("deletions", sa.BigInteger, nullable=False),
        sa.Column("files_changed", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "repository_id", "month", "type", "author", name="pk_commit_months"
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_commit_months_month", "commit_months", ["month"], schema=SCHEMA)
    if op.get_bind().dialect.name == "postgresql":
        month = "CAST(date_trunc('month', committed_at AT TIME ZONE 'UTC') AS DATE)"
    else:
        month = "date(committed_at, 'start of month')"
    # the commits are locked against new writes while the backfill counts them (a recorder
    # that committed meanwhile would be counted twice or not at all otherwise)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"LOCK TABLE {SCHEMA}.commits IN SHARE MODE")
    op.execute(
        f"INSERT INTO {SCHEMA}.commit_months "  # noqa: S608 - constants
        f"(repository_id, month, type, author, {', '.join(MEASURES)}) "
        f"SELECT repository_id, {month}, coalesce(conventional_type, 'none'), author_key, "
        "count(*), coalesce(sum(additions), 0), coalesce(sum(deletions), 0), "
        "coalesce(sum(files_changed), 0) "
        f"FROM {SCHEMA}.commits "
        f"GROUP BY repository_id, {month}, coalesce(conventional_type, 'none'), author_key"
    )


def downgrade() -> None:
    op.drop_table("commit_months", schema=SCHEMA)
