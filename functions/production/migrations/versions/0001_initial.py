"""production: batches, batch_transitions, outbox

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

SCHEMA = "production"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("batch_number", sa.String(40), nullable=False),
        sa.Column("product", sa.String(200), nullable=False),
        sa.Column("planned_quantity", sa.Float, nullable=False),
        sa.Column("actual_quantity", sa.Float, nullable=True),
        sa.Column("unit", sa.String(20), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("notes", sa.Text, nullable=True),
        sa.Column("planned_start", TS, nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("completed_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.CheckConstraint("planned_quantity > 0", name="ck_batches_planned_quantity"),
        sa.CheckConstraint("actual_quantity IS NULL OR actual_quantity >= 0",
                           name="ck_batches_actual_quantity"),
        schema=SCHEMA,
    )
    # The unique index is what makes a duplicate batch number fail even between two
    # concurrent creates (the service maps the IntegrityError to 409).
    op.create_index("ux_batches_number", "batches", ["batch_number"], unique=True, schema=SCHEMA)
    # The list is newest first (created_at desc, id desc), alone or under one filter.
    op.create_index("ix_batches_created", "batches", ["created_at", "id"], schema=SCHEMA)
    op.create_index("ix_batches_status", "batches", ["status", "created_at", "id"], schema=SCHEMA)
    op.create_index("ix_batches_stage", "batches", ["stage", "created_at", "id"], schema=SCHEMA)
    op.create_index("ix_batches_product", "batches", ["product", "created_at", "id"],
                    schema=SCHEMA)
    op.create_index("ix_batches_planned_start", "batches", ["planned_start"], schema=SCHEMA)
    op.create_index("ix_batches_completed", "batches", ["completed_at"], schema=SCHEMA)

    op.create_table(
        "batch_transitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(36), sa.ForeignKey(f"{SCHEMA}.batches.id"),
                  nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("from_value", sa.String(20), nullable=True),
        sa.Column("to_value", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", TS, nullable=False),
        # on a row that ends a stage visit: when that visit began (cycle-time metrics)
        sa.Column("stage_entered_at", TS, nullable=True),
        schema=SCHEMA,
    )
    # history and the entry lookup: (batch_id, at, id); metrics: rows by time
    op.create_index("ix_transitions_batch", "batch_transitions", ["batch_id", "at", "id"],
                    schema=SCHEMA)
    op.create_index("ix_transitions_at", "batch_transitions", ["at"], schema=SCHEMA)
    create_outbox(op, SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("batch_transitions", schema=SCHEMA)
    op.drop_table("batches", schema=SCHEMA)
