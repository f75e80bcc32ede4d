"""production at scale, checked without timing (issue 14; docs/decisions/0042).

On a fresh PostgreSQL database loaded by the bench's own loader (a few thousand batches):
- the plans of the list and search queries use the index meant for them (EXPLAIN with
  sequential scans discouraged, as a table this small would otherwise be read whole), so a
  change that drops or bypasses an index fails here, not only in `make bench`;
- the metrics read the rollup tables only, never `batches` or `batch_transitions`;
- the rollups equal the aggregates of the source tables: after the bulk load (recounted by
  `store.rebuild_rollups`) and after batches were created, edited and moved to completion
  through the service (kept by the triggers).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from functions.production import model, service, store
from shared import db, trigram
from tests.integration.support import (
    configure,
    migrated_database,
    reset_platform,
    statistics_target,
)
from tools import bench_production, scale

ROWS = 3_000
BIG = {"batches", "batch_transitions"}


@pytest.fixture(scope="module")
def loaded(pg_url: str) -> Iterator[str]:
    with migrated_database(pg_url, "production") as url:
        bench_production.load(url, 1, ROWS)
        yield url


@pytest.fixture()
def env(loaded: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    configure(monkeypatch, DATABASE_URL=loaded)
    yield
    reset_platform()


_ARGS: dict[str, object] = dict(
    q=None,
    statuses=None,
    stages=None,
    product=None,
    planned_from=None,
    planned_to=None,
    created_from=None,
    created_to=None,
    after=None,
    limit=21,
)


def _search_plans(**filters: object) -> list[scale.Plan]:
    args = {**_ARGS, **filters}
    with scale.capture(db.engine(), seqscan=False) as plans, db.transaction() as s:
        store.search(s, **args)  # type: ignore[arg-type]
    return plans


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "ix_batches_created"),
        ({"after": (datetime(2026, 1, 1, tzinfo=UTC), "x")}, "ix_batches_created"),
        ({"statuses": ["in_progress"]}, "ix_batches_status"),
        ({"stages": ["coating"]}, "ix_batches_stage"),
        ({"product": bench_production.PRODUCTS[3]}, "ix_batches_product"),
        ({"q": "BENCH-0001234"}, "ix_batches_number_trgm"),
        ({"q": "0042"}, "ix_batches_number_trgm"),
    ],
    ids=["first-page", "by-cursor", "status", "stage", "product", "q-number", "q-part"],
)
def test_list_and_search_use_their_index(env: None, filters: dict, index: str) -> None:
    (plan,) = _search_plans(**filters)
    assert index in plan.indexes, plan.summary()
    assert not plan.seq_tables & BIG, plan.summary()


def test_a_whole_number_leaves_the_shared_prefix_out_of_the_index(env: None) -> None:
    """Every number starts BENCH-000: those trigrams would cost a lookup in a list of every row
    for each candidate (shared/trigram.py); the condition keeps the rest of the number."""
    (plan,) = _search_plans(q="BENCH-0001234")
    (cond,) = plan.conds
    assert "1234" in cond and "BENCH" not in cond, cond
    with db.transaction() as s:
        found = store.search(s, **{**_ARGS, "q": "BENCH-0001234"})  # type: ignore[arg-type]
    assert [b.batch_number for b in found] == ["BENCH-0001234"]


def test_the_searched_column_samples_what_the_search_reads(env: None) -> None:
    assert statistics_target(store.NUMBER_TRGM) == trigram.STATISTICS  # the migration's


def test_metrics_read_only_the_rollups(env: None) -> None:
    with scale.capture(db.engine()) as plans:
        service.metrics(day_from=date(2025, 1, 1), day_to=date(2026, 12, 31))
        service.metrics(
            day_from=date(2025, 1, 1),
            day_to=date(2026, 12, 31),
            product=bench_production.PRODUCTS[0],
        )
    assert len(plans) == 8  # four queries per request
    for plan in plans:
        assert plan.tables, plan.statement
        assert not plan.tables & BIG, plan.summary()


def _live_equals_rollups() -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    end = datetime.now(UTC) + timedelta(days=2)
    end = datetime(end.year, end.month, end.day, tzinfo=UTC)
    with db.transaction() as s:
        for product in (None, bench_production.PRODUCTS[5]):
            assert store.count_by_status_and_stage(s, product) == store.live_counts(s, product)
            assert store.completed_per_day(s, start, end, product) == store.live_completed_per_day(
                s, start, end, product
            )
            rolled = store.yield_by_product(s, start, end, product)
            live = store.live_yield_by_product(s, start, end, product)
            assert [(y.product, y.batches) for y in rolled] == [
                (y.product, y.batches) for y in live
            ]
            for a, b in zip(rolled, live, strict=True):
                assert a.yield_avg == pytest.approx(b.yield_avg)
                assert (a.yield_min, a.yield_max) == pytest.approx((b.yield_min, b.yield_max))
            cycles, live_cycles = (
                store.cycle_times(s, start, end, product),
                store.live_cycle_times(s, start, end, product),
            )
            assert cycles.keys() == live_cycles.keys()
            for stage, (n, mean) in cycles.items():
                assert n == live_cycles[stage][0]
                assert mean == pytest.approx(live_cycles[stage][1])


def test_rollups_equal_the_source_tables(env: None, pubsub_emulator: object) -> None:
    _live_equals_rollups()  # after the bulk load: recounted
    product = bench_production.PRODUCTS[5]
    made = []
    for i in range(3):
        b = service.create_batch(
            batch_number=f"PLAN-{secrets.token_hex(3).upper()}-{i}",
            product=product,
            planned_quantity=1000.0,
            unit="tablets",
            notes=None,
            planned_start=None,
            actor="plans-test",
        )
        made.append(b)
    # a planned batch may change product: its count moves with it
    service.update_batch(
        made[2].id, {"product": bench_production.PRODUCTS[6]}, expected_version=None, actor="t"
    )
    batch = made[0]
    service.transition(batch.id, model.Target("status", "in_progress"), reason="go", actor="t")
    for stage in model.STAGES[1:]:
        service.transition(batch.id, model.Target("stage", stage), reason="next", actor="t")
    for status in ("qa_hold", "released"):
        service.transition(batch.id, model.Target("status", status), reason="qa", actor="t")
    service.transition(
        batch.id,
        model.Target("status", "completed"),
        reason="done",
        actor="t",
        actual_quantity=990.0,
    )
    service.transition(made[1].id, model.Target("status", "in_progress"), reason="go", actor="t")
    _live_equals_rollups()  # after writes through the service: kept by the triggers
