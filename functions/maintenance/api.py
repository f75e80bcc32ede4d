"""HTTP routes of maintenance-api: assets, work orders, parts, PM schedules, stats.

Parse and validate, call one use case, shape the answer. Every authenticated user reads;
managers (and admins) plan: create and change assets, parts, PM schedules and work orders, and
record stock movements. Operators transition, annotate (`labour_notes`) and consume parts on
work orders assigned to them; which moves they may make is `model.OPERATOR_MOVES`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import flask
from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from functions.maintenance import model, service
from functions.maintenance.model import (
    AssetStatus,
    Criticality,
    LiveAssetStatus,
    MovementKind,
    PmType,
    Priority,
    WorkOrderStatus,
    WorkOrderType,
)
from shared import auth as sauth
from shared.http import (
    ApiModel,
    OutModel,
    Page,
    PageQuery,
    body,
    create_app,
    describe,
    json_response,
    page,
    query,
)
from shared.openapi import responds

app = create_app("maintenance")

PLANNERS = ("manager",)  # admin always passes require_roles
HANDS_ON = ("manager", "operator")

Tag = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Place = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=10_000)]
Reason = Annotated[str, StringConstraints(max_length=2_000)]
Unit = Annotated[str, StringConstraints(min_length=1, max_length=20)]
Cron = Annotated[str, StringConstraints(min_length=9, max_length=100)]
Quantity = Annotated[int, Field(ge=-1_000_000, le=1_000_000)]


def _csv(value: Any) -> Any:
    """`a,b` and repeated parameters (`?x=a&x=b`) both give a list."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    out = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
    return out or None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _no_nulls(data: Any, nullable: set[str]) -> Any:
    if isinstance(data, dict):
        nulls = sorted(k for k, v in data.items() if v is None and k not in nullable)
        if nulls:
            raise ValueError(f"{', '.join(nulls)}: null is not allowed; omit the field")
    return data


def _actor() -> model.Actor:
    claims = sauth.current_user()
    return model.Actor(id=claims.sub, roles=claims.roles)


def _shape(out: type[OutModel]) -> Callable[[object], dict[str, Any]]:
    """JSON of a domain object through its response model."""
    return lambda obj: out.model_validate(obj).model_dump(mode="json")


def _ids(values: dict[str, Any], *keys: str) -> dict[str, Any]:
    """`values` with the UUIDs under `keys` as strings (ids are strings below the API)."""
    return {k: _str(v) if k in keys else v for k, v in values.items()}


# --- assets ------------------------------------------------------------------------------------


class AssetCreate(ApiModel):
    tag: Tag
    name: Name
    category: Short | None = None
    location: Place | None = None
    parent_id: UUID | None = None
    status: LiveAssetStatus = "operational"
    criticality: Criticality = "medium"


class AssetUpdate(ApiModel):
    """Partial update: only the fields present change. `status: retired` retires the asset
    (as DELETE does); a retired asset only accepts a status change back (restore)."""

    # absent or a value, never null (`_nulls`): the schema leaves null out for these
    tag: Tag | SkipJsonSchema[None] = None
    name: Name | SkipJsonSchema[None] = None
    category: Short | None = None
    location: Place | None = None
    parent_id: UUID | None = None
    status: AssetStatus | SkipJsonSchema[None] = None
    criticality: Criticality | SkipJsonSchema[None] = None

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return _no_nulls(data, {"category", "location", "parent_id"})


class AssetOut(OutModel):
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


class AssetQuery(PageQuery):
    status: Annotated[list[AssetStatus] | None, BeforeValidator(_csv)] = Field(
        None, description="Comma-separated; retired assets are listed only when asked for."
    )
    category: Short | None = None
    location: Place | None = None
    parent_id: UUID | Literal["none"] | None = Field(
        None, description="Children of this asset; `none` for top-level assets."
    )
    criticality: Annotated[list[Criticality] | None, BeforeValidator(_csv)] = None
    q: str | None = Field(None, max_length=200, description="Search in tag and name.")


_asset = _shape(AssetOut)


@app.get("/api/assets")
@describe("List and search assets", query=AssetQuery, response=Page[AssetOut])
def list_assets() -> flask.Response:
    """Assets in tag order, filtered by status, category, location, parent_id, criticality
    and `q` (tag or name); retired ones only with `status=retired`."""
    params = query(AssetQuery)
    rows = service.list_assets(
        statuses=params.status,
        category=params.category,
        location=params.location,
        parent_id=_str(params.parent_id) if params.parent_id != "none" else None,
        roots=params.parent_id == "none",
        criticality=params.criticality,
        q=params.q,
        after=params.keyset(str),
        limit=params.limit + 1,
    )
    return json_response(page(rows, params.limit, key=lambda a: (a.tag,), shape=_asset))


@app.post("/api/assets")
@describe("Create an asset (manager)", request=AssetCreate, response=AssetOut, status=201)
@responds(409)  # tag taken
@sauth.require_roles(*PLANNERS)
def create_asset() -> flask.Response:
    """A new asset; `tag` is unique (409), `parent_id` must be a live asset (422)."""
    data = body(AssetCreate)
    asset = service.create_asset(_actor(), **_ids(data.model_dump(), "parent_id"))
    return json_response(_asset(asset), 201, headers={"Location": f"/api/assets/{asset.id}"})


@app.get("/api/assets/<uuid:asset_id>")
@describe("One asset", response=AssetOut)
def get_asset(asset_id: UUID) -> flask.Response:
    """One asset by id (retired ones too)."""
    return json_response(_asset(service.get_asset(str(asset_id))))


@app.put("/api/assets/<uuid:asset_id>")
@describe("Change an asset (manager)", request=AssetUpdate, response=AssetOut)
@responds(409)  # tag taken, a cycle, a retired asset
@sauth.require_roles(*PLANNERS)
def update_asset(asset_id: UUID) -> flask.Response:
    """Change the given fields. A parent below the asset itself is a cycle (409); a status
    change emits asset.status.changed."""
    data = body(AssetUpdate)
    changes = _ids(data.model_dump(exclude_unset=True), "parent_id")
    return json_response(_asset(service.update_asset(_actor(), str(asset_id), changes)))


@app.delete("/api/assets/<uuid:asset_id>")
@describe("Retire an asset (manager)", status=204)
@sauth.require_roles(*PLANNERS)
def delete_asset(asset_id: UUID) -> flask.Response:
    """Soft delete: the asset becomes `retired` (kept with its history). 409 while it has
    active work orders or children that are not retired."""
    service.retire_asset(_actor(), str(asset_id))
    return flask.Response(status=204)


# --- work orders -------------------------------------------------------------------------------


class WorkOrderCreate(ApiModel):
    title: Name
    description: Text | None = None
    asset_id: UUID
    priority: Priority = "medium"
    type: WorkOrderType = "corrective"
    due_date: date | None = None
    assignee_id: UUID | None = Field(
        None,
        description="An active user with the operator, manager or admin role; the "
        "order then starts `assigned`.",
    )
    labour_notes: Text | None = None


class WorkOrderUpdate(ApiModel):
    """Partial update. Operators may send only `labour_notes` (on orders assigned to them).
    Setting `assignee_id` on an open order makes it assigned; null on an assigned one makes
    it open. The status changes through /transitions."""

    # absent or a value, never null (`_nulls`): the schema leaves null out for these
    title: Name | SkipJsonSchema[None] = None
    description: Text | None = None
    asset_id: UUID | SkipJsonSchema[None] = None
    priority: Priority | SkipJsonSchema[None] = None
    type: WorkOrderType | SkipJsonSchema[None] = None
    due_date: date | None = None
    assignee_id: UUID | None = None
    labour_notes: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return _no_nulls(data, {"description", "due_date", "assignee_id", "labour_notes"})


class WorkOrderOut(OutModel):
    id: str
    number: int
    title: str
    description: str | None
    asset_id: str
    asset_tag: str | None
    asset_name: str | None
    priority: Priority
    type: WorkOrderType
    status: WorkOrderStatus
    due_date: date | None
    assignee_id: str | None
    assignee_name: str | None
    labour_notes: str | None
    pm_schedule_id: str | None
    overdue: bool = Field(description="due_date passed and not completed/closed/cancelled")
    allowed_transitions: list[WorkOrderStatus] = Field(
        description="Statuses the lifecycle allows next (roles may restrict further)."
    )
    created_by: str
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None


class WorkOrderQuery(PageQuery):
    status: Annotated[list[WorkOrderStatus] | None, BeforeValidator(_csv)] = None
    priority: Annotated[list[Priority] | None, BeforeValidator(_csv)] = None
    type: Annotated[list[WorkOrderType] | None, BeforeValidator(_csv)] = None
    asset_id: UUID | None = None
    assignee_id: UUID | Literal["me"] | None = Field(
        None, description="A user id, or `me` for the caller."
    )
    overdue: bool | None = None
    q: str | None = Field(
        None, max_length=200, description="Search in the title, or a number (`42`, `WO-42`)."
    )


class HistoryQuery(PageQuery):
    pass


class TransitionIn(ApiModel):
    status: WorkOrderStatus
    reason: Reason | None = Field(None, description="Required to put on hold, cancel or reopen.")
    assignee_id: UUID | None = Field(
        None, description="Only with status `assigned` (managers): who gets the order."
    )


class TransitionOut(OutModel):
    id: str
    work_order_id: str
    from_status: WorkOrderStatus | None
    to_status: WorkOrderStatus
    reason: str | None
    actor_id: str
    at: datetime


class ConsumeIn(ApiModel):
    part_id: UUID
    quantity: int = Field(ge=1, le=1_000_000)
    note: Text | None = None


class MovementOut(OutModel):
    id: str
    part_id: str
    sku: str | None
    part_name: str | None
    kind: MovementKind
    quantity: int = Field(description="As entered (consume and receive are positive).")
    delta: int = Field(description="Signed change of the stock.")
    stock_after: int
    note: str | None
    work_order_id: str | None
    actor_id: str
    created_at: datetime


_work_order = _shape(WorkOrderOut)
_movement = _shape(MovementOut)
_transition = _shape(TransitionOut)


def _work_order_page(orders: list[model.WorkOrder], limit: int) -> dict[str, Any]:
    return page(orders, limit, key=lambda w: (w.number,), shape=_work_order)


def _movement_page(movements: list[model.Movement], limit: int) -> dict[str, Any]:
    return page(movements, limit, key=lambda m: (m.created_at, m.id), shape=_movement)


@app.get("/api/work-orders")
@describe("List and search work orders", query=WorkOrderQuery, response=Page[WorkOrderOut])
def list_work_orders() -> flask.Response:
    """Work orders newest first, filtered by status, priority, type (each comma-separated),
    asset_id, assignee_id (`me`), overdue and `q`."""
    params = query(WorkOrderQuery)
    assignee = sauth.current_user().sub if params.assignee_id == "me" else _str(params.assignee_id)
    rows = service.list_work_orders(
        statuses=params.status,
        priorities=params.priority,
        types=params.type,
        asset_id=_str(params.asset_id),
        assignee_id=assignee,
        overdue=params.overdue,
        q=params.q,
        after=params.keyset(int),
        limit=params.limit + 1,
    )
    return json_response(_work_order_page(rows, params.limit))


@app.post("/api/work-orders")
@describe(
    "Create a work order (manager)", request=WorkOrderCreate, response=WorkOrderOut, status=201
)
@sauth.require_roles(*PLANNERS)
def create_work_order() -> flask.Response:
    """A new work order on a live asset (422 otherwise); with an assignee it starts
    `assigned`, else `open`. Emits workorder.created."""
    data = body(WorkOrderCreate)
    new = model.NewWorkOrder(**_ids(data.model_dump(), "asset_id", "assignee_id"))
    wo = service.create_work_order(_actor(), new)
    return json_response(_work_order(wo), 201, headers={"Location": f"/api/work-orders/{wo.id}"})


@app.get("/api/work-orders/<uuid:wo_id>")
@describe("One work order", response=WorkOrderOut)
def get_work_order(wo_id: UUID) -> flask.Response:
    """One work order by id."""
    return json_response(_work_order(service.get_work_order(str(wo_id))))


@app.put("/api/work-orders/<uuid:wo_id>")
@describe("Change a work order", request=WorkOrderUpdate, response=WorkOrderOut)
@sauth.require_roles(*HANDS_ON)
def update_work_order(wo_id: UUID) -> flask.Response:
    """Managers change any field; operators only `labour_notes` of their own orders (403
    otherwise). Closed and cancelled orders cannot change (409)."""
    data = body(WorkOrderUpdate)
    changes = _ids(data.model_dump(exclude_unset=True), "asset_id", "assignee_id")
    return json_response(_work_order(service.update_work_order(_actor(), str(wo_id), changes)))


@app.post("/api/work-orders/<uuid:wo_id>/transitions")
@describe("Move a work order along its lifecycle", request=TransitionIn, response=WorkOrderOut)
@sauth.require_roles(*HANDS_ON)
def transition_work_order(wo_id: UUID) -> flask.Response:
    """open -> assigned|cancelled; assigned -> in_progress|open|cancelled; in_progress ->
    on_hold|completed|cancelled; on_hold -> in_progress|cancelled; completed -> closed|
    in_progress (reopen); closed and cancelled are final. A move the lifecycle does not allow
    is 409 with `allowed` (the moves from the current status)."""
    data = body(TransitionIn)
    row = service.transition(
        _actor(), str(wo_id), data.status, data.reason, assignee_id=_str(data.assignee_id)
    )
    return json_response(_work_order(row))


@app.get("/api/work-orders/<uuid:wo_id>/transitions")
@describe("Status history of a work order", response=Page[TransitionOut])
def work_order_transitions(wo_id: UUID) -> flask.Response:
    """Every status the order went through, oldest first, with who and why."""
    log = service.work_order_transitions(str(wo_id))
    return json_response({"items": [_transition(t) for t in log], "next_cursor": None})


@app.post("/api/work-orders/<uuid:wo_id>/parts")
@describe("Consume parts on a work order", request=ConsumeIn, response=MovementOut, status=201)
@sauth.require_roles(*HANDS_ON)
def consume_parts(wo_id: UUID) -> flask.Response:
    """Take parts from stock for the order: 409 when the stock is insufficient (nothing is
    written); emits part.stock.low when the stock reaches the reorder point."""
    data = body(ConsumeIn)
    row = service.consume_part(_actor(), str(wo_id), str(data.part_id), data.quantity, data.note)
    return json_response(_movement(row), 201)


@app.get("/api/work-orders/<uuid:wo_id>/parts")
@describe("Parts consumed on a work order", query=HistoryQuery, response=Page[MovementOut])
def work_order_parts(wo_id: UUID) -> flask.Response:
    """The stock movements linked to the order, newest first."""
    params = query(HistoryQuery)
    rows = service.work_order_parts(
        str(wo_id), after=params.keyset(datetime, str), limit=params.limit + 1
    )
    return json_response(_movement_page(rows, params.limit))


@app.get("/api/assets/<uuid:asset_id>/history")
@describe("Work orders of an asset", query=HistoryQuery, response=Page[WorkOrderOut])
def asset_history(asset_id: UUID) -> flask.Response:
    """The asset's work orders, newest first."""
    params = query(HistoryQuery)
    rows = service.asset_history(str(asset_id), after=params.keyset(int), limit=params.limit + 1)
    return json_response(_work_order_page(rows, params.limit))


# --- parts -------------------------------------------------------------------------------------


class PartCreate(ApiModel):
    sku: Tag
    name: Name
    unit: Unit = "pcs"
    stock: int = Field(
        0, ge=0, le=1_000_000_000, description="Initial stock (recorded as a receive movement)."
    )
    reorder_point: int = Field(0, ge=0, le=1_000_000_000)
    location: Place | None = None


class PartUpdate(ApiModel):
    """Partial update of the part's description; stock changes only through movements."""

    # absent or a value, never null (`_rules`): the schema leaves null out for these
    sku: Tag | SkipJsonSchema[None] = None
    name: Name | SkipJsonSchema[None] = None
    unit: Unit | SkipJsonSchema[None] = None
    # (the bounds inside: on the field, the schema of `X | SkipJsonSchema[None]` drops them)
    reorder_point: Annotated[int, Field(ge=0, le=1_000_000_000)] | SkipJsonSchema[None] = None
    location: Place | None = None

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if isinstance(data, dict) and "stock" in data:
            raise ValueError("stock changes only through POST /api/parts/{id}/movements")
        return _no_nulls(data, {"location"})


class PartOut(OutModel):
    id: str
    sku: str
    name: str
    unit: str
    stock: int
    reorder_point: int
    location: str | None
    low_stock: bool = Field(description="stock <= reorder_point")
    version: int
    created_at: datetime
    updated_at: datetime


class PartQuery(PageQuery):
    low_stock: bool | None = Field(None, description="true: at or below the reorder point")
    q: str | None = Field(None, max_length=200, description="Search in SKU and name.")
    location: Place | None = None


class MovementIn(ApiModel):
    # model.stock_delta's rules, stated in the schema
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"kind": {"const": "adjust"}}},
            "then": {"properties": {"quantity": {"not": {"const": 0}}}},
            "else": {"properties": {"quantity": {"minimum": 1}}},
        }
    )

    kind: MovementKind
    quantity: Quantity = Field(
        description="receive/consume: positive; adjust: non-zero, negative to remove"
    )
    note: Text | None = None

    @model_validator(mode="after")
    def _quantity(self) -> MovementIn:
        model.stock_delta(self.kind, self.quantity)  # ValueError -> 422 on `quantity` rules
        return self


_part = _shape(PartOut)


@app.get("/api/parts")
@describe("List and search parts", query=PartQuery, response=Page[PartOut])
def list_parts() -> flask.Response:
    """Parts in SKU order, filtered by `low_stock`, `q` (SKU or name) and location."""
    params = query(PartQuery)
    rows = service.list_parts(
        low_stock=params.low_stock,
        q=params.q,
        location=params.location,
        after=params.keyset(str),
        limit=params.limit + 1,
    )
    return json_response(page(rows, params.limit, key=lambda p: (p.sku,), shape=_part))


@app.post("/api/parts")
@describe("Create a part (manager)", request=PartCreate, response=PartOut, status=201)
@responds(409)  # SKU taken
@sauth.require_roles(*PLANNERS)
def create_part() -> flask.Response:
    """A new part; `sku` is unique (409, case-insensitive)."""
    data = body(PartCreate)
    part = service.create_part(_actor(), **data.model_dump())
    return json_response(_part(part), 201, headers={"Location": f"/api/parts/{part.id}"})


@app.get("/api/parts/<uuid:part_id>")
@describe("One part", response=PartOut)
def get_part(part_id: UUID) -> flask.Response:
    """One part by id."""
    return json_response(_part(service.get_part(str(part_id))))


@app.put("/api/parts/<uuid:part_id>")
@describe("Change a part (manager)", request=PartUpdate, response=PartOut)
@responds(409)  # SKU taken
@sauth.require_roles(*PLANNERS)
def update_part(part_id: UUID) -> flask.Response:
    """Change the given fields (not `stock`: record a movement)."""
    data = body(PartUpdate)
    part = service.update_part(_actor(), str(part_id), data.model_dump(exclude_unset=True))
    return json_response(_part(part))


@app.post("/api/parts/<uuid:part_id>/movements")
@describe("Record a stock movement (manager)", request=MovementIn, response=MovementOut, status=201)
@responds(409)  # the stock would go below zero
@sauth.require_roles(*PLANNERS)
def record_movement(part_id: UUID) -> flask.Response:
    """receive adds, consume takes, adjust corrects by a signed quantity; the stock never
    goes below zero (409, nothing written)."""
    data = body(MovementIn)
    row = service.record_movement(_actor(), str(part_id), data.kind, data.quantity, data.note)
    return json_response(_movement(row), 201)


@app.get("/api/parts/<uuid:part_id>/movements")
@describe("Stock ledger of a part", query=HistoryQuery, response=Page[MovementOut])
def part_movements(part_id: UUID) -> flask.Response:
    """Every movement of the part, newest first."""
    params = query(HistoryQuery)
    rows = service.part_movements(
        str(part_id), after=params.keyset(datetime, str), limit=params.limit + 1
    )
    return json_response(_movement_page(rows, params.limit))


# --- PM schedules ------------------------------------------------------------------------------


class ScheduleCreate(ApiModel):
    """Exactly one of `interval_days` and `cron` (5 fields, UTC). Without `next_due_at` the
    first due time is one interval (or the next cron time) from now."""

    asset_id: UUID
    interval_days: int | None = Field(None, ge=1, le=3650)
    cron: Cron | None = None
    title: Name
    description: Text | None = None
    priority: Priority = "medium"
    type: PmType = "preventive"
    next_due_at: datetime | None = None
    active: bool = True


class ScheduleUpdate(ApiModel):
    # absent or a value, never null (`_nulls`): the schema leaves null out for these
    asset_id: UUID | SkipJsonSchema[None] = None
    interval_days: int | None = Field(None, ge=1, le=3650)
    cron: Cron | None = None
    title: Name | SkipJsonSchema[None] = None
    description: Text | None = None
    priority: Priority | SkipJsonSchema[None] = None
    type: PmType | SkipJsonSchema[None] = None
    next_due_at: datetime | SkipJsonSchema[None] = None
    active: bool | SkipJsonSchema[None] = None

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return _no_nulls(data, {"interval_days", "cron", "description"})


class ScheduleOut(OutModel):
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


class ScheduleQuery(PageQuery):
    asset_id: UUID | None = None
    active: bool | None = None


_schedule = _shape(ScheduleOut)


@app.get("/api/pm-schedules")
@describe("List PM schedules", query=ScheduleQuery, response=Page[ScheduleOut])
def list_schedules() -> flask.Response:
    """PM schedules, soonest due first, filtered by asset_id and active."""
    params = query(ScheduleQuery)
    rows = service.list_schedules(
        asset_id=_str(params.asset_id),
        active=params.active,
        after=params.keyset(datetime, str),
        limit=params.limit + 1,
    )
    return json_response(
        page(rows, params.limit, key=lambda s: (s.next_due_at, s.id), shape=_schedule)
    )


@app.post("/api/pm-schedules")
@describe(
    "Create a PM schedule (manager)", request=ScheduleCreate, response=ScheduleOut, status=201
)
@sauth.require_roles(*PLANNERS)
def create_schedule() -> flask.Response:
    """A preventive-maintenance schedule: maintenance-pm-tick creates its work orders when
    they fall due, once per due time."""
    data = body(ScheduleCreate)
    schedule = service.create_schedule(_actor(), **_ids(data.model_dump(), "asset_id"))
    return json_response(
        _schedule(schedule), 201, headers={"Location": f"/api/pm-schedules/{schedule.id}"}
    )


@app.get("/api/pm-schedules/<uuid:schedule_id>")
@describe("One PM schedule", response=ScheduleOut)
def get_schedule(schedule_id: UUID) -> flask.Response:
    """One PM schedule by id."""
    return json_response(_schedule(service.get_schedule(str(schedule_id))))


@app.put("/api/pm-schedules/<uuid:schedule_id>")
@describe("Change a PM schedule (manager)", request=ScheduleUpdate, response=ScheduleOut)
@sauth.require_roles(*PLANNERS)
def update_schedule(schedule_id: UUID) -> flask.Response:
    """Change the given fields; to switch recurrence send the new one and null the other."""
    data = body(ScheduleUpdate)
    changes = _ids(data.model_dump(exclude_unset=True), "asset_id")
    return json_response(_schedule(service.update_schedule(_actor(), str(schedule_id), changes)))


# --- stats -------------------------------------------------------------------------------------


class TrendDay(OutModel):
    date: date
    created: int
    completed: int
    overdue: int = Field(description="Orders overdue at the end of that day.")


class LowStockPart(OutModel):
    id: str
    sku: str
    name: str
    unit: str
    stock: int
    reorder_point: int
    location: str | None


class StatsOut(OutModel):
    work_orders_total: int
    work_orders_active: int = Field(description="open, assigned, in_progress, on_hold")
    work_orders_by_status: dict[str, int]
    work_orders_by_priority: dict[str, int] = Field(description="Active orders only.")
    overdue: int
    mttr_hours: float | None = Field(
        description="Mean created -> completed of completed corrective orders, hours."
    )
    mttr_sample: int
    assets_down: int
    assets_by_status: dict[str, int]
    low_stock_count: int
    low_stock_parts: list[LowStockPart] = Field(description="Up to 10, furthest below first.")
    trend: list[TrendDay] = Field(description="The last 14 days (UTC), oldest first.")
    generated_at: datetime


@app.get("/api/maintenance/stats")
@describe("Maintenance dashboard figures", response=StatsOut)
def stats() -> flask.Response:
    """Work orders by status and priority, overdue, mean time to repair, assets down, parts
    at or below their reorder point, and a 14-day trend of created/completed/overdue."""
    return json_response(_shape(StatsOut)(service.stats()))
