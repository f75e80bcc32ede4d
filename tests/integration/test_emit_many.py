"""`shared.events.emit_many` on PostgreSQL and the Pub/Sub emulator (and SQLite for its
chunked insert): a batch's rows go in one INSERT in the caller's transaction and are published
after commit; a rollback publishes nothing; an invalid event or one the running deployment
does not declare raises before any row is written; each event has its own publish span."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import MetaData, event, select, text

from shared import db, events, manifests, tracing
from shared.config import settings
from shared.events import EventError, emit_many, outbox_table
from shared.events._outbox import SQLITE_ROWS_PER_STATEMENT, flush
from tests.e2e.support import wait_for
from tests.integration import test_relay as relay_tests
from tests.integration.support import configure, reset_platform
from tests.integration.test_relay import Pinged, fresh_subscription, pull_all
from tests.unit import test_tracing as tracing_tests

# their fixtures, used here under the same names
database, subscriber, spans = relay_tests.database, relay_tests.subscriber, tracing_tests.spans

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _catalog(tmp_path: Path, schema: str) -> Any:
    """A catalog with one context `relaytest`: `relaytest-api` publishes relaytest.pinged,
    `relaytest-worker` publishes nothing."""
    folder = tmp_path / "relaytest"
    folder.mkdir()
    (folder / "function.yaml").write_text(
        textwrap.dedent(f"""
        context: relaytest
        owns_schema: {schema}
        deployments:
          relaytest-api:
            entry_point: api
            trigger: http
            routes: [/api/relaytest]
            publishes: [relaytest.pinged]
          relaytest-worker:
            entry_point: worker
            trigger: http
            routes: [/api/relaytest-worker]
    """)
    )
    (folder / "main.py").write_text(
        "def api(request):\n    pass\n\n\ndef worker(request):\n    pass\n"
    )
    return manifests.load(tmp_path)


@pytest.fixture()
def outbox(database: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The test context's own schema and outbox on PostgreSQL."""
    schema = f"relaytest_{uuid.uuid4().hex[:8]}"
    cat = _catalog(tmp_path, schema)
    monkeypatch.setattr(manifests, "catalog", lambda: cat)
    events._outbox._publisher_schema.cache_clear()
    with db.engine().begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    table = outbox_table(MetaData(schema=schema))
    table.metadata.create_all(db.engine())
    yield table
    events._outbox._publisher_schema.cache_clear()


def _rows(table: Any) -> list[Any]:
    with db.transaction() as s:
        return list(s.execute(select(table).order_by(table.c.created_at, table.c.id)).all())


class _Inserts:
    """The INSERT statements run on the engine while open."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __enter__(self) -> _Inserts:
        event.listen(db.engine(), "before_cursor_execute", self._one)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(db.engine(), "before_cursor_execute", self._one)

    def _one(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            self.seen.append(statement)


def _messages(
    subscriber: Any, subscription: str, ids: list[str], seen: dict[str, Any] | None = None
) -> list[Any]:
    """The messages carrying `ids`, in that order (every message pulled meanwhile is
    acknowledged and kept in `seen`, by event id)."""
    got: dict[str, Any] = {} if seen is None else seen

    def all_of_them() -> bool:
        resp = subscriber.pull(
            request={"subscription": subscription, "max_messages": 50}, timeout=5
        )
        for m in resp.received_messages:
            got[m.message.attributes["event_id"]] = m.message
        if resp.received_messages:
            ack_ids = [m.ack_id for m in resp.received_messages]
            subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ack_ids})
        return all(i in got for i in ids)

    wait_for(all_of_them, timeout=15, interval=0.1)
    return [got[i] for i in ids]


def test_a_batch_is_one_insert_committed_then_published(outbox: Any, subscriber: Any) -> None:
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    before = datetime.now(UTC)
    with _Inserts() as inserts, db.transaction() as s:
        ids = emit_many(s, [Pinged(n=n) for n in range(5)], actor="user-5")
        assert _rows(outbox) == []  # not committed yet: in the caller's transaction
    after = datetime.now(UTC)
    assert len(inserts.seen) == 1 and outbox.fullname in inserts.seen[0]
    assert len(set(ids)) == 5
    assert flush(timeout=30)
    by_id = {r.id: r for r in _rows(outbox)}
    assert set(by_id) == set(ids)
    rows = [by_id[i] for i in ids]
    assert [r.created_at for r in rows] == sorted(r.created_at for r in rows)  # stamped in order
    for n, r in enumerate(rows):
        assert r.event_type == "relaytest.pinged" and r.schema_version == 1
        assert json.loads(r.payload) == {"n": n}
        assert r.published_at is not None and r.attempts == 1
        assert before <= db.utc(r.created_at) <= after  # type: ignore[operator]
        attrs = json.loads(r.attributes)
        assert attrs["event_id"] == r.id and attrs["actor"] == "user-5"
        assert attrs["source"] == "local" and attrs["schema_version"] == "1"
        assert datetime.fromisoformat(attrs["occurred_at"]) == db.utc(r.created_at)
    assert pull_all(subscriber, subscription, ids) == [0, 1, 2, 3, 4]


def test_emit_many_and_emit_share_one_after_commit_hand_over(outbox: Any) -> None:
    with db.transaction() as s:
        first = events.emit(s, Pinged(n=1))
        rest = emit_many(s, [Pinged(n=2), Pinged(n=3)])
        assert emit_many(s, []) == []
        hooks = s.info[db._AFTER_COMMIT]
        assert len(hooks) == 1
    assert flush(timeout=30)
    assert {r.id for r in _rows(outbox) if r.published_at is not None} == {first, *rest}


def test_a_rolled_back_batch_publishes_nothing(outbox: Any, subscriber: Any) -> None:
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    rolled: list[str] = []
    with pytest.raises(RuntimeError), db.transaction() as s:
        rolled = emit_many(s, [Pinged(n=n) for n in range(3)])
        raise RuntimeError("use case failed")
    assert len(rolled) == 3
    assert flush(timeout=30)
    assert _rows(outbox) == []
    # a later event arrives, the rolled-back three never do: they were never handed over
    with db.transaction() as s:
        (later,) = emit_many(s, [Pinged(n=99)])
    assert flush(timeout=30)
    seen: dict[str, Any] = {}
    (message,) = _messages(subscriber, subscription, [later], seen)
    assert json.loads(message.data) == {"n": 99}
    assert set(seen).isdisjoint(rolled)


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_an_invalid_event_raises_before_any_row_is_written(outbox: Any) -> None:
    bad = Pinged.model_construct(n="not a number")  # bypasses validation, as a bug would
    with _Inserts() as inserts, db.transaction() as s:
        with pytest.raises(ValidationError):
            emit_many(s, [Pinged(n=1), bad, Pinged(n=2)])
        with pytest.raises(EventError, match="not a registered Event"):
            emit_many(s, [Pinged(n=1), {"n": 2}])  # type: ignore[list-item]
        assert db._AFTER_COMMIT not in s.info  # nothing to hand over
    assert inserts.seen == []
    assert _rows(outbox) == []  # the transaction committed: nothing was in it


def test_the_running_deployment_must_declare_every_event(
    outbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHYARD_DEPLOYMENT", "relaytest-worker")
    settings.cache_clear()
    try:
        declared = pytest.raises(EventError, match="relaytest-worker does not declare")
        with _Inserts() as inserts, db.transaction() as s, declared:
            emit_many(s, [Pinged(n=1), Pinged(n=2)])
        assert inserts.seen == []
        monkeypatch.setenv("SWITCHYARD_DEPLOYMENT", "relaytest-api")
        settings.cache_clear()
        with db.transaction() as s:
            ids = emit_many(s, [Pinged(n=1), Pinged(n=2)])
        assert flush(timeout=30)
        rows = _rows(outbox)
        assert [r.id for r in rows] == ids
        assert {json.loads(r.attributes)["source"] for r in rows} == {"relaytest-api"}
    finally:
        monkeypatch.delenv("SWITCHYARD_DEPLOYMENT")
        settings.cache_clear()


def test_each_event_has_its_own_publish_span(outbox: Any, subscriber: Any, spans: Any) -> None:
    subscription = fresh_subscription(subscriber, "relaytest.pinged")
    scope = tracing.server("POST /api/relaytest", f"00-{TRACE}-00f067aa0ba902b7-01")
    try:
        with db.transaction() as s:
            ids = emit_many(s, [Pinged(n=n) for n in range(3)])
    finally:
        scope.finish()
    assert flush(timeout=30)
    messages = _messages(subscriber, subscription, ids)
    tracing.flush()
    finished = spans.get_finished_spans()
    (request,) = [sp for sp in finished if sp.name == "POST /api/relaytest"]
    publishes = {
        sp.attributes["switchyard.event_id"]: sp
        for sp in finished
        if sp.name == "publish relaytest.pinged"
    }
    assert set(publishes) == set(ids)
    for event_id, message in zip(ids, messages, strict=True):
        publish = publishes[event_id]
        assert publish.kind.name == "PRODUCER"
        assert publish.parent.span_id == request.context.span_id
        assert publish.attributes["messaging.message.id"] == message.message_id
        assert message.attributes["traceparent"] == tracing.format_traceparent(publish)
    (insert,) = [sp for sp in finished if sp.name == f"INSERT {outbox.fullname}"]
    assert insert.parent.span_id == request.context.span_id
    assert not any(event_id in json.dumps(dict(insert.attributes)) for event_id in ids)


def test_sqlite_takes_a_large_batch_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local fallback: multi-row VALUES under SQLite's variable limit, every row there."""
    schema = f"relaytest_{uuid.uuid4().hex[:8]}"
    (tmp_path / "catalog").mkdir()
    cat = _catalog(tmp_path / "catalog", schema)
    configure(monkeypatch, SWITCHYARD_LOCAL_DIR=str(tmp_path / "local"))
    monkeypatch.setattr(manifests, "catalog", lambda: cat)
    events._outbox._publisher_schema.cache_clear()
    try:
        assert db.engine().dialect.name == "sqlite"
        table = outbox_table(MetaData(schema=schema))
        table.metadata.create_all(db.engine())
        n = 2 * SQLITE_ROWS_PER_STATEMENT + 7
        with _Inserts() as inserts, db.transaction() as s:
            ids = emit_many(s, [Pinged(n=i) for i in range(n)], actor="user-3")
        assert len(inserts.seen) == 3
        rows = _rows(table)
        assert sorted(r.id for r in rows) == sorted(ids)
        by_id = {r.id: r for r in rows}
        assert [json.loads(by_id[i].payload)["n"] for i in ids] == list(range(n))
        assert {json.loads(r.attributes)["actor"] for r in rows} == {"user-3"}
        flush(timeout=30)  # Pub/Sub may or may not take them: the sender is done with SQLite
    finally:
        events._outbox._publisher_schema.cache_clear()
        reset_platform()
