"""production-api through the Flask test client with real tokens, on PostgreSQL and on SQLite
(every test runs on both): CRUD, the lifecycle with its history and events, permissions, bad
input, search and pagination, and concurrent changes of one batch."""

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from functions.production import store
from functions.production.api import app
from shared import db
from shared.migrate import upgrade
from tests.integration import support
from tests.integration.support import assert_problem, configure, ok, reset_platform

PROBLEM = "application/problem+json"
STAGES = ["granulation", "compression", "coating", "packaging"]


@dataclass(frozen=True)
class Backend:
    name: str
    env: dict


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def backend(request, tmp_path_factory, pubsub_emulator):
    local_dir = tmp_path_factory.mktemp(f"production-{request.param}")
    env = {"SWITCHYARD_LOCAL_DIR": str(local_dir), "SWITCHYARD_ENV": "test"}
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    with pytest.MonkeyPatch.context() as mp:
        configure(mp, **env)
        upgrade("production")
        upgrade("production")  # idempotent
        assert db.engine().dialect.name == request.param
    reset_platform()
    return Backend(request.param, env)


@pytest.fixture(autouse=True)
def env(monkeypatch, backend):
    configure(monkeypatch, **backend.env)
    yield
    reset_platform()


class Caller(support.Caller):
    def __init__(self, roles=("viewer",), sub=None):
        super().__init__(app, roles, sub)

    def move(self, batch_id, **body):
        body.setdefault("reason", "test")
        return self.client.post(f"/api/batches/{batch_id}/transitions", json=body)


@pytest.fixture()
def manager():
    return Caller(("manager",))


@pytest.fixture()
def operator():
    return Caller(("operator",))


@pytest.fixture()
def viewer():
    return Caller(("viewer",))


def number(tag="B"):
    return f"{tag}-{uuid.uuid4().hex[:12].upper()}"


def create(caller, **over):
    data = {
        "batch_number": number(),
        "product": "Paracetamol 500 mg",
        "planned_quantity": 1000,
        "unit": "kg",
        **over,
    }
    resp = caller.post("/api/batches", json=data)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def walk_to_packaging(caller, batch_id):
    ok(caller.move(batch_id, status="in_progress"))
    for stage in STAGES:
        ok(caller.move(batch_id, stage=stage))


def outbox(batch_id):
    with db.transaction() as tx:
        rows = tx.execute(select(store.outbox).order_by(store.outbox.c.created_at)).all()
    out = []
    for r in rows:
        payload = json.loads(r.payload)
        if payload.get("batch_id") == batch_id:
            out.append((r.event_type, payload, json.loads(r.attributes)))
    return out


def history(caller, batch_id):
    return ok(caller.get(f"/api/batches/{batch_id}/history", query_string={"limit": 100}))["items"]


def parse_time(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- CRUD ------------------------------------------------------------------------------------


def test_create_and_read(operator, viewer):
    resp = operator.post(
        "/api/batches",
        json={
            "batch_number": " pcm-2026-0001-" + uuid.uuid4().hex[:6],
            "product": " Paracetamol ",
            "planned_quantity": 2500.5,
            "unit": "tablets",
            "notes": "first",
            "planned_start": "2026-03-01T08:00:00+01:00",
        },
    )
    batch = ok(resp, 201)
    assert resp.headers["Location"] == f"/api/batches/{batch['id']}"
    assert batch["batch_number"].startswith("PCM-2026-0001-")
    assert set(batch) == {
        "id",
        "batch_number",
        "product",
        "planned_quantity",
        "actual_quantity",
        "unit",
        "stage",
        "status",
        "notes",
        "planned_start",
        "started_at",
        "completed_at",
        "created_at",
        "updated_at",
        "version",
    }
    assert (batch["product"], batch["planned_quantity"], batch["unit"], batch["notes"]) == (
        "Paracetamol",
        2500.5,
        "tablets",
        "first",
    )
    assert (batch["status"], batch["stage"], batch["version"]) == ("planned", "dispensing", 1)
    assert batch["planned_start"] == "2026-03-01T07:00:00Z"
    assert batch["actual_quantity"] is batch["started_at"] is batch["completed_at"] is None
    assert ok(viewer.get(f"/api/batches/{batch['id']}")) == batch
    (entry,) = history(viewer, batch["id"])
    assert (entry["kind"], entry["from"], entry["to"], entry["reason"], entry["actor"]) == (
        "status",
        None,
        "planned",
        "created",
        operator.sub,
    )
    ((etype, payload, attrs),) = outbox(batch["id"])
    assert etype == "batch.created" and attrs["actor"] == operator.sub
    assert payload == {
        "batch_id": batch["id"],
        "batch_number": batch["batch_number"],
        "product": "Paracetamol",
        "planned_quantity": 2500.5,
        "actual_quantity": None,
        "unit": "tablets",
        "stage": "dispensing",
        "status": "planned",
        "planned_start": "2026-03-01T07:00:00.000000Z",
        "notes": "first",
        "version": 1,
    }


def test_edit_a_planned_batch(operator):
    batch = create(operator)
    new_number = number("R")
    changed = ok(
        operator.put(
            f"/api/batches/{batch['id']}",
            json={
                "batch_number": new_number.lower(),
                "planned_quantity": 1200,
                "notes": "moved",
                "version": 1,
            },
        )
    )
    assert (
        changed["batch_number"],
        changed["planned_quantity"],
        changed["notes"],
        changed["version"],
    ) == (new_number, 1200.0, "moved", 2)
    # the same values again change nothing: no new version, no event
    same = ok(operator.put(f"/api/batches/{batch['id']}", json={"notes": "moved"}))
    assert same["version"] == 2
    cleared = ok(operator.put(f"/api/batches/{batch['id']}", json={"notes": None}))
    assert cleared["notes"] is None and cleared["version"] == 3
    events = outbox(batch["id"])
    assert [e[0] for e in events] == ["batch.created", "batch.updated", "batch.updated"]
    assert events[1][1]["changed"] == ["batch_number", "planned_quantity", "notes"]
    assert events[2][1]["changed"] == ["notes"] and events[2][1]["version"] == 3


# --- the lifecycle ---------------------------------------------------------------------------


def test_walk_through_production_records_history_and_events(operator, manager, viewer):
    batch = create(operator, planned_quantity=1000)
    bid = batch["id"]
    started = ok(operator.move(bid, status="in_progress", reason="line cleared"))
    assert (started["status"], started["stage"], started["version"]) == (
        "in_progress",
        "dispensing",
        2,
    )
    assert started["started_at"] is not None
    for stage in STAGES:
        moved = ok(operator.move(bid, stage=stage, reason=f"to {stage}"))
        assert moved["stage"] == stage and moved["status"] == "in_progress"
    held = ok(manager.move(bid, status="qa_hold", reason="batch record review"))
    assert held["status"] == "qa_hold"
    resumed = ok(manager.move(bid, status="in_progress", reason="review ok, relabel"))
    assert resumed["started_at"] == started["started_at"]  # resuming does not restart
    ok(manager.move(bid, status="qa_hold", reason="second review"))
    released = ok(manager.move(bid, status="released", reason="QA release"))
    assert released["status"] == "released" and released["completed_at"] is None
    done = ok(operator.move(bid, status="completed", reason="to warehouse", actual_quantity=950))
    assert (done["status"], done["stage"], done["actual_quantity"]) == (
        "completed",
        "packaging",
        950.0,
    )
    assert done["completed_at"] is not None and done["version"] == 11

    items = history(viewer, bid)
    assert [(i["kind"], i["from"], i["to"]) for i in items] == [
        ("status", None, "planned"),
        ("status", "planned", "in_progress"),
        ("stage", "dispensing", "granulation"),
        ("stage", "granulation", "compression"),
        ("stage", "compression", "coating"),
        ("stage", "coating", "packaging"),
        ("status", "in_progress", "qa_hold"),
        ("status", "qa_hold", "in_progress"),
        ("status", "in_progress", "qa_hold"),
        ("status", "qa_hold", "released"),
        ("status", "released", "completed"),
    ]
    assert [i["actor"] for i in items] == [operator.sub] * 6 + [manager.sub] * 4 + [operator.sub]
    assert items[1]["reason"] == "line cleared" and items[-1]["reason"] == "to warehouse"
    times = [parse_time(i["at"]) for i in items]
    assert times == sorted(times)

    events = outbox(bid)
    assert [e[0] for e in events] == (
        ["batch.created", "batch.status.changed"]
        + ["batch.stage.changed"] * 4
        + ["batch.status.changed"] * 5
        + ["batch.completed"]
    )
    assert events[2][1] == {
        "batch_id": bid,
        "batch_number": batch["batch_number"],
        "old": "dispensing",
        "new": "granulation",
        "reason": "to granulation",
        "actor": operator.sub,
    }
    assert events[6][1]["actor"] == manager.sub and events[6][2]["actor"] == manager.sub
    completed = events[-1][1]
    assert completed == {
        "batch_id": bid,
        "batch_number": batch["batch_number"],
        "product": batch["product"],
        "planned_quantity": 1000.0,
        "actual_quantity": 950.0,
        "unit": "kg",
        "yield": 0.95,
        "completed_at": completed["completed_at"],
    }
    assert parse_time(completed["completed_at"]) == parse_time(done["completed_at"])


def test_invalid_transitions_are_409_naming_the_allowed_ones(operator, manager):
    batch = create(operator)
    bid = batch["id"]
    body = assert_problem(operator.move(bid, stage="granulation"), 409)
    assert body["allowed"] == [{"status": "in_progress"}]
    ok(operator.move(bid, status="in_progress"))
    body = assert_problem(operator.move(bid, stage="compression"), 409)  # skips a stage
    assert body["allowed"] == [{"status": "qa_hold"}, {"stage": "granulation"}]
    assert "compression" in body["detail"]
    assert_problem(operator.move(bid, status="in_progress"), 409)  # already there
    assert_problem(operator.move(bid, status="completed", actual_quantity=1), 409)
    assert_problem(manager.move(bid, status="released"), 409)  # not through QA hold
    ok(manager.move(bid, status="qa_hold"))
    body = assert_problem(manager.move(bid, status="released"), 409)  # not at packaging
    assert body["allowed"] == [{"status": "in_progress"}, {"status": "rejected"}]
    assert_problem(operator.move(bid, stage="granulation"), 409)  # stages only in progress
    rejected = ok(manager.move(bid, status="rejected", reason="OOS"))
    assert rejected["status"] == "rejected"
    body = assert_problem(manager.move(bid, status="in_progress"), 409)
    assert body["allowed"] == []
    after = ok(operator.get(f"/api/batches/{bid}"))
    assert (after["status"], after["stage"], after["version"]) == ("rejected", "dispensing", 4)
    assert len(history(operator, bid)) == 4


def test_completion_needs_an_actual_quantity(operator, manager):
    batch = create(operator)
    bid = batch["id"]
    walk_to_packaging(operator, bid)
    ok(manager.move(bid, status="qa_hold"))
    ok(manager.move(bid, status="released"))
    body = assert_problem(operator.move(bid, status="completed"), 422)
    assert body["errors"][0]["field"] == "actual_quantity"
    assert ok(operator.get(f"/api/batches/{bid}"))["status"] == "released"
    # recorded by an edit first, then completion needs none in the body
    ok(operator.put(f"/api/batches/{bid}", json={"actual_quantity": 1010}))
    done = ok(operator.move(bid, status="completed"))
    assert done["actual_quantity"] == 1010.0
    assert outbox(bid)[-1][1]["yield"] == pytest.approx(1.01)


# --- permissions -------------------------------------------------------------------------------


def test_roles(operator, manager, viewer):
    batch = create(operator)
    bid = batch["id"]
    assert ok(viewer.get("/api/batches"))["items"] is not None
    assert ok(viewer.get(f"/api/batches/{bid}/history"))
    assert ok(viewer.get("/api/batches/metrics"))
    assert_problem(
        viewer.post(
            "/api/batches",
            json={"batch_number": number(), "product": "P", "planned_quantity": 1, "unit": "kg"},
        ),
        403,
    )
    assert_problem(viewer.put(f"/api/batches/{bid}", json={"notes": "x"}), 403)
    assert_problem(viewer.move(bid, status="in_progress"), 403)
    assert_problem(app.test_client().get("/api/batches"), 401)
    assert_problem(app.test_client().get(f"/api/batches/{bid}"), 401)

    ok(operator.move(bid, status="in_progress"))
    for target in ("qa_hold", "released", "rejected"):
        body = assert_problem(operator.move(bid, status=target), 403)
        assert "qa permission" in body["detail"]
    ok(manager.move(bid, status="qa_hold"))
    assert_problem(operator.move(bid, status="rejected"), 403)
    ok(operator.move(bid, status="in_progress"))  # resuming is not a QA decision
    for stage in STAGES:
        ok(manager.move(bid, stage=stage))  # managers run production too
    admin = Caller(("admin",))
    ok(admin.move(bid, status="qa_hold"))
    ok(admin.move(bid, status="released"))
    assert_problem(operator.move(bid, status="released"), 403)  # role before state
    ok(operator.move(bid, status="completed", actual_quantity=990))


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input(operator):
    base = {"batch_number": number(), "product": "P", "planned_quantity": 10, "unit": "kg"}
    body = assert_problem(operator.post("/api/batches", json={**base, "colour": "red"}), 422)
    assert body["errors"][0]["field"] == "colour"
    body = assert_problem(operator.post("/api/batches", json={**base, "planned_quantity": -5}), 422)
    assert body["errors"][0]["field"] == "planned_quantity"
    assert_problem(operator.post("/api/batches", json={**base, "status": "completed"}), 422)
    assert_problem(operator.post("/api/batches", json={**base, "batch_number": "a b"}), 422)
    assert_problem(
        operator.post("/api/batches", data="{nope", content_type="application/json"), 400
    )
    assert_problem(operator.post("/api/batches", data="a=b"), 415)
    assert_problem(operator.get("/api/batches?colour=red"), 422)
    assert_problem(operator.get("/api/batches?status=paused"), 422)
    assert_problem(operator.get("/api/batches?cursor=%%%"), 400)
    assert_problem(operator.get("/api/batches/metrics?from=2026-02-01&to=2026-01-01"), 422)
    assert_problem(operator.get("/api/batches/metrics?from=yesterday"), 422)

    batch = create(operator)
    bid = batch["id"]
    body = assert_problem(operator.put(f"/api/batches/{bid}", json={"status": "completed"}), 422)
    assert body["errors"][0]["field"] == "status" and "transitions" in body["detail"]
    assert_problem(operator.put(f"/api/batches/{bid}", json={"stage": "coating"}), 422)
    assert_problem(operator.put(f"/api/batches/{bid}", json={"product": None}), 422)
    assert_problem(operator.put(f"/api/batches/{bid}", json={"version": 7, "notes": "x"}), 409)
    assert_problem(operator.put(f"/api/batches/{bid}", json={"actual_quantity": 5}), 409)
    ok(operator.move(bid, status="in_progress"))
    assert_problem(operator.put(f"/api/batches/{bid}", json={"actual_quantity": -1}), 422)
    body = assert_problem(operator.put(f"/api/batches/{bid}", json={"product": "Other"}), 409)
    assert "product" in body["detail"]
    assert_problem(operator.move(bid, stage="granulation", reason=""), 422)
    assert_problem(
        operator.post(f"/api/batches/{bid}/transitions", json={"stage": "granulation"}), 422
    )
    assert_problem(operator.move(bid, stage="granulation", status="qa_hold"), 422)
    assert ok(operator.get(f"/api/batches/{bid}"))["version"] == 2

    for path in (
        "/api/batches/not-a-uuid",
        "/api/batches/123/history",
        f"/api/batches/{uuid.uuid4()}",
        f"/api/batches/{uuid.uuid4()}/history",
    ):
        assert_problem(operator.get(path), 404)
    assert_problem(operator.put("/api/batches/nope", json={"notes": "x"}), 404)
    assert_problem(operator.put(f"/api/batches/{uuid.uuid4()}", json={"notes": "x"}), 404)
    assert_problem(operator.move("nope", status="in_progress"), 404)
    assert_problem(operator.move(str(uuid.uuid4()), status="in_progress"), 404)


def test_duplicate_batch_numbers_conflict_and_leave_nothing_behind(operator):
    first = create(operator)
    taken = first["batch_number"]
    body = assert_problem(
        operator.post(
            "/api/batches",
            json={
                "batch_number": taken.lower(),
                "product": "Other",
                "planned_quantity": 5,
                "unit": "kg",
            },
        ),
        409,
    )
    assert taken in body["detail"]
    other = create(operator)
    assert_problem(operator.put(f"/api/batches/{other['id']}", json={"batch_number": taken}), 409)
    assert ok(operator.get(f"/api/batches/{other['id']}"))["version"] == 1
    with db.transaction() as tx:
        ids = (
            tx.execute(select(store.batches.c.id).where(store.batches.c.batch_number == taken))
            .scalars()
            .all()
        )
        assert ids == [first["id"]]
        orphans = tx.execute(
            select(func.count())
            .select_from(store.transitions)
            .where(store.transitions.c.batch_id.not_in(select(store.batches.c.id)))
        ).scalar()
        assert orphans == 0
        created = [
            json.loads(p)
            for p in tx.execute(
                select(store.outbox.c.payload).where(store.outbox.c.event_type == "batch.created")
            ).scalars()
        ]
    assert [p["batch_id"] for p in created if p["batch_number"] == taken] == [first["id"]]


def test_closed_batches_refuse_edits(operator, manager):
    rejected = create(operator)
    ok(operator.move(rejected["id"], status="in_progress"))
    ok(manager.move(rejected["id"], status="qa_hold"))
    ok(manager.move(rejected["id"], status="rejected"))
    completed = create(operator)
    walk_to_packaging(operator, completed["id"])
    ok(manager.move(completed["id"], status="qa_hold"))
    ok(manager.move(completed["id"], status="released"))
    ok(operator.move(completed["id"], status="completed", actual_quantity=999))
    for batch in (rejected, completed):
        for change in ({"notes": "late"}, {"actual_quantity": 1}, {}):
            assert_problem(operator.put(f"/api/batches/{batch['id']}", json=change), 409)


# --- search and pagination ------------------------------------------------------------------------


def test_filters_and_search(operator, manager, viewer):
    tag = uuid.uuid4().hex[:8].upper()
    product = f"Product {tag}"
    a = create(
        operator, batch_number=f"AA-{tag}-1", product=product, planned_start="2026-05-01T00:00:00Z"
    )
    b = create(
        operator, batch_number=f"BB-{tag}-2", product=product, planned_start="2026-06-01T00:00:00Z"
    )
    c = create(operator, batch_number=f"CC-{tag}-3", product=f"Other {tag}")
    ok(operator.move(b["id"], status="in_progress"))
    ok(operator.move(b["id"], stage="granulation"))
    ok(operator.move(c["id"], status="in_progress"))
    ok(manager.move(c["id"], status="qa_hold"))

    def ids(**params):
        return {x["id"] for x in ok(viewer.get("/api/batches", query_string=params))["items"]}

    assert ids(q=tag) == {a["id"], b["id"], c["id"]}
    assert ids(q=f"aa-{tag.lower()}") == {a["id"]}  # prefix, any case
    assert ids(q=f"{tag}-2") == {b["id"]}  # contains
    assert ids(q=f"{tag}%") == set() and ids(q=f"AA_{tag}") == set()  # wildcards are literal
    assert ids(q=tag, status="planned") == {a["id"]}
    assert ids(q=tag, status=["planned", "qa_hold"]) == {a["id"], c["id"]}
    assert ids(q=tag, stage="granulation") == {b["id"]}
    assert ids(product=product) == {a["id"], b["id"]}
    assert ids(product=product, status="in_progress") == {b["id"]}
    assert ids(q=tag, planned_from="2026-05-15T00:00:00Z") == {b["id"]}
    assert ids(q=tag, planned_to="2026-05-15T00:00:00+00:00") == {a["id"]}
    created = parse_time(b["created_at"])
    assert ids(q=tag, created_from=b["created_at"]) == {b["id"], c["id"]}
    assert ids(q=tag, created_to=b["created_at"]) == {a["id"]}
    later = (created + timedelta(hours=1)).isoformat()
    assert ids(q=tag, created_from=later) == set()


def test_cursor_walks_every_page_once_newest_first(operator, viewer):
    tag = uuid.uuid4().hex[:8].upper()
    made = [create(operator, batch_number=f"PG-{tag}-{i:02d}")["id"] for i in range(11)]
    seen, pages, cursor = [], 0, None
    while True:
        params = {"q": tag, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = ok(viewer.get("/api/batches", query_string=params))
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages == 4 and [x["id"] for x in seen] == list(reversed(made))
    keys = [(x["created_at"], x["id"]) for x in seen]
    assert keys == sorted(keys, reverse=True)
    body = ok(viewer.get("/api/batches", query_string={"limit": 10_000}))
    assert len(body["items"]) <= 100


def test_history_pages(operator, viewer):
    batch = create(operator)
    walk_to_packaging(operator, batch["id"])  # 6 entries with the creation
    seen, cursor = [], None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        body = ok(viewer.get(f"/api/batches/{batch['id']}/history", query_string=params))
        seen += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [i["to"] for i in seen] == ["planned", "in_progress", *STAGES]
    assert_problem(viewer.get(f"/api/batches/{batch['id']}/history?cursor=WyJ4Il0"), 400)


# --- concurrency ---------------------------------------------------------------------------------


def _race(calls):
    """Run the calls in threads at the same moment; their responses in order."""
    results = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i, call):
        start.wait(10)
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_two_clients_racing_the_same_transition(operator):
    batch = create(operator)
    bid = batch["id"]
    a, b = Caller(("operator",)), Caller(("operator",))
    for _ in range(3):  # each round both race one step; exactly one gets it
        before = ok(operator.get(f"/api/batches/{bid}"))
        target = (
            {"status": "in_progress"}
            if before["status"] == "planned"
            else {
                "stage": {
                    "dispensing": "granulation",
                    "granulation": "compression",
                    "compression": "coating",
                }[before["stage"]]
            }
        )
        results = _race([lambda c=c, t=target: c.move(bid, **t) for c in (a, b)])
        assert sorted(r.status_code for r in results) == [200, 409]
        after = ok(operator.get(f"/api/batches/{bid}"))
        assert after["version"] == before["version"] + 1
    assert len(history(operator, bid)) == 4
    assert [e[0] for e in outbox(bid)] == [
        "batch.created",
        "batch.status.changed",
        "batch.stage.changed",
        "batch.stage.changed",
    ]


def test_read_read_write_write_exactly_one_wins(operator, manager, monkeypatch):
    """Both requests read the batch before either writes (forced): the version guard lets
    exactly one apply; the other is 409 and left no trace."""
    batch = create(operator)
    bid = batch["id"]
    ok(operator.move(bid, status="in_progress"))
    both_read = threading.Barrier(2)
    real_get = store.get

    def get_then_wait(session, batch_id):
        row = real_get(session, batch_id)
        both_read.wait(10)
        return row

    monkeypatch.setattr(store, "get", get_then_wait)
    results = _race(
        [
            lambda: operator.move(bid, stage="granulation", reason="advance"),
            lambda: manager.move(bid, status="qa_hold", reason="hold"),
        ]
    )
    monkeypatch.setattr(store, "get", real_get)
    codes = [r.status_code for r in results]
    assert sorted(codes) == [200, 409], [r.get_data(as_text=True) for r in results]
    loser = results[codes.index(409)].get_json()
    assert loser["detail"] == "The batch was changed concurrently; read it again and retry."
    after = ok(operator.get(f"/api/batches/{bid}"))
    assert after["version"] == 3
    if codes[0] == 200:  # the stage advance won: still in progress
        assert (after["status"], after["stage"]) == ("in_progress", "granulation")
    else:
        assert (after["status"], after["stage"]) == ("qa_hold", "dispensing")
    assert len(history(operator, bid)) == 3
    assert len(outbox(bid)) == 3


def test_concurrent_creates_with_one_number(operator):
    taken = number("RACE")
    body = {"batch_number": taken, "product": "P", "planned_quantity": 1, "unit": "kg"}
    clients = [Caller(("operator",)) for _ in range(4)]
    results = _race([lambda c=c: c.post("/api/batches", json=body) for c in clients])
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    with db.transaction() as tx:
        n = tx.execute(
            select(func.count())
            .select_from(store.batches)
            .where(store.batches.c.batch_number == taken)
        ).scalar()
    assert n == 1


def test_times_are_utc_on_both_databases(operator):
    before = datetime.now(UTC)
    batch = create(operator, planned_start="2026-01-01T23:30:00-02:00")
    assert batch["planned_start"] == "2026-01-02T01:30:00Z"
    again = ok(operator.get(f"/api/batches/{batch['id']}"))
    assert again["planned_start"] == "2026-01-02T01:30:00Z"
    created = parse_time(again["created_at"])
    assert created.tzinfo is not None and abs(created - before) < timedelta(minutes=1)
