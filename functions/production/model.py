"""Production's domain rules in plain Python: the batch lifecycle (statuses and manufacturing
stages), which edits a batch still accepts, who may make a QA decision, yield, and the
context's errors. No I/O here. The lifecycle is docs/decisions/0010-production-lifecycle.md:

    planned --start--> in_progress --hold--> qa_hold --resume--> in_progress
                       | stage: dispensing -> granulation -> compression -> coating -> packaging
                       |        (forward, one step at a time, only while in_progress)
                       qa_hold --reject--> rejected                       (terminal)
                       qa_hold --release--> released   (only at packaging)
                       released --complete--> completed (needs actual_quantity; terminal)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, get_args

from shared.errors import Conflict, Forbidden, NotFound, Problem, Unprocessable

Stage = Literal["dispensing", "granulation", "compression", "coating", "packaging"]
Status = Literal["planned", "in_progress", "qa_hold", "released", "rejected", "completed"]
Kind = Literal["status", "stage"]
STAGES: tuple[str, ...] = get_args(Stage)
STATUSES: tuple[str, ...] = get_args(Status)

FIRST_STAGE = STAGES[0]
LAST_STAGE = STAGES[-1]
INITIAL_STATUS = "planned"
TERMINAL = frozenset({"rejected", "completed"})
# QA decisions: putting a batch on hold, releasing and rejecting it. They need the `qa`
# permission, which maps to the manager role for now (admin passes, as everywhere).
QA_STATUSES = frozenset({"qa_hold", "released", "rejected"})
QA_ROLE = "manager"

# What defines a batch: fixed once production started. Notes and the actual quantity are the
# record of production itself and stay editable until the batch is closed.
DEFINITION_FIELDS = ("batch_number", "product", "planned_quantity", "unit", "planned_start")
RECORD_FIELDS = ("notes", "actual_quantity")
EDITABLE_FIELDS = DEFINITION_FIELDS + RECORD_FIELDS

BATCH_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,39}$")
BATCH_NUMBER_ANY_CASE = r"^[A-Za-z0-9][A-Za-z0-9-]{2,39}$"  # the request schema's (upper-cased)
UNIT = re.compile(r"^[A-Za-z%][A-Za-z0-9%/._-]{0,19}$")
MAX_QUANTITY = 1e12


# --- errors ------------------------------------------------------------------------------


class ProductionError(Problem):
    """Base of every error the production context raises (problem+json via shared.http)."""


class BatchNotFound(ProductionError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such batch.")


class BatchNumberTaken(ProductionError, Conflict):
    def __init__(self, batch_number: str) -> None:
        super().__init__(f"A batch with number {batch_number} already exists.")


class ConcurrentChange(ProductionError, Conflict):
    def __init__(self) -> None:
        super().__init__("The batch was changed concurrently; read it again and retry.")


class BatchClosed(ProductionError, Conflict):
    def __init__(self, status: str) -> None:
        super().__init__(f"The batch is {status}; a closed batch cannot be edited.")


class FieldLocked(ProductionError, Conflict):
    """An edit the batch's status no longer (or not yet) accepts."""


class InvalidTransition(ProductionError, Conflict):
    """A transition the lifecycle does not allow from the batch's state; `allowed` lists the
    transitions that are (as request bodies: `{"status": ...}` or `{"stage": ...}`)."""

    def __init__(self, status: str, stage: str, target: Target, allowed: list[Target]) -> None:
        options = ", ".join(str(t) for t in allowed) or "none (the batch is closed)"
        super().__init__(
            f"A batch that is {status} at {stage} cannot move to {target}; allowed: {options}.",
            allowed=[t.as_body() for t in allowed],
        )


class QuantityRequired(ProductionError, Unprocessable):
    def __init__(self) -> None:
        super().__init__(
            "Completing a batch needs its actual quantity.",
            errors=[
                {
                    "field": "actual_quantity",
                    "type": "missing",
                    "message": "required to complete a batch that has no actual quantity yet",
                }
            ],
        )


class QaPermissionRequired(ProductionError, Forbidden):
    def __init__(self, target: Target) -> None:
        super().__init__(
            f"Moving a batch to {target.value} is a QA decision; it needs the "
            f"qa permission (role {QA_ROLE} or admin)."
        )


# --- domain objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    id: str
    batch_number: str
    product: str
    planned_quantity: float
    actual_quantity: float | None
    unit: str
    stage: str
    status: str
    notes: str | None
    planned_start: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class Transition:
    """One entry of a batch's lifecycle record (`from_value` is None for its creation)."""

    id: int
    kind: str
    from_value: str | None
    to_value: str
    reason: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class ProductYield:
    product: str
    batches: int
    yield_avg: float
    yield_min: float
    yield_max: float


@dataclass(frozen=True)
class StageCycle:
    stage: str
    batches: int
    avg_seconds: float | None


@dataclass(frozen=True)
class DayCount:
    day: date
    completed: int


@dataclass(frozen=True)
class Metrics:
    """Production metrics over the UTC days `from_`..`to` (both included)."""

    from_: date
    to: date
    product: str | None
    total: int
    by_status: dict[str, int]
    by_stage: dict[str, int]
    yield_by_product: list[ProductYield]
    cycle_time_by_stage: list[StageCycle]
    throughput: list[DayCount]
    completed_total: int


# --- lifecycle -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A requested transition: a new status or a new stage."""

    kind: Kind
    value: str

    def as_body(self) -> dict[str, str]:
        return {self.kind: self.value}

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


@dataclass(frozen=True)
class Step:
    """What a transition does: the batch's new status and stage, and its timestamps."""

    kind: Kind
    old: str
    new: str
    status: str
    stage: str
    starts: bool = False  # sets started_at
    completes: bool = False  # sets completed_at; needs an actual quantity


def next_stage(stage: str) -> str | None:
    i = STAGES.index(stage)
    return STAGES[i + 1] if i + 1 < len(STAGES) else None


def allowed(status: str, stage: str) -> list[Target]:
    """Every transition the lifecycle allows from (status, stage), status moves first."""
    if status == "planned":
        return [Target("status", "in_progress")]
    if status == "in_progress":
        out = [Target("status", "qa_hold")]
        following = next_stage(stage)
        return out + [Target("stage", following)] if following else out
    if status == "qa_hold":
        out = [Target("status", "in_progress"), Target("status", "rejected")]
        return out + [Target("status", "released")] if stage == LAST_STAGE else out
    if status == "released":
        return [Target("status", "completed")]
    return []  # rejected, completed: terminal


def plan(status: str, stage: str, target: Target) -> Step:
    """The step that moves a batch from (status, stage) to `target`, or InvalidTransition."""
    options = allowed(status, stage)
    if target not in options:
        raise InvalidTransition(status, stage, target, options)
    if target.kind == "stage":
        return Step("stage", stage, target.value, status=status, stage=target.value)
    starts = status == "planned"
    return Step(
        "status",
        status,
        target.value,
        status=target.value,
        stage=FIRST_STAGE if starts else stage,
        starts=starts,
        completes=target.value == "completed",
    )


def stage_left(step: Step) -> str | None:
    """The stage whose visit `step` ends: a stage change leaves the old stage, the release
    ends packaging (QA hold and resume inside a stage do not end the visit)."""
    if step.kind == "stage":
        return step.old
    if step.new == "released":
        return LAST_STAGE
    return None


def stage_entry(stage: str) -> tuple[Kind, str | None, str]:
    """The transition (kind, from, to) that begins a visit of `stage`: the start of production
    for dispensing (not a resume from hold), the stage change into it for the others."""
    if stage == FIRST_STAGE:
        return "status", INITIAL_STATUS, "in_progress"
    return "stage", None, stage


def needs_qa_permission(target: Target) -> bool:
    return target.kind == "status" and target.value in QA_STATUSES


def check_edit(status: str, fields: Iterable[str]) -> None:
    """Refuse an edit changing `fields` that a batch in `status` does not accept (409). A
    closed (rejected or completed) batch refuses every edit, even one that changes nothing."""
    if status in TERMINAL:
        raise BatchClosed(status)
    fields = list(fields)
    locked = [f for f in fields if f in DEFINITION_FIELDS]
    if locked and status != INITIAL_STATUS:
        raise FieldLocked(
            f"{', '.join(locked)} cannot change once production has started "
            f"(the batch is {status})."
        )
    if "actual_quantity" in fields and status == INITIAL_STATUS:
        raise FieldLocked("actual_quantity is recorded once production has started.")


def changed_fields(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Names of the editable fields whose wanted value differs from the current one, in order."""
    return [f for f in EDITABLE_FIELDS if f in wanted and wanted[f] != current[f]]


def batch_yield(actual: float, planned: float) -> float:
    """Actual over planned quantity (1.0 = exactly as planned)."""
    return actual / planned


# --- normalisation (used by the request models) ----------------------------------------------


def normalize_batch_number(value: str) -> str:
    number = value.strip().upper()
    if not BATCH_NUMBER.match(number):
        raise ValueError(
            "3-40 characters: letters, digits and '-', starting with a letter or digit"
        )
    return number


def check_quantity(value: float) -> float:
    if not math.isfinite(value) or value > MAX_QUANTITY:
        raise ValueError(f"must be a finite number up to {MAX_QUANTITY:g}")
    return value
