"""Maintenance's domain in plain Python: its vocabularies (`Literal`s), the domain objects
(frozen dataclasses that store.py reads and service.py returns), the work-order lifecycle and
who may move it, asset hierarchy and retirement, stock rules, preventive-maintenance
recurrence, and the context's errors. No I/O here (croniter only computes), and no web
framework: only the standard library, croniter, `shared.errors` and `shared.roles`.

The lifecycle is an explicit table (`TRANSITIONS`); docs/decisions/0011-maintenance-lifecycle.md
explains it. Operators may only make the hands-on moves (`OPERATOR_MOVES`) and only on work
orders assigned to them; managers and admins make every allowed move.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal, get_args

from croniter import croniter

from shared.errors import Conflict, Forbidden, NotFound, Problem, Unprocessable
from shared.roles import ROLES

# --- vocabularies ----------------------------------------------------------------------------
# The Literals are the vocabularies (api.py's request and response models use them); the tuples
# the code iterates over derive from them.

AssetStatus = Literal["operational", "degraded", "down", "retired"]
LiveAssetStatus = Literal["operational", "degraded", "down"]  # what a new asset may start as
Criticality = Literal["low", "medium", "high", "critical"]
Priority = Literal["low", "medium", "high", "urgent"]
WorkOrderType = Literal["corrective", "preventive", "inspection"]
WorkOrderStatus = Literal[
    "open", "assigned", "in_progress", "on_hold", "completed", "closed", "cancelled"
]
MovementKind = Literal["receive", "consume", "adjust"]
PmType = Literal["preventive", "inspection"]  # the work-order types a PM schedule creates

ASSET_STATUSES: tuple[AssetStatus, ...] = get_args(AssetStatus)
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
WORK_ORDER_STATUSES: tuple[WorkOrderStatus, ...] = get_args(WorkOrderStatus)

# Work still to do: counts as "open work", can be overdue, keeps an asset from retiring.
ACTIVE = frozenset({"open", "assigned", "in_progress", "on_hold"})
TERMINAL = frozenset({"closed", "cancelled"})
ASSIGNABLE_ROLES = frozenset(ROLES) - {"viewer"}  # who may be given work: all but viewers

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("assigned", "cancelled"),
    "assigned": ("in_progress", "open", "cancelled"),
    "in_progress": ("on_hold", "completed", "cancelled"),
    "on_hold": ("in_progress", "cancelled"),
    "completed": ("closed", "in_progress"),  # completed -> in_progress: reopen
    "closed": (),
    "cancelled": (),
}

# The hands-on moves an operator may make on a work order assigned to them. Cancelling,
# closing (sign-off) and reopening are a manager's decision.
OPERATOR_MOVES = frozenset(
    {
        ("assigned", "in_progress"),
        ("assigned", "open"),  # hand the order back
        ("in_progress", "on_hold"),
        ("on_hold", "in_progress"),
        ("in_progress", "completed"),
    }
)

# Moves that must say why (422 without a reason).
REASON_REQUIRED = frozenset(
    {
        ("in_progress", "on_hold"),
        ("completed", "in_progress"),
        *((s, "cancelled") for s in ("open", "assigned", "in_progress", "on_hold")),
    }
)

MAX_HIERARCHY_DEPTH = 32


# --- errors ------------------------------------------------------------------------------------


class MaintenanceError(Problem):
    """Base of every error the maintenance context raises (problem+json via shared.http)."""


class AssetNotFound(MaintenanceError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such asset.")


class WorkOrderNotFound(MaintenanceError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such work order.")


class PartNotFound(MaintenanceError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such part.")


class ScheduleNotFound(MaintenanceError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such PM schedule.")


class DuplicateTag(MaintenanceError, Conflict):
    def __init__(self, tag: str) -> None:
        super().__init__(
            f"An asset with tag {tag!r} already exists (retired assets keep their tag)."
        )


class DuplicateSku(MaintenanceError, Conflict):
    def __init__(self, sku: str) -> None:
        super().__init__(f"A part with SKU {sku!r} already exists.")


class HierarchyCycle(MaintenanceError, Conflict):
    def __init__(self) -> None:
        super().__init__("The asset cannot sit below itself or one of its descendants.")


class AssetInUse(MaintenanceError, Conflict):
    """An asset with active work orders or live children cannot retire."""


class AssetRetired(MaintenanceError, Conflict):
    def __init__(self) -> None:
        super().__init__("The asset is retired; restore it (PUT status) before changing it.")


class InvalidReference(MaintenanceError, Unprocessable):
    """A referenced asset, parent, part or assignee does not exist or is unusable (422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            f"{field}: {message}",
            errors=[{"field": field, "message": message, "type": "reference"}],
        )


class InvalidTransition(MaintenanceError, Conflict):
    def __init__(self, current: str, wanted: str) -> None:
        allowed = list(TRANSITIONS.get(current, ()))
        super().__init__(
            f"A work order cannot move from {current} to {wanted}; allowed from {current}: "
            f"{', '.join(allowed) or 'nothing (terminal)'}.",
            allowed=allowed,
            current_status=current,
        )


class AssigneeRequired(MaintenanceError, Conflict):
    def __init__(self) -> None:
        super().__init__("Set assignee_id (PUT) before moving the work order to assigned.")


class UnassignStarted(MaintenanceError, Conflict):
    def __init__(self, status: str) -> None:
        super().__init__(
            f"A work order that is {status} cannot be unassigned; reassign it instead."
        )


class WorkOrderLocked(MaintenanceError, Conflict):
    def __init__(self, status: str) -> None:
        super().__init__(f"The work order is {status}; it can no longer be changed.")


class InsufficientStock(MaintenanceError, Conflict):
    def __init__(self, sku: str, stock: int, wanted: int) -> None:
        super().__init__(
            f"Part {sku} has {stock} in stock; {wanted} cannot be taken "
            "(stock never goes below zero). Nothing was written.",
            stock=stock,
        )


class NotAllowed(MaintenanceError, Forbidden):
    """The caller's roles do not allow this on this work order."""


class ReasonRequired(MaintenanceError, Unprocessable):
    def __init__(self, current: str, wanted: str) -> None:
        super().__init__(
            f"Moving from {current} to {wanted} needs a reason.",
            errors=[
                {"field": "reason", "message": "required for this transition", "type": "missing"}
            ],
        )


# --- callers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who is acting: the token's subject and roles (admin can do everything)."""

    id: str
    roles: tuple[str, ...]

    @property
    def manages(self) -> bool:
        return "admin" in self.roles or "manager" in self.roles

    @property
    def operates(self) -> bool:
        return "operator" in self.roles


SYSTEM = Actor(id="system", roles=("admin",))


# --- domain objects ------------------------------------------------------------------------------
# What store.py reads and service.py returns; api.py shapes them with its OutModels.


@dataclass(frozen=True)
class User:
    """The local copy of a user of the users context (fed by its events)."""

    id: str
    email: str
    name: str
    roles: tuple[str, ...]
    active: bool
    deleted: bool
    version: int  # the users-context version applied
    updated_at: datetime


@dataclass(frozen=True)
class Asset:
    id: str
    tag: str
    name: str
    category: str | None
    location: str | None
    parent_id: str | None
    status: AssetStatus
    criticality: Criticality
    version: int
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class NewWorkOrder:
    """What a new work order is made of (by a manager, or by the PM tick from a schedule)."""

    title: str
    asset_id: str
    priority: Priority
    type: WorkOrderType
    description: str | None = None
    due_date: date | None = None
    assignee_id: str | None = None
    labour_notes: str | None = None


@dataclass(frozen=True)
class WorkOrder:
    """A work order with its asset's tag and name and its assignee's name. `overdue` is as of
    the day the service read it (`as_of`)."""

    id: str
    number: int
    title: str
    description: str | None
    asset_id: str
    priority: Priority
    type: WorkOrderType
    status: WorkOrderStatus
    due_date: date | None
    assignee_id: str | None
    labour_notes: str | None
    pm_schedule_id: str | None
    created_by: str
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    resolved_at: datetime | None
    asset_tag: str | None = None
    asset_name: str | None = None
    assignee_name: str | None = None
    overdue: bool = False

    @property
    def allowed_transitions(self) -> tuple[str, ...]:
        return allowed_moves(self.status)

    def as_of(self, today: date) -> WorkOrder:
        return replace(self, overdue=is_overdue(self.status, self.due_date, today))


@dataclass(frozen=True)
class Transition:
    """One entry of a work order's status log (its creation included: from_status None)."""

    id: str
    work_order_id: str
    from_status: WorkOrderStatus | None
    to_status: WorkOrderStatus
    reason: str | None
    actor_id: str
    at: datetime


@dataclass(frozen=True)
class Part:
    id: str
    sku: str
    name: str
    unit: str
    stock: int
    reorder_point: int
    location: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def low_stock(self) -> bool:
        return is_low(self.stock, self.reorder_point)


@dataclass(frozen=True)
class Movement:
    """One entry of the stock ledger: `delta` is the signed effect of `quantity` (as entered)."""

    id: str
    part_id: str
    kind: MovementKind
    quantity: int
    delta: int
    stock_after: int
    note: str | None
    work_order_id: str | None
    actor_id: str
    created_at: datetime
    sku: str | None = None
    part_name: str | None = None


@dataclass(frozen=True)
class Schedule:
    """A preventive-maintenance schedule: exactly one of `interval_days` and `cron`."""

    id: str
    asset_id: str
    interval_days: int | None
    cron: str | None
    title: str
    description: str | None
    priority: Priority
    type: PmType
    next_due_at: datetime
    active: bool
    last_generated_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TickReport:
    """What one PM tick did at `schedule_time`."""

    schedule_time: datetime
    due: int
    created: int
    work_order_ids: tuple[str, ...]


@dataclass(frozen=True)
class TrendDay:
    date: date
    created: int
    completed: int
    overdue: int  # orders overdue at the end of that day


@dataclass(frozen=True)
class Stats:
    """The dashboard's figures."""

    work_orders_total: int
    work_orders_active: int
    work_orders_by_status: dict[str, int]
    work_orders_by_priority: dict[str, int]
    overdue: int
    mttr_hours: float | None
    mttr_sample: int
    assets_down: int
    assets_by_status: dict[str, int]
    low_stock_count: int
    low_stock_parts: tuple[Part, ...]
    trend: tuple[TrendDay, ...]
    generated_at: datetime


# --- work orders -------------------------------------------------------------------------------


def allowed_moves(status: str) -> tuple[str, ...]:
    return TRANSITIONS.get(status, ())


def can_transition(current: str, wanted: str) -> bool:
    return wanted in TRANSITIONS.get(current, ())


def may_move(actor: Actor, current: str, wanted: str, assignee_id: str | None) -> bool:
    """Whether `actor` may make this (allowed) move on an order assigned to `assignee_id`."""
    if actor.manages:
        return True
    return (
        actor.operates
        and assignee_id is not None
        and assignee_id == actor.id
        and (current, wanted) in OPERATOR_MOVES
    )


def check_transition(
    actor: Actor, current: str, wanted: str, *, assignee_id: str | None, reason: str | None
) -> None:
    """Raise why `actor` cannot move an order from `current` to `wanted` (nothing if allowed)."""
    if not can_transition(current, wanted):
        raise InvalidTransition(current, wanted)
    if not may_move(actor, current, wanted, assignee_id):
        if not actor.manages and assignee_id != actor.id:
            raise NotAllowed("Operators may only move work orders assigned to them.")
        raise NotAllowed(f"Moving a work order from {current} to {wanted} is for managers.")
    if (current, wanted) in REASON_REQUIRED and not (reason and reason.strip()):
        raise ReasonRequired(current, wanted)
    if wanted == "assigned" and not assignee_id:
        raise AssigneeRequired()


def transition_changes(current: str, wanted: str, now: datetime) -> dict[str, Any]:
    """The fields a move sets besides `status` (timestamps; unassigning on hand-back)."""
    changes: dict[str, Any] = {"status": wanted}
    if wanted == "open":
        changes["assignee_id"] = None
    elif wanted == "completed":
        changes.update(completed_at=now, resolved_at=now)
    elif wanted == "closed":
        changes["closed_at"] = now
    elif wanted == "cancelled":
        changes.update(cancelled_at=now, resolved_at=now)
    elif wanted == "in_progress" and current == "completed":
        changes.update(completed_at=None, resolved_at=None)
    return changes


def initial_status(assignee_id: str | None) -> str:
    """A new order with an assignee starts assigned, else open."""
    return "assigned" if assignee_id else "open"


def assignment_status(current: str, old_assignee: str | None, new_assignee: str | None) -> str:
    """The status after a manager changes the assignee (PUT): assigning an open order makes it
    assigned, unassigning an assigned one makes it open; started orders can only be
    reassigned, not unassigned."""
    if current in TERMINAL or current == "completed":
        raise WorkOrderLocked(current)
    if new_assignee is None and old_assignee is not None:
        if current == "assigned":
            return "open"
        if current in ("in_progress", "on_hold"):
            raise UnassignStarted(current)
    if new_assignee is not None and current == "open":
        return "assigned"
    return current


def is_overdue(status: str, due_date: date | None, today: date) -> bool:
    """Due date passed (the order is overdue the day after it) and the work is not done."""
    return due_date is not None and due_date < today and status in ACTIVE


def usable_assignee(user: User | None) -> str | None:
    """Why a local user copy cannot be assigned (None when it can)."""
    if user is None:
        return "no such user"
    if not user.active or user.deleted:
        return "the user is not active"
    if not ASSIGNABLE_ROLES & set(user.roles):
        return "the user has none of the roles operator, manager, admin"
    return None


def repair_hours(created_at: datetime, completed_at: datetime) -> float:
    return round((completed_at - created_at).total_seconds() / 3600, 3)


# --- assets ------------------------------------------------------------------------------------


def check_parent(asset_id: str | None, parent_id: str, ancestors: list[str]) -> None:
    """Refuse a parent that is the asset itself or one of its descendants.

    `ancestors` is the chain above `parent_id` (its parent, grandparent, ...)."""
    if asset_id is not None and (parent_id == asset_id or asset_id in ancestors):
        raise HierarchyCycle()
    if len(ancestors) >= MAX_HIERARCHY_DEPTH:
        raise InvalidReference(
            "parent_id", f"the hierarchy is limited to {MAX_HIERARCHY_DEPTH} levels"
        )


def retire_blockers(active_work_orders: int, live_children: int) -> str | None:
    """Why an asset cannot retire (None when it can)."""
    reasons = []
    if active_work_orders:
        reasons.append(f"{active_work_orders} active work order(s)")
    if live_children:
        reasons.append(f"{live_children} child asset(s) not retired")
    if not reasons:
        return None
    return "The asset has " + " and ".join(reasons) + "; finish or move them first."


# --- parts -------------------------------------------------------------------------------------


def stock_delta(kind: str, quantity: int) -> int:
    """The signed change of stock a movement makes; ValueError for a quantity its kind
    does not accept (receive/consume positive, adjust non-zero and may be negative)."""
    if kind in ("receive", "consume"):
        if quantity <= 0:
            raise ValueError(f"a {kind} quantity must be positive")
        return quantity if kind == "receive" else -quantity
    if kind == "adjust":
        if quantity == 0:
            raise ValueError("an adjustment must not be zero")
        return quantity
    raise ValueError(f"unknown movement kind {kind!r}")


def crossed_reorder_point(before: int, after: int, reorder_point: int) -> bool:
    """The stock fell to or below the reorder point with this movement (not before it)."""
    return before > reorder_point >= after


def is_low(stock: int, reorder_point: int) -> bool:
    return stock <= reorder_point


# --- preventive maintenance ------------------------------------------------------------------


def cron_problem(expr: str) -> str | None:
    """Why `expr` is not a 5-field cron expression croniter accepts (None when it is)."""
    if len(expr.split()) != 5:
        return "must have 5 fields (minute hour day-of-month month day-of-week)"
    if not croniter.is_valid(expr):
        return "is not a valid cron expression"
    return None


def recurrence_problem(interval_days: int | None, cron: str | None) -> str | None:
    if (interval_days is None) == (cron is None):
        return "give exactly one of interval_days and cron"
    if cron is not None:
        problem = cron_problem(cron)
        return f"cron {problem}" if problem else None
    assert interval_days is not None
    if interval_days < 1:
        return "interval_days must be at least 1"
    return None


def next_occurrence(interval_days: int | None, cron: str | None, after: datetime) -> datetime:
    """The first due time strictly after `after` of a recurrence with no anchor."""
    if cron is not None:
        return croniter(cron, after).get_next(datetime)
    assert interval_days is not None
    return after + timedelta(days=interval_days)


def next_due(
    interval_days: int | None, cron: str | None, due_at: datetime, now: datetime
) -> datetime:
    """The due time after `due_at` once `due_at` has been handled at `now`: the first
    occurrence strictly after both (missed occurrences are skipped, not piled up)."""
    if cron is not None:
        return croniter(cron, max(due_at, now)).get_next(datetime)
    assert interval_days is not None
    step = timedelta(days=interval_days)
    nxt = due_at + step
    if nxt <= now:
        nxt += step * ((now - nxt) // step + 1)
    return nxt


def is_due(active: bool, next_due_at: datetime, now: datetime) -> bool:
    return active and next_due_at <= now
