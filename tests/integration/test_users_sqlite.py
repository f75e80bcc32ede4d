"""users on SQLite (`make dev` with no database configured): the migration applies, the
partial unique index on live emails and keyset pagination over timestamps work."""

import pytest
from sqlalchemy import inspect

from functions.users import model, service
from shared import db
from shared.migrate import upgrade
from tests.integration.support import configure, reset_platform


@pytest.fixture()
def sqlite_env(tmp_path, monkeypatch, pubsub_emulator):
    configure(monkeypatch, SWITCHYARD_LOCAL_DIR=str(tmp_path))
    upgrade("users")
    yield tmp_path
    reset_platform()


def test_migration_crud_and_pagination_on_sqlite(sqlite_env):
    assert db.is_sqlite()
    assert {"users", "outbox"} <= set(inspect(db.engine()).get_table_names(schema="users"))
    upgrade("users")  # idempotent

    made = [
        service.create_user(
            email=f"user{i}@example.com", name=f"User {i}", roles=["viewer"], password=None
        )
        for i in range(7)
    ]
    with pytest.raises(model.UserExists):
        service.create_user(
            email="user0@example.com", name="Again", roles=["viewer"], password=None
        )
    service.delete_user(made[0].id, actor_id="someone-else")
    again = service.create_user(
        email="user0@example.com", name="Again", roles=["viewer"], password=None
    )

    for sort in ("created_at", "email"):
        seen, after = [], None
        while True:
            batch = service.list_users(
                q=None, role=None, active=None, sort=sort, after=after, limit=4
            )
            seen += batch[:3]
            if len(batch) <= 3:
                break
            after = (getattr(batch[2], sort), batch[2].id)
        assert sorted(u.id for u in seen) == sorted([u.id for u in made[1:]] + [again.id])
