"""auth on SQLite (`make dev` with no database configured): the migration applies and the
SQL that needs care on SQLite (ON CONFLICT ... RETURNING, UPDATE ... RETURNING) works; the
bootstrap refuses to leave a non-local environment without an admin."""

import uuid

import pytest
from sqlalchemy import inspect

from functions.auth import bootstrap, service, store
from shared import db
from shared.config import ConfigError, settings
from shared.migrate import upgrade
from tests.integration.support import configure, reset_platform


@pytest.fixture()
def sqlite_env(tmp_path, monkeypatch, pubsub_emulator, firestore_emulator):
    configure(monkeypatch, SWITCHYARD_LOCAL_DIR=str(tmp_path), LOGIN_MAX_FAILURES="2")
    upgrade("auth")
    yield tmp_path
    reset_platform()


def test_migration_and_token_flows_on_sqlite(sqlite_env):
    assert db.is_sqlite()
    tables = set(inspect(db.engine()).get_table_names(schema="auth"))
    assert {"credentials", "refresh_tokens", "login_failures", "outbox"} <= tables
    upgrade("auth")  # idempotent

    user_id, email = str(uuid.uuid4()), "ann@switchyard.local"
    service.put_credential(
        user_id,
        email=email,
        roles=["viewer"],
        active=True,
        version=1,
        password="correct horse battery",
    )
    pair = service.login("Ann@Switchyard.local", "correct horse battery", "127.0.0.1")
    rotated = service.refresh(pair.refresh_token)
    with pytest.raises(Exception) as reused:
        service.refresh(pair.refresh_token)
    assert reused.value.status == 401
    with pytest.raises(Exception) as revoked:
        service.refresh(rotated.refresh_token)
    assert revoked.value.status == 401

    for _ in range(2):
        with pytest.raises(Exception) as wrong:
            service.login(email, "wrong password!", "127.0.0.2")
        assert wrong.value.status == 401
    with pytest.raises(Exception) as throttled:
        service.login(email, "correct horse battery", "127.0.0.2")
    assert throttled.value.status == 429 and int(throttled.value.headers["Retry-After"]) > 0
    assert service.login(email, "correct horse battery", "127.0.0.3").access_token


def test_bootstrap_outside_local_needs_an_admin(sqlite_env, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_ENV", "prod")
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    settings.cache_clear()
    with pytest.raises(ConfigError, match="BOOTSTRAP_ADMIN_EMAIL"):
        bootstrap.run()
    monkeypatch.setenv("BOOTSTRAP_ADMIN_EMAIL", "root@example.com")
    monkeypatch.setenv("BOOTSTRAP_ADMIN_PASSWORD", "a long production secret")
    settings.cache_clear()
    bootstrap.run()
    monkeypatch.delenv("BOOTSTRAP_ADMIN_EMAIL")
    monkeypatch.delenv("BOOTSTRAP_ADMIN_PASSWORD")
    settings.cache_clear()
    bootstrap.run()  # an active admin exists now: nothing to ask for
    with db.transaction() as tx:
        assert store.has_active_admin(tx)


def test_attempt_windows_restart_once_they_pass_on_sqlite(sqlite_env):
    from datetime import UTC, datetime, timedelta

    key, now = "ip:192.0.2.1", datetime.now(UTC)
    with db.transaction() as tx:
        assert store.count_attempt(tx, key, now, 60) == (1, now)
        assert store.count_attempt(tx, key, now + timedelta(seconds=30), 60) == (2, now)
        later = now + timedelta(seconds=61)
        assert store.count_attempt(tx, key, later, 60) == (1, later)
