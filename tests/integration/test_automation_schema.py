"""The automation migrations and store.py describe the same schema: a fresh PostgreSQL
database migrated to head differs in nothing (tables, columns, types, nullability, indexes,
unique and foreign keys) from the tables store.py declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from functions.automation import store
from shared import db
from shared.migrate import upgrade
from tests.integration.support import configure, reset_platform


def test_migrated_schema_matches_store(monkeypatch, pg_url, tmp_path):
    configure(monkeypatch, DATABASE_URL=pg_url, SWITCHYARD_LOCAL_DIR=str(tmp_path))
    upgrade("automation")
    try:
        with db.engine().connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={
                    "include_schemas": True,
                    "include_name": lambda name, type_, parent: (
                        name == store.SCHEMA if type_ == "schema" else True
                    ),
                    "include_object": lambda obj, name, type_, reflected, compare_to: (
                        not (type_ == "table" and name == "alembic_version")
                    ),
                    "compare_type": True,
                },
            )
            diff = compare_metadata(ctx, store.metadata)
    finally:
        reset_platform()
    assert diff == [], diff
