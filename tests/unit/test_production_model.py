"""functions.production.model: the batch lifecycle checked exhaustively against an explicit
table, the edit rules, and the request models and event schemas of the context."""

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from functions.production import model, service
from functions.production.api import (
    BatchCreate,
    BatchQuery,
    BatchUpdate,
    MetricsQuery,
    TransitionIn,
)
from functions.production.events import BatchCompleted, BatchStatusChanged
from shared.http import BadRequest, Unprocessable, encode_cursor

# Every (status, stage, target) the lifecycle allows, written out by hand, with what the
# transition leads to: (new status, new stage, sets started_at, sets completed_at).
PL, IP, QH, RL, RJ, CP = "planned", "in_progress", "qa_hold", "released", "rejected", "completed"
DI, GR, CM, CT, PK = "dispensing", "granulation", "compression", "coating", "packaging"
EXPECTED = {
    # start: from planned, wherever the (always dispensing) stage says, into dispensing
    (PL, DI, ("status", IP)): (IP, DI, True, False),
    (PL, GR, ("status", IP)): (IP, DI, True, False),
    (PL, CM, ("status", IP)): (IP, DI, True, False),
    (PL, CT, ("status", IP)): (IP, DI, True, False),
    (PL, PK, ("status", IP)): (IP, DI, True, False),
    # hold: from any stage while in progress
    (IP, DI, ("status", QH)): (QH, DI, False, False),
    (IP, GR, ("status", QH)): (QH, GR, False, False),
    (IP, CM, ("status", QH)): (QH, CM, False, False),
    (IP, CT, ("status", QH)): (QH, CT, False, False),
    (IP, PK, ("status", QH)): (QH, PK, False, False),
    # stages: forward by exactly one, only while in progress
    (IP, DI, ("stage", GR)): (IP, GR, False, False),
    (IP, GR, ("stage", CM)): (IP, CM, False, False),
    (IP, CM, ("stage", CT)): (IP, CT, False, False),
    (IP, CT, ("stage", PK)): (IP, PK, False, False),
    # resume and reject: from hold at any stage
    (QH, DI, ("status", IP)): (IP, DI, False, False),
    (QH, GR, ("status", IP)): (IP, GR, False, False),
    (QH, CM, ("status", IP)): (IP, CM, False, False),
    (QH, CT, ("status", IP)): (IP, CT, False, False),
    (QH, PK, ("status", IP)): (IP, PK, False, False),
    (QH, DI, ("status", RJ)): (RJ, DI, False, False),
    (QH, GR, ("status", RJ)): (RJ, GR, False, False),
    (QH, CM, ("status", RJ)): (RJ, CM, False, False),
    (QH, CT, ("status", RJ)): (RJ, CT, False, False),
    (QH, PK, ("status", RJ)): (RJ, PK, False, False),
    # release: from hold, only after packaging
    (QH, PK, ("status", RL)): (RL, PK, False, False),
    # complete: from released
    (RL, DI, ("status", CP)): (CP, DI, False, True),
    (RL, GR, ("status", CP)): (CP, GR, False, True),
    (RL, CM, ("status", CP)): (CP, CM, False, True),
    (RL, CT, ("status", CP)): (CP, CT, False, True),
    (RL, PK, ("status", CP)): (CP, PK, False, True),
}
TARGETS = [("status", s) for s in model.STATUSES] + [("stage", s) for s in model.STAGES]
ALL = [
    (status, stage, target)
    for status in model.STATUSES
    for stage in model.STAGES
    for target in TARGETS
]


def test_the_table_covers_the_declared_values():
    assert model.STATUSES == (PL, IP, QH, RL, RJ, CP)
    assert model.STAGES == (DI, GR, CM, CT, PK)
    assert len(ALL) == 6 * 5 * 11
    assert set(EXPECTED) <= set(ALL)


@pytest.mark.parametrize("status, stage, target", ALL)
def test_every_combination(status, stage, target):
    wanted = model.Target(*target)
    if (status, stage, target) in EXPECTED:
        new_status, new_stage, starts, completes = EXPECTED[(status, stage, target)]
        step = model.plan(status, stage, wanted)
        assert (step.status, step.stage, step.starts, step.completes) == (
            new_status,
            new_stage,
            starts,
            completes,
        )
        assert (step.kind, step.new) == target
        assert step.old == (status if target[0] == "status" else stage)
        assert wanted in model.allowed(status, stage)
    else:
        with pytest.raises(model.InvalidTransition) as info:
            model.plan(status, stage, wanted)
        problem = info.value
        assert problem.status == 409
        expected_allowed = [{k: v} for (s, g, (k, v)) in EXPECTED if (s, g) == (status, stage)]
        assert sorted(map(json.dumps, problem.extra["allowed"])) == sorted(
            map(json.dumps, expected_allowed)
        )
        assert wanted not in model.allowed(status, stage)


def test_allowed_lists_status_moves_first_and_terminal_states_have_none():
    assert model.allowed(IP, CM) == [model.Target("status", QH), model.Target("stage", CT)]
    assert model.allowed(QH, PK) == [
        model.Target("status", IP),
        model.Target("status", RJ),
        model.Target("status", RL),
    ]
    assert model.allowed(RJ, GR) == [] and model.allowed(CP, PK) == []
    with pytest.raises(model.InvalidTransition, match="none \\(the batch is closed\\)"):
        model.plan(CP, PK, model.Target("status", IP))


def test_the_walk_from_planned_to_completed():
    status, stage = PL, DI
    walk = [
        ("status", IP),
        ("stage", GR),
        ("stage", CM),
        ("stage", CT),
        ("stage", PK),
        ("status", QH),
        ("status", RL),
        ("status", CP),
    ]
    for target in walk:
        step = model.plan(status, stage, model.Target(*target))
        status, stage = step.status, step.stage
    assert (status, stage) == (CP, PK)


def test_which_steps_end_a_stage_visit_and_which_begin_one():
    ends = {}
    for status, stage, target in EXPECTED:
        step = model.plan(status, stage, model.Target(*target))
        ends[(status, stage, target)] = model.stage_left(step)
    assert {k: v for k, v in ends.items() if v} == {
        (IP, DI, ("stage", GR)): DI,
        (IP, GR, ("stage", CM)): GR,
        (IP, CM, ("stage", CT)): CM,
        (IP, CT, ("stage", PK)): CT,
        (QH, PK, ("status", RL)): PK,
    }
    assert model.stage_entry(DI) == ("status", PL, IP)  # the start, not a resume
    for stage in (GR, CM, CT, PK):
        assert model.stage_entry(stage) == ("stage", None, stage)


@pytest.mark.parametrize(
    "target, qa",
    [
        (("status", QH), True),
        (("status", RL), True),
        (("status", RJ), True),
        (("status", IP), False),
        (("status", CP), False),
        (("status", PL), False),
        (("stage", GR), False),
        (("stage", PK), False),
    ],
)
def test_qa_decisions_need_the_qa_permission(target, qa):
    assert model.needs_qa_permission(model.Target(*target)) is qa


# --- edits -----------------------------------------------------------------------------------

EDIT_RULES = {
    # status: (definition fields editable, record fields editable)
    PL: (True, "notes only"),
    IP: (False, True),
    QH: (False, True),
    RL: (False, True),
    RJ: (False, False),
    CP: (False, False),
}


@pytest.mark.parametrize("status", model.STATUSES)
@pytest.mark.parametrize("field", model.EDITABLE_FIELDS)
def test_edit_rules(status, field):
    definition_ok, record_ok = EDIT_RULES[status]
    if field in model.DEFINITION_FIELDS:
        ok = definition_ok
    elif record_ok == "notes only":
        ok = field == "notes"
    else:
        ok = record_ok
    if ok:
        model.check_edit(status, [field])
    else:
        with pytest.raises(model.ProductionError) as info:
            model.check_edit(status, [field])
        assert info.value.status == 409


@pytest.mark.parametrize("status", [RJ, CP])
def test_a_closed_batch_refuses_even_an_empty_edit(status):
    with pytest.raises(model.BatchClosed):
        model.check_edit(status, [])


def test_changed_fields_lists_only_real_changes_in_order():
    current = {
        "batch_number": "A-1",
        "product": "PL",
        "planned_quantity": 10.0,
        "unit": "kg",
        "planned_start": None,
        "notes": None,
        "actual_quantity": None,
    }
    wanted = {"notes": "n", "planned_quantity": 10.0, "product": "Q"}
    assert model.changed_fields(current, wanted) == ["product", "notes"]
    assert model.changed_fields(current, {}) == []


def test_yield():
    assert model.batch_yield(950, 1000) == pytest.approx(0.95)


# --- request models ----------------------------------------------------------------------------


def test_create_normalises_and_defaults():
    data = BatchCreate.model_validate(
        {
            "batch_number": " pcm-2026-001 ",
            "product": " PL ",
            "planned_quantity": 1000,
            "unit": "kg",
        }
    )
    assert (data.batch_number, data.product, data.planned_quantity, data.notes) == (
        "PCM-2026-001",
        "PL",
        1000.0,
        None,
    )


@pytest.mark.parametrize(
    "data",
    [
        {"planned_quantity": -1},
        {"planned_quantity": 0},
        {"planned_quantity": float("inf")},
        {"planned_quantity": "lots"},
        {"batch_number": "AB"},
        {"batch_number": "-ABC"},
        {"batch_number": "A B CP"},
        {"batch_number": "A" * 41},
        {"product": ""},
        {"unit": ""},
        {"unit": "k g"},
        {"planned_start": "2026-01-01T00:00:00"},  # no offset
        {"status": "completed"},
        {"stage": "packaging"},
        {"actual_quantity": 5},
        {"colour": "red"},
    ],
)
def test_create_refuses(data):
    base = {"batch_number": "PCM-1", "product": "PL", "planned_quantity": 10, "unit": "kg"}
    with pytest.raises(ValidationError):
        BatchCreate.model_validate({**base, **data})


def test_update_is_partial_nullable_where_it_makes_sense():
    data = BatchUpdate.model_validate({"notes": None, "actual_quantity": 0})
    assert data.model_dump(exclude_unset=True) == {"notes": None, "actual_quantity": 0.0}
    for field in ("batch_number", "product", "planned_quantity", "unit", "version"):
        with pytest.raises(ValidationError, match="null is not allowed"):
            BatchUpdate.model_validate({field: None})
    with pytest.raises(ValidationError):
        BatchUpdate.model_validate({"actual_quantity": -0.5})


@pytest.mark.parametrize(
    "data",
    [
        {"reason": "r"},
        {"status": "qa_hold", "stage": "granulation", "reason": "r"},
        {"status": "qa_hold"},
        {"status": "qa_hold", "reason": "   "},
        {"status": "paused", "reason": "r"},
        {"stage": "Granulation", "reason": "r"},
        {"status": "qa_hold", "reason": "r", "actual_quantity": 1},
        {"status": "completed", "reason": "r", "actual_quantity": -1},
        {"status": "completed", "reason": "r", "extra": 1},
    ],
)
def test_transition_bodies_refused(data):
    with pytest.raises(ValidationError):
        TransitionIn.model_validate(data)


def test_transition_targets():
    assert TransitionIn.model_validate(
        {"stage": "coating", "reason": " r "}
    ).target() == model.Target("stage", "coating")
    done = TransitionIn.model_validate(
        {"status": "completed", "reason": "r", "actual_quantity": 12.5}
    )
    assert (done.target(), done.actual_quantity, done.reason) == (
        model.Target("status", "completed"),
        12.5,
        "r",
    )


def test_list_query_accepts_one_or_many_statuses_and_checks_cursors():
    assert BatchQuery.model_validate({"status": "planned"}).status == ["planned"]
    assert BatchQuery.model_validate({"status": ["planned", "qa_hold"]}).status == [
        "planned",
        "qa_hold",
    ]
    with pytest.raises(ValidationError):
        BatchQuery.model_validate({"status": "paused"})
    with pytest.raises(ValidationError):
        BatchQuery.model_validate({"created_from": "2026-01-01"})  # a datetime with offset
    when = datetime(2026, 1, 2, tzinfo=UTC)
    good = BatchQuery.model_validate({"cursor": encode_cursor([when, "abc"])})
    assert good.keyset(datetime, str) == (when, "abc")
    with pytest.raises(BadRequest):
        BatchQuery.model_validate({"cursor": encode_cursor([1, 2, 3])}).keyset(datetime, str)


def test_metrics_query_range():
    today = service.default_range()[1]
    assert MetricsQuery.model_validate({}).days() == (today - timedelta(days=29), today)
    assert MetricsQuery.model_validate({"to": "2026-03-31"}).days() == (
        date(2026, 3, 2),
        date(2026, 3, 31),
    )
    assert MetricsQuery.model_validate({"from": "2026-03-01", "to": "2026-03-01"}).days() == (
        date(2026, 3, 1),
        date(2026, 3, 1),
    )
    with pytest.raises(Unprocessable):
        MetricsQuery.model_validate({"from": "2026-03-02", "to": "2026-03-01"}).days()
    with pytest.raises(Unprocessable):
        MetricsQuery.model_validate({"from": "2025-01-01", "to": "2026-03-01"}).days()
    with pytest.raises(ValidationError):
        MetricsQuery.model_validate({"from_": "2026-03-01"})


# --- events ------------------------------------------------------------------------------------


class _RecordingSession:
    """Just enough of a Session for shared.events.emit: keeps the outbox insert it is given."""

    def __init__(self):
        self.info = {}
        self.rows = []

    def execute(self, stmt):
        params = stmt.compile().params
        if "id" in params:  # one row
            self.rows.append(params)
            return
        n = 0  # a multi-row VALUES (emit_many): the columns of row n end in _m<n>
        while f"id_m{n}" in params:
            suffix = f"_m{n}"
            self.rows.append(
                {k[: -len(suffix)]: v for k, v in params.items() if k.endswith(suffix)}
            )
            n += 1

    def get_bind(self):  # emit asks for the engine its sender publishes through after commit
        from sqlalchemy import create_engine

        return create_engine("sqlite://")  # never connected: nothing commits here


def test_batch_completed_publishes_yield_under_its_name(monkeypatch):
    from shared import events

    monkeypatch.delenv("SWITCHYARD_DEPLOYMENT", raising=False)
    session = _RecordingSession()
    event = BatchCompleted(
        batch_id="b",
        batch_number="PCM-1",
        product="PL",
        planned_quantity=1000,
        actual_quantity=950,
        unit="kg",
        yield_=0.95,
        completed_at="2026-03-01T10:00:00Z",
    )
    events.emit(session, event, actor="u1")
    (row,) = session.rows
    payload = json.loads(row["payload"])
    assert payload["yield"] == 0.95 and "yield_" not in payload
    assert row["event_type"] == "batch.completed"
    assert json.loads(row["attributes"])["actor"] == "u1"
    received = events.Received(
        event_type="batch.completed",
        event_id="e",
        schema_version=1,
        source="production-api",
        occurred_at=datetime.now(UTC),
        actor="u1",
        request_id="",
        traceparent="",
        data=payload,
    )
    assert received.parse(BatchCompleted) == event


def test_move_events_refuse_missing_fields():
    with pytest.raises(ValidationError):
        BatchStatusChanged(
            batch_id="b", batch_number="N", old="planned", new="in_progress", actor="u"
        )
