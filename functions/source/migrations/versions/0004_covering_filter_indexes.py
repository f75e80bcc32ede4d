"""source: the author and type indexes of the commits cover the statistics' columns, so a
statistics request filtered by author or type (which the daily rollup cannot answer) reads
the index alone instead of a heap page per commit (decision 0043)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "source"
MEASURES = ["additions", "deletions", "files_changed"]
COVERED = {
    "ix_commits_author": (["author_key", "committed_at"], ["repository_id", "conventional_type"]),
    "ix_commits_type": (["conventional_type", "committed_at"], ["repository_id", "author_key"]),
}


def upgrade() -> None:
    for name, (keys, also) in COVERED.items():
        op.drop_index(name, table_name="commits", schema=SCHEMA)
        op.create_index(name, "commits", keys, schema=SCHEMA, postgresql_include=[*also, *MEASURES])


def downgrade() -> None:
    for name, (keys, _) in COVERED.items():
        op.drop_index(name, table_name="commits", schema=SCHEMA)
        op.create_index(name, "commits", keys, schema=SCHEMA)
