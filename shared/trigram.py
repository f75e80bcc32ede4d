"""`contains(conn, expr, needle, index=...)`: a case-sensitive "contains" match of `needle` in
`expr` served by a pg_trgm GIN index, with the trigrams that would cost more than they filter left
out of the index condition.

GIN finds the rows that have every trigram of the pattern. It reads the rarest trigrams' lists
first and then looks up each candidate row in the list of every other trigram. A trigram found in
most rows (the shared prefix of batch numbers like `BENCH-0500000`, a word in every title) filters
out almost nothing, but it still costs a lookup in a list of a million entries for each candidate.
At 1M rows a whole batch number took 13 ms in the index instead of 1 ms. pg_trgm keeps no
per-trigram statistics, so this module estimates them from the column's ANALYZE sample (its most
common values and histogram bounds in `pg_stats`, read once per `STATS_TTL_S` per process).

The index condition is then `LIKE '%part%part%'` over the parts of the needle made of its
3-character windows found in fewer than `COMMON` of the sampled values (overlapping windows joined
into one part, so the parts are apart and in the needle's order), if they hold 3 letters or digits
in a row (pg_trgm's trigrams are within words). The whole needle is checked by `strpos`, which no
index serves, on the rows the index finds. Every row that contains the needle contains its parts
in that order, so the result is the same match. Otherwise (no statistics yet, a short needle, one
with nothing common, SQLite) it is the plain `LIKE '%needle%'` with `%` and `_` escaped.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Column, ColumnElement, Index, func, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

COMMON = 0.5  # a window in at least this share of the sampled values is left out of the index
STATS_TTL_S = 600.0  # how long one process uses a column's sample before reading it again

Sample = list[tuple[str, float]]  # (value folded to lower case, its share of the rows)

_samples: dict[tuple[str, ...], tuple[float, Sample]] = {}  # by database and relation
_lock = threading.Lock()


def contains(
    conn: Session | Connection, expr: Any, needle: str, *, index: Index
) -> ColumnElement[bool]:
    """`expr` contains `needle` (both as stored: fold the case of the needle as the expression
    does), for the pg_trgm index `index` on `expr`; `conn` is where the query will run."""
    plain = expr.contains(needle, autoescape=True)
    if _engine(conn).dialect.name != "postgresql":
        return plain
    parts = index_parts(needle, _sample(conn, index))
    if parts == [needle]:
        return plain
    pattern = "%" + "%".join(_escaped(p) for p in parts) + "%"
    return expr.like(pattern, escape="/") & (func.strpos(expr, needle) > 0)


def index_parts(needle: str, sample: Sample) -> list[str]:
    """The parts of `needle`, in order and apart, the index condition should look for: its
    3-character windows rarer than `COMMON` in `sample`, overlapping ones joined (`[needle]` when
    none is worth leaving out)."""
    if len(needle) < 4 or not sample:
        return [needle]
    folded = needle.lower()
    spans: list[list[int]] = []  # [start, end) of the parts in the needle
    for i in range(len(folded) - 2):
        if _share(folded[i : i + 3], sample) >= COMMON:
            continue
        if spans and spans[-1][1] >= i:
            spans[-1][1] = i + 3
        else:
            spans.append([i, i + 3])
    parts = [needle[a:b] for a, b in spans]
    if not any(p[i : i + 3].isalnum() for p in parts for i in range(len(p) - 2)):
        return [needle]  # no trigram in what is left: the index could not narrow anything
    return parts


def _escaped(part: str) -> str:
    return part.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _share(window: str, sample: Sample) -> float:
    return sum(weight for value, weight in sample if window in value)


def _sample(conn: Session | Connection, index: Index) -> Sample:
    schema, relation, attname = _stats_key(index)
    key = (str(_engine(conn).url), schema, relation, attname)
    now = time.monotonic()
    cached = _samples.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    query = (
        "SELECT most_common_vals::text::text[], most_common_freqs, "
        "histogram_bounds::text::text[] FROM pg_stats "
        "WHERE schemaname = :schema AND tablename = :relation"
    )
    params = {"schema": schema, "relation": relation}
    if attname:
        query += " AND attname = :attname"
        params["attname"] = attname
    row = conn.execute(text(query), params).first()
    sample = _weighted(*row) if row is not None else []
    with _lock:
        _samples[key] = (now + STATS_TTL_S, sample)
    return sample


def _engine(conn: Session | Connection) -> Engine:
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    return bind.engine


def _stats_key(index: Index) -> tuple[str, str, str]:
    """Where ANALYZE keeps the sample of the indexed values: under the table's column for an
    index on a column, under the index itself for an index on an expression."""
    (expr,) = index.expressions
    table = index.table
    assert table is not None and table.schema is not None, index.name
    if isinstance(expr, Column):
        return table.schema, table.name, expr.name
    return table.schema, str(index.name), ""


def _weighted(
    values: list[str] | None, freqs: list[float] | None, bounds: list[str] | None
) -> Sample:
    """The most common values with their shares, and the histogram bounds sharing the rest
    equally (each bound stands for as many rows as the next)."""
    common = list(zip(values or [], freqs or [], strict=True))
    rest = 1.0 - sum(f for _, f in common)
    sample = [(v.lower(), float(f)) for v, f in common]
    if bounds:
        sample += [(v.lower(), rest / len(bounds)) for v in bounds]
    return sample


def forget() -> None:
    """Drop the cached samples (tests, after loading a table and analyzing it)."""
    with _lock:
        _samples.clear()
