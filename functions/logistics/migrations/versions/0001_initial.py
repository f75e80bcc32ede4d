"""logistics: packages, tracking_events, outbox

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from shared.events import create_outbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "logistics"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "packages",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tracking_number", sa.String(40), nullable=False),
        sa.Column("sender", sa.String(200), nullable=False),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("origin_address", sa.String(500), nullable=False),
        sa.Column("origin_lat", sa.Float, nullable=False),
        sa.Column("origin_lon", sa.Float, nullable=False),
        sa.Column("origin_region", sa.String(40), nullable=False),
        sa.Column("destination_address", sa.String(500), nullable=False),
        sa.Column("destination_lat", sa.Float, nullable=False),
        sa.Column("destination_lon", sa.Float, nullable=False),
        sa.Column("destination_region", sa.String(40), nullable=False),
        sa.Column("service_level", sa.String(20), nullable=False),
        sa.Column("weight_kg", sa.Float, nullable=False),
        sa.Column("promised_by", TS, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("picked_up_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("last_scan_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.CheckConstraint("weight_kg > 0", name="ck_packages_weight"),
        schema=SCHEMA,
    )
    # A duplicate tracking number fails even between two concurrent creates (409).
    op.create_index(
        "ux_packages_tracking_number", "packages", ["tracking_number"], unique=True, schema=SCHEMA
    )
    # The list is newest first (created_at desc, id desc), alone or under one filter.
    for name, cols in (
        ("ix_packages_created", ["created_at", "id"]),
        ("ix_packages_status", ["status", "created_at", "id"]),
        ("ix_packages_service_level", ["service_level", "created_at", "id"]),
        ("ix_packages_origin_region", ["origin_region", "created_at", "id"]),
        ("ix_packages_destination_region", ["destination_region", "created_at", "id"]),
        ("ix_packages_promised", ["promised_by"]),
        # stats over deliveries in a time range
        ("ix_packages_delivered", ["delivered_at"]),
    ):
        op.create_index(name, "packages", cols, schema=SCHEMA)
    # stats: the late packages still on their way (a small part of the table)
    op.create_index(
        "ix_packages_open_promised",
        "packages",
        ["promised_by"],
        schema=SCHEMA,
        postgresql_where=sa.text("delivered_at IS NULL"),
        sqlite_where=sa.text("delivered_at IS NULL"),
    )

    op.create_table(
        "tracking_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "package_id", sa.String(36), sa.ForeignKey(f"{SCHEMA}.packages.id"), nullable=False
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("idempotency_key", sa.String(100), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("status_from", sa.String(20), nullable=False),
        sa.Column("status_to", sa.String(20), nullable=True),
        sa.Column("out_of_order", sa.Boolean, nullable=False),
        schema=SCHEMA,
    )
    # a re-sent scan is stored once, even between two concurrent requests
    op.create_index(
        "ux_tracking_events_key", "tracking_events", ["idempotency_key"], unique=True,
        schema=SCHEMA,
    )
    op.create_index(
        "ix_tracking_events_package", "tracking_events", ["package_id", "occurred_at", "id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_tracking_events_kind", "tracking_events", ["kind", "occurred_at"], schema=SCHEMA
    )
    create_outbox(op, SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("tracking_events", schema=SCHEMA)
    op.drop_table("packages", schema=SCHEMA)
