"""shared.migrate grants each schema to the database users Terraform lists (DB_GRANTS)."""

import json
import uuid

from sqlalchemy import create_engine, text

from tests.integration.support import configure, reset_platform


def test_grants_let_a_deployment_user_use_its_schema_only(pg_url, monkeypatch, tmp_path):
    role = f"sa_{uuid.uuid4().hex[:8]}@proj.iam"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    configure(
        monkeypatch,
        DATABASE_URL=pg_url,
        SWITCHYARD_LOCAL_DIR=str(tmp_path),
        DB_GRANTS=json.dumps({"users": [role]}),
    )
    from shared.migrate import upgrade

    try:
        upgrade("users")
        with admin.connect() as conn:

            def can(priv: str, table: str) -> bool:
                return conn.execute(
                    text("SELECT has_table_privilege(:r, :t, :p)"),
                    {"r": role, "t": table, "p": priv},
                ).scalar()

            assert can("INSERT", "users.outbox") and can("SELECT", "users.outbox")
            assert conn.execute(
                text("SELECT has_schema_privilege(:r, 'users', 'USAGE')"), {"r": role}
            ).scalar()
            assert not conn.execute(
                text("SELECT has_schema_privilege(:r, 'users', 'CREATE')"), {"r": role}
            ).scalar()
    finally:
        reset_platform()
        with admin.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_an_outbox_operator_gets_the_outbox_only(pg_url, monkeypatch, tmp_path):
    role = f"ops_{uuid.uuid4().hex[:8]}@proj.iam"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    configure(
        monkeypatch,
        DATABASE_URL=pg_url,
        SWITCHYARD_LOCAL_DIR=str(tmp_path),
        DB_GRANTS=json.dumps({"users": [f"{role}:outbox"]}),
    )
    from shared.migrate import upgrade

    try:
        upgrade("users")
        with admin.connect() as conn:

            def can(priv: str, table: str) -> bool:
                return conn.execute(
                    text("SELECT has_table_privilege(:r, :t, :p)"),
                    {"r": role, "t": table, "p": priv},
                ).scalar()

            assert can("DELETE", "users.outbox") and can("UPDATE", "users.outbox")
            assert not can("SELECT", "users.users")
    finally:
        reset_platform()
        with admin.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()
