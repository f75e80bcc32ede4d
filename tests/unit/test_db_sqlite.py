"""shared.db on the embedded SQLite default: schemas as attached databases, unit of work."""

import pytest
from sqlalchemy import Column, Integer, String, Table, select

from shared import db


@pytest.fixture()
def sqlite(tmp_path, monkeypatch):
    from shared.config import settings

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("INSTANCE_CONNECTION_NAME", raising=False)
    monkeypatch.setenv("SWITCHYARD_LOCAL_DIR", str(tmp_path))
    settings.cache_clear()
    db.reset()
    yield tmp_path
    db.reset()


def test_schema_qualified_tables_and_after_commit_hooks(sqlite):
    md = db.metadata("users")
    t = Table("things", md, Column("id", Integer, primary_key=True), Column("name", String(20)))
    md.create_all(db.engine())
    assert (sqlite / "sqlite" / "users.db").exists()
    ran = []
    with db.transaction() as s:
        s.execute(t.insert().values(id=1, name="a"))
        db.after_commit(s, lambda: ran.append("committed"))
    assert ran == ["committed"]
    with pytest.raises(RuntimeError), db.transaction() as s:
        s.execute(t.insert().values(id=2, name="b"))
        db.after_commit(s, lambda: ran.append("never"))
        raise RuntimeError("use case failed")
    assert ran == ["committed"]
    with db.transaction() as s:
        assert s.execute(select(t.c.id)).scalars().all() == [1]
