"""source: commit_days, the daily rollup of commits per repository and conventional type
and per repository and author (decision 0038), filled from the commits already recorded

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from shared.db import utc_day

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "source"
MEASURES = ["commits", "additions", "deletions", "files_changed"]


def upgrade() -> None:
    op.create_table(
        "commit_days",
        sa.Column(
            "repository_id",
            sa.String(36),
            sa.ForeignKey(f"{SCHEMA}.repositories.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("dim", sa.String(6), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column("commits", sa.Integer, nullable=False),
        sa.Column("additions", sa.BigInteger, nullable=False),
        sa.Column("deletions", sa.BigInteger, nullable=False),
        sa.Column("files_changed", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "dim", "day", "key", name="pk_commit_days"),
        schema=SCHEMA,
    )
    op.create_index("ix_commit_days_day", "commit_days", ["dim", "day"], schema=SCHEMA)
    commits = sa.table(
        "commits",
        sa.column("repository_id"),
        sa.column("committed_at"),
        sa.column("conventional_type"),
        sa.column("author_key"),
        sa.column("additions"),
        sa.column("deletions"),
        sa.column("files_changed"),
        schema=SCHEMA,
    )
    days = sa.table(
        "commit_days",
        *(sa.column(n) for n in ["repository_id", "dim", "day", "key", *MEASURES]),
        schema=SCHEMA,
    )
    c = commits.c
    day = utc_day(c.committed_at)
    for dim, key in (
        ("type", sa.func.coalesce(c.conventional_type, sa.literal_column("'none'"))),
        ("author", c.author_key),
    ):
        rows = sa.select(
            c.repository_id,
            sa.literal_column(f"'{dim}'"),
            day,
            key,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(c.additions), 0),
            sa.func.coalesce(sa.func.sum(c.deletions), 0),
            sa.func.coalesce(sa.func.sum(c.files_changed), 0),
        ).group_by(c.repository_id, day, key)
        op.execute(days.insert().from_select(["repository_id", "dim", "day", "key", *MEASURES], rows))


def downgrade() -> None:
    op.drop_table("commit_days", schema=SCHEMA)
