"""Events of the maintenance context, and its reading of the users events it consumes (it keeps
a local copy of users for assignee checks; it never queries the users context)."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from shared.events import ConsumedModel, Event, consumes


class WorkOrderCreated(Event):
    event_type: ClassVar[str] = "workorder.created"
    schema_version: ClassVar[int] = 1

    id: str
    number: int
    title: str
    asset_id: str
    priority: str
    type: str
    status: str
    assignee_id: str | None
    due_date: date | None
    pm_schedule_id: str | None = None


class WorkOrderStatusChanged(Event):
    event_type: ClassVar[str] = "workorder.status.changed"
    schema_version: ClassVar[int] = 1

    id: str
    number: int
    asset_id: str
    from_status: str
    to_status: str
    reason: str | None
    assignee_id: str | None


class WorkOrderCompleted(Event):
    event_type: ClassVar[str] = "workorder.completed"
    schema_version: ClassVar[int] = 1

    id: str
    number: int
    asset_id: str
    type: str
    priority: str
    assignee_id: str | None
    completed_at: datetime
    repair_hours: float


class AssetStatusChanged(Event):
    event_type: ClassVar[str] = "asset.status.changed"
    schema_version: ClassVar[int] = 1

    id: str
    tag: str
    from_status: str
    to_status: str


class PartStockLow(Event):
    """A movement took the stock of a part to or below its reorder point."""

    event_type: ClassVar[str] = "part.stock.low"
    schema_version: ClassVar[int] = 1

    id: str
    sku: str
    name: str
    stock: int
    reorder_point: int
    work_order_id: str | None


# --- consumed --------------------------------------------------------------------------------

USER_EVENTS = ("user.created", "user.updated", "user.deleted")


@consumes(*USER_EVENTS)
class UserFacts(ConsumedModel):
    """The part of users' user.created/updated/deleted payload (v1) assignee checks need."""

    id: str
    email: str
    name: str
    roles: list[str]
    active: bool
    version: int
