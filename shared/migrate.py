"""Schema migrations: one Alembic history per context, each in its own schema.

`python -m shared.migrate` (= `make migrate`) upgrades every context that owns a schema to its
head revision, against the database `shared.db.engine()` points at (Cloud SQL, DATABASE_URL or
the local SQLite files), grants each schema to the database users listed in `DB_GRANTS` (the
deployments' IAM users in the cloud), then runs each context's `bootstrap` hook, declared in
its manifest (idempotent data every environment needs, such as the first admin). Each context
keeps its revisions in `functions/<context>/migrations/versions/`, its version table in its own
schema, and an `env.py` that only calls `run_env()`. Migrations run before deploy (Cloud Build)
or before `make dev` starts the functions, never at cold start. `python -m shared.migrate new
CONTEXT "message"` writes a new empty revision.

When every schema's version table already holds the heads of its files, `upgrade` skips
Alembic (importing it and every revision file is most of a warm `make dev`'s migrate step):
the heads come from a cache in the local directory keyed by a digest of the migration files,
and the version tables are read from the database itself, so a reset database, a new file or
an edited one always takes the full path.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from shared import db
from shared.config import settings
from shared.manifests import catalog

if TYPE_CHECKING:
    from alembic.config import Config

    from shared.manifests import Context

_TEMPLATE = '''"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
'''


# --- steps revisions share -------------------------------------------------------------------


def create_index_concurrently(op: Any, schema: str, name: str, definition: str) -> None:
    """`CREATE INDEX CONCURRENTLY <name> ON <schema>.<definition>` (PostgreSQL: no write lock on
    a live table), after dropping an invalid one a failed build may have left."""
    with op.get_context().autocommit_block():
        # Alembic asked pg8000 for the isolation level before switching to autocommit, which
        # opened a (read-only) transaction on the driver's connection: end it, or PostgreSQL
        # refuses CONCURRENTLY "inside a transaction block".
        op.get_bind().connection.dbapi_connection.rollback()
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema}.{name}")
        op.execute(f"CREATE INDEX CONCURRENTLY {name} ON {schema}.{definition}")


def set_statistics(op: Any, target: str, value: int, *, analyze: str = "") -> None:
    """`ALTER <target> SET STATISTICS <value>` (PostgreSQL; -1 is the default again), then
    `ANALYZE <analyze>` so the new sample is there at once."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER {target} SET STATISTICS {value}")
    if analyze:
        op.execute(f"ANALYZE {analyze}")


def _config(context: str) -> Config:
    from alembic.config import Config

    ctx = catalog().context(context)
    if not ctx.owns_schema:
        raise SystemExit(f"context {context!r} owns no schema")
    cfg = Config()
    cfg.set_main_option("script_location", str(ctx.path / "migrations"))
    cfg.set_main_option("switchyard.schema", ctx.owns_schema)
    cfg.set_main_option("version_path_separator", "os")
    return cfg


def run_env() -> None:
    """The body of every context's `migrations/env.py`."""
    from alembic import context as alembic_context

    schema = alembic_context.config.get_main_option("switchyard.schema")
    eng = db.engine()
    with eng.connect() as conn:
        if eng.dialect.name == "postgresql":
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            conn.commit()
        alembic_context.configure(
            connection=conn,
            version_table="alembic_version",
            version_table_schema=schema,
            render_as_batch=eng.dialect.name == "sqlite",
        )
        with alembic_context.begin_transaction():
            alembic_context.run_migrations()


def upgrade(context: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(_config(context), revision)
    grant(catalog().context(context).owns_schema or "")


# -- skipping Alembic when nothing is to do ---------------------------------------------------


def _digest(contexts: list[Context]) -> str:
    """sha256 of every migration file (name and bytes) of `contexts`."""
    h = hashlib.sha256()
    for ctx in contexts:
        folder = ctx.path / "migrations"
        for f in sorted(folder.rglob("*.py")):
            h.update(str(f.relative_to(folder.parent)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _heads_file() -> Path:
    return settings().local_dir / "migrate-heads.json"


def _cached_heads(digest: str) -> dict[str, list[str]] | None:
    try:
        cached = json.loads(_heads_file().read_text())
    except (OSError, ValueError):
        return None
    return (
        cached.get("heads") if isinstance(cached, dict) and cached.get("digest") == digest else None
    )


def _file_heads(context: str) -> list[str]:
    from alembic.script import ScriptDirectory

    return sorted(ScriptDirectory.from_config(_config(context)).get_heads())


def _db_heads(schema: str) -> list[str] | None:
    """The revisions in `schema`'s version table; None when it has none (a new database)."""
    from sqlalchemy import column, select, table
    from sqlalchemy.exc import DBAPIError

    versions = table("alembic_version", column("version_num"), schema=schema)
    try:
        with db.engine().connect() as conn:
            return sorted(conn.execute(select(versions.c.version_num)).scalars())
    except DBAPIError:
        return None


def current(contexts: list[Context]) -> bool:
    """True when each context's version table holds the (cached) heads of its files."""
    heads = _cached_heads(_digest(contexts))
    return heads is not None and all(
        heads.get(ctx.name) is not None and _db_heads(ctx.owns_schema or "") == heads[ctx.name]
        for ctx in contexts
    )


def _remember_heads(contexts: list[Context]) -> None:
    heads = {ctx.name: _file_heads(ctx.name) for ctx in contexts}
    try:
        _heads_file().parent.mkdir(parents=True, exist_ok=True)
        _heads_file().write_text(json.dumps({"digest": _digest(contexts), "heads": heads}))
    except OSError:
        pass  # only a cache: the next run takes the full path


_PRIVILEGE = "(?:select|insert|update|delete)"
_GRANTEE = re.compile(
    rf"^[A-Za-z0-9_.@-]{{1,128}}(:[a-z_][a-z0-9_]{{0,62}}(:{_PRIVILEGE}(,{_PRIVILEGE}){{0,3}})?)?$"
)
_DML = "SELECT, INSERT, UPDATE, DELETE"


def grants() -> dict[str, list[str]]:
    """`DB_GRANTS` (JSON `{schema: [grantee, ...]}`, from Terraform's `sql_grants`).

    A grantee is a database user (DML on every table of the schema, now and later),
    `user:table` (DML on that one table) or `user:table:select,update` (those privileges on
    that one table: the platform's outbox roles, decision 0033).
    """
    raw = settings().db_grants
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict) or not all(
        isinstance(v, list) and all(isinstance(u, str) and _GRANTEE.match(u) for u in v)
        for v in value.values()
    ):
        raise SystemExit(
            "DB_GRANTS must map schema names to lists of user, user:table or "
            "user:table:privilege,... names"
        )
    return value


def grant(schema: str) -> None:
    """Give the deployments' IAM database users DML on `schema` (PostgreSQL; never DDL). A
    one-table grantee gets exactly its privileges on that table: what it held before and is
    no longer listed is revoked (in the same transaction)."""
    grantees = grants().get(schema, [])
    eng = db.engine()
    if not grantees or eng.dialect.name != "postgresql":
        return
    whole_schema = {g for g in grantees if ":" not in g}
    with eng.begin() as conn:
        for grantee in grantees:
            user, _, rest = grantee.partition(":")
            table, _, privileges = rest.partition(":")
            who = '"' + user.replace('"', "") + '"'
            stmts = [f'GRANT USAGE ON SCHEMA "{schema}" TO {who}']
            if table and user in whole_schema:
                continue  # it has DML on every table of the schema already
            if table:
                allowed = ", ".join(p.upper() for p in privileges.split(",")) or _DML
                stmts += [
                    f'REVOKE ALL ON "{schema}"."{table}" FROM {who}',
                    f'GRANT {allowed} ON "{schema}"."{table}" TO {who}',
                ]
            else:
                stmts += [
                    f'GRANT {_DML} ON ALL TABLES IN SCHEMA "{schema}" TO {who}',
                    f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO {who}',
                    f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" '
                    f"GRANT {_DML} ON TABLES TO {who}",
                    f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" '
                    f"GRANT USAGE, SELECT ON SEQUENCES TO {who}",
                ]
            for stmt in stmts:
                conn.execute(text(stmt))


def bootstrap(context: str) -> None:
    """Run the context's declared bootstrap hook (manifest `bootstrap: module:function`)."""
    hook = catalog().context(context).bootstrap
    if hook:
        module, _, function = hook.partition(":")
        getattr(importlib.import_module(module), function)()


def upgrade_all(*, with_bootstrap: bool = True) -> list[str]:
    """Upgrade every context with a schema (then bootstrap each); returns their names. Alembic
    is skipped when every schema is at its heads already (grants are applied either way)."""
    contexts = [ctx for ctx in catalog().contexts if ctx.owns_schema]
    if current(contexts):
        for ctx in contexts:
            grant(ctx.owns_schema or "")
    else:
        for ctx in contexts:
            upgrade(ctx.name)
        _remember_heads(contexts)
    done = [ctx.name for ctx in contexts]
    if with_bootstrap:
        for ctx in catalog().contexts:
            bootstrap(ctx.name)
    return done


def new_revision(context: str, message: str) -> None:
    ctx = catalog().context(context)
    folder = ctx.path / "migrations"
    (folder / "versions").mkdir(parents=True, exist_ok=True)
    env = folder / "env.py"
    if not env.exists():
        env.write_text(
            '"""Alembic environment: shared by every context."""\n\n'
            "from shared.migrate import run_env\n\nrun_env()\n"
        )
    mako = folder / "script.py.mako"
    if not mako.exists():
        mako.write_text(_TEMPLATE)
    from alembic import command

    command.revision(_config(context), message=message)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.migrate", description=__doc__)
    sub = parser.add_subparsers(dest="cmd")
    up = sub.add_parser("upgrade", help="upgrade every context (default)")
    up.add_argument("--context", help="only this context")
    up.add_argument("--no-bootstrap", action="store_true")
    sub.add_parser("bootstrap", help="only run every context's bootstrap (after upgrade)")
    new = sub.add_parser("new", help="write a new revision for a context")
    new.add_argument("context")
    new.add_argument("message")
    args = parser.parse_args(argv)
    from shared.logging import get_logger

    log = get_logger("switchyard.migrate")
    if args.cmd == "new":
        new_revision(args.context, args.message)
        return 0
    if args.cmd == "bootstrap":
        for ctx in catalog().contexts:
            bootstrap(ctx.name)
        log.info("bootstrapped every context")
        return 0
    context = getattr(args, "context", None)
    no_boot = getattr(args, "no_bootstrap", False)
    if context:
        upgrade(context)
        if not no_boot:
            bootstrap(context)
        done = [context]
    else:
        done = upgrade_all(with_bootstrap=not no_boot)
    log.info("migrated %s on %s", ", ".join(done) or "nothing", db.engine().dialect.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
