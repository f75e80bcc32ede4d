"""maintenance at scale, checked without timing (issue 14; docs/decisions/0042).

On a fresh PostgreSQL database loaded by the bench's own loader (a few thousand work orders):
- the plans of the list and search queries use the index meant for them (EXPLAIN with
  sequential scans discouraged, as a table this small would otherwise be read whole), so a
  change that drops or bypasses an index fails here, not only in `make bench`;
- the stats read the rollup tables only, never `work_orders`;
- the rollups equal the aggregates of the table: after the bulk load (recounted) and after
  orders were created, moved and backdated (kept by the triggers).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from functions.maintenance import service, store
from shared import db, trigram
from tests.integration.support import (
    configure,
    migrated_database,
    reset_platform,
    statistics_target,
)
from tools import bench_maintenance, scale

ROWS = 3_000
BIG = {"work_orders"}


@pytest.fixture(scope="module")
def loaded(pg_url: str) -> Iterator[tuple[str, list[str]]]:
    with migrated_database(pg_url, "maintenance") as url:
        eng = create_engine(url, poolclass=NullPool)
        with eng.begin() as conn:
            assets = bench_maintenance._assets(conn, "PLAN")
        eng.dispose()
        bench_maintenance.insert_work_orders(url, ROWS, assets, str(uuid.uuid4()))
        yield url, assets


@pytest.fixture()
def assets(loaded: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    configure(monkeypatch, DATABASE_URL=loaded[0])
    yield loaded[1]
    reset_platform()


def _search_plans(**filters: object) -> list[scale.Plan]:
    args: dict[str, object] = dict(
        statuses=None,
        priorities=None,
        types=None,
        asset_id=None,
        assignee_id=None,
        overdue=None,
        q=None,
        today=date.today(),
        after=None,
        limit=51,
    )
    args.update(filters)
    with scale.capture(db.engine(), seqscan=False) as plans, db.transaction() as s:
        store.search_work_orders(s, **args)  # type: ignore[arg-type]
    return plans


CASES = [
    ({}, "ux_work_orders_number"),
    ({"after": (1500,)}, "ux_work_orders_number"),
    ({"q": "order 1234 "}, "ix_work_orders_title_trgm"),
    ({"q": "WO-1234"}, "ux_work_orders_number"),
    # the newest orders are not due yet and most older ones are finished: walk the active ones
    ({"overdue": True}, "ix_work_orders_active_number"),
]


@pytest.mark.parametrize(
    ("filters", "index"),
    CASES,
    ids=["first-page", "by-cursor", "q-rare", "q-number", "overdue"],
)
def test_list_and_search_use_their_index(assets: list[str], filters: dict, index: str) -> None:
    page, *_joins = _search_plans(**filters)
    assert index in page.indexes, page.summary()
    assert not page.seq_tables & BIG, page.summary()


def test_words_in_every_title_are_left_out_of_the_index(assets: list[str]) -> None:
    """Every bench title reads "Bench order N ...": the trigrams of "order" would cost a lookup
    in a list of every row for each candidate (shared/trigram.py)."""
    page, *_ = _search_plans(q="order 1234 ")
    (cond,) = [c for c in page.conds if "~~" in c]
    assert "1234" in cond and "order" not in cond, cond


def test_the_searched_column_samples_what_the_search_reads(assets: list[str]) -> None:
    assert statistics_target(store.TITLE_TRGM) == trigram.STATISTICS  # the migration's


def test_list_by_asset_uses_its_index(assets: list[str]) -> None:
    page, *_ = _search_plans(asset_id=assets[0])
    assert "ix_work_orders_asset" in page.indexes, page.summary()


@pytest.mark.parametrize(
    "filters",
    [
        {"statuses": ["on_hold"]},
        {"priorities": ["urgent"]},
        {"q": "bearing"},
        {"types": ["inspection"]},
    ],
    ids=["status", "priority", "q-common-word", "type"],
)
def test_common_filters_walk_an_index(assets: list[str], filters: dict) -> None:
    """A filter that matches many orders may walk the number index (in page order) and stop
    at the page's last match; never a sequential scan."""
    page, *_ = _search_plans(**filters)
    assert page.indexes & {
        "ux_work_orders_number",
        "ix_work_orders_title_trgm",
        "ix_work_orders_priority",
        "ix_work_orders_status",
    }, page.summary()
    assert not page.seq_tables & BIG, page.summary()


def test_stats_read_only_the_rollups(assets: list[str]) -> None:
    with scale.capture(db.engine()) as plans:
        service.stats()
    on_orders = [p for p in plans if "work_orders" in p.tables]
    assert not on_orders, [p.summary() for p in on_orders]
    rollups = {t.name for t in store.ROLLUP_TABLES}
    assert rollups <= {t for p in plans for t in p.tables}


def _check() -> None:
    today = datetime.now(UTC).date()
    first = today - timedelta(days=200)
    with db.transaction() as s:
        assert sorted(store.work_order_counts(s)) == sorted(store.live_work_order_counts(s))
        for day in (today, today - timedelta(days=30), today + timedelta(days=10)):
            assert store.overdue_count(s, day) == store.live_overdue_count(s, day)
        (mean, n), (live_mean, live_n) = (
            store.mean_time_to_repair(s),
            store.live_mean_time_to_repair(s),
        )
        assert n == live_n and mean == pytest.approx(live_mean, abs=0.011)
        assert store.daily_trend(s, first, 215) == store.live_daily_trend(s, first, 215)


def test_rollups_equal_the_table(assets: list[str]) -> None:
    _check()  # after the bulk load: recounted
    with db.transaction() as s:
        # writes the triggers must follow: an order resolved, one reopened, one moved back in
        # time, one deleted, a due date moved, one inserted overdue
        s.execute(
            text(
                "UPDATE maintenance.work_orders SET status = 'completed', "
                "completed_at = now(), resolved_at = now() WHERE number = ("
                "SELECT min(number) FROM maintenance.work_orders WHERE resolved_at IS NULL)"
            )
        )
        s.execute(
            text(
                "UPDATE maintenance.work_orders SET status = 'open', completed_at = NULL, "
                "closed_at = NULL, resolved_at = NULL WHERE number = ("
                "SELECT max(number) FROM maintenance.work_orders WHERE status = 'closed')"
            )
        )
        s.execute(
            text(
                "UPDATE maintenance.work_orders SET created_at = created_at - interval '20 days',"
                " due_date = due_date - 30 WHERE number IN (SELECT number FROM "
                "maintenance.work_orders ORDER BY number DESC LIMIT 50)"
            )
        )
        s.execute(
            text(
                "DELETE FROM maintenance.work_orders WHERE number = (SELECT min(number) "
                "FROM maintenance.work_orders)"
            )
        )
    _check()  # kept by the triggers
