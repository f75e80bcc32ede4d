"""source: the headline of each commit's newest agents analysis on the commit row (risk,
type, secret count, findings), and an index for the risk filter

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "source"
TS = sa.DateTime(timezone=True)
COLUMNS: list[tuple[str, Any]] = [
    ("analysis_id", sa.String(36)),
    ("analysis_status", sa.String(10)),
    ("analysis_type", sa.String(40)),
    ("risk_score", sa.Integer),
    ("risk_level", sa.String(10)),
    ("secrets", sa.Integer),
    ("findings", sa.Integer),
    ("top_severity", sa.String(10)),
    ("analysis_summary", sa.Text),
    ("analyzed_at", TS),
]


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("commits", sa.Column(name, type_, nullable=True), schema=SCHEMA)
    op.create_index("ix_commits_risk", "commits", ["risk_level", "committed_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_commits_risk", "commits", schema=SCHEMA)
    for name, _ in reversed(COLUMNS):
        op.drop_column("commits", name, schema=SCHEMA)
