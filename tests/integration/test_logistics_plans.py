"""logistics at scale, checked without timing (issue 14; docs/decisions/0042).

On a fresh PostgreSQL database loaded by the bench's own loader (a few thousand packages and
their scans), the plans of the list, search and stats queries use the index meant for them
(EXPLAIN with sequential scans discouraged, as tables this small would otherwise be read
whole): a change that drops or bypasses one fails here, not only in `make bench`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import and_, or_, select, text

from functions.logistics import service, store
from shared import db, trigram
from tests.integration.support import (
    configure,
    migrated_database,
    reset_platform,
    statistics_target,
)
from tools import bench_logistics, scale

ROWS = 3_000
BIG = {"packages", "tracking_events"}


@pytest.fixture(scope="module")
def loaded(pg_url: str) -> Iterator[str]:
    with migrated_database(pg_url, "logistics") as url:
        bench_logistics.bulk_load(url, 1, ROWS)
        yield url


@pytest.fixture()
def env(loaded: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    configure(monkeypatch, DATABASE_URL=loaded)
    yield
    reset_platform()


def _search_plans(**filters: object) -> list[scale.Plan]:
    with scale.capture(db.engine(), seqscan=False) as plans, db.transaction() as s:
        store.search(s, after=None, limit=21, **filters)
    return plans


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "ix_packages_created"),
        ({"q": "BL000000001234"}, "ux_packages_tracking_number"),
        ({"q": "recipient 1234"}, "ix_packages_recipient_trgm"),
        ({"origin_region": "FR-IDF"}, "ix_packages_origin_region"),
    ],
    ids=["first-page", "q-tracking-number", "q-recipient", "origin-region"],
)
def test_list_and_search_use_their_index(env: None, filters: dict, index: str) -> None:
    (plan,) = _search_plans(**filters)
    assert index in plan.indexes, plan.summary()
    assert not plan.seq_tables & BIG, plan.summary()


def test_the_searched_column_samples_what_the_search_reads(env: None) -> None:
    assert statistics_target(store.RECIPIENT_TRGM) == trigram.STATISTICS  # the migration's


def test_a_narrow_promise_window_is_read_through_its_index(env: None) -> None:
    """Packages promised within a week, months ago: through ix_packages_promised, not a walk of
    the created_at order from the newest (the two are correlated: the walk reads most of the
    table before the first match)."""
    end = datetime.now(UTC) - timedelta(days=200)
    (plan,) = _search_plans(promised_after=end - timedelta(days=7), promised_before=end)
    assert "ix_packages_promised" in plan.indexes, plan.summary()
    assert "ix_packages_created" not in plan.indexes, plan.summary()
    # the fence that keeps the planner from the created_at walk at scale (on a table this
    # small it would pick the promise index anyway)
    assert "AS MATERIALIZED" in plan.statement, plan.statement


@pytest.mark.parametrize(
    "filters",
    [{"statuses": ["in_transit"]}, {"service_levels": ["express"]}],
    ids=["status", "service-level"],
)
def test_common_filters_walk_an_index(env: None, filters: dict) -> None:
    """A filter that matches many packages may walk the created_at index (in page order) and
    stop at the page's last match; never a sequential scan."""
    (plan,) = _search_plans(**filters)
    assert plan.indexes, plan.summary()
    assert not plan.seq_tables & BIG, plan.summary()


def test_stats_read_indexes_and_rollups_only(env: None) -> None:
    """A year of stats reads rollup rows only; of the big tables, only the current hour's
    late packages (a one-hour range of the partial index)."""
    today = datetime.now(UTC).date()
    with scale.capture(db.engine(), seqscan=False) as plans:
        service.stats(day_from=today - timedelta(days=364), day_to=today)
    assert len(plans) == 7
    for plan in plans:
        assert not plan.seq_tables & BIG, plan.summary()
    big = [p for p in plans if p.tables & BIG]
    assert len(big) == 1 and big[0].indexes == {"ix_packages_open_promised"}, [
        p.summary() for p in big
    ]
    tables = set().union(*(p.tables for p in plans))
    assert {
        "package_counts",
        "open_promised",
        "lane_deliveries",
        "level_deliveries",
        "exception_days",
    } <= tables


def test_the_late_list_reads_its_partial_indexes(env: None) -> None:
    """late=true: a page of each partial index (delivered late; open past the promise),
    merged, not a walk of every package in the created_at order."""
    (plan,) = _search_plans(late=True, now=datetime.now(UTC))
    assert {"ix_packages_late_delivered", "ix_packages_open_created"} <= plan.indexes, (
        plan.summary()
    )
    assert "ix_packages_created" not in plan.indexes, plan.summary()
    assert not plan.seq_tables & BIG, plan.summary()


def test_the_late_list_equals_the_late_clause(env: None) -> None:
    now = datetime.now(UTC)
    p = store.packages.c
    order = (p.created_at.desc(), p.id.desc())
    with db.transaction() as s:
        merged = store.search(s, after=None, limit=50, late=True, now=now)
        cut = merged[20]
        after = store.search(
            s, after=(cut.created_at, cut.id), limit=30, late=True, now=now, origin_region="FR-IDF"
        )
        expected = (
            s.execute(select(p.id).where(store.late_clause(now)).order_by(*order).limit(50))
            .scalars()
            .all()
        )
        expected_after = (
            s.execute(
                select(p.id)
                .where(
                    store.late_clause(now),
                    p.origin_region == "FR-IDF",
                    or_(
                        p.created_at < cut.created_at,
                        and_(p.created_at == cut.created_at, p.id < cut.id),
                    ),
                )
                .order_by(*order)
                .limit(30)
            )
            .scalars()
            .all()
        )
    assert [x.id for x in merged] == expected and len(expected) == 50
    assert [x.id for x in after] == expected_after and expected_after


def _check() -> None:
    today = datetime.now(UTC).date()
    with db.transaction() as s:
        assert store.count_by_status(s) == store.live_count_by_status(s)
        now = datetime.now(UTC)
        for when in (now, now - timedelta(days=3, minutes=17), now + timedelta(days=2)):
            assert store.count_late_open(s, when) == store.live_count_late_open(s, when)
        # ranges of days: within a month, across month ends, a year, whole months only
        first = today.replace(day=1)
        for lo, hi in [
            (today - timedelta(days=29), today),
            (today - timedelta(days=364), today),
            (today - timedelta(days=730), today - timedelta(days=400)),
            (first - timedelta(days=1), first),
            ((first - timedelta(days=40)).replace(day=1), first - timedelta(days=1)),
            (today, today),
        ]:
            start = datetime.combine(lo, time(), UTC)
            end = datetime.combine(hi + timedelta(days=1), time(), UTC)
            assert store.deliveries(s, start, end) == store.live_deliveries(s, start, end)
            for keys in (("origin_region", "destination_region"), ("service_level",)):
                rolled = store.transit_by(s, start, end, *keys)
                live = store.live_transit_by(s, start, end, *keys)
                assert [r[:2] for r in rolled] == [r[:2] for r in live], (lo, hi, keys)
                for a, b in zip(rolled, live, strict=True):
                    assert a[2:] == pytest.approx(b[2:], rel=1e-9), (lo, hi, keys, a[0])
            assert store.exceptions_per_day(s, start, end) == store.live_exceptions_per_day(
                s, start, end
            )


def test_range_periods_cover_each_day_once() -> None:
    first = date(2026, 1, 1)
    for lo_offset in range(0, 70, 3):
        for length in (0, 1, 27, 31, 45, 364, 400):
            lo = first + timedelta(days=lo_offset)
            hi = lo + timedelta(days=length)
            covered: list[date] = []
            for grain, a, b in store.range_periods(lo, hi):
                if grain == "month":
                    assert a.day == 1 and b.day == 1
                day = a
                while day < b:
                    covered.append(day)
                    day += timedelta(days=1)
            assert sorted(covered) == [lo + timedelta(days=i) for i in range(length + 1)]


def test_rollups_equal_the_table(env: None) -> None:
    _check()  # after the bulk load, kept by the triggers statement by statement
    with db.transaction() as s:
        # a delivery, a return, a promise moved, a package deleted with its scans
        s.execute(
            text(
                "UPDATE logistics.packages SET status = 'delivered', delivered_at = now() "
                "WHERE id IN (SELECT id FROM logistics.packages WHERE delivered_at IS NULL "
                "AND promised_by < now() ORDER BY id LIMIT 5)"
            )
        )
        s.execute(
            text(
                "UPDATE logistics.packages SET status = 'returned' WHERE id IN (SELECT id FROM "
                "logistics.packages WHERE status = 'in_transit' ORDER BY id LIMIT 3)"
            )
        )
        s.execute(
            text(
                "UPDATE logistics.packages SET promised_by = promised_by - interval '3 days' "
                "WHERE id IN (SELECT id FROM logistics.packages WHERE delivered_at IS NULL "
                "ORDER BY id DESC LIMIT 20)"
            )
        )
        victim = s.execute(
            text("SELECT id FROM logistics.packages WHERE status = 'exception' LIMIT 1")
        ).scalar_one()
        s.execute(
            text("DELETE FROM logistics.tracking_events WHERE package_id = :id"), {"id": victim}
        )
        s.execute(text("DELETE FROM logistics.packages WHERE id = :id"), {"id": victim})
    _check()
    with db.transaction() as s:
        # the fastest and the slowest deliveries of the last weeks: their pickup moved (the
        # extremes of their day and month are recounted), one undelivered, one delivered a day
        # later
        def ids(order: str) -> list[str]:
            return list(
                s.execute(
                    text(
                        "SELECT id FROM logistics.packages WHERE picked_up_at IS NOT NULL "
                        "AND delivered_at > now() - interval '20 days' "
                        f"ORDER BY delivered_at - picked_up_at {order}, id LIMIT 3"
                    )
                ).scalars()
            )

        fastest, slowest = ids("ASC"), ids("DESC")
        s.execute(
            text(
                "UPDATE logistics.packages SET picked_up_at = picked_up_at + interval '1 hour' "
                "WHERE id = ANY(:ids)"
            ),
            {"ids": [*fastest[:2], *slowest[:2]]},
        )
        s.execute(
            text(
                "UPDATE logistics.packages SET status = 'out_for_delivery', delivered_at = NULL "
                "WHERE id = :id"
            ),
            {"id": slowest[2]},
        )
        s.execute(
            text(
                "UPDATE logistics.packages SET delivered_at = delivered_at + interval '1 day' "
                "WHERE id = :id"
            ),
            {"id": fastest[2]},
        )
        # a scan that leaves a delivered package's facts as they were
        s.execute(
            text(
                "UPDATE logistics.packages SET last_scan_at = now(), version = version + 1 "
                "WHERE id = :id"
            ),
            {"id": fastest[0]},
        )
        # exception scans: some become exceptions, some are deleted
        s.execute(
            text(
                "UPDATE logistics.tracking_events SET kind = 'exception' WHERE id IN (SELECT id "
                "FROM logistics.tracking_events WHERE kind = 'arrival' ORDER BY id LIMIT 7)"
            )
        )
        s.execute(
            text(
                "DELETE FROM logistics.tracking_events WHERE id IN (SELECT id FROM "
                "logistics.tracking_events WHERE kind = 'exception' ORDER BY id DESC LIMIT 4)"
            )
        )
    _check()
    with db.transaction() as s:
        store.rebuild_rollups(s)
    _check()
