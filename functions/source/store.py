"""Source's tables (schema `source`) and the queries on them; PostgreSQL and SQLite.

- `repositories`: one row per tracked repository, unique on its lower-cased `owner/name`
  (GitHub names are case-insensitive). The webhook secret is never here: only its name and
  version in `shared.secrets`.
- `commits`: one row per (repository, sha) - the primary key is what makes a commit seen by
  the webhook and the poller (or twice by either) one row (`INSERT ... ON CONFLICT DO
  NOTHING`, the inserted ones are the new ones). `commit_branches` lists every branch a commit
  was pushed to (a fast-forward merge pushes known commits to a second branch).
- `deliveries`: one row per GitHub delivery id (`X-GitHub-Delivery`): its primary key is the
  de-duplication, and the row is written in the same transaction as the outbox row of
  `github.delivery.received`. The raw body lives in Firestore (`source_deliveries`).
- `refs`: where each branch and tag of a repository points (deleted ones kept, flagged).
- `monitor_runs`: one row per poll of GitHub (scheduled or run-once) with its figures.
Statistics are SQL aggregates over `ix_commits_time`, which on PostgreSQL also INCLUDEs the
aggregated columns so a day range is read from the index alone. Message search uses a GIN
index over `to_tsvector('simple', message)` on PostgreSQL (words), LIKE on SQLite.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    and_,
    exists,
    func,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from functions.source import model
from shared import db
from shared.db import as_dict, utc
from shared.events import outbox_table

SCHEMA = "source"
metadata = db.metadata(SCHEMA)
TS = DateTime(timezone=True)

repositories = Table(
    "repositories",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner", String(39), nullable=False),
    Column("name", String(100), nullable=False),
    Column("full_name_key", String(140), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("default_branch", String(255), nullable=False),
    Column("polling", Boolean, nullable=False),
    Column("webhook_secret_name", String(200), nullable=True),
    Column("webhook_secret_version", String(64), nullable=True),
    Column("last_seen_sha", String(64), nullable=True),
    Column("last_seen_at", TS, nullable=True),
    Column("poll_etag", String(200), nullable=True),
    Column("last_polled_at", TS, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ux_repositories_full_name", "full_name_key", unique=True),
    Index("ix_repositories_created", "created_at", "id"),
)

commits = Table(
    "commits",
    metadata,
    Column(
        "repository_id",
        String(36),
        ForeignKey("source.repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("sha", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("author_name", String(200), nullable=False),
    Column("author_email", String(320), nullable=True),
    Column("author_login", String(100), nullable=True),
    Column("author_key", String(320), nullable=False),
    Column("branch", String(255), nullable=True),
    Column("committed_at", TS, nullable=False),
    Column("recorded_at", TS, nullable=False),
    Column("conventional_type", String(40), nullable=True),
    Column("conventional_scope", String(100), nullable=True),
    Column("breaking", Boolean, nullable=False),
    Column("added", Text, nullable=False),  # JSON list of paths
    Column("removed", Text, nullable=False),
    Column("modified", Text, nullable=False),
    Column("files_changed", Integer, nullable=True),
    Column("additions", Integer, nullable=True),
    Column("deletions", Integer, nullable=True),
    Column("url", Text, nullable=True),
    Column("source", String(10), nullable=False),
    Column("delivery_id", String(64), nullable=True),
    # the newest agents analysis (analysis.completed): its headline only, never a secret
    Column("analysis_id", String(36), nullable=True),
    Column("analysis_status", String(10), nullable=True),
    Column("analysis_type", String(40), nullable=True),
    Column("risk_score", Integer, nullable=True),
    Column("risk_level", String(10), nullable=True),
    Column("secrets", Integer, nullable=True),
    Column("findings", Integer, nullable=True),
    Column("top_severity", String(10), nullable=True),
    Column("analysis_summary", Text, nullable=True),
    Column("analyzed_at", TS, nullable=True),
    PrimaryKeyConstraint("repository_id", "sha", name="pk_commits"),
    Index(
        "ix_commits_time",
        "committed_at",
        "repository_id",
        "sha",
        postgresql_include=[
            "author_key",
            "conventional_type",
            "additions",
            "deletions",
            "files_changed",
        ],
    ),
    Index("ix_commits_repository", "repository_id", "committed_at", "sha"),
    # covering: statistics filtered by author or type (not in the rollup) read the index
    # alone (migration 0004)
    Index(
        "ix_commits_author",
        "author_key",
        "committed_at",
        postgresql_include=[
            "repository_id",
            "conventional_type",
            "additions",
            "deletions",
            "files_changed",
        ],
    ),
    Index(
        "ix_commits_type",
        "conventional_type",
        "committed_at",
        postgresql_include=[
            "repository_id",
            "author_key",
            "additions",
            "deletions",
            "files_changed",
        ],
    ),
    Index("ix_commits_sha", "sha"),
    Index("ix_commits_risk", "risk_level", "committed_at"),
)

# The daily rollup of commits (decision 0038), maintained by `count_commits` in the
# transaction that records them: per repository and UTC day, one row per conventional type
# (dim `type`, `none` for the others) and one per author (dim `author`). The statistics read
# it for whole days, so a year is some thousand rows per repository instead of every commit.
commit_days = Table(
    "commit_days",
    metadata,
    Column(
        "repository_id",
        String(36),
        ForeignKey("source.repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("dim", String(6), nullable=False),
    Column("day", Date, nullable=False),
    Column("key", String(320), nullable=False),
    Column("commits", Integer, nullable=False),
    Column("additions", BigInteger, nullable=False),
    Column("deletions", BigInteger, nullable=False),
    Column("files_changed", BigInteger, nullable=False),
    PrimaryKeyConstraint("repository_id", "dim", "day", "key", name="pk_commit_days"),
    Index("ix_commit_days_day", "dim", "day"),
)

# The monthly rollup of commits per type and author together (decision 0048), kept like
# commit_days: statistics filtered by type (or by author) take the days, types and
# repositories from commit_days and only the cross grouping - the authors of those types (the
# types of that author) - from here for the whole UTC months of the range, instead of
# reading every matching commit of a year.
commit_months = Table(
    "commit_months",
    metadata,
    Column(
        "repository_id",
        String(36),
        ForeignKey("source.repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("month", Date, nullable=False),  # the first day of the UTC month
    Column("type", String(40), nullable=False),  # `none` when not a conventional commit
    Column("author", String(320), nullable=False),
    Column("commits", Integer, nullable=False),
    Column("additions", BigInteger, nullable=False),
    Column("deletions", BigInteger, nullable=False),
    Column("files_changed", BigInteger, nullable=False),
    PrimaryKeyConstraint("repository_id", "month", "type", "author", name="pk_commit_months"),
    Index("ix_commit_months_month", "month"),
)

commit_branches = Table(
    "commit_branches",
    metadata,
    Column("repository_id", String(36), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("branch", String(255), nullable=False),
    PrimaryKeyConstraint("repository_id", "sha", "branch", name="pk_commit_branches"),
    Index("ix_commit_branches_branch", "repository_id", "branch"),
)

refs = Table(
    "refs",
    metadata,
    Column("repository_id", String(36), nullable=False),
    Column("ref", String(300), nullable=False),
    Column("ref_type", String(10), nullable=False),
    Column("head_sha", String(64), nullable=True),
    Column("deleted", Boolean, nullable=False),
    Column("forced_at", TS, nullable=True),
    Column("updated_at", TS, nullable=False),
    Column("delivery_id", String(64), nullable=True),
    PrimaryKeyConstraint("repository_id", "ref", name="pk_refs"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(64), primary_key=True),  # X-GitHub-Delivery
    Column("event", String(64), nullable=False),
    Column("action", String(64), nullable=True),
    Column("repository", String(140), nullable=True),  # full_name as GitHub sent it
    Column("repository_id", String(36), nullable=True),
    Column("status", String(12), nullable=False),
    Column("received_at", TS, nullable=False),
    Column("processed_at", TS, nullable=True),
    Column("size_bytes", Integer, nullable=False),
    Column("stored_bytes", Integer, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("commits_recorded", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("summary", Text, nullable=True),  # JSON: what the ingest made of it
    Index("ix_deliveries_received", "received_at", "id"),
    Index("ix_deliveries_status", "status", "received_at", "id"),
    Index("ix_deliveries_event", "event", "received_at"),
)

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("trigger", String(10), nullable=False),  # schedule | manual
    Column("scheduled_for", TS, nullable=True),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Column("repositories_checked", Integer, nullable=False),
    Column("commits_found", Integer, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("not_modified", Integer, nullable=False),
    Column("rate_limit_remaining", Integer, nullable=True),
    Column("rate_limit_reset", TS, nullable=True),
    Column("stopped_early", Boolean, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_monitor_runs_started", "started_at"),
)

outbox = outbox_table(metadata)

# Message search by words (PostgreSQL full-text, no extension); the migration creates it.
commits.append_constraint(
    Index(
        "ix_commits_message_fts",
        func.to_tsvector(literal_column("'simple'::regconfig"), commits.c.message),
        postgresql_using="gin",
    )
)


# --- dialect bits ---------------------------------------------------------------------------


class message_matches(FunctionElement[bool]):  # noqa: N801
    """Every word of the search in the message: PostgreSQL full text (the GIN index of the
    migration, 'simple' configuration: no stemming, any language), SQLite LIKE."""

    inherit_cache = True
    name = "message_matches"


@compiles(message_matches, "postgresql")
def _match_pg(element: message_matches, compiler: Any, **kw: Any) -> str:
    column, words = list(element.clauses)
    return (
        f"to_tsvector('simple', {compiler.process(column, **kw)}) @@ "
        f"plainto_tsquery('simple', {compiler.process(words, **kw)})"
    )


@compiles(message_matches, "sqlite")
def _match_sqlite(element: message_matches, compiler: Any, **kw: Any) -> str:
    column, words = list(element.clauses)
    return (
        f"lower({compiler.process(column, **kw)}) LIKE "
        f"'%' || lower({compiler.process(words, **kw)}) || '%'"
    )


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# --- repositories ---------------------------------------------------------------------------


def _repository(row: Any) -> model.Repository:
    return model.Repository(**as_dict(row))


RowLock = Literal["update", "no key update", "key share"]


def repository_by_key(
    session: Session, key: str, *, lock: bool | RowLock = False
) -> model.Repository | None:
    """The repository named `key`; `lock`: True or "update" (FOR UPDATE: its deletion),
    "no key update" (an edit of its columns: does not wait for writers of its commits, whose
    foreign keys hold KEY SHARE), "key share" (only keeps it from being deleted: what a
    recorder of commits takes first, decision 0048). Ignored on SQLite."""
    stmt = select(repositories).where(repositories.c.full_name_key == key)
    if lock is True or lock == "update":
        stmt = stmt.with_for_update()
    elif lock == "no key update":
        stmt = stmt.with_for_update(key_share=True)
    elif lock == "key share":
        stmt = stmt.with_for_update(read=True, key_share=True)
    row = session.execute(stmt).first()
    return _repository(row) if row is not None else None


def repositories_by_id(session: Session, ids: list[str]) -> dict[str, model.Repository]:
    if not ids:
        return {}
    rows = session.execute(select(repositories).where(repositories.c.id.in_(set(ids)))).all()
    return {r.id: _repository(r) for r in rows}


def insert_repository(session: Session, **values: Any) -> None:
    session.execute(repositories.insert().values(**values))


def change_repository(session: Session, repository_id: str, **values: Any) -> None:
    session.execute(
        update(repositories)
        .where(repositories.c.id == repository_id)
        .values(**values, version=repositories.c.version + 1)
    )


def touch_poll(session: Session, repository_id: str, **values: Any) -> None:
    """Poll bookkeeping (ETag, time): not a change of the repository, no version bump."""
    session.execute(update(repositories).where(repositories.c.id == repository_id).values(**values))


def delete_repository(session: Session, repository_id: str) -> None:
    for table in (commit_branches, refs):
        session.execute(table.delete().where(table.c.repository_id == repository_id))
    session.execute(commits.delete().where(commits.c.repository_id == repository_id))
    session.execute(repositories.delete().where(repositories.c.id == repository_id))


def list_repositories(
    session: Session, *, after: tuple[datetime, str] | None, limit: int, polling: bool | None
) -> list[model.Repository]:
    r = repositories.c
    stmt = select(repositories)
    if polling is not None:
        stmt = stmt.where(r.polling.is_(polling))
    if after is not None:
        when, last = utc(after[0]), after[1]
        stmt = stmt.where(or_(r.created_at > when, and_(r.created_at == when, r.id > last)))
    rows = session.execute(stmt.order_by(r.created_at, r.id).limit(limit)).all()
    return [_repository(x) for x in rows]


def polled_repositories(session: Session) -> list[model.Repository]:
    r = repositories.c
    stmt = select(repositories).where(r.polling.is_(True)).order_by(r.last_polled_at, r.id)
    return [_repository(x) for x in session.execute(stmt).all()]


def advance_last_seen(session: Session, repository_id: str, sha: str, at: datetime) -> None:
    """Move `last_seen` forward only (an older commit found later leaves it)."""
    r = repositories.c
    session.execute(
        update(repositories)
        .where(r.id == repository_id, or_(r.last_seen_at.is_(None), r.last_seen_at <= utc(at)))
        .values(last_seen_sha=sha, last_seen_at=utc(at))
    )


# --- commits --------------------------------------------------------------------------------


def _commit(row: Any) -> model.Commit:
    out = as_dict(row)
    for key in ("added", "removed", "modified"):
        out[key] = tuple(json.loads(out[key])) if out.get(key) else ()
    return model.Commit(**out)


# --- set-based writes (decision 0048) -------------------------------------------------------
#
# On PostgreSQL a batch of rows is one statement with one parameter: the rows as JSON, read
# back by `json_to_recordset` with the table's column types. Multi-row VALUES would carry a
# parameter per value (22 a commit: 45k for a 2048-commit push, past the protocol's 32,767)
# and cost SQLAlchemy and pg8000 a compile and a rewrite per parameter: measured, that was
# most of a push's time. SQLite (the local fallback, small data) takes multi-row VALUES in
# chunks under its 32,766 variables.
SQLITE_ROWS_PER_STATEMENT = 500
_CONFLICTS = {
    "commits": "(repository_id, sha) DO NOTHING RETURNING sha",
    "commit_branches": "(repository_id, sha, branch) DO NOTHING",
    **{
        name: f"({keys}) DO UPDATE SET "
        + ", ".join(
            f"{m} = {name}.{m} + EXCLUDED.{m}"
            for m in ("commits", "additions", "deletions", "files_changed")
        )
        for name, keys in (
            ("commit_days", "repository_id, dim, day, key"),
            ("commit_months", "repository_id, month, type, author"),
        )
    },
}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()  # type: ignore[union-attr]
    if isinstance(value, date):
        return value.isoformat()
    return value


def _pg_batch(table: Table, names: list[str], order: list[str], conflict: str | None) -> Any:
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    cols = ", ".join(f'"{n}"' for n in names)
    types = ", ".join(f'"{n}" {table.c[n].type.compile(dialect=dialect)}' for n in names)
    sql = (
        f"INSERT INTO {table.fullname} ({cols}) SELECT {cols} "  # noqa: S608 - column names
        f"FROM json_to_recordset(CAST(:rows AS json)) AS r({types})"
    )
    if order:
        sql += " ORDER BY " + ", ".join(f'"{n}"' for n in order)
    if conflict:
        sql += f" ON CONFLICT {conflict}"
    return text(sql)


def _write(
    session: Session, table: Table, rows: list[dict[str, Any]], order: list[str]
) -> list[Any]:
    """Insert `rows` (all with the same keys) into `table` in `order` (so that concurrent
    writers lock them in one order), with the table's conflict rule (`_CONFLICTS`); what the
    rule returns (the commits' inserted shas), else []."""
    if not rows:
        return []
    conflict = _CONFLICTS.get(table.name)
    returns = conflict is not None and "RETURNING" in conflict
    if session.get_bind().dialect.name == "postgresql":
        stmt = _pg_batch(table, list(rows[0]), order, conflict)
        payload = json.dumps([{k: _json_value(v) for k, v in r.items()} for r in rows])
        result = session.execute(stmt, {"rows": payload})
        return list(result.scalars().all()) if returns else []
    out: list[Any] = []
    ordered = sorted(rows, key=lambda r: tuple(r[n] for n in order)) if order else rows
    for i in range(0, len(ordered), SQLITE_ROWS_PER_STATEMENT):
        stmt = db.insert(session, table).values(ordered[i : i + SQLITE_ROWS_PER_STATEMENT])
        if table is commits:
            stmt = stmt.on_conflict_do_nothing(index_elements=["repository_id", "sha"])
            out.extend(session.scalars(stmt.returning(commits.c.sha)).all())
        elif table is commit_branches:
            session.execute(stmt.on_conflict_do_nothing(index_elements=list(rows[0])))
        elif table is commit_days or table is commit_months:
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[c.name for c in table.primary_key.columns],
                    set_={m: table.c[m] + stmt.excluded[m] for m in MEASURES},
                )
            )
        else:
            session.execute(stmt)
    return out


def insert_commits(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the commits of one repository that are new (`ON CONFLICT DO NOTHING` on the
    primary key), in sha order: two transactions inserting overlapping commits wait on each
    other in the same order, never in a cycle. The shas this call inserted (a concurrent
    twin's or an earlier delivery's are not)."""
    return {str(s) for s in _write(session, commits, rows, ["repository_id", "sha"])}


def link_branches(session: Session, repository_id: str, shas: list[str], branch: str) -> None:
    """Every commit of `shas` is on `branch` (links already there stay), in sha order."""
    rows = [{"repository_id": repository_id, "sha": s, "branch": branch} for s in shas]
    _write(session, commit_branches, rows, ["sha"])


def set_branch_if_missing(
    session: Session, repository_id: str, shas: list[str], branch: str
) -> None:
    """Known commits recorded without a branch (the poller, by hand) take `branch`."""
    if not shas:
        return
    c = commits.c
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import any_, bindparam
        from sqlalchemy.dialects.postgresql import ARRAY

        match = c.sha == any_(bindparam("shas", sorted(shas), type_=ARRAY(String)))
        session.execute(
            update(commits)
            .where(c.repository_id == repository_id, match, c.branch.is_(None))
            .values(branch=branch)
        )
        return
    ordered = sorted(shas)
    for i in range(0, len(ordered), SQLITE_ROWS_PER_STATEMENT):
        session.execute(
            update(commits)
            .where(
                c.repository_id == repository_id,
                c.sha.in_(ordered[i : i + SQLITE_ROWS_PER_STATEMENT]),
                c.branch.is_(None),
            )
            .values(branch=branch)
        )


def commits_by_sha(session: Session, sha: str, repository_id: str | None) -> list[model.Commit]:
    stmt = select(commits).where(commits.c.sha == sha)
    if repository_id is not None:
        stmt = stmt.where(commits.c.repository_id == repository_id)
    return [_commit(r) for r in session.execute(stmt.limit(10)).all()]


def branches_of(session: Session, repository_id: str, sha: str) -> list[str]:
    b = commit_branches.c
    stmt = select(b.branch).where(b.repository_id == repository_id, b.sha == sha)
    return sorted(str(x) for x in session.scalars(stmt).all())


def known_shas(session: Session, repository_id: str, shas: list[str]) -> set[str]:
    if not shas:
        return set()
    c = commits.c
    stmt = select(c.sha).where(c.repository_id == repository_id, c.sha.in_(shas))
    return {str(s) for s in session.scalars(stmt).all()}


def _commit_filters(
    *,
    repository_ids: list[str] | None = None,
    author: str | None = None,
    branch: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    search: str | None = None,
    types: list[str] | None = None,
    risks: list[str] | None = None,
    secrets: bool | None = None,
) -> list[ColumnElement[bool]]:
    c = commits.c
    where: list[ColumnElement[bool]] = []
    if repository_ids is not None:
        where.append(c.repository_id.in_(repository_ids))
    if author:
        where.append(c.author_key == author.lower())
    if branch:
        b = commit_branches.c
        where.append(
            exists().where(b.repository_id == c.repository_id, b.sha == c.sha, b.branch == branch)
        )
    if since is not None:
        where.append(c.committed_at >= utc(since))
    if until is not None:
        where.append(c.committed_at < utc(until))
    if search:
        where.append(message_matches(c.message, search))
    if types:
        named = [t for t in types if t != "none"]
        parts: list[ColumnElement[bool]] = []
        if named:
            parts.append(c.conventional_type.in_(named))
        if "none" in types:
            parts.append(c.conventional_type.is_(None))
        where.append(or_(*parts))
    if risks:
        named = [r for r in risks if r != "none"]
        risk_parts: list[ColumnElement[bool]] = []
        if named:
            risk_parts.append(c.risk_level.in_(named))
        if "none" in risks:
            risk_parts.append(c.risk_level.is_(None))
        where.append(or_(*risk_parts))
    if secrets is True:
        where.append(c.secrets > 0)
    elif secrets is False:
        where.append(or_(c.secrets.is_(None), c.secrets == 0))
    return where


def keep_analysis(
    session: Session, repository_id: str, sha: str, at: datetime, values: dict[str, Any]
) -> bool:
    """Put an analysis' headline on the commit unless a newer one is there (or a completed
    one would give way to a failed one); True when the row changed."""
    c = commits.c
    stmt = (
        update(commits)
        .where(
            c.repository_id == repository_id,
            c.sha == sha,
            or_(c.analyzed_at.is_(None), c.analyzed_at <= utc(at)),
        )
        .values(analyzed_at=utc(at), **values)
    )
    if values.get("analysis_status") == "failed":
        stmt = stmt.where(or_(c.analysis_status.is_(None), c.analysis_status != "completed"))
    return _rowcount(session.execute(stmt)) == 1


def search_commits(
    session: Session,
    *,
    after: tuple[datetime, str, str] | None,
    limit: int,
    **filters: Any,
) -> list[model.Commit]:
    """Commits matching the filters, newest first (committed_at, repository_id, sha desc)."""
    c = commits.c
    stmt = select(commits).where(*_commit_filters(**filters))
    if after is not None:
        when, repo, sha = utc(after[0]), after[1], after[2]
        stmt = stmt.where(
            or_(
                c.committed_at < when,
                and_(c.committed_at == when, c.repository_id < repo),
                and_(c.committed_at == when, c.repository_id == repo, c.sha < sha),
            )
        )
    stmt = stmt.order_by(c.committed_at.desc(), c.repository_id.desc(), c.sha.desc()).limit(limit)
    return [_commit(r) for r in session.execute(stmt).all()]


MEASURES = ("commits", "additions", "deletions", "files_changed")
DIMENSIONS = ("repository_id", "author", "day", "type")

Grouped = dict[str, dict[Any, dict[str, int]]]


def count_commits(session: Session, recorded: list[dict[str, Any]]) -> None:
    """Add commits just inserted (their `commits` row values) to the daily rollup: the
    increments of one (repository, dim, day, key) summed here, then one upsert in key
    order, so concurrent transactions lock the rows in the same order (no deadlock). The
    recorder calls it last but for the repository row (decision 0048): the rollup rows of a
    busy day are the hottest rows a push touches, held from here to the commit only."""
    adds: dict[tuple[str, str, date, str], list[int]] = {}
    months: dict[tuple[str, date, str, str], list[int]] = {}
    for v in recorded:
        at = utc(v["committed_at"])
        assert at is not None  # noqa: S101 - a recorded commit always has its time
        day = at.date()
        kind = v["conventional_type"] or "none"
        facts = (1, v["additions"] or 0, v["deletions"] or 0, v["files_changed"] or 0)
        keys = [
            adds.setdefault((v["repository_id"], dim, day, key), [0, 0, 0, 0])
            for dim, key in (("type", kind), ("author", v["author_key"]))
        ]
        month = (v["repository_id"], day.replace(day=1), kind, v["author_key"])
        keys.append(months.setdefault(month, [0, 0, 0, 0]))
        for acc in keys:
            for i, n in enumerate(facts):
                acc[i] += n
    rows = [
        {
            "repository_id": repo,
            "dim": dim,
            "day": day,
            "key": key,
            **dict(zip(MEASURES, m, strict=True)),
        }
        for (repo, dim, day, key), m in sorted(adds.items())
    ]
    _write(session, commit_days, rows, ["repository_id", "dim", "day", "key"])
    monthly = [
        {
            "repository_id": repo,
            "month": month,
            "type": kind,
            "author": author,
            **dict(zip(MEASURES, m, strict=True)),
        }
        for (repo, month, kind, author), m in sorted(months.items())
    ]
    _write(session, commit_months, monthly, ["repository_id", "month", "type", "author"])


class utc_month(FunctionElement[Any]):  # noqa: N801 - reads as the SQL function it is
    """The first day of a timestamp's UTC month (a date on PostgreSQL, text on SQLite)."""

    inherit_cache = True
    name = "utc_month"


@compiles(utc_month, "postgresql")
def _month_pg(element: utc_month, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"CAST(date_trunc('month', {compiler.process(value, **kw)} AT TIME ZONE 'UTC') AS DATE)"


@compiles(utc_month, "sqlite")
def _month_sqlite(element: utc_month, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"date({compiler.process(value, **kw)}, 'start of month')"


def rebuild_commit_days(session: Session, repository_id: str) -> int:
    """Recount one repository's rollups (daily and monthly) from its commits (after a bulk
    load that bypassed `count_commits`); the daily rows written."""
    c, t = commits.c, commit_days.c
    session.execute(commit_days.delete().where(t.repository_id == repository_id))
    written = 0
    day = db.utc_day(c.committed_at)
    for dim, key in (
        ("type", func.coalesce(c.conventional_type, literal_column("'none'"))),
        ("author", c.author_key),
    ):
        rows = select(
            c.repository_id,
            literal_column(f"'{dim}'"),
            day,
            key,
            func.count(),
            func.coalesce(func.sum(c.additions), 0),
            func.coalesce(func.sum(c.deletions), 0),
            func.coalesce(func.sum(c.files_changed), 0),
        ).where(c.repository_id == repository_id)
        rows = rows.group_by(c.repository_id, day, key)
        written += _rowcount(
            session.execute(
                commit_days.insert().from_select(
                    ["repository_id", "dim", "day", "key", *MEASURES], rows
                )
            )
        )
    m = commit_months.c
    session.execute(commit_months.delete().where(m.repository_id == repository_id))
    month = utc_month(c.committed_at)
    kind = func.coalesce(c.conventional_type, literal_column("'none'"))
    rows = (
        select(
            c.repository_id,
            month,
            kind,
            c.author_key,
            func.count(),
            func.coalesce(func.sum(c.additions), 0),
            func.coalesce(func.sum(c.deletions), 0),
            func.coalesce(func.sum(c.files_changed), 0),
        )
        .where(c.repository_id == repository_id)
        .group_by(c.repository_id, month, kind, c.author_key)
    )
    session.execute(
        commit_months.insert().from_select(
            ["repository_id", "month", "type", "author", *MEASURES], rows
        )
    )
    return written


def _facts(row: Any) -> dict[str, int]:
    return {m: int(getattr(row, m)) for m in MEASURES}


def _scan(session: Session, **filters: Any) -> Grouped:
    """The four groupings straight from the commits.

    PostgreSQL: one statement, GROUPING SETS over the four keys - one (index-only) scan of
    the range instead of four. SQLite: one GROUP BY per key."""
    c = commits.c
    where = _commit_filters(**filters)
    measures = (
        func.count().label("commits"),
        func.coalesce(func.sum(c.additions), 0).label("additions"),
        func.coalesce(func.sum(c.deletions), 0).label("deletions"),
        func.coalesce(func.sum(c.files_changed), 0).label("files_changed"),
    )
    day = db.utc_day(c.committed_at)
    kind = func.coalesce(c.conventional_type, literal_column("'none'"))
    keys = {"repository_id": c.repository_id, "author": c.author_key, "day": day, "type": kind}
    grouped: Grouped = {k: {} for k in keys}
    if session.get_bind().dialect.name == "postgresql":
        flags = [func.grouping(expr).label(f"g_{name}") for name, expr in keys.items()]
        stmt = (
            select(*(expr.label(name) for name, expr in keys.items()), *flags, *measures)
            .where(*where)
            .group_by(func.grouping_sets(*(tuple_(expr) for expr in keys.values())))
        )
        for row in session.execute(stmt).all():
            for name in keys:
                if getattr(row, f"g_{name}") == 0:
                    grouped[name][getattr(row, name)] = _facts(row)
    else:
        for name, expr in keys.items():
            stmt = select(expr.label("k"), *measures).where(*where).group_by(expr)
            grouped[name] = {r.k: _facts(r) for r in session.execute(stmt).all()}
    grouped["day"] = {_day(k): f for k, f in grouped["day"].items()}
    return grouped


def _merge(into: Grouped, more: Grouped) -> Grouped:
    for name, groups in more.items():
        for key, f in groups.items():
            have = into[name].setdefault(key, dict.fromkeys(MEASURES, 0))
            for m in MEASURES:
                have[m] += f[m]
    return into


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


def _from_days(
    session: Session,
    *,
    repository_ids: list[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> Grouped:
    """The whole UTC days of the range from the rollup, the partial days at its ends from
    the commits (at most a day each)."""
    since, until = (utc(since) if since else None), (utc(until) if until else None)
    first = None
    if since is not None:
        first = since.date() if since == _midnight(since.date()) else since.date() + timedelta(1)
    last = until.date() if until is not None else None  # whole days end before `last`
    if first is not None and last is not None and first >= last:
        return _scan(session, repository_ids=repository_ids, since=since, until=until)
    t = commit_days.c
    where: list[ColumnElement[bool]] = []
    if repository_ids is not None:
        where.append(t.repository_id.in_(repository_ids))
    if first is not None:
        where.append(t.day >= first)
    if last is not None:
        where.append(t.day < last)
    sums = [func.sum(getattr(t, m)).label(m) for m in MEASURES]
    grouped: Grouped = {k: {} for k in DIMENSIONS}
    for name, dim, expr in (
        ("day", "type", t.day),
        ("type", "type", t.key),
        ("repository_id", "type", t.repository_id),
        ("author", "author", t.key),
    ):
        stmt = select(expr.label("k"), *sums).where(t.dim == dim, *where).group_by(expr)
        grouped[name] = {r.k: _facts(r) for r in session.execute(stmt).all()}
    grouped["day"] = {_day(k): f for k, f in grouped["day"].items()}
    edges = []
    if since is not None and first is not None and since < _midnight(first):
        edges.append((since, _midnight(first)))
    if until is not None and last is not None and _midnight(last) < until:
        edges.append((_midnight(last), until))
    for lo, hi in edges:
        _merge(grouped, _scan(session, repository_ids=repository_ids, since=lo, until=hi))
    return grouped


def _month_after(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def _from_rollups(
    session: Session,
    *,
    dim: str,
    keys: list[str],
    repository_ids: list[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> Grouped:
    """Statistics filtered by type (`dim` "type", `keys` the types, `none` included) or by
    author (`dim` "author", one key): the days, the filtered dimension and the repositories
    from commit_days' `dim` rows for the whole days of the range; the cross grouping (authors
    of the types, types of the author) from commit_months for its whole months and from the
    commits for the whole days left over at either end; the partial days at the ends from
    the commits (decision 0048). `commit_statistics` takes it for a type filter only."""
    since, until = (utc(since) if since else None), (utc(until) if until else None)
    flt: dict[str, Any] = {"types": keys} if dim == "type" else {"author": keys[0]}
    scan_kw: dict[str, Any] = {"repository_ids": repository_ids, **flt}
    first = None  # whole days from `first` (inclusive) to `last` (exclusive); None: unbounded
    if since is not None:
        first = since.date() if since == _midnight(since.date()) else since.date() + timedelta(1)
    last = until.date() if until is not None else None
    if first is not None and last is not None and first >= last:
        return _scan(session, since=since, until=until, **scan_kw)  # within a day or two
    t = commit_days.c
    where: list[ColumnElement[bool]] = [t.dim == dim, t.key.in_(keys)]
    if first is not None:
        where.append(t.day >= first)
    if last is not None:
        where.append(t.day < last)
    if repository_ids is not None:
        where.append(t.repository_id.in_(repository_ids))
    sums = [func.sum(getattr(t, m)).label(m) for m in MEASURES]
    cross = "author" if dim == "type" else "type"
    grouped: Grouped = {k: {} for k in DIMENSIONS}
    for name, expr in (("day", t.day), (dim, t.key), ("repository_id", t.repository_id)):
        stmt = select(expr.label("k"), *sums).where(*where).group_by(expr)
        grouped[name] = {r.k: _facts(r) for r in session.execute(stmt).all()}
    grouped["day"] = {_day(k): f for k, f in grouped["day"].items()}
    # the cross grouping: whole months from commit_months, the days left from the commits
    m0 = None if first is None else (first if first.day == 1 else _month_after(first))
    m_end = None if last is None else last.replace(day=1)
    spans: list[tuple[date | None, date | None]]
    if m0 is None or m_end is None or m0 < m_end:
        m = commit_months.c
        on, other = (m.type, m.author) if dim == "type" else (m.author, m.type)
        mw: list[ColumnElement[bool]] = [on.in_(keys)]
        if m0 is not None:
            mw.append(m.month >= m0)
        if m_end is not None:
            mw.append(m.month < m_end)
        if repository_ids is not None:
            mw.append(m.repository_id.in_(repository_ids))
        msums = [func.sum(getattr(m, x)).label(x) for x in MEASURES]
        stmt = select(other.label("k"), *msums).where(*mw).group_by(other)
        grouped[cross] = {r.k: _facts(r) for r in session.execute(stmt).all()}
        spans = [(first, m0), (m_end, last)]
    else:
        spans = [(first, last)]
    for lo, hi in spans:
        if lo is not None and hi is not None and lo < hi:
            part = _scan(session, since=_midnight(lo), until=_midnight(hi), **scan_kw)
            _merge(grouped, {cross: part[cross]})
    edges = []
    if since is not None and first is not None and since < _midnight(first):
        edges.append((since, _midnight(first)))
    if until is not None and last is not None and _midnight(last) < until:
        edges.append((_midnight(last), until))
    for lo_at, hi_at in edges:
        _merge(grouped, _scan(session, since=lo_at, until=hi_at, **scan_kw))
    return grouped


def commit_statistics(
    session: Session, *, top: int, rollup: bool = True, **filters: Any
) -> dict[str, Any]:
    """Counts, churn and files per repository, author, UTC day and conventional type: from
    the rollups when the filters allow (`rollup=False`: always from the commits): the daily
    one without filters, with the monthly one for a filter by type alone."""
    others = filters.get("secrets") is not None or any(
        filters.get(k) for k in ("branch", "search", "risks")
    )
    window = {
        "repository_ids": filters.get("repository_ids"),
        "since": filters.get("since"),
        "until": filters.get("until"),
    }
    types, author = filters.get("types"), filters.get("author")
    if rollup and not others and not types and not author:
        grouped = _from_days(session, **window)
    elif rollup and not others and types and not author:
        # By type: the rollups (decision 0048). By author the commits stay the better path:
        # one author's commits are few and their covering index reads them alone, while the
        # daily rollup has no index on the author (measured at 1M commits: 10 ms scanned,
        # 39 ms from the rollups).
        grouped = _from_rollups(session, dim="type", keys=list(types), **window)
    else:
        grouped = _scan(session, **filters)

    def ranked(name: str, limit: int | None = None) -> list[tuple[Any, dict[str, int]]]:
        out = sorted(grouped[name].items(), key=lambda kv: (-kv[1]["commits"], str(kv[0])))
        return out[:limit] if limit is not None else out

    by_type = [{"type": k, **f} for k, f in ranked("type")]
    # every commit has exactly one type (`none` included): the total is their sum
    total = {m: sum(t[m] for t in by_type) for m in MEASURES}
    return {
        "total": total,
        "by_repository": [{"repository_id": k, **f} for k, f in ranked("repository_id", top)],
        "by_author": [{"author": k, **f} for k, f in ranked("author", top)],
        "by_day": [{"day": d.isoformat(), **f} for d, f in sorted(grouped["day"].items())],
        "by_type": by_type,
    }


# --- refs -----------------------------------------------------------------------------------


def move_ref(session: Session, **values: Any) -> None:
    stmt = db.insert(session, refs).values(**values)
    keep = {k: stmt.excluded[k] for k in values if k not in ("repository_id", "ref", "forced_at")}
    if values.get("forced_at") is not None:
        keep["forced_at"] = stmt.excluded["forced_at"]
    session.execute(stmt.on_conflict_do_update(index_elements=["repository_id", "ref"], set_=keep))


def ref_of(session: Session, repository_id: str, ref: str) -> dict[str, Any] | None:
    row = session.execute(
        select(refs).where(refs.c.repository_id == repository_id, refs.c.ref == ref)
    ).first()
    return as_dict(row) if row is not None else None


# --- deliveries -----------------------------------------------------------------------------


def delivery_exists(session: Session, delivery_id: str) -> bool:
    stmt = select(deliveries.c.id).where(deliveries.c.id == delivery_id)
    return session.execute(stmt).first() is not None


def insert_delivery(session: Session, **values: Any) -> bool:
    """Insert the delivery's row; False when the id is already there (a redelivery)."""
    stmt = (
        db.insert(session, deliveries)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return _rowcount(session.execute(stmt)) == 1


def delivery(session: Session, delivery_id: str, *, lock: bool = False) -> model.Delivery | None:
    stmt = select(deliveries).where(deliveries.c.id == delivery_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).first()
    return model.Delivery(**as_dict(row)) if row is not None else None


def finish_delivery(session: Session, delivery_id: str, **values: Any) -> None:
    session.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(**values, attempts=deliveries.c.attempts + 1)
    )


def search_deliveries(
    session: Session,
    *,
    statuses: list[str] | None,
    event: str | None,
    repository: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[model.Delivery]:
    d = deliveries.c
    stmt = select(deliveries)
    if statuses:
        stmt = stmt.where(d.status.in_(statuses))
    if event:
        stmt = stmt.where(d.event == event)
    if repository:
        stmt = stmt.where(func.lower(d.repository) == repository.lower())
    if after is not None:
        when, last = utc(after[0]), after[1]
        stmt = stmt.where(or_(d.received_at < when, and_(d.received_at == when, d.id < last)))
    rows = session.execute(stmt.order_by(d.received_at.desc(), d.id.desc()).limit(limit)).all()
    return [model.Delivery(**as_dict(r)) for r in rows]


def delivery_statistics(session: Session, since: datetime | None) -> dict[str, Any]:
    d = deliveries.c
    where = [d.received_at >= utc(since)] if since is not None else []
    seconds = db.seconds_between(d.processed_at, d.received_at)
    by = session.execute(
        select(d.event, d.status, func.count()).where(*where).group_by(d.event, d.status)
    ).all()
    latency = session.execute(
        select(func.count(), func.avg(seconds), func.max(seconds)).where(
            *where, d.processed_at.is_not(None), d.status == "processed"
        )
    ).one()
    failures = session.execute(
        select(func.count()).select_from(deliveries).where(*where, d.status == "failed")
    ).scalar_one()
    pending = session.execute(
        select(func.min(d.received_at)).where(*where, d.status == "received")
    ).scalar()
    return {
        "by": [(str(e), str(s), int(n)) for e, s, n in by],
        "processed": int(latency[0] or 0),
        "avg_seconds": float(latency[1]) if latency[1] is not None else None,
        "max_seconds": float(latency[2]) if latency[2] is not None else None,
        "failures": int(failures),
        "oldest_unprocessed": utc(pending),
    }


# --- monitor --------------------------------------------------------------------------------


def insert_run(session: Session, **values: Any) -> None:
    session.execute(monitor_runs.insert().values(**values))


def finish_run(session: Session, run_id: str, **values: Any) -> None:
    session.execute(update(monitor_runs).where(monitor_runs.c.id == run_id).values(**values))


def last_runs(session: Session, limit: int = 1) -> list[model.MonitorRun]:
    m = monitor_runs.c
    rows = session.execute(select(monitor_runs).order_by(m.started_at.desc()).limit(limit)).all()
    return [model.MonitorRun(**as_dict(r)) for r in rows]
