"""Maintenance domain rules without I/O: the work-order lifecycle checked exhaustively against
an explicit table, who may make which move, stock rules, hierarchy and PM recurrence."""

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import product
from pathlib import Path
from typing import get_args

import pytest

from functions.maintenance import model
from functions.maintenance.model import Actor
from shared.roles import ROLES

ROOT = Path(__file__).resolve().parents[2]

STATUSES = ["open", "assigned", "in_progress", "on_hold", "completed", "closed", "cancelled"]

# The lifecycle, written out independently of model.TRANSITIONS (docs/decisions/
# 0011-maintenance-lifecycle.md). Every pair not listed is refused.
ALLOWED = {
    ("open", "assigned"),
    ("open", "cancelled"),
    ("assigned", "in_progress"),
    ("assigned", "open"),
    ("assigned", "cancelled"),
    ("in_progress", "on_hold"),
    ("in_progress", "completed"),
    ("in_progress", "cancelled"),
    ("on_hold", "in_progress"),
    ("on_hold", "cancelled"),
    ("completed", "closed"),
    ("completed", "in_progress"),
}
OPERATOR = {
    ("assigned", "in_progress"),
    ("assigned", "open"),
    ("in_progress", "on_hold"),
    ("on_hold", "in_progress"),
    ("in_progress", "completed"),
}
NEEDS_REASON = {
    ("in_progress", "on_hold"),
    ("completed", "in_progress"),
    ("open", "cancelled"),
    ("assigned", "cancelled"),
    ("in_progress", "cancelled"),
    ("on_hold", "cancelled"),
}

MANAGER = Actor("m-1", ("manager",))
ADMIN = Actor("a-1", ("admin",))
OPERATOR_ACTOR = Actor("o-1", ("operator",))
VIEWER = Actor("v-1", ("viewer",))


def test_vocabulary_matches():
    assert list(model.WORK_ORDER_STATUSES) == STATUSES
    assert set(model.TRANSITIONS) == set(STATUSES)


def test_assignable_roles_are_platform_roles_but_viewer():
    assert {"operator", "manager", "admin"} == model.ASSIGNABLE_ROLES
    assert set(ROLES) > model.ASSIGNABLE_ROLES


def _loaded_after(module: str, *names: str) -> list[str]:
    """Which of `names` a fresh interpreter has loaded after importing `module`."""
    probe = f"import sys, {module}; print(' '.join(m for m in {names!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return out.stdout.split()


def test_model_and_entry_points_load_only_what_they_need():
    # the domain model imports no web framework or crypto library
    assert _loaded_after("functions.maintenance.model", "flask", "jwt", "cryptography") == []
    # main.py is loaded by the event and schedule deployments too: not the HTTP app
    assert _loaded_after("functions.maintenance.main", "functions.maintenance.api") == []


def test_vocabularies_nest():
    # a PM schedule creates work orders of its type; a new asset starts live, not retired
    assert set(get_args(model.PmType)) < set(get_args(model.WorkOrderType))
    assert set(get_args(model.LiveAssetStatus)) == set(model.ASSET_STATUSES) - {"retired"}


@pytest.mark.parametrize(("current", "wanted"), list(product(STATUSES, STATUSES)))
def test_every_pair_against_the_table(current, wanted):
    allowed = (current, wanted) in ALLOWED
    assert model.can_transition(current, wanted) is allowed
    assert (wanted in model.allowed_moves(current)) is allowed
    reason = "because"
    if not allowed:
        with pytest.raises(model.InvalidTransition) as info:
            model.check_transition(ADMIN, current, wanted, assignee_id="x", reason=reason)
        assert info.value.status == 409
        assert set(info.value.extra["allowed"]) == {t for (f, t) in ALLOWED if f == current}
        assert info.value.extra["current_status"] == current
        return
    for actor in (MANAGER, ADMIN):
        model.check_transition(actor, current, wanted, assignee_id="x", reason=reason)
    # operators: only their hands-on moves, only on their own orders
    if (current, wanted) in OPERATOR:
        model.check_transition(OPERATOR_ACTOR, current, wanted, assignee_id="o-1", reason=reason)
    else:
        with pytest.raises(model.NotAllowed):
            model.check_transition(
                OPERATOR_ACTOR, current, wanted, assignee_id="o-1", reason=reason
            )
    with pytest.raises(model.NotAllowed):
        model.check_transition(
            OPERATOR_ACTOR, current, wanted, assignee_id="someone-else", reason=reason
        )
    with pytest.raises(model.NotAllowed):
        model.check_transition(VIEWER, current, wanted, assignee_id="v-1", reason=reason)
    # reasons
    if (current, wanted) in NEEDS_REASON:
        for missing in (None, "", "   "):
            with pytest.raises(model.ReasonRequired):
                model.check_transition(MANAGER, current, wanted, assignee_id="x", reason=missing)
    else:
        model.check_transition(MANAGER, current, wanted, assignee_id="x", reason=None)


def test_terminal_states_allow_nothing():
    for status in ("closed", "cancelled"):
        assert model.allowed_moves(status) == ()
        assert status in model.TERMINAL


def test_assigning_needs_an_assignee():
    with pytest.raises(model.AssigneeRequired):
        model.check_transition(MANAGER, "open", "assigned", assignee_id=None, reason=None)


def test_transition_side_effects():
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert model.transition_changes("assigned", "open", now) == {
        "status": "open",
        "assignee_id": None,
    }
    assert model.transition_changes("in_progress", "completed", now) == {
        "status": "completed",
        "completed_at": now,
        "resolved_at": now,
    }
    assert model.transition_changes("completed", "closed", now) == {
        "status": "closed",
        "closed_at": now,
    }
    assert model.transition_changes("on_hold", "cancelled", now) == {
        "status": "cancelled",
        "cancelled_at": now,
        "resolved_at": now,
    }
    assert model.transition_changes("completed", "in_progress", now) == {
        "status": "in_progress",
        "completed_at": None,
        "resolved_at": None,
    }
    assert model.transition_changes("on_hold", "in_progress", now) == {"status": "in_progress"}


def test_assignment_moves_the_status():
    assert model.initial_status(None) == "open"
    assert model.initial_status("u") == "assigned"
    assert model.assignment_status("open", None, "u") == "assigned"
    assert model.assignment_status("assigned", "u", None) == "open"
    assert model.assignment_status("assigned", "u", "v") == "assigned"
    assert model.assignment_status("in_progress", "u", "v") == "in_progress"
    with pytest.raises(model.UnassignStarted):
        model.assignment_status("in_progress", "u", None)
    for status in ("completed", "closed", "cancelled"):
        with pytest.raises(model.WorkOrderLocked):
            model.assignment_status(status, "u", "v")


def test_overdue():
    today = date(2026, 11, 22)
    assert model.is_overdue("open", date(2026, 11, 21), today)
    assert not model.is_overdue("open", today, today)  # due today is not overdue yet
    assert not model.is_overdue("open", None, today)
    for status in ("completed", "closed", "cancelled"):
        assert not model.is_overdue(status, date(2026, 1, 1), today)
    for status in ("assigned", "in_progress", "on_hold"):
        assert model.is_overdue(status, date(2026, 1, 1), today)


def test_usable_assignee():
    user = model.User(
        id="u-1",
        email="u@example.com",
        name="U",
        roles=("operator",),
        active=True,
        deleted=False,
        version=1,
        updated_at=datetime(2026, 11, 22, tzinfo=UTC),
    )
    assert model.usable_assignee(user) is None
    assert model.usable_assignee(None) == "no such user"
    assert model.usable_assignee(replace(user, active=False)) == "the user is not active"
    assert model.usable_assignee(replace(user, deleted=True)) == "the user is not active"
    assert "roles" in model.usable_assignee(replace(user, roles=("viewer",)))
    assert model.usable_assignee(replace(user, roles=("admin",))) is None


# --- stock -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "quantity", "delta"),
    [
        ("receive", 5, 5),
        ("consume", 5, -5),
        ("adjust", 3, 3),
        ("adjust", -3, -3),
    ],
)
def test_stock_delta(kind, quantity, delta):
    assert model.stock_delta(kind, quantity) == delta


@pytest.mark.parametrize(
    ("kind", "quantity"),
    [
        ("receive", 0),
        ("receive", -1),
        ("consume", 0),
        ("consume", -2),
        ("adjust", 0),
        ("steal", 1),
    ],
)
def test_stock_delta_refuses(kind, quantity):
    with pytest.raises(ValueError):
        model.stock_delta(kind, quantity)


@pytest.mark.parametrize(
    ("before", "after", "point", "crossed"),
    [
        (10, 5, 5, True),  # reaches the point
        (10, 2, 5, True),  # passes it
        (5, 3, 5, False),  # was already at it
        (4, 2, 5, False),  # was already below
        (10, 6, 5, False),  # still above
        (2, 8, 5, False),  # going up
        (1, 0, 0, True),  # reorder point 0: the last one taken
    ],
)
def test_crossing_the_reorder_point(before, after, point, crossed):
    assert model.crossed_reorder_point(before, after, point) is crossed


def test_low_stock():
    assert model.is_low(3, 3) and model.is_low(0, 0) and not model.is_low(4, 3)


# --- assets ------------------------------------------------------------------------------------


def test_hierarchy_cycles():
    model.check_parent("a", "b", ["c"])
    model.check_parent(None, "b", [])
    with pytest.raises(model.HierarchyCycle):
        model.check_parent("a", "a", [])
    with pytest.raises(model.HierarchyCycle):
        model.check_parent("a", "c", ["b", "a"])  # c is below a
    with pytest.raises(model.InvalidReference):
        model.check_parent("a", "b", [str(i) for i in range(model.MAX_HIERARCHY_DEPTH)])


def test_retire_blockers():
    assert model.retire_blockers(0, 0) is None
    assert "2 active work order" in model.retire_blockers(2, 0)
    assert "1 child" in model.retire_blockers(0, 1)


# --- preventive maintenance --------------------------------------------------------------------


def test_recurrence_rules():
    assert model.recurrence_problem(7, None) is None
    assert model.recurrence_problem(None, "0 6 * * 1") is None
    assert "exactly one" in model.recurrence_problem(None, None)
    assert "exactly one" in model.recurrence_problem(7, "0 6 * * 1")
    assert "5 fields" in model.recurrence_problem(None, "0 6 * *")
    assert "not a valid" in model.recurrence_problem(None, "99 6 * * 1")
    assert model.recurrence_problem(0, None)


def test_next_due_interval_skips_missed_occurrences():
    due = datetime(2026, 11, 1, 6, tzinfo=UTC)
    assert model.next_due(7, None, due, due) == due + timedelta(days=7)
    # handled 20 days late: the next due time is the first one after now, not a backlog
    now = due + timedelta(days=20)
    assert model.next_due(7, None, due, now) == due + timedelta(days=21)
    assert model.next_due(7, None, due, due + timedelta(days=14)) == due + timedelta(days=21)


def test_next_due_cron():
    due = datetime(2026, 11, 23, 6, tzinfo=UTC)  # a Monday
    assert model.next_due(None, "0 6 * * 1", due, due) == datetime(2026, 11, 30, 6, tzinfo=UTC)
    late = datetime(2026, 12, 2, tzinfo=UTC)
    assert model.next_due(None, "0 6 * * 1", due, late) == datetime(2026, 12, 7, 6, tzinfo=UTC)
    assert model.next_occurrence(
        None, "0 6 * * *", datetime(2026, 11, 22, 7, tzinfo=UTC)
    ) == datetime(2026, 11, 23, 6, tzinfo=UTC)
    assert model.next_occurrence(3, None, due) == due + timedelta(days=3)


def test_is_due():
    now = datetime(2026, 11, 22, tzinfo=UTC)
    assert model.is_due(True, now, now)
    assert not model.is_due(False, now, now)
    assert not model.is_due(True, now + timedelta(seconds=1), now)
