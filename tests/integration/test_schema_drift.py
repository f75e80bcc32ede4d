"""Each context's SQLAlchemy tables (store.py) and its Alembic head describe one schema.

A fresh PostgreSQL database is migrated to every context's head, then Alembic's autogenerate
comparison runs against the tables the context's `store.py` declares: any difference (a column,
a type, nullability, an index, a table) fails, naming the context. Change both together.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from shared.manifests import catalog
from tests.integration import support

CONTEXTS = [c.name for c in catalog().contexts if c.owns_schema]


@pytest.fixture(scope="module")
def fresh_url(pg_url: str) -> Iterator[str]:
    base = make_url(pg_url)
    name = f"switchyard_drift_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _store_metadata(context: str) -> MetaData:
    store = importlib.import_module(f"functions.{context}.store")
    found = {id(v): v for v in vars(store).values() if isinstance(v, MetaData)}
    assert len(found) == 1, f"functions/{context}/store.py must define exactly one MetaData"
    return next(iter(found.values()))


def test_every_context_with_a_schema_is_checked() -> None:
    assert CONTEXTS, "no context owns a schema"


@pytest.mark.parametrize("context", CONTEXTS)
def test_tables_match_the_alembic_head(
    context: str, fresh_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from shared import db
    from shared.migrate import upgrade

    support.configure(monkeypatch, DATABASE_URL=fresh_url, SWITCHYARD_LOCAL_DIR=str(tmp_path))
    metadata = _store_metadata(context)
    schema = catalog().context(context).owns_schema
    upgrade(context)

    def include(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
        if kind == "table":
            return obj.schema == schema and name != "alembic_version"
        return True

    def include_name(name: str | None, kind: str, parent: Any) -> bool:
        return name == schema if kind == "schema" else True

    with db.engine().connect() as conn:
        mc = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "include_object": include,
                "include_name": include_name,
                "compare_type": True,
                "compare_server_default": False,
            },
        )
        diff = compare_metadata(mc, metadata)
    db.reset()
    assert diff == [], f"functions/{context}: store.py and its migrations differ:\n" + "\n".join(
        map(repr, diff)
    )
