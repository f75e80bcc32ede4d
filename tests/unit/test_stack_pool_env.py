"""The local stack runs every SQL deployment with the pool the cloud gives it
(`Deployment.pool_env`: `db_pool` connections, no overflow), as infra/deploy and Terraform do."""

from __future__ import annotations

from pathlib import Path

import pytest

import emulators


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> emulators.Stack:
    for name in ("DB_POOL_SIZE", "DB_MAX_OVERFLOW"):
        monkeypatch.delenv(name, raising=False)
    return emulators.Stack(local_dir=tmp_path, echo=False)


def test_sql_deployments_get_the_cloud_pool(stack: emulators.Stack) -> None:
    sql = [d for d in stack.catalog.deployments.values() if d.uses_sql]
    assert sql
    for dep in sql:
        env = stack.env_for(dep)
        assert env["DB_POOL_SIZE"] == str(dep.db_pool) != "0", dep.name
        assert env["DB_MAX_OVERFLOW"] == "0", dep.name


def test_other_deployments_get_no_pool_settings(stack: emulators.Stack) -> None:
    for dep in stack.catalog.deployments.values():
        if not dep.uses_sql:
            assert dep.pool_env == {}
            assert "DB_MAX_OVERFLOW" not in stack.env_for(dep), dep.name


def test_an_explicit_setting_wins(stack: emulators.Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_MAX_OVERFLOW", "3")
    dep = stack.catalog.deployments["users-api"]
    assert stack.env_for(dep)["DB_MAX_OVERFLOW"] == "3"
