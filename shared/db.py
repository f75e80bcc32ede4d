"""Relational data: one SQLAlchemy engine per process and a unit of work.

`engine()` connects, in order of precedence: through the Cloud SQL Python connector (pg8000,
lazy refresh, optional IAM database auth) when `INSTANCE_CONNECTION_NAME` is set (the connector
is imported only then: it costs ~600 ms of cold start); else to `DATABASE_URL`
(`postgresql+pg8000://...`); else to SQLite files under `.local/` for `make dev` with nothing
configured, where each context schema is an attached database so schema-qualified tables work
the same as on PostgreSQL. Pools are small: Cloud Run concurrency x instances must fit the
server's `max_connections`. `transaction()` is the unit of work: one commit per use case, then
the callbacks registered with `after_commit` (the outbox publishes there). Row helpers every
store uses: `utc()` (timestamps back as aware UTC, whatever the dialect returns), `as_dict()`
(a row as a dict with its timestamps in UTC), `insert()` (an INSERT that knows ON CONFLICT
on PostgreSQL and SQLite alike) and `newest_first()` (a keyset page, optionally gathered before
it is ordered), and two SQL expressions both dialects spell differently:
`seconds_between(later, earlier)` and `utc_day(ts)`. Nothing connects at import time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, Row
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import FunctionElement

from shared.config import settings

_AFTER_COMMIT = "switchyard.after_commit"

__all__ = [
    "IDEMPOTENCY_KEYS",
    "after_commit",
    "as_dict",
    "create_idempotency_keys",
    "engine",
    "idempotency_table",
    "insert",
    "is_sqlite",
    "metadata",
    "newest_first",
    "ping",
    "reset",
    "seconds_between",
    "transaction",
    "utc",
    "utc_day",
]


@functools.cache
def engine() -> Engine:
    """The engine of this process, created on first use."""
    s = settings()
    pool = {
        "pool_size": s.db_pool_size,
        "max_overflow": s.db_max_overflow,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
    }
    if s.instance_connection_name:
        _cache_pg8000_paramstyle()
        return create_engine("postgresql+pg8000://", creator=_cloud_sql_creator(), **pool)
    if s.database_url:
        _cache_pg8000_paramstyle()
        return create_engine(s.database_url, **pool)
    return _sqlite_engine()


class _Placeholders:
    """Stands for a statement's parameters while pg8000 converts its placeholders once: a
    sequence style hands it back unchanged, a named style reads the names in their order."""

    def __init__(self) -> None:
        self.names: list[Any] = []

    def __getitem__(self, name: Any) -> None:
        self.names.append(name)


@functools.lru_cache(maxsize=4096)
def _converted(style: str, query: str) -> tuple[str, tuple[Any, ...] | None]:
    seen = _Placeholders()
    statement, vals = _pg8000_convert()(style, query, seen)
    return statement, (None if vals is seen else tuple(seen.names))


def _convert_paramstyle(style: str, query: str, args: Any) -> tuple[str, Any]:
    """pg8000's `convert_paramstyle`, remembered per statement text: pg8000 scans every
    statement character by character on each execute (a tenth of a request's CPU), while
    SQLAlchemy sends the same few texts again and again. Same answers, errors included."""
    statement, names = _converted(style, query)
    return statement, args if names is None else tuple(args[n] for n in names)


@functools.cache
def _pg8000_convert() -> Callable[[str, str, Any], tuple[str, Any]]:
    from pg8000 import dbapi

    return dbapi.convert_paramstyle


def _cache_pg8000_paramstyle() -> None:
    """Both of pg8000's cursors (`legacy`, SQLAlchemy's own connect; `dbapi`, the Cloud SQL
    connector's) look the function up in their module on each execute."""
    from pg8000 import dbapi, legacy

    _pg8000_convert()
    legacy.convert_paramstyle = _convert_paramstyle
    dbapi.convert_paramstyle = _convert_paramstyle


def _cloud_sql_creator() -> Callable[[], Any]:
    from google.cloud.sql.connector import Connector, IPTypes, RefreshStrategy

    s = settings()
    ip_type = {"public": IPTypes.PUBLIC, "private": IPTypes.PRIVATE, "psc": IPTypes.PSC}
    connector = Connector(
        refresh_strategy=RefreshStrategy.LAZY, ip_type=ip_type.get(s.db_ip_type, IPTypes.PUBLIC)
    )

    def connect() -> Any:
        kwargs: dict[str, Any] = {"user": s.db_user, "db": s.db_name}
        if s.db_iam_auth:
            kwargs["enable_iam_auth"] = True
        else:
            kwargs["password"] = s.db_password
        return connector.connect(s.instance_connection_name, "pg8000", **kwargs)

    return connect


def _sqlite_engine() -> Engine:
    from shared.manifests import catalog

    folder = settings().local_dir / "sqlite"
    folder.mkdir(parents=True, exist_ok=True)
    eng = create_engine(f"sqlite:///{folder / 'main.db'}", connect_args={"timeout": 30})
    schemas = catalog().schemas

    @event.listens_for(eng, "connect")
    def _attach(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        for schema in schemas:
            cur.execute(f"ATTACH DATABASE '{folder / schema}.db' AS {schema}")
            cur.execute(f"PRAGMA {schema}.journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return eng


def is_sqlite() -> bool:
    return engine().dialect.name == "sqlite"


def metadata(schema: str) -> MetaData:
    """The MetaData of a context's tables, all in its own schema, with the platform's table
    every schema has: `idempotency_keys` (see below)."""
    md = MetaData(schema=schema)
    idempotency_table(md)
    return md


# --- idempotency keys (shared.http's Idempotency-Key, decision 0045) -------------------------
# One table per context schema, so a key is recorded in the transaction of the effect it
# guards (the schema's own tables, the deployment's own grants). The logic is in
# shared/http/_idempotency.py; the columns are defined here because every store's MetaData
# carries them (tests/integration/test_schema_drift.py compares it with the migrations).

IDEMPOTENCY_KEYS = "idempotency_keys"


def idempotency_table(md: MetaData) -> Table:
    """The `idempotency_keys` table of the schema `md` is for (one per schema)."""
    name = f"{md.schema}.{IDEMPOTENCY_KEYS}" if md.schema else IDEMPOTENCY_KEYS
    if name in md.tables:
        return md.tables[name]
    ts = DateTime(timezone=True)
    return Table(
        IDEMPOTENCY_KEYS,
        md,
        Column("id", String(64), primary_key=True),  # sha256 of deployment, subject, route, key
        Column("deployment", String(63), nullable=False),
        Column("subject", String(255), nullable=False),
        Column("route", String(255), nullable=False),
        Column("fingerprint", String(64), nullable=False),  # sha256 of the canonical request
        Column("state", String(16), nullable=False),  # running | committed | done | withheld
        Column("owner", String(32), nullable=False),  # the request holding the claim
        Column("lease_until", ts, nullable=False),
        Column("created_at", ts, nullable=False),
        Column("expires_at", ts, nullable=False),
        Column("status", Integer, nullable=True),
        Column("headers", Text, nullable=True),  # JSON object
        Column("body", LargeBinary, nullable=True),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )


def create_idempotency_keys(op: Any, schema: str) -> None:
    """Alembic: create the `idempotency_keys` table of `schema`, from `idempotency_table`."""
    table = idempotency_table(MetaData(schema=schema))
    op.create_table(IDEMPOTENCY_KEYS, *(c._copy() for c in table.columns), schema=schema)
    for index in table.indexes:
        op.create_index(
            index.name, IDEMPOTENCY_KEYS, [c.name for c in index.columns], schema=schema
        )


@contextmanager
def transaction() -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error, then run after-commit hooks."""
    session = Session(engine(), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        hooks = session.info.pop(_AFTER_COMMIT, [])
        session.close()
    for hook in hooks:
        hook()


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run `hook` once `session`'s transaction has committed (not on rollback)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(hook)


def ping() -> None:
    with engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def reset() -> None:
    """Dispose of the engine (tests that change the database configuration)."""
    if engine.cache_info().currsize:
        engine().dispose()
    engine.cache_clear()


# --- row helpers -------------------------------------------------------------------------


def utc(value: datetime | None) -> datetime | None:
    """`value` as an aware UTC datetime (SQLite hands timestamps back naive, in UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_dict(row: Row[Any]) -> dict[str, Any]:
    """A result row as a dict, every datetime in it aware UTC."""
    out = dict(row._mapping)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = utc(value)
    return out


def newest_first(
    stmt: Select[Any], order: Sequence[Column[Any]], limit: int, *, gather: bool = False
) -> Select[Any]:
    """The first `limit` rows of `stmt` by `order` descending. With `gather`, for a filter an
    index finds few rows of, the rows are read whole first and ordered after (a MATERIALIZED
    CTE is a fence): the planner, assuming the filtered rows spread evenly along the order, would
    walk the order's index from the newest and test row after row until it has a page."""
    if not gather:
        return stmt.order_by(*(c.desc() for c in order)).limit(limit)
    rows = stmt.cte("gathered").prefix_with("MATERIALIZED")
    return select(*rows.c).order_by(*(rows.c[c.name].desc() for c in order)).limit(limit)


def insert(session: Session, table: Table) -> Any:
    """A dialect INSERT that knows ON CONFLICT (PostgreSQL and SQLite spell it the same)."""
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


# --- dialect-specific SQL ------------------------------------------------------------------


class seconds_between(FunctionElement[float]):  # noqa: N801 - reads as the SQL function it is
    """Seconds from the second timestamp to the first (`later - earlier`), as a float."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "postgresql")
def _seconds_pg(element: seconds_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return (
        f"EXTRACT(EPOCH FROM ({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)}))"
    )


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return (
        f"((julianday({compiler.process(later, **kw)}) - "
        f"julianday({compiler.process(earlier, **kw)})) * 86400.0)"
    )


class utc_day(FunctionElement[Any]):  # noqa: N801 - reads as the SQL function it is
    """The UTC calendar day of a timestamp (a date on PostgreSQL, 'YYYY-MM-DD' on SQLite)."""

    inherit_cache = True
    name = "utc_day"


@compiles(utc_day, "postgresql")
def _day_pg(element: utc_day, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"CAST(({compiler.process(value, **kw)} AT TIME ZONE 'UTC') AS DATE)"


@compiles(utc_day, "sqlite")
def _day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"date({compiler.process(value, **kw)})"


# --- traces: a span per statement ----------------------------------------------------------
# Listened on every Engine (this module's and any other), so `engine()` stays as it is. A
# statement gets a client span under the current span (none outside a request or delivery),
# named by its verb and first table; its text is the one the driver got, with placeholders:
# parameter values never reach a span.

_AFTER_WORD = {"SELECT": "FROM", "DELETE": "FROM", "INSERT": "INTO", "UPDATE": "UPDATE"}


@functools.lru_cache(maxsize=4096)
def _span_name(statement: str) -> str:
    """`SELECT users.users`, `INSERT users.outbox`, `COMMIT`...: the verb and its table."""
    words = statement[:2000].split()
    if not words:
        return "SQL"
    verb = words[0].upper()
    marker = _AFTER_WORD.get(verb)
    upper = [w.upper() for w in words]
    if marker and marker in upper:
        at = upper.index(marker) + 1
        if at < len(words) and words[at][:1] != "(":
            return f"{verb} {words[at].replace(chr(34), '').strip(',;')}"
    return verb


@event.listens_for(Engine, "before_cursor_execute")
def _statement_began(
    conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
) -> None:
    from shared import tracing

    if context is None or not tracing.enabled():
        return
    context._switchyard_span = tracing.start_child(
        _span_name(statement),
        kind="client",
        attributes={"db.system.name": conn.dialect.name, "db.query.text": statement[:4000]},
    )


@event.listens_for(Engine, "after_cursor_execute")
def _statement_ended(
    _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
) -> None:
    span = getattr(context, "_switchyard_span", None)
    if span is not None:
        context._switchyard_span = None
        span.end()


@event.listens_for(Engine, "handle_error")
def _statement_failed(exc_context: Any) -> None:
    context = exc_context.execution_context
    span = getattr(context, "_switchyard_span", None) if context is not None else None
    if span is not None:
        from shared import tracing

        context._switchyard_span = None
        tracing.end(span, type(exc_context.original_exception).__name__)
