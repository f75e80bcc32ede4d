"""shared.trigram on a real PostgreSQL: the match is a plain "contains" whatever part of the needle
the index condition uses, and the trigrams of a prefix shared by most values stay out of it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from shared import db, trigram
from tools import scale

md = MetaData(schema="trgm_test")
items = Table(
    "items",
    md,
    Column("id", Integer, primary_key=True),
    Column("number", String(40), nullable=False),
)
NUMBER_TRGM = Index(
    "ix_items_number_trgm",
    items.c.number,
    postgresql_using="gin",
    postgresql_ops={"number": "gin_trgm_ops"},
)
# as maintenance's titles and logistics' recipients: on an expression of the column
LOWER_TRGM = Index(
    "ix_items_lower_number_trgm",
    func.lower(items.c.number).label("lower_number"),
    postgresql_using="gin",
    postgresql_ops={"lower_number": "gin_trgm_ops"},
)
ROWS = 20_000
# Most numbers share the prefix PB-2026-; a few are odd on purpose (LIKE's wildcards, a prefix
# of another number, lower case)
ODD = [
    "PB-2026-00_12",
    "PB-2026-0%12",
    "X-PB-2026-000123",
    "PB-2026-0001234",
    "pb-2026-000123",
    "LOT 0042 spare",
]


def _numbers() -> list[str]:
    return [f"PB-2026-{i:06d}" for i in range(1, ROWS + 1)] + [f"LOT-{i:04d}" for i in range(200)]


@pytest.fixture(scope="module")
def engine(pg_url: str) -> Iterator[object]:
    eng = create_engine(pg_url)
    with eng.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        conn.execute(text("DROP SCHEMA IF EXISTS trgm_test CASCADE"))
        conn.execute(text("CREATE SCHEMA trgm_test"))
        md.create_all(conn)
        conn.execute(items.insert(), [{"number": n} for n in _numbers() + ODD])
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE trgm_test.items"))
    trigram.forget()
    yield eng
    trigram.forget()
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA trgm_test CASCADE"))
    eng.dispose()


def _found(engine: object, needle: str) -> list[str]:
    with Session(engine) as s:  # type: ignore[call-overload]
        found = trigram.match(s, items.c.number, needle, index=NUMBER_TRGM)
        return sorted(s.execute(select(items.c.number).where(found.cond)).scalars())


@pytest.mark.parametrize(
    "needle",
    [
        "PB-2026-000123",  # a whole number, also inside two others
        "PB-2026-0%12",  # LIKE's wildcards are literal
        "PB-2026-00_12",
        "2026-0199",
        "PB-2026-",  # the shared prefix itself
        "LOT-0042",
        "PB-2026-999999",  # nothing
        "0123",
        "PB",
        " 0042 ",  # a word boundary kept at the end ("42 " is rare), dropped at the start
        "-LOT",  # one kept at the start ("  l" and " lo" are rare)
    ],
)
def test_the_match_is_contains_whatever_the_index_condition(engine: object, needle: str) -> None:
    expected = sorted(n for n in _numbers() + ODD if needle in n)
    assert _found(engine, needle) == expected


def test_a_shared_prefix_is_left_out_of_the_index_condition(engine: object) -> None:
    with scale.capture(engine, seqscan=False) as plans:
        assert _found(engine, "PB-2026-000123") == [
            "PB-2026-000123",
            "PB-2026-0001234",
            "X-PB-2026-000123",
        ]
    (plan,) = plans  # the statistics read is not explained
    assert "ix_items_number_trgm" in plan.indexes, plan.summary()
    (cond,) = plan.conds
    assert "000123" in cond and "2026" not in cond, cond


def test_rare_needles_keep_their_whole_pattern(engine: object) -> None:
    with Session(engine) as s:  # type: ignore[call-overload]
        sample = trigram._sample(s, NUMBER_TRGM)
    assert sample, "ANALYZE left no sample in pg_stats"
    assert trigram.index_parts("LOT-0042", sample) == ["LOT-0042"]
    (part,) = trigram.index_parts("PB-2026-000123", sample)
    assert part.endswith("000123") and "2026" not in part, part
    assert part[0].isdigit(), part  # not "-000123": "  0", a word's start, is in every value
    # a boundary stays where its padded trigrams are rare: "42 " ends 1 number in 100, while
    # "  0" starts every one
    assert trigram.index_parts(" 0042 ", sample) == ["0042 "]
    # the prefix alone: no part is rarer, so the whole needle (it matches most rows anyway)
    assert trigram.index_parts("PB-2026-", sample) == ["PB-2026-"]


def _sample(bounds: list[str]) -> trigram.Sample:
    return trigram._folded(None, None, bounds)


def test_index_parts_without_statistics_or_letters() -> None:
    common = _sample([f"pb-2026-{i:06d}" for i in range(100)])
    never_analyzed = trigram.Sample()
    assert trigram.index_parts("PB-2026-000123", never_analyzed) == ["PB-2026-000123"]
    assert trigram.index_parts("PB-", common) == ["PB-"]  # too short to leave anything out
    # what is rare has no 3 letters or digits in a row, so no trigram: keep the whole needle
    assert trigram.index_parts("PB-2026-9-9-9", common) == ["PB-2026-9-9-9"]


def test_index_parts_are_apart_and_in_order() -> None:
    # "ord", "rde", "der", "er " in every title, then a rare number, a common word, a rare one
    sample = _sample([f"bench order {i} bearing" for i in range(100)])
    assert trigram.index_parts("order 4567 bearing tag", sample) == ["r 4567 b", "ng tag"]
    # a word's end before a boundary is kept when rare ("67 "), dropped when common ("ng ")
    assert trigram.index_parts("order 4567 ", sample) == ["r 4567 "]
    assert trigram.index_parts("order 4567 bearing ", sample) == ["r 4567 b", "ng"]


@pytest.mark.parametrize(("needle", "rare"), [("PB-2026-004567", True), ("PB-2026-01", False)])
def test_a_rare_needles_page_is_gathered_first_and_the_same(
    engine: object, needle: str, rare: bool
) -> None:
    with Session(engine) as s:  # type: ignore[call-overload]
        found = trigram.match(s, items.c.number, needle, index=NUMBER_TRGM)
        assert found.rare is rare
        stmt = select(items).where(found.cond)
        pages = []
        for gather in (False, True):
            page = db.newest_first(stmt, [items.c.id], 2, gather=gather)
            assert ("MATERIALIZED" in str(page)) is gather
            pages.append(s.execute(page).all())
    assert pages[0] == pages[1]
    assert len(pages[0]) == (1 if rare else 2)


def test_a_database_user_with_select_reads_the_sample(engine: object, pg_url: str) -> None:
    """The deployments' database users are granted SELECT, they do not own the tables: the
    sample of an expression index is hidden from them in pg_stats, its column's is not."""
    role = f"trgm_reader_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA trgm_test TO {role}"))
        conn.execute(text(f"GRANT SELECT ON trgm_test.items TO {role}"))
    reader = create_engine(make_url(pg_url).set(username=role, password=None))
    try:
        trigram.forget()
        with Session(reader) as s:
            assert trigram._sample(s, LOWER_TRGM), "no sample for a user with SELECT"
            found = trigram.match(s, func.lower(items.c.number), "pb-2026-004567", index=LOWER_TRGM)
            assert found.rare
            rows = s.execute(select(items.c.number).where(found.cond)).scalars().all()
        assert rows == ["PB-2026-004567"]
    finally:
        reader.dispose()
        trigram.forget()
        with engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
