"""logistics: the range figures of the stats from rollups per day and month, late-only index

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

The stats' figures over a range of days (deliveries and the on-time rate, mean, minimum and
maximum transit per lane and per service level, exceptions per day) aggregated a covering index
over the range: their cost grew with the packages delivered in it (365 days at 1M packages:
14x the 10k time, decision 0042 "not done"). Three rollups, kept by the statement-level
triggers of `packages` (the functions of 0003 are replaced with bodies that also keep these)
and by new ones on `tracking_events` (docs/decisions/0047):

- `lane_deliveries` (grain day or month, period, origin region, destination region):
  delivered, with a promise, on time, with a transit, the transit's sum, minimum, maximum;
- `level_deliveries` (grain, period, service level, shard 0..15): the same per service level,
  sharded as the counts are (4 levels: every delivery would otherwise wait on one row);
- `exception_days` (day): exception scans per UTC day of `occurred_at`.

A range reads its whole months from the month rows and the days at its ends from the day rows:
365 days are at most 13 month rows and ~60 day rows per key, whatever the number of packages.
Sums are netted per (group, facts): an UPDATE that leaves a delivered package's facts as they
were writes nothing. The minimum and maximum of what was added are merged with least/greatest;
a group that lost a value at its minimum or maximum (a delivery undone, a pickup time moved)
has both recounted from `packages` over its one day or month (the covering delivered_at
index). Backfilled with the tables locked against writes.

Also `ix_packages_late_delivered`: delivered packages that missed their promise, newest first,
the list's `late=true` (with the open packages past their promise from
`ix_packages_open_created`), so the late list reads a page of two partial indexes instead of
walking every package in the created_at order.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "logistics"
NOT_LATE = "status NOT IN ('returned', 'cancelled')"
OPEN_PROMISED = f"delivered_at IS NULL AND promised_by IS NOT NULL AND {NOT_LATE}"

_FIGURES: list[Any] = [
    ("delivered", sa.BigInteger),
    ("promised", sa.BigInteger),
    ("on_time", sa.BigInteger),
    ("transit_n", sa.BigInteger),
    ("transit_sum", sa.Numeric),
    ("transit_min", sa.Float),
    ("transit_max", sa.Float),
]


def _figures() -> list[sa.Column[Any]]:
    return [
        sa.Column(name, kind, nullable=name in ("transit_min", "transit_max"))
        for name, kind in _FIGURES
    ]


TABLES: list[tuple[str, list[sa.Column[Any]]]] = [
    (
        "lane_deliveries",
        [
            sa.Column("grain", sa.String(5), primary_key=True),
            sa.Column("period", sa.Date, primary_key=True),
            sa.Column("origin_region", sa.String(40), primary_key=True),
            sa.Column("destination_region", sa.String(40), primary_key=True),
            *_figures(),
        ],
    ),
    (
        "level_deliveries",
        [
            sa.Column("grain", sa.String(5), primary_key=True),
            sa.Column("period", sa.Date, primary_key=True),
            sa.Column("service_level", sa.String(20), primary_key=True),
            sa.Column("shard", sa.SmallInteger, primary_key=True),
            *_figures(),
        ],
    ),
    (
        "exception_days",
        [
            sa.Column("day", sa.Date, primary_key=True),
            sa.Column("n", sa.BigInteger, nullable=False),
        ],
    ),
]

# --- frozen copy of store.py's rollup statements ------------------------------------------

_SHARD = "mod(abs(hashtext(p.id)), 16)"
OLD_ROLLUPS = [  # 0003's
    f"""
INSERT INTO logistics.package_counts AS r (status, shard, n)
SELECT p.status, {_SHARD}, sum(p.sign) FROM ({{src}}) AS p
GROUP BY 1, 2 HAVING sum(p.sign) <> 0 ORDER BY 1, 2
ON CONFLICT (status, shard) DO UPDATE SET n = r.n + excluded.n
""",
    f"""
INSERT INTO logistics.open_promised AS r (hour, shard, n)
SELECT date_trunc('hour', p.promised_by AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', {_SHARD},
       sum(p.sign)
FROM ({{src}}) AS p
WHERE p.delivered_at IS NULL AND p.promised_by IS NOT NULL
  AND p.status NOT IN ('returned', 'cancelled')
GROUP BY 1, 2 HAVING sum(p.sign) <> 0 ORDER BY 1, 2
ON CONFLICT (hour, shard) DO UPDATE SET n = r.n + excluded.n
""",
]

_TRANSIT = "EXTRACT(EPOCH FROM (p.delivered_at - p.picked_up_at))"
_PERIOD_END = (
    "(k.period + CASE k.grain WHEN 'day' THEN interval '1 day' ELSE interval '1 month' END)"
)


def _facts(keys: list[str], exprs: list[str], *, removed: bool) -> str:
    """Delivered packages of `{src}` per grain (day, month), period, `keys`, and the facts
    the figures read, netted: a row that an UPDATE left as it was counts -1 and +1 and drops
    out; `removed` keeps only what left (net < 0, with a transit), else what changed."""
    having = f"sum(p.sign) < 0 AND {_TRANSIT} IS NOT NULL" if removed else "sum(p.sign) <> 0"
    cols = ", ".join(f"{e} AS {k}" for k, e in zip(keys, exprs, strict=True))
    group = ", ".join(str(i) for i in range(1, len(keys) + 6))
    return f"""
SELECT g.grain, CAST(date_trunc(g.grain, p.delivered_at AT TIME ZONE 'UTC') AS date) AS period,
       {cols}, p.promised_by IS NOT NULL AS promised, p.delivered_at <= p.promised_by AS on_time,
       {_TRANSIT} AS transit, sum(p.sign) AS net
FROM ({{src}}) AS p CROSS JOIN (VALUES ('day'), ('month')) AS g(grain)
WHERE p.delivered_at IS NOT NULL
GROUP BY {group} HAVING {having}"""


def range_rollup(table: str, keys: list[str], key_exprs: list[str]) -> list[str]:
    """The upsert of `table` (sums, and the extremes of what was added) and the recount of
    the extremes of the groups that lost their minimum or maximum."""
    names = ", ".join(keys)
    pk = f"grain, period, {names}"
    upsert = f"""
INSERT INTO logistics.{table} AS r
  ({pk}, delivered, promised, on_time, transit_n, transit_sum, transit_min, transit_max)
SELECT {pk}, sum(d.net), coalesce(sum(d.net) FILTER (WHERE d.promised), 0),
       coalesce(sum(d.net) FILTER (WHERE d.on_time), 0),
       coalesce(sum(d.net) FILTER (WHERE d.transit IS NOT NULL), 0),
       coalesce(sum(d.net * d.transit), 0),
       min(d.transit) FILTER (WHERE d.net > 0), max(d.transit) FILTER (WHERE d.net > 0)
FROM ({_facts(keys, key_exprs, removed=False)}) AS d
GROUP BY {pk} ORDER BY {pk}
ON CONFLICT ({pk}) DO UPDATE SET
  delivered = r.delivered + excluded.delivered, promised = r.promised + excluded.promised,
  on_time = r.on_time + excluded.on_time, transit_n = r.transit_n + excluded.transit_n,
  transit_sum = r.transit_sum + excluded.transit_sum,
  transit_min = least(r.transit_min, excluded.transit_min),
  transit_max = greatest(r.transit_max, excluded.transit_max)
"""
    match = " AND ".join(f"q.{k} = k.{k}" for k in keys if k != "shard")
    if "shard" in keys:
        match += " AND mod(abs(hashtext(q.id)), 16) = k.shard"
    extremes = f"""
UPDATE logistics.{table} AS r SET transit_min = m.lo, transit_max = m.hi
FROM (SELECT DISTINCT d.grain, d.period, {", ".join("d." + k for k in keys)}
      FROM ({_facts(keys, key_exprs, removed=True)}) AS d
      JOIN logistics.{table} AS c USING ({pk})
      WHERE d.transit <= c.transit_min OR d.transit >= c.transit_max) AS k
CROSS JOIN LATERAL (
  SELECT min({_TRANSIT.replace("p.", "q.")}) AS lo, max({_TRANSIT.replace("p.", "q.")}) AS hi
  FROM logistics.packages AS q
  WHERE q.delivered_at >= CAST(k.period AS timestamp) AT TIME ZONE 'UTC'
    AND q.delivered_at < {_PERIOD_END} AT TIME ZONE 'UTC'
    AND q.picked_up_at IS NOT NULL AND {match}) AS m
WHERE ({", ".join("r." + c for c in ["grain", "period", *keys])})
    = ({", ".join("k." + c for c in ["grain", "period", *keys])})
"""
    return [upsert, extremes]


LANES = range_rollup(
    "lane_deliveries",
    ["origin_region", "destination_region"],
    ["p.origin_region", "p.destination_region"],
)
LEVELS = range_rollup("level_deliveries", ["service_level", "shard"], ["p.service_level", _SHARD])
SCAN_ROLLUPS = [
    """
INSERT INTO logistics.exception_days AS r (day, n)
SELECT CAST(e.occurred_at AT TIME ZONE 'UTC' AS date), sum(e.sign) FROM ({src}) AS e
WHERE e.kind = 'exception'
GROUP BY 1 HAVING sum(e.sign) <> 0 ORDER BY 1
ON CONFLICT (day) DO UPDATE SET n = r.n + excluded.n
"""
]
ROLLUPS = [*OLD_ROLLUPS, *LANES, *LEVELS]
UPSERTS = [LANES[0], LEVELS[0]]  # the backfill of the new tables

SOURCES = {
    "inserted": "SELECT *, 1 AS sign FROM new_rows",
    "updated": "SELECT *, -1 AS sign FROM old_rows UNION ALL SELECT *, 1 AS sign FROM new_rows",
    "deleted": "SELECT *, -1 AS sign FROM old_rows",
}
TRANSITION = {
    "inserted": ("INSERT", "NEW TABLE AS new_rows"),
    "updated": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    "deleted": ("DELETE", "OLD TABLE AS old_rows"),
}


def _function(name: str, statements: list[str], src: str) -> str:
    body = "".join(stmt.format(src=src).strip() + ";\n" for stmt in statements)
    return (
        f"CREATE OR REPLACE FUNCTION logistics.{name}() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$\nBEGIN\n{body}RETURN NULL;\nEND $$"
    )


def upgrade() -> None:
    for name, columns in TABLES:
        op.create_table(name, *columns, schema=SCHEMA)
    op.create_index(
        "ix_packages_late_delivered",
        "packages",
        ["created_at", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text(f"delivered_at > promised_by AND {NOT_LATE}"),
        sqlite_where=sa.text(f"delivered_at > promised_by AND {NOT_LATE}"),
    )
    op.create_index(
        "ix_packages_open_created",
        "packages",
        ["created_at", "id"],
        schema=SCHEMA,
        postgresql_include=["promised_by"],
        postgresql_where=sa.text(OPEN_PROMISED),
        sqlite_where=sa.text(OPEN_PROMISED),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    # No write may land between the backfill and the triggers; reads go on.
    op.execute("LOCK TABLE logistics.packages IN SHARE ROW EXCLUSIVE MODE")
    op.execute("LOCK TABLE logistics.tracking_events IN SHARE ROW EXCLUSIVE MODE")
    for stmt in UPSERTS:
        op.execute(stmt.format(src="SELECT *, 1 AS sign FROM logistics.packages"))
    for stmt in SCAN_ROLLUPS:
        op.execute(stmt.format(src="SELECT *, 1 AS sign FROM logistics.tracking_events"))
    for event, src in SOURCES.items():
        # the functions 0003's triggers on packages run, now keeping the range rollups too
        op.execute(_function(f"rollup_packages_{event}", ROLLUPS, src))
        op.execute(_function(f"rollup_scans_{event}", SCAN_ROLLUPS, src))
        what, tables = TRANSITION[event]
        op.execute(
            f"CREATE TRIGGER rollup_{event} AFTER {what} ON logistics.tracking_events "
            f"REFERENCING {tables} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION logistics.rollup_scans_{event}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for event, src in SOURCES.items():
            op.execute(f"DROP TRIGGER IF EXISTS rollup_{event} ON logistics.tracking_events")
            op.execute(f"DROP FUNCTION IF EXISTS logistics.rollup_scans_{event}()")
            op.execute(_function(f"rollup_packages_{event}", OLD_ROLLUPS, src))
    op.drop_index("ix_packages_open_created", "packages", schema=SCHEMA)
    op.drop_index("ix_packages_late_delivered", "packages", schema=SCHEMA)
    for name, _ in reversed(TABLES):
        op.drop_table(name, schema=SCHEMA)
