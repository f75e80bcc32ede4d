"""ops-api's database operations: statistics and tables on PostgreSQL and SQLite, backups with
the real pg_dump (and a copy of the SQLite files), a Cloud SQL export through a local fake of
the SQL Admin API (its documented `instances.export` / `operations.get` shapes), retention
cleanup (dry run first) of the outbox, processed-event markers and any Firestore collection a
rule names; every route is for admins only."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from functions.ops import dumps, model, service
from functions.ops.api import app
from shared import clients, db, manifests
from shared.events import outbox_table
from shared.migrate import upgrade, upgrade_all
from tests.integration import test_ops_cleanup as cleanup_tests
from tests.integration.support import (
    Caller,
    assert_problem,
    configure,
    ok,
    reset_platform,
    wait_for,
)

PROBLEM = "application/problem+json"


def now() -> datetime:
    """Asked each time: a module constant goes stale in a suite that runs for many minutes."""
    return datetime.now(UTC)


ROUTES = [
    ("GET", "/api/ops/database/statistics"),
    ("GET", "/api/ops/database/tables"),
    ("POST", "/api/ops/database/backup"),
    ("GET", "/api/ops/database/backups"),
    ("GET", "/api/ops/database/cleanup"),
    ("POST", "/api/ops/database/cleanup"),
]


def fresh_firestore(mp: pytest.MonkeyPatch) -> None:
    """This test's own Firestore (a project of its own on the emulator)."""
    mp.setenv("GOOGLE_CLOUD_PROJECT", f"ops-db-{uuid.uuid4().hex[:10]}")
    reset_platform()
    clients.firestore.cache_clear()


@pytest.fixture(scope="module")
def pg(pg_url, firestore_emulator, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    local = tmp_path_factory.mktemp("ops-db-pg")
    configure(mp, DATABASE_URL=pg_url, SWITCHYARD_LOCAL_DIR=str(local))
    upgrade_all(with_bootstrap=False)
    reset_platform()
    yield {"DATABASE_URL": pg_url, "SWITCHYARD_LOCAL_DIR": str(local)}
    mp.undo()
    reset_platform()


@pytest.fixture()
def on_pg(pg, monkeypatch):
    configure(monkeypatch, **pg)
    fresh_firestore(monkeypatch)
    yield Path(pg["SWITCHYARD_LOCAL_DIR"])
    reset_platform()


@pytest.fixture()
def on_sqlite(firestore_emulator, tmp_path, monkeypatch):
    configure(monkeypatch, SWITCHYARD_LOCAL_DIR=str(tmp_path))
    fresh_firestore(monkeypatch)
    for context in ("users", "production"):
        upgrade(context)
    yield tmp_path
    reset_platform()


def admin() -> Caller:
    return Caller(app, ["admin"])


def outbox_row(schema: str, *, published: datetime | None) -> str:
    return cleanup_tests.outbox_row(
        outbox_table(MetaData(schema=schema)), created=published or now(), published=published
    )


def outbox_ids(schema: str, ids: list[str]) -> set[str]:
    table = outbox_table(MetaData(schema=schema))
    with db.transaction() as s:
        return set(s.execute(select(table.c.id).where(table.c.id.in_(ids))).scalars())


# --- permissions ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator", "manager"])
def test_only_admins_get_in(on_pg, role):
    caller = Caller(app, [role])
    for method, path in ROUTES:
        body = assert_problem(caller.open(path, method=method, json={}), 403)
        assert body["status"] == 403
    anonymous = app.test_client()
    for method, path in ROUTES:
        assert_problem(anonymous.open(path, method=method, json={}), 401)
    assert not (on_pg / "backups").exists() or not list((on_pg / "backups").iterdir())


# --- statistics and tables -------------------------------------------------------------------


def test_statistics_on_postgresql(on_pg):
    ids = [outbox_row("production", published=now()) for _ in range(30)]

    def counted():
        stats = ok(admin().get("/api/ops/database/statistics"))
        prod = next(s for s in stats["schemas"] if s["schema"] == "production")
        return stats if prod["rows"] >= len(ids) else None

    stats = wait_for(counted, timeout=20)  # the live-tuple counters are flushed within ~1 s
    assert stats["dialect"] == "postgresql" and stats["unavailable"] == []
    schemas = {s["schema"]: s for s in stats["schemas"]}
    assert set(schemas) == set(manifests.catalog().schemas)
    prod = schemas["production"]
    assert prod["context"] == "production"
    assert prod["tables"] >= 4  # batches, batch_transitions, outbox, alembic_version
    assert prod["size_bytes"] > prod["index_bytes"] > 0
    assert prod["dead_tuples"] >= 0
    conns = stats["connections"]
    assert conns["in_use"] >= 1 and conns["in_use"] == sum(conns["by_state"].values())
    assert conns["max_connections"] > conns["reserved"] >= 0
    # each sql deployment's pool (min(concurrency, 2), no overflow) times its max instances,
    # as Terraform's sql_connection_budget counts it
    expected = sum(
        d.runtime.max_instances * min(d.runtime.concurrency, 2)
        for d in manifests.catalog().deployments.values()
        if "sql" in d.uses
    )
    assert conns["budget"] == expected > 0
    assert outbox_ids("production", ids) == set(ids)


def test_tables_on_postgresql_page_by_schema_and_name(on_pg):
    listed = ok(admin().get("/api/ops/database/tables", query_string={"schema": "production"}))
    names = [t["name"] for t in listed["items"]]
    assert {"batches", "batch_transitions", "outbox"} <= set(names)
    assert names == sorted(names) and {t["schema"] for t in listed["items"]} == {"production"}
    batches = next(t for t in listed["items"] if t["name"] == "batches")
    assert batches["index_bytes"] > 0 and batches["size_bytes"] >= batches["table_bytes"]

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = ok(admin().get("/api/ops/database/tables", query_string=params))
        seen += [(t["schema"], t["name"]) for t in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(set(seen)) and pages == -(-len(seen) // 3)
    assert {s for s, _ in seen} == set(manifests.catalog().schemas)

    assert_problem(admin().get("/api/ops/database/tables?schema=nope"), 404)
    assert_problem(admin().get("/api/ops/database/tables?colour=red"), 422)
    assert_problem(admin().get("/api/ops/database/tables?cursor=%%%"), 400)


def test_statistics_on_sqlite_say_what_is_not_available(on_sqlite):
    with db.transaction() as s:
        for _ in range(3):
            s.execute(
                outbox_table(MetaData(schema="users"))
                .insert()
                .values(
                    id=str(uuid.uuid4()),
                    event_type="user.created",
                    schema_version=1,
                    payload="{}",
                    attributes="{}",
                    created_at=now(),
                    attempts=0,
                )
            )
    stats = ok(admin().get("/api/ops/database/statistics"))
    assert stats["dialect"] == "sqlite"
    assert {"index_bytes", "dead_tuples", "connections"} <= {
        u.split(" ")[0] for u in stats["unavailable"]
    }
    users = next(s for s in stats["schemas"] if s["schema"] == "users")
    assert users["rows"] >= 3 and users["size_bytes"] > 0  # exact count, the file's size
    assert users["index_bytes"] is None and users["dead_tuples"] is None
    assert stats["connections"]["in_use"] is None and stats["connections"]["budget"] > 0
    tables = ok(admin().get("/api/ops/database/tables", query_string={"schema": "users"}))
    outbox = next(t for t in tables["items"] if t["name"] == "outbox")
    assert outbox["rows"] == 3 and outbox["size_bytes"] is None


# --- backups -----------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump not installed")
def test_local_backup_with_pg_dump(on_pg):
    marker = outbox_row("users", published=None)
    resp = admin().post("/api/ops/database/backup")
    made = ok(resp, 201)
    assert resp.headers["Location"] == f"/api/ops/database/backups/{made['id']}"
    assert (made["method"], made["status"], made["error"]) == ("pg_dump", "done", None)
    dump = Path(made["location"])
    assert dump.parent == on_pg / "backups" and dump.stat().st_size == made["size_bytes"] > 0
    listing = subprocess.run(
        [dumps.find_pg_dump().replace("pg_dump", "pg_restore"), "--list", str(dump)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "TABLE DATA users outbox" in listing and "TABLE DATA production batches" in listing
    restored = subprocess.run(
        [
            dumps.find_pg_dump().replace("pg_dump", "pg_restore"),
            "--data-only",
            "-f",
            "-",
            str(dump),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert marker in restored  # the row written before the backup is in it

    listed = ok(admin().get("/api/ops/database/backups"))
    assert listed["items"][0]["id"] == made["id"]
    assert ok(admin().get(f"/api/ops/database/backups/{made['id']}")) == made
    assert_problem(admin().get("/api/ops/database/backups/nope"), 404)
    assert_problem(admin().post("/api/ops/database/backup", json={"full": True}), 422)


def test_backups_page_newest_first(on_pg, monkeypatch):
    monkeypatch.setattr(dumps, "pg_dump", lambda url, target: target.write_bytes(b"x") or 1)
    made = [ok(admin().post("/api/ops/database/backup"), 201)["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = ok(admin().get("/api/ops/database/backups", query_string=params))
        seen += [b["id"] for b in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(made))


def test_missing_pg_dump_is_a_503_naming_it(on_pg, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    monkeypatch.setattr(dumps, "PG_BIN_GLOB", str(tmp_path / "postgresql/*/bin/pg_dump"))
    body = assert_problem(admin().post("/api/ops/database/backup"), 503)
    assert "pg_dump" in body["detail"] and "postgresql-client" in body["detail"]
    assert body["tool"] == "pg_dump"
    assert ok(admin().get("/api/ops/database/backups"))["items"] == []  # nothing recorded

    fake = tmp_path / "postgresql" / "15" / "bin" / "pg_dump"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'pg_dump: error: connection refused' >&2\nexit 1\n")
    fake.chmod(0o755)
    assert dumps.find_pg_dump() == str(fake)  # found under /usr/lib/postgresql/*/bin
    failed = assert_problem(admin().post("/api/ops/database/backup"), 503)
    assert "connection refused" in failed["detail"]
    (record,) = ok(admin().get("/api/ops/database/backups"))["items"]
    assert record["status"] == "failed" and "connection refused" in record["error"]
    assert list((on_pg / "backups").glob(f"{record['id']}*")) == []


def test_local_backup_of_sqlite_copies_every_file(on_sqlite):
    made = ok(admin().post("/api/ops/database/backup"), 201)
    assert (made["method"], made["status"]) == ("sqlite-copy", "done")
    folder = Path(made["location"])
    assert {p.name for p in folder.iterdir()} >= {"main.db", "users.db", "production.db"}
    with sqlite3.connect(folder / "production.db") as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert {"batches", "batch_transitions", "outbox"} <= names
    assert made["size_bytes"] == sum(p.stat().st_size for p in folder.iterdir())


# --- the cloud: Cloud SQL export through the SQL Admin API ----------------------------------


class FakeSqlAdmin:
    """The SQL Admin API v1 as far as backups use it: `instances.export` answers an Operation
    (PENDING); `operations.get` answers it as the test has it progress."""

    def __init__(self) -> None:
        self.operations: dict[str, dict[str, Any]] = {}
        self.exports: list[dict[str, Any]] = []
        self.busy = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802
                parts = self.path.strip("/").split("/")
                # v1/projects/{project}/instances/{instance}/export
                if len(parts) != 6 or parts[:2] != ["v1", "projects"] or parts[5] != "export":
                    return self._send(404, {"error": {"code": 404, "message": "not found"}})
                if fake.busy:
                    return self._send(
                        409,
                        {
                            "error": {
                                "code": 409,
                                "message": "Operation failed because another operation was "
                                "already in progress.",
                                "status": "ABORTED",
                            }
                        },
                    )
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.exports.append({"project": parts[2], "instance": parts[4], **body})
                name = str(uuid.uuid4())
                op = {
                    "kind": "sql#operation",
                    "name": name,
                    "status": "PENDING",
                    "operationType": "EXPORT",
                    "targetId": parts[4],
                    "targetProject": parts[2],
                    "insertTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "exportContext": body["exportContext"],
                    "selfLink": f"https://sqladmin.googleapis.com/v1/projects/{parts[2]}"
                    f"/operations/{name}",
                }
                fake.operations[name] = op
                self._send(200, op)

            def do_GET(self) -> None:  # noqa: N802
                parts = self.path.strip("/").split("/")
                if len(parts) == 5 and parts[3] == "operations" and parts[4] in fake.operations:
                    return self._send(200, fake.operations[parts[4]])
                self._send(404, {"error": {"code": 404, "message": "operation not found"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def progress(self, name: str, status: str, error: str | None = None) -> None:
        self.operations[name]["status"] = status
        if error:
            self.operations[name]["error"] = {
                "kind": "sql#operationErrors",
                "errors": [{"kind": "sql#operationError", "code": "ERROR", "message": error}],
            }


@pytest.fixture()
def sql_admin(on_pg, monkeypatch):
    fake = FakeSqlAdmin()
    fake.thread.start()
    monkeypatch.setenv("SQLADMIN_ENDPOINT", fake.url)
    monkeypatch.setenv("INSTANCE_CONNECTION_NAME", "acme-prod:europe-west1:switchyard")
    monkeypatch.setenv("BACKUP_BUCKET", "acme-backups")
    monkeypatch.setenv("DB_NAME", "switchyard")
    reset_platform()
    clients.google_api.cache_clear()
    yield fake
    fake.server.shutdown()
    fake.thread.join(5)
    clients.google_api.cache_clear()


def test_cloud_backup_is_a_cloud_sql_export_followed_to_done(sql_admin):
    made = ok(admin().post("/api/ops/database/backup"), 201)
    assert (made["method"], made["status"]) == ("cloud-sql-export", "pending")
    (export,) = sql_admin.exports
    assert (export["project"], export["instance"]) == ("acme-prod", "switchyard")
    ctx = export["exportContext"]
    assert ctx["kind"] == "sql#exportContext" and ctx["fileType"] == "SQL"
    assert ctx["databases"] == ["switchyard"]
    assert ctx["uri"] == made["location"] == f"gs://acme-backups/switchyard/{made['id']}.sql.gz"
    assert made["operation"] in sql_admin.operations

    sql_admin.progress(made["operation"], "RUNNING")
    (item,) = ok(admin().get("/api/ops/database/backups"))["items"]
    assert item["status"] == "running" and item["finished_at"] is None
    sql_admin.progress(made["operation"], "DONE")
    done = ok(admin().get(f"/api/ops/database/backups/{made['id']}"))
    assert done["status"] == "done" and done["finished_at"] and done["error"] is None

    # a final status is kept: Cloud SQL is not asked again
    sql_admin.operations.clear()
    assert ok(admin().get("/api/ops/database/backups"))["items"][0]["status"] == "done"


def test_cloud_export_failure_and_busy_instance(sql_admin):
    made = ok(admin().post("/api/ops/database/backup"), 201)
    sql_admin.progress(made["operation"], "DONE", error="The bucket does not exist.")
    failed = ok(admin().get(f"/api/ops/database/backups/{made['id']}"))
    assert failed["status"] == "failed" and failed["error"] == "The bucket does not exist."

    sql_admin.busy = True
    body = assert_problem(admin().post("/api/ops/database/backup"), 409)
    assert "already in progress" in body["detail"]
    assert len(ok(admin().get("/api/ops/database/backups"))["items"]) == 1


def test_unreachable_sql_admin_is_a_503(sql_admin, monkeypatch):
    monkeypatch.setenv("SQLADMIN_ENDPOINT", "http://127.0.0.1:9")
    reset_platform()
    body = assert_problem(admin().post("/api/ops/database/backup"), 503)
    assert "unreachable" in body["detail"]


# --- cleanup -------------------------------------------------------------------------------------


def processed_marker(expires_at: datetime) -> str:
    key = f"test-sub:{uuid.uuid4()}"
    clients.firestore().collection("processed").document(key).set(
        {"state": "done", "event_type": "user.created", "expires_at": expires_at, "attempt": 1}
    )
    return key


def markers_left(keys: list[str]) -> set[str]:
    col = clients.firestore().collection("processed")
    return {k for k in keys if col.document(k).get().exists}


def test_cleanup_is_a_dry_run_first_then_removes_what_it_reported(on_pg):
    old = [outbox_row("users", published=now() - timedelta(days=8)) for _ in range(3)]
    recent = outbox_row("users", published=now() - timedelta(days=1))
    pending = outbox_row("users", published=None)
    expired = [processed_marker(now() - timedelta(hours=1)) for _ in range(2)]
    live = processed_marker(now() + timedelta(days=6))

    rules = {r["kind"]: r for r in ok(admin().get("/api/ops/database/cleanup"))["items"]}
    assert rules["outbox"]["store"] == "sql" and rules["outbox"]["keep"] == 7
    assert (rules["processed"]["collection"], rules["processed"]["timestamp_field"]) == (
        "processed",
        "expires_at",
    )

    dry = ok(admin().post("/api/ops/database/cleanup"))  # no body: a dry run
    assert dry["dry_run"] is True
    results = {r["kind"]: r for r in dry["results"]}
    assert results["outbox"]["matched"] >= 3 and results["outbox"]["removed"] == 0
    assert results["outbox"]["by_schema"]["users"] >= 3
    assert results["processed"]["matched"] == 2 and results["processed"]["removed"] == 0
    assert dry["total"] == sum(r["matched"] for r in dry["results"])
    assert outbox_ids("users", [*old, recent, pending]) == {*old, recent, pending}
    assert markers_left([*expired, live]) == {*expired, live}

    only = ok(admin().post("/api/ops/database/cleanup", json={"kinds": ["processed"]}))
    assert [r["kind"] for r in only["results"]] == ["processed"]

    done = ok(admin().post("/api/ops/database/cleanup", json={"dry_run": False}))
    results = {r["kind"]: r for r in done["results"]}
    assert results["outbox"]["removed"] >= 3 and results["processed"]["removed"] == 2
    assert outbox_ids("users", [*old, recent, pending]) == {recent, pending}
    assert markers_left([*expired, live]) == {live}

    again = ok(admin().post("/api/ops/database/cleanup", json={"dry_run": False}))
    assert {r["kind"]: r["removed"] for r in again["results"]}["processed"] == 0

    body = assert_problem(admin().post("/api/ops/database/cleanup", json={"kinds": ["nope"]}), 422)
    assert body["errors"][0]["field"] == "kinds"
    assert_problem(admin().post("/api/ops/database/cleanup", json={"dry_run": "maybe"}), 422)


def test_a_rule_for_any_firestore_collection(on_pg):
    """What a context declares (webhook deliveries, run logs): a collection and a field."""
    collection = f"source_deliveries_{uuid.uuid4().hex[:6]}"
    col = clients.firestore().collection(collection)
    for i, age in enumerate([40, 35, 31, 29, 1]):
        col.document(f"d{i}").set({"received_at": now() - timedelta(days=age), "event": "push"})
    col.document("no-time").set({"event": "ping"})  # no timestamp: never matched
    rule = model.RetentionRule(
        kind="webhook_deliveries",
        store="firestore",
        keep=timedelta(days=30),
        collection=collection,
        timestamp_field="received_at",
        description="Raw GitHub deliveries older than 30 days.",
        context="source",
    )
    dry = service.cleanup_database(using=[rule])
    assert [(r.kind, r.matched, r.removed) for r in dry.results] == [("webhook_deliveries", 3, 0)]
    store_before = {d.id for d in col.stream()}
    assert store_before == {"d0", "d1", "d2", "d3", "d4", "no-time"}
    done = service.cleanup_database(dry_run=False, using=[rule])
    assert [(r.matched, r.removed) for r in done.results] == [(3, 3)]
    assert {d.id for d in col.stream()} == {"d3", "d4", "no-time"}
