"""shared.db remembers pg8000's placeholder conversion per statement: same answers as pg8000."""

from __future__ import annotations

import pytest
from pg8000 import dbapi, legacy
from pg8000.exceptions import InterfaceError

from shared import db

ORIGINAL = db._pg8000_convert()

CASES = [
    ("format", "SELECT users.id FROM users.users WHERE users.email = %s LIMIT %s", ("a@b", 1)),
    ("format", "SELECT '%s' AS lit, \"odd%\" FROM t WHERE x LIKE 'a%%' AND y = %s", (2,)),
    ("format", "SELECT 100 %% 7, $$%s$$, E'it''s %s', x FROM t WHERE a = %s -- %s\n", (3,)),
    ("format", "SELECT 1", ()),
    ("named", "SELECT :a, :b, :a, x::float FROM t WHERE y = :b_2", {"a": 1, "b": 2, "b_2": 3}),
    ("pyformat", "SELECT %(a)s, %(b)s, %(a)s FROM t", {"a": 1, "b": 2}),
    ("pyformat", "SELECT 1", {}),
    ("numeric", "SELECT :1, :2, x::int FROM t", (1, 2)),
    ("qmark", "SELECT ?, ? FROM t", (1, 2)),
]


@pytest.mark.parametrize(("style", "query", "args"), CASES)
def test_same_as_pg8000(style: str, query: str, args: object) -> None:
    want = ORIGINAL(style, query, args)
    assert db._convert_paramstyle(style, query, args) == want
    assert db._convert_paramstyle(style, query, args) == want  # and from the cache


def test_sequence_arguments_are_passed_through_unchanged() -> None:
    args = ["x", 1]
    assert db._convert_paramstyle("format", "SELECT %s, %s", args)[1] is args


def test_new_arguments_each_time() -> None:
    query = "SELECT %(a)s, %(b)s"
    assert db._convert_paramstyle("pyformat", query, {"a": 1, "b": 2})[1] == (1, 2)
    assert db._convert_paramstyle("pyformat", query, {"a": 3, "b": 4})[1] == (3, 4)


def test_errors_are_pg8000s() -> None:
    with pytest.raises(InterfaceError):
        db._convert_paramstyle("format", "SELECT %d", (1,))
    with pytest.raises(KeyError):
        db._convert_paramstyle("named", "SELECT :missing", {})


def test_both_cursors_use_it() -> None:
    db._cache_pg8000_paramstyle()
    assert legacy.convert_paramstyle is db._convert_paramstyle
    assert dbapi.convert_paramstyle is db._convert_paramstyle
    assert ORIGINAL.__module__ == "pg8000.dbapi"
    assert db._pg8000_convert() is ORIGINAL
