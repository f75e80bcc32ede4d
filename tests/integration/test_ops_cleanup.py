"""Cleanup jobs on PostgreSQL: ops-cleanup purges outbox rows published over 7 days ago (and
nothing else), ops-api reports every outbox, auth-cleanup drops ended throttling windows and
refresh tokens expired, revoked or used over a day ago."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import functions_framework
import pytest
from sqlalchemy import MetaData, select

from shared import db, events, manifests
from shared.config import settings
from shared.events import outbox_table
from tests.integration.support import Caller, configure, reset_platform

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def database(pg_url, firestore_emulator, tmp_path_factory):
    from shared import migrate

    mp = pytest.MonkeyPatch()
    local = tmp_path_factory.mktemp("ops-cleanup")
    configure(mp, DATABASE_URL=pg_url, SWITCHYARD_LOCAL_DIR=str(local))
    migrate.upgrade_all(with_bootstrap=False)
    yield mp
    mp.undo()
    reset_platform()


@pytest.fixture(autouse=True)
def env(database, monkeypatch):
    # _restore_environ resets os.environ after each test: keep the module's settings.
    settings.cache_clear()
    yield


def run_job(monkeypatch, context: str, deployment: str, target: str) -> dict:
    monkeypatch.setenv("SWITCHYARD_DEPLOYMENT", deployment)
    settings.cache_clear()
    app = functions_framework.create_app(
        target=target, source=str(ROOT / "functions" / context / "main.py")
    )
    client = app.test_client()
    health = client.get("/health")
    assert health.status_code == 200, health.get_json()
    resp = client.post(
        "/",
        headers={
            "X-CloudScheduler": "true",
            "X-CloudScheduler-JobName": deployment,
            "X-CloudScheduler-ScheduleTime": events.rfc3339(datetime.now(UTC)),
        },
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def outbox_row(table, *, created: datetime, published: datetime | None) -> str:
    event_id = str(uuid.uuid4())
    with db.transaction() as s:
        s.execute(
            table.insert().values(
                id=event_id,
                event_type="user.created",
                schema_version=1,
                payload="{}",
                attributes=json.dumps({"event_id": event_id}),
                created_at=created,
                published_at=published,
                attempts=1 if published else 0,
            )
        )
    return event_id


def existing(table, ids: list[str]) -> set[str]:
    with db.transaction() as s:
        return set(s.execute(select(table.c.id).where(table.c.id.in_(ids))).scalars())


def test_ops_cleanup_purges_old_published_outbox_rows(monkeypatch):
    now = datetime.now(UTC)  # per test: the suite can run for many minutes
    table = outbox_table(MetaData(schema=manifests.catalog().context("users").owns_schema))
    old = [
        outbox_row(table, created=now - timedelta(days=9), published=now - timedelta(days=8))
        for _ in range(3)
    ]
    recent = outbox_row(table, created=now - timedelta(days=2), published=now - timedelta(days=2))
    pending = outbox_row(table, created=now - timedelta(days=30), published=None)

    # Batches smaller than the rows to delete: the loop goes on until none is left.
    assert events.purge_published(older_than=timedelta(days=7), batch=2)["users"] == 3
    assert existing(table, [*old, recent, pending]) == {recent, pending}

    again = outbox_row(table, created=now - timedelta(days=9), published=now - timedelta(days=8))
    body = run_job(monkeypatch, "ops", "ops-cleanup", "cleanup")
    assert body["deleted"]["users"] >= 1 and body["total"] >= 1
    assert set(body["deleted"]) == set(manifests.catalog().schemas)
    assert existing(table, [again, recent, pending]) == {recent, pending}


def test_outbox_stats_and_ops_api_outbox(monkeypatch):
    now = datetime.now(UTC)  # per test: the suite can run for many minutes
    from functions.ops.api import app

    table = outbox_table(MetaData(schema=manifests.catalog().context("production").owns_schema))
    oldest = now - timedelta(days=400)
    outbox_row(table, created=oldest, published=None)
    stats = {s.schema: s for s in events.outbox_stats()}
    assert set(stats) == set(manifests.catalog().schemas)
    prod = stats["production"]
    assert prod.pending >= 1 and prod.oldest_pending_at == oldest

    resp = Caller(app, ["admin"]).get("/api/ops/outbox")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    items = {i["schema"]: i for i in resp.get_json()["items"]}
    assert items["production"]["pending"] == prod.pending
    shown = items["production"]["oldest_pending_at"].replace("Z", "+00:00")
    assert datetime.fromisoformat(shown) == oldest


def test_auth_cleanup(monkeypatch):
    now = datetime.now(UTC)  # per test: the suite can run for many minutes
    from functions.auth import store

    window = settings().login_window_s
    ended, current = f"ip:{uuid.uuid4().hex}", f"ip:{uuid.uuid4().hex}"
    user = str(uuid.uuid4())
    day = timedelta(days=1)
    with db.transaction() as s:
        s.execute(
            store.login_failures.insert(),
            [
                {"key": ended, "failures": 3, "window_start": now - timedelta(seconds=window + 5)},
                {"key": current, "failures": 3, "window_start": now - timedelta(seconds=5)},
            ],
        )
        tokens = {
            "expired_long_ago": {"expires_at": now - 2 * day},
            "revoked_long_ago": {"expires_at": now + day, "revoked_at": now - 2 * day},
            # a used token goes with its family: kept while the family lives (reuse detection)
            "used_long_ago": {
                "expires_at": now + day,
                "used_at": now - 2 * day,
                "family_expires_at": now - 2 * day,
            },
            "used_long_ago_live_family": {"expires_at": now + day, "used_at": now - 2 * day},
            "expired_lately": {"expires_at": now - timedelta(hours=1)},
            "used_lately": {"expires_at": now + day, "used_at": now - timedelta(hours=1)},
            "valid": {"expires_at": now + day},
        }
        for tid, extra in tokens.items():
            s.execute(
                store.refresh_tokens.insert().values(
                    id=f"{tid}-{user[:8]}",
                    token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
                    user_id=user,
                    family_id=user,
                    issued_at=now - 3 * day,
                    **({"family_expires_at": now + 20 * day} | extra),
                )
            )

    body = run_job(monkeypatch, "auth", "auth-cleanup", "cleanup")
    assert body["login_failures"] >= 1 and body["refresh_tokens"] >= 3
    with db.transaction() as s:
        keys = set(
            s.execute(
                select(store.login_failures.c.key).where(
                    store.login_failures.c.key.in_([ended, current])
                )
            ).scalars()
        )
        left = set(
            s.execute(
                select(store.refresh_tokens.c.id).where(store.refresh_tokens.c.user_id == user)
            ).scalars()
        )
    assert keys == {current}
    kept = ("expired_lately", "used_lately", "used_long_ago_live_family", "valid")
    assert left == {f"{t}-{user[:8]}" for t in kept}
