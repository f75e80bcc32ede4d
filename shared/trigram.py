"""`match(conn, expr, needle, index=...)`: a case-sensitive "contains" match of `needle` in `expr`
served by a pg_trgm GIN index, with the trigrams that would cost more than they filter left out of
the index condition, and whether the needle is rare enough for its page to be read through that
index (`shared.db.newest_first(..., gather=found.rare)`) rather than by walking the order's index.

GIN finds the rows that have every trigram of the pattern. It reads the rarest trigrams' lists
first and then looks up each candidate row in the list of every other trigram. A trigram found in
most rows (the shared prefix of batch numbers like `BENCH-0500000`, a word in every title) filters
out almost nothing, but it still costs a lookup in a list of a million entries for each candidate.
At 1M rows a whole batch number took 13 ms in the index instead of 1 ms. pg_trgm keeps no
per-trigram statistics, so this module estimates them from the column's ANALYZE sample (its most
common values and histogram bounds in `pg_stats`, read once per `STATS_TTL_S` per process, its
windows and word edges counted then: ~8 ms for 1,000 values; a search then spends 30-80 us on it).

The index condition is then `LIKE '%part%part%'` over the parts of the needle made of its
3-character windows found in fewer than `COMMON` of the sampled values. Overlapping windows are
joined into one part, so the parts are apart and in the needle's order. A word boundary at a
part's edge (a character that is not a letter or digit) makes pg_trgm add the padded trigrams of
the word's start (`"  0"`, `" 05"`) or end (`"67 "`). They are kept when the sample says they are
rare, since they then narrow the index further (`order 4567 ` in 1M bench titles: 113 candidate
rows without `"67 "`, 4 with it); otherwise those edge characters are dropped (`"  0"` after
`BENCH-` is in every batch number). The parts must hold 3 letters or digits in a row
(pg_trgm's trigrams are within words). `strpos`, which no index serves,
checks the whole needle on the rows the index finds. Every row that contains the needle contains
its parts in that order, so the result is the same match. Otherwise (no statistics yet, a short
needle, one with nothing common, SQLite) it is the plain `LIKE '%needle%'` with `%` and `_`
escaped.

A page of matches newest first can be read two ways: walk the index of the order and test each
row until a page is found (about page / share rows), or read every match through the trigram index
and sort them (share x rows). The planner estimates the share from the same sample, and a needle
found once in a 100-value sample is 1% to it: at 1M rows it walked 27,000 rows for a needle on
0.13% of them (50 ms) instead of reading its 1,300 matches (2 ms). The migrations raise the
sample of the searched columns to `STATISTICS` values, and a needle found in fewer than `RARE` of
them is read through the trigram index (a MATERIALIZED CTE: the planner cannot turn it into a
walk); a commoner one is left to the planner, whose walk then finds a page soon.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Index, func, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

COMMON = 0.5  # a window in at least this share of the sampled values is left out of the index
RARE = 0.005  # a needle in fewer than this share of the rows is read through the trigram index
STATISTICS = 1000  # the statistics target the migrations set on the searched columns
STATS_TTL_S = 60.0  # how long one process uses a column's sample before reading it again
_WORD = re.compile(r"[^\W_]+")  # pg_trgm's words: runs of letters and digits


@dataclass(frozen=True)
class Sample:
    """A column's ANALYZE sample, folded to lower case: its most common values with their shares
    of the rows, the histogram bounds (NUL-separated) each standing for `bound_share`, the
    share of the rows whose value holds each 3-character window, and the share whose pg_trgm
    trigrams hold each padded one of a word's start or end (`edges`; both counted on loading)."""

    common: tuple[tuple[str, float], ...] = ()
    bounds: str = ""
    bound_share: float = 0.0
    windows: Mapping[str, float] = field(default_factory=dict)
    edges: Mapping[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.common or self.bounds)

    def share(self, part: str) -> float:
        """About the share of the rows whose value contains `part` (lower case)."""
        if len(part) == 3:
            return self.windows.get(part, 0.0)
        found = sum(f for v, f in self.common if part in v)
        return found + self.bounds.count(part) * self.bound_share


@dataclass(frozen=True)
class Match:
    cond: ColumnElement[bool]
    rare: bool  # in fewer than RARE of the rows, by the sample


_samples: dict[tuple[str, ...], tuple[float, Sample]] = {}  # by database and relation
_lock = threading.Lock()


def match(conn: Session | Connection, expr: Any, needle: str, *, index: Index) -> Match:
    """`expr` contains `needle` (both as stored: fold the case of the needle as the expression
    does), for the pg_trgm index `index` on `expr`; `conn` is where the query will run."""
    plain = expr.contains(needle, autoescape=True)
    if _engine(conn).dialect.name != "postgresql":
        return Match(plain, rare=False)
    sample = _sample(conn, index)
    parts = index_parts(needle, sample)
    rare = bool(sample) and len(needle) >= 3 and _share(needle.lower(), sample) < RARE
    if parts == [needle]:
        return Match(plain, rare)
    pattern = "%" + "%".join(_escaped(p) for p in parts) + "%"
    return Match(expr.like(pattern, escape="/") & (func.strpos(expr, needle) > 0), rare)


def index_parts(needle: str, sample: Sample) -> list[str]:
    """The parts of `needle`, in order and apart, the index condition should look for: its
    3-character windows rarer than `COMMON` in `sample`, overlapping ones joined (`[needle]` when
    none is worth leaving out)."""
    if len(needle) < 4 or not sample:
        return [needle]
    folded = needle.lower()
    spans: list[list[int]] = []  # [start, end) of the parts in the needle
    for i in range(len(folded) - 2):
        if sample.share(folded[i : i + 3]) >= COMMON:
            continue
        if spans and spans[-1][1] >= i:
            spans[-1][1] = i + 3
        else:
            spans.append([i, i + 3])
    parts = [part for a, b in spans if (part := _bounded(needle[a:b], sample))]
    if not any(p[i : i + 3].isalnum() for p in parts for i in range(len(p) - 2)):
        return [needle]  # no trigram in what is left: the index could not narrow anything
    return parts


def _bounded(part: str, sample: Sample) -> str:
    """`part` without the characters at either edge that are not letters or digits, unless the
    word boundary they make adds only padded trigrams rarer than `COMMON` (then they narrow the
    index: kept). "" when `part` has no letter or digit."""
    start, end = 0, len(part)
    while start < end and not part[start].isalnum():
        start += 1
    while end > start and not part[end - 1].isalnum():
        end -= 1
    if start == end:
        return ""
    words = _WORD.findall(part[start:end].lower())
    if start > 0 and all(sample.edges.get(t, 0.0) < COMMON for t in _word_start(words[0])):
        start = 0
    if end < len(part) and all(sample.edges.get(t, 0.0) < COMMON for t in _word_end(words[-1])):
        end = len(part)
    return part[start:end]


def _word_start(word: str) -> set[str]:
    """The padded trigrams pg_trgm makes of `word`'s start after a boundary."""
    return {"  " + word[0], " " + word[:2]} if len(word) > 1 else {"  " + word, " " + word + " "}


def _word_end(word: str) -> set[str]:
    """The padded trigram pg_trgm makes of `word`'s end before a boundary."""
    return {word[-2:] + " "} if len(word) > 1 else {" " + word + " "}


def _edge_trigrams(value: str) -> set[str]:
    """The padded trigrams of every word's start and end in `value` (lower case), as pg_trgm
    makes them."""
    out: set[str] = set()
    for word in _WORD.findall(value):
        out |= _word_start(word) | _word_end(word)
    return out


def _share(needle: str, sample: Sample) -> float:
    """The share of the rows holding `needle`: at most its rarest window's (no scan of the
    sample when that already says rare)."""
    rarest = min(sample.share(needle[i : i + 3]) for i in range(len(needle) - 2))
    return rarest if rarest < RARE or len(needle) == 3 else sample.share(needle)


def _escaped(part: str) -> str:
    return part.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _sample(conn: Session | Connection, index: Index) -> Sample:
    schema, table, column = _stats_key(index)
    key = (str(_engine(conn).url), schema, table, column)
    now = time.monotonic()
    cached = _samples.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    row = conn.execute(
        text(
            "SELECT most_common_vals::text::text[], most_common_freqs, "
            "histogram_bounds::text::text[] FROM pg_stats "
            "WHERE schemaname = :schema AND tablename = :table AND attname = :column"
        ),
        {"schema": schema, "table": table, "column": column},
    ).first()
    sample = _folded(*row) if row is not None else Sample()
    with _lock:
        _samples[key] = (now + STATS_TTL_S, sample)
    return sample


def _engine(conn: Session | Connection) -> Engine:
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    return bind.engine


def _stats_key(index: Index) -> tuple[str, str, str]:
    """(schema, table, column) of the one column the trigram index `index` is on, alone or
    under an expression such as `lower(title)`. Its ANALYZE sample is folded to lower case here;
    an expression index's own sample is the same values folded, but `pg_stats` shows it to the
    table's owner only, and the deployments' database users are not (they have SELECT)."""
    (column,) = index.columns
    table = index.table
    assert table is not None and table.schema is not None, index.name
    return table.schema, table.name, column.name


def _folded(
    values: list[str] | None, freqs: list[float] | None, bounds: list[str] | None
) -> Sample:
    """The most common values with their shares, and the histogram bounds sharing the rest
    equally (each bound stands for as many rows as the next)."""
    common = tuple((v.lower(), float(f)) for v, f in zip(values or [], freqs or [], strict=True))
    folded = [v.lower() for v in bounds or []]
    each = (1.0 - sum(f for _, f in common)) / len(folded) if folded else 0.0
    counted: Counter[str] = Counter()  # bounds holding each window
    at_edges: Counter[str] = Counter()  # bounds holding each padded trigram
    for value in folded:
        counted.update({value[i : i + 3] for i in range(len(value) - 2)})
        at_edges.update(_edge_trigrams(value))
    windows = {window: n * each for window, n in counted.items()}
    edges = {trigram: n * each for trigram, n in at_edges.items()}
    for value, weight in common:
        for window in {value[i : i + 3] for i in range(len(value) - 2)}:
            windows[window] = windows.get(window, 0.0) + weight
        for trigram in _edge_trigrams(value):
            edges[trigram] = edges.get(trigram, 0.0) + weight
    return Sample(common, "\0".join(folded), each, windows, edges)


def forget() -> None:
    """Drop the cached samples (tests, after loading a table and analyzing it)."""
    with _lock:
        _samples.clear()
