"""The outbox grants per operator (decision 0033), end to end: Terraform's `sql_grants` (from the
manifests' platform roles) applied by shared.migrate to a real PostgreSQL. The relay may read
and mark rows (SELECT, UPDATE), ops-api's report only read them (SELECT), the retention job
read and delete them (SELECT, DELETE); none of them anything else of the schema."""

from __future__ import annotations

import json
import uuid

import pytest
from infra_support import PROJECT, ROOT
from sqlalchemy import create_engine, text

from shared.manifests import Catalog
from tests.integration.support import configure, reset_platform

PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


def _outbox_grants(sql_grants: dict[str, list[str]], schema: str) -> dict[str, set[str]]:
    """user -> privileges on <schema>.outbox, as Terraform lists them."""
    out = {}
    for grantee in sql_grants[schema]:
        user, _, rest = grantee.partition(":")
        if rest:
            table, _, privileges = rest.partition(":")
            assert table == "outbox", grantee
            out[user] = {p.upper() for p in privileges.split(",")}
    return out


def test_terraform_lists_each_outbox_operator_with_its_own_privileges(catalog, terraform_plan):
    got = terraform_plan(ROOT / "functions")
    relay, api, cleanup = (
        catalog.with_role("outbox-relay")[0],
        catalog.with_role("dead-letter-operator")[0],
        catalog.with_role("outbox-purger")[0],
    )
    assert got["outbox_privileges"] == {
        relay: ["select", "update"],
        api: ["select"],
        cleanup: ["delete", "select"],
    }
    for schema in got["sql_grants"]:
        assert _outbox_grants(got["sql_grants"], schema) == {
            f"{relay}@{PROJECT}.iam": {"SELECT", "UPDATE"},
            f"{api}@{PROJECT}.iam": {"SELECT"},
            f"{cleanup}@{PROJECT}.iam": {"SELECT", "DELETE"},
        }, schema


@pytest.fixture
def operator_roles(pg_url: str):
    """PostgreSQL roles standing for the operators' IAM users, unique to this test."""
    suffix = uuid.uuid4().hex[:8]
    admin = create_engine(pg_url)
    made: list[str] = []

    def make(user: str) -> str:
        role = user.replace(f"@{PROJECT}.iam", f"@t{suffix}.iam")
        with admin.begin() as conn:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        made.append(role)
        return role

    yield admin, make
    reset_platform()
    with admin.begin() as conn:
        for role in made:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
    admin.dispose()


def _privileges(conn, role: str, table: str) -> set[str]:
    return {
        p
        for p in PRIVILEGES
        if conn.execute(
            text("SELECT has_table_privilege(:r, :t, :p)"), {"r": role, "t": table, "p": p}
        ).scalar()
    }


def test_migrate_applies_exactly_those_privileges_and_revokes_the_rest(
    catalog: Catalog, terraform_plan, operator_roles, pg_url, monkeypatch, tmp_path
):
    admin, make = operator_roles
    schema = "users"
    wanted = _outbox_grants(terraform_plan(ROOT / "functions")["sql_grants"], schema)
    roles = {make(user): privs for user, privs in wanted.items()}
    from shared.migrate import upgrade

    # Before: each held DML on the outbox (the earlier "user:outbox" grant).
    configure(
        monkeypatch,
        DATABASE_URL=pg_url,
        SWITCHYARD_LOCAL_DIR=str(tmp_path),
        DB_GRANTS=json.dumps({schema: [f"{r}:outbox" for r in roles]}),
    )
    upgrade(schema)
    with admin.connect() as conn:
        for role in roles:
            assert _privileges(conn, role, f"{schema}.outbox") == set(PRIVILEGES)

    # Now: Terraform's grants, the roles renamed to this test's.
    grants = [
        f"{r}:outbox:{','.join(sorted(p.lower() for p in privs))}" for r, privs in roles.items()
    ]
    configure(
        monkeypatch,
        DATABASE_URL=pg_url,
        SWITCHYARD_LOCAL_DIR=str(tmp_path),
        DB_GRANTS=json.dumps({schema: grants}),
    )
    upgrade(schema)
    with admin.connect() as conn:
        for role, privs in roles.items():
            assert _privileges(conn, role, f"{schema}.outbox") == privs, role
            assert _privileges(conn, role, f"{schema}.users") == set(), role


def test_migrate_refuses_a_privilege_that_is_not_dml(monkeypatch, tmp_path, pg_url):
    from shared.migrate import grants

    for bad in ("ops@p.iam:outbox:truncate", "ops@p.iam:outbox:select;drop", "ops@p.iam:outbox:"):
        configure(
            monkeypatch,
            DATABASE_URL=pg_url,
            SWITCHYARD_LOCAL_DIR=str(tmp_path),
            DB_GRANTS=json.dumps({"users": [bad]}),
        )
        with pytest.raises(SystemExit):
            grants()
