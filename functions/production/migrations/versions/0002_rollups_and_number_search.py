"""production: metrics rollups kept by triggers, trigram index for the batch-number search

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Three rollup tables hold what the metrics aggregate, so a metrics request reads a few hundred
rollup rows whatever the number of batches (docs/decisions/0042): `batch_counts` (batches now
per product, status and stage), `daily_output` (per UTC day of completion and product:
completions, the yield sum and extremes) and `daily_stage_time` (per UTC day a stage visit
ended, product and stage: visits and their seconds). On PostgreSQL, statement-level triggers
with transition tables keep them in the transaction of the write that changes the facts (one
grouped upsert per statement: a bulk load costs one pass, a single update two tiny upserts),
whatever code writes, old or new: the deploy order cannot make them drift. The backfill and
the triggers are created with the source tables locked against writes (a few seconds at 1M
batches). SQLite (the local fallback, small data) keeps no rollups: the metrics aggregate the
source tables there.

The trigram index serves `q` (part of a batch number, LIKE '%...%'); it is built CONCURRENTLY
(outside the migration's transaction), so creating it on a big table blocks no writes.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from shared.migrate import create_index_concurrently

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "production"
TS = sa.DateTime(timezone=True)

# The rollup tables (the same definitions as store.py; created on both dialects so the schema
# is one, filled and kept only on PostgreSQL).
TABLES: list[tuple[str, list[sa.Column[Any]]]] = [
    (
        "batch_counts",
        [
            sa.Column("product", sa.String(200), primary_key=True),
            sa.Column("status", sa.String(20), primary_key=True),
            sa.Column("stage", sa.String(20), primary_key=True),
            sa.Column("n", sa.BigInteger, nullable=False),
        ],
    ),
    (
        "daily_output",
        [
            sa.Column("day", sa.Date, primary_key=True),
            sa.Column("product", sa.String(200), primary_key=True),
            sa.Column("completed", sa.BigInteger, nullable=False),
            sa.Column("with_yield", sa.BigInteger, nullable=False),
            sa.Column("yield_sum", sa.Float, nullable=False),
            sa.Column("yield_min", sa.Float, nullable=True),
            sa.Column("yield_max", sa.Float, nullable=True),
        ],
    ),
    (
        "daily_stage_time",
        [
            sa.Column("day", sa.Date, primary_key=True),
            sa.Column("product", sa.String(200), primary_key=True),
            sa.Column("stage", sa.String(20), primary_key=True),
            sa.Column("visits", sa.BigInteger, nullable=False),
            sa.Column("seconds", sa.Float, nullable=False),
        ],
    ),
]

# Deltas from a set of batch rows (`src`) with a sign; grouped, zero groups dropped, applied in
# key order (two writers moving counts in opposite directions lock the rows in one order: no
# deadlock).
COUNTS_UPSERT = """
INSERT INTO production.batch_counts AS c (product, status, stage, n)
SELECT product, status, stage, sum(d) FROM ({src}) AS delta(product, status, stage, d)
GROUP BY product, status, stage HAVING sum(d) <> 0 ORDER BY product, status, stage
ON CONFLICT (product, status, stage) DO UPDATE SET n = c.n + excluded.n
"""
# Completions: yield = actual / planned; a row counted once, when completed_at appears.
OUTPUT_UPSERT = """
INSERT INTO production.daily_output AS o
    (day, product, completed, with_yield, yield_sum, yield_min, yield_max)
SELECT (b.completed_at AT TIME ZONE 'UTC')::date, b.product, count(*),
       count(b.actual_quantity), coalesce(sum(b.actual_quantity / b.planned_quantity), 0),
       min(b.actual_quantity / b.planned_quantity), max(b.actual_quantity / b.planned_quantity)
FROM {src} AS b
WHERE b.completed_at IS NOT NULL {extra}
GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (day, product) DO UPDATE SET
    completed = o.completed + excluded.completed,
    with_yield = o.with_yield + excluded.with_yield,
    yield_sum = o.yield_sum + excluded.yield_sum,
    yield_min = least(o.yield_min, excluded.yield_min),
    yield_max = greatest(o.yield_max, excluded.yield_max)
"""
# A transition row that ends a stage visit carries when the visit began (stage_entered_at);
# the stage it ends is the stage changed from, or packaging for the release.
STAGE_UPSERT = """
INSERT INTO production.daily_stage_time AS s (day, product, stage, visits, seconds)
SELECT (t.at AT TIME ZONE 'UTC')::date, b.product,
       CASE WHEN t.kind = 'stage' THEN t.from_value ELSE 'packaging' END,
       count(*), sum(EXTRACT(EPOCH FROM (t.at - t.stage_entered_at)))
FROM {src} AS t JOIN production.batches AS b ON b.id = t.batch_id
WHERE t.stage_entered_at IS NOT NULL
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (day, product, stage) DO UPDATE SET
    visits = s.visits + excluded.visits, seconds = s.seconds + excluded.seconds
"""

_COUNTS_MOVED = (
    "SELECT product, status, stage, -1 FROM old_rows "
    "UNION ALL SELECT product, status, stage, 1 FROM new_rows"
)
_NEWLY_COMPLETED = (
    "AND NOT EXISTS (SELECT 1 FROM old_rows AS was WHERE was.id = b.id "
    "AND was.completed_at IS NOT NULL)"
)
BODIES = {
    "rollup_batches_inserted": [
        COUNTS_UPSERT.format(src="SELECT product, status, stage, 1 FROM new_rows"),
        OUTPUT_UPSERT.format(src="new_rows", extra=""),
    ],
    "rollup_batches_updated": [
        COUNTS_UPSERT.format(src=_COUNTS_MOVED),
        OUTPUT_UPSERT.format(src="new_rows", extra=_NEWLY_COMPLETED),
    ],
    "rollup_batches_deleted": [
        COUNTS_UPSERT.format(src="SELECT product, status, stage, -1 FROM old_rows")
    ],
    "rollup_transitions_inserted": [STAGE_UPSERT.format(src="new_rows")],
}
FUNCTIONS = "\n".join(
    f"CREATE FUNCTION production.{name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
    + "".join(f"{stmt.strip()};\n" for stmt in stmts)
    + "RETURN NULL;\nEND $$;"
    for name, stmts in BODIES.items()
)

TRIGGERS = """
CREATE TRIGGER rollup_inserted AFTER INSERT ON production.batches
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION production.rollup_batches_inserted();
CREATE TRIGGER rollup_updated AFTER UPDATE ON production.batches
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION production.rollup_batches_updated();
CREATE TRIGGER rollup_deleted AFTER DELETE ON production.batches
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION production.rollup_batches_deleted();
CREATE TRIGGER rollup_inserted AFTER INSERT ON production.batch_transitions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION production.rollup_transitions_inserted();
"""


def upgrade() -> None:
    for name, columns in TABLES:
        op.create_table(name, *columns, schema=SCHEMA)
    if op.get_bind().dialect.name != "postgresql":
        return
    # No write may land between the backfill and the triggers (it would be counted by
    # neither); reads go on.
    op.execute(
        "LOCK TABLE production.batches, production.batch_transitions IN SHARE ROW EXCLUSIVE MODE"
    )
    op.execute(COUNTS_UPSERT.format(src="SELECT product, status, stage, 1 FROM production.batches"))
    op.execute(OUTPUT_UPSERT.format(src="production.batches", extra=""))
    op.execute(STAGE_UPSERT.format(src="production.batch_transitions"))
    op.execute(FUNCTIONS)
    op.execute(TRIGGERS)
    # pg_trgm is a trusted extension (PostgreSQL 13+; Cloud SQL supports it): the schema owner
    # may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    create_index_concurrently(
        op, "production", "ix_batches_number_trgm", "batches USING gin (batch_number gin_trgm_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS production.ix_batches_number_trgm")
        for table in ("batches", "batch_transitions"):
            for event in ("inserted", "updated", "deleted"):
                op.execute(f"DROP TRIGGER IF EXISTS rollup_{event} ON production.{table}")
        for fn in BODIES:
            op.execute(f"DROP FUNCTION IF EXISTS production.{fn}()")
    for name, _ in reversed(TABLES):
        op.drop_table(name, schema=SCHEMA)
