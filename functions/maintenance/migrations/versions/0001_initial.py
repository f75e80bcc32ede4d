"""maintenance: initial schema

Users copy, assets, work orders (+ status log), parts (+ movements), PM schedules (+ runs),
counters, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from shared.events import create_outbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "maintenance"
TS = sa.DateTime(timezone=True)
ID = sa.String(36)


def _index(name: str, table: str, columns: list[str], **kw) -> None:
    op.create_index(name, table, columns, schema=SCHEMA, **kw)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ID, primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("roles", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
        schema=SCHEMA,
    )
    op.execute(f"INSERT INTO {SCHEMA}.counters (name, value) VALUES ('work_orders', 0)")

    op.create_table(
        "assets",
        sa.Column("id", ID, primary_key=True),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=True),
        sa.Column("location", sa.String(200), nullable=True),
        sa.Column("parent_id", ID, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("criticality", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("retired_at", TS, nullable=True),
        schema=SCHEMA,
    )
    _index("ux_assets_tag", "assets", ["tag"], unique=True)
    _index("ix_assets_parent", "assets", ["parent_id", "tag"])
    _index("ix_assets_status", "assets", ["status", "tag"])
    _index("ix_assets_category", "assets", ["category", "tag"])
    _index("ix_assets_location", "assets", ["location", "tag"])
    _index("ix_assets_criticality", "assets", ["criticality", "tag"])

    op.create_table(
        "work_orders",
        sa.Column("id", ID, primary_key=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("asset_id", ID, nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("due_date", sa.Date, nullable=True),
        sa.Column("assignee_id", ID, nullable=True),
        sa.Column("labour_notes", sa.Text, nullable=True),
        sa.Column("pm_schedule_id", ID, nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("completed_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        schema=SCHEMA,
    )
    _index("ux_work_orders_number", "work_orders", ["number"], unique=True)
    _index("ix_work_orders_status", "work_orders", ["status", "number"])
    _index("ix_work_orders_status_priority", "work_orders", ["status", "priority"])
    _index("ix_work_orders_priority", "work_orders", ["priority", "number"])
    _index("ix_work_orders_asset", "work_orders", ["asset_id", "number"])
    _index("ix_work_orders_assignee", "work_orders", ["assignee_id", "number"])
    # INCLUDE (PostgreSQL): the stats read these indexes only (index-only scans)
    _index("ix_work_orders_type_completed", "work_orders", ["type", "completed_at"],
           postgresql_include=["created_at"])
    _index("ix_work_orders_created", "work_orders", ["created_at"])
    _index("ix_work_orders_completed", "work_orders", ["completed_at"])
    _index("ix_work_orders_resolved", "work_orders", ["resolved_at"],
           postgresql_include=["due_date", "created_at"])
    _index("ix_work_orders_due_active", "work_orders", ["due_date"],
           postgresql_include=["created_at"],
           postgresql_where=sa.text("resolved_at IS NULL"),
           sqlite_where=sa.text("resolved_at IS NULL"))

    op.create_table(
        "work_order_log",
        sa.Column("id", ID, primary_key=True),
        sa.Column("work_order_id", ID, nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
        schema=SCHEMA,
    )
    _index("ix_work_order_log_order", "work_order_log", ["work_order_id", "at"])

    op.create_table(
        "parts",
        sa.Column("id", ID, primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(20), nullable=False),
        sa.Column("stock", sa.Integer, nullable=False),
        sa.Column("reorder_point", sa.Integer, nullable=False),
        sa.Column("location", sa.String(200), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("stock >= 0", name="ck_parts_stock_not_negative"),
        sa.CheckConstraint("reorder_point >= 0", name="ck_parts_reorder_point_not_negative"),
        schema=SCHEMA,
    )
    _index("ux_parts_sku", "parts", ["sku"], unique=True)

    op.create_table(
        "part_movements",
        sa.Column("id", ID, primary_key=True),
        sa.Column("part_id", ID, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("delta", sa.Integer, nullable=False),
        sa.Column("stock_after", sa.Integer, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("work_order_id", ID, nullable=True),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        schema=SCHEMA,
    )
    _index("ix_part_movements_part", "part_movements", ["part_id", "created_at", "id"])
    _index("ix_part_movements_work_order", "part_movements", ["work_order_id", "created_at"])

    op.create_table(
        "pm_schedules",
        sa.Column("id", ID, primary_key=True),
        sa.Column("asset_id", ID, nullable=False),
        sa.Column("interval_days", sa.Integer, nullable=True),
        sa.Column("cron", sa.String(100), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("next_due_at", TS, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("last_generated_at", TS, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("(interval_days IS NULL) <> (cron IS NULL)",
                           name="ck_pm_schedules_one_recurrence"),
        schema=SCHEMA,
    )
    _index("ix_pm_schedules_due", "pm_schedules", ["active", "next_due_at"])
    _index("ix_pm_schedules_next", "pm_schedules", ["next_due_at", "id"])
    _index("ix_pm_schedules_asset", "pm_schedules", ["asset_id"])

    op.create_table(
        "pm_runs",
        sa.Column("schedule_id", ID, primary_key=True),
        sa.Column("due_at", TS, primary_key=True),
        sa.Column("work_order_id", ID, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        schema=SCHEMA,
    )

    # Referential integrity on PostgreSQL. SQLite cannot name another attached database in a
    # REFERENCES clause (the schema-qualified form is a syntax error), so there the service
    # layer's checks (which run on both) are the only guard.
    if op.get_bind().dialect.name == "postgresql":
        for name, table, column, target in (
            ("fk_assets_parent", "assets", "parent_id", "assets"),
            ("fk_work_orders_asset", "work_orders", "asset_id", "assets"),
            ("fk_work_order_log_order", "work_order_log", "work_order_id", "work_orders"),
            ("fk_part_movements_part", "part_movements", "part_id", "parts"),
            ("fk_part_movements_order", "part_movements", "work_order_id", "work_orders"),
            ("fk_pm_schedules_asset", "pm_schedules", "asset_id", "assets"),
            ("fk_pm_runs_schedule", "pm_runs", "schedule_id", "pm_schedules"),
        ):
            op.create_foreign_key(name, table, target, [column], ["id"],
                                  source_schema=SCHEMA, referent_schema=SCHEMA)

    if op.get_bind().dialect.name == "postgresql":
        _title_search_index()
    create_outbox(op, SCHEMA)


def _title_search_index() -> None:
    """A trigram index for `?q=` on work-order titles (substring search at 100k+ orders), when
    pg_trgm is installed or this user may install it (Cloud SQL: cloudsqlsuperuser). Without
    it the search still works, by scanning."""
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        have = True
    else:
        savepoint = bind.begin_nested()
        try:
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            savepoint.commit()
            have = True
        except sa.exc.DBAPIError:
            savepoint.rollback()
            have = False
    if have:
        op.execute(f"CREATE INDEX ix_work_orders_title_trgm ON {SCHEMA}.work_orders "
                   "USING gin (lower(title) gin_trgm_ops)")


def downgrade() -> None:
    for table in ("outbox", "pm_runs", "pm_schedules", "part_movements", "parts",
                  "work_order_log", "work_orders", "assets", "counters", "users"):
        op.drop_table(table, schema=SCHEMA)
