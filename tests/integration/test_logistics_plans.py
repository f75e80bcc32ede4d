"""logistics at scale, checked without timing (issue 14; docs/decisions/0042).

On a fresh PostgreSQL database loaded by the bench's own loader (a few thousand packages and
their scans), the plans of the list, search and stats queries use the index meant for them
(EXPLAIN with sequential scans discouraged, as tables this small would otherwise be read
whole): a change that drops or bypasses one fails here, not only in `make bench`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from functions.logistics import service, store
from shared import db
from shared.migrate import upgrade
from tests.integration.support import configure, reset_platform
from tools import bench_logistics, scale

ROWS = 3_000
BIG = {"packages", "tracking_events"}


@pytest.fixture(scope="module")
def loaded(pg_url: str) -> Iterator[str]:
    base = make_url(pg_url)
    name = f"{base.database}_l{secrets.token_hex(3)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    mp = pytest.MonkeyPatch()
    try:
        configure(mp, DATABASE_URL=url)
        upgrade("logistics")
        bench_logistics.bulk_load(url, 1, ROWS)
        yield url
    finally:
        reset_platform()
        mp.undo()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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


def test_stats_read_indexes_only(env: None) -> None:
    today = datetime.now(UTC).date()
    with scale.capture(db.engine(), seqscan=False) as plans:
        service.stats(day_from=today - timedelta(days=364), day_to=today)
    assert len(plans) == 6
    for plan in plans:
        assert not plan.seq_tables & BIG, plan.summary()
        assert plan.indexes, plan.summary()
    used = set().union(*(p.indexes for p in plans))
    assert {
        "ix_packages_delivered",
        "ix_packages_open_promised",
        "ix_packages_status_count",
    } <= used
