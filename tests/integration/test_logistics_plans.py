"""logistics at scale, checked without timing (issue 14; docs/decisions/0042).

On a fresh PostgreSQL database loaded by the bench's own loader (a few thousand packages and
their scans), the plans of the list, search and stats queries use the index meant for them
(EXPLAIN with sequential scans discouraged, as tables this small would otherwise be read
whole): a change that drops or bypasses one fails here, not only in `make bench`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from functions.logistics import service, store
from shared import db
from tests.integration.support import configure, migrated_database, reset_platform
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
    today = datetime.now(UTC).date()
    with scale.capture(db.engine(), seqscan=False) as plans:
        service.stats(day_from=today - timedelta(days=364), day_to=today)
    assert len(plans) == 7
    for plan in plans:
        assert not plan.seq_tables & BIG, plan.summary()
    used = set().union(*(p.indexes for p in plans))
    assert {"ix_packages_delivered", "ix_packages_open_promised"} <= used
    tables = set().union(*(p.tables for p in plans))
    assert {"package_counts", "open_promised"} <= tables


def _check() -> None:
    with db.transaction() as s:
        assert store.count_by_status(s) == store.live_count_by_status(s)
        now = datetime.now(UTC)
        for when in (now, now - timedelta(days=3, minutes=17), now + timedelta(days=2)):
            assert store.count_late_open(s, when) == store.live_count_late_open(s, when)


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
