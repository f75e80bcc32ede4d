"""Helpers of the integration tests: point the platform at a test setup, act as a user."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import flask
import pytest

from shared import auth, db
from shared.config import settings
from shared.migrate import upgrade
from tests.waiting import wait_for

__all__ = [
    "Caller",
    "assert_problem",
    "configure",
    "migrated_database",
    "ok",
    "reset_platform",
    "wait_for",
]
PROBLEM_JSON = "application/problem+json"

# Variables of the developer's shell or of a cloud runtime that must not leak into a test.
_CLEARED = (
    "DATABASE_URL",
    "INSTANCE_CONNECTION_NAME",
    "JWT_SIGNING_KEY",
    "JWT_PUBLIC_KEYS",
    "SWITCHYARD_DEPLOYMENT",
    "K_SERVICE",
    "SERVICE_URLS",
    "BOOTSTRAP_ADMIN_EMAIL",
    "BOOTSTRAP_ADMIN_PASSWORD",
)


def reset_platform() -> None:
    """Forget what the platform cached from the environment (settings, engine, keys)."""
    settings.cache_clear()
    db.reset()
    auth.reset_keys()


def configure(mp: pytest.MonkeyPatch, **env: str) -> None:
    """A clean test environment (SWITCHYARD_ENV=test) plus `env`, caches reset."""
    for name in _CLEARED:
        mp.delenv(name, raising=False)
    mp.setenv("SWITCHYARD_ENV", "test")
    for name, value in env.items():
        mp.setenv(name, value)
    reset_platform()


@contextmanager
def migrated_database(pg_url: str, context: str) -> Iterator[str]:
    """A PostgreSQL database of its own (dropped after, whoever is still connected), made
    this process's DATABASE_URL with `context`'s migrations applied; yields its URL. For a
    module's tests that load many rows (the plan tests)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    base = make_url(pg_url)
    name = f"{base.database}_{context[:4]}{secrets.token_hex(3)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    mp = pytest.MonkeyPatch()
    try:
        configure(mp, DATABASE_URL=url)
        upgrade(context)
        yield url
    finally:
        reset_platform()
        mp.undo()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Caller:
    """A test client of `app` acting as one user (a real token for `sub` with `roles`)."""

    def __init__(
        self,
        app: flask.Flask,
        roles: tuple[str, ...] | list[str] = ("viewer",),
        sub: str | None = None,
    ) -> None:
        self.sub = sub or str(uuid.uuid4())
        self.roles = tuple(roles)
        token, _ = auth.issue_access_token(self.sub, list(roles))
        self.client = app.test_client()
        self.client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def ok(resp: Any, status: int = 200) -> Any:
    """The JSON body of a test-client response that must have `status`."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def assert_problem(resp: Any, status: int) -> dict[str, Any]:
    """The body of a problem+json answer (RFC 9457) with `status`, title and request id."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == PROBLEM_JSON, resp.mimetype
    body = resp.get_json()
    assert body["status"] == status and body["title"] and body["request_id"], body
    return dict(body)


def statistics_target(index: Any) -> int:
    """The statistics target ANALYZE uses for the column the trigram index `index`
    (SQLAlchemy) is on, in this process's database."""
    from sqlalchemy import text

    from shared import trigram

    schema, table, column = trigram._stats_key(index)
    with db.transaction() as s:
        return int(
            s.execute(
                text(
                    "SELECT attstattarget FROM pg_attribute "
                    "WHERE attrelid = to_regclass(:table) AND attname = :column"
                ),
                {"table": f"{schema}.{table}", "column": column},
            ).scalar_one()
        )
