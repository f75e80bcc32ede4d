"""Maintenance's use cases: assets, work orders and their lifecycle, parts and stock movements,
PM schedules and the tick that turns them into work orders, dashboard stats, and the local copy
of users fed by users' events.

One transaction per use case; events go to the outbox in that transaction (`emit`). A problem
raised inside a use case rolls everything back, so a refused request writes nothing. Use cases
return the domain objects of `model` (read by `store`); `api.py` shapes them with its response
models. Partial updates take the fields to change as a mapping (absent fields stay).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from functions.maintenance import model, store
from functions.maintenance.events import (
    USER_EVENTS,
    AssetStatusChanged,
    PartStockLow,
    UserFacts,
    WorkOrderCompleted,
    WorkOrderCreated,
    WorkOrderStatusChanged,
)
from functions.maintenance.model import (
    Actor,
    Asset,
    Movement,
    NewWorkOrder,
    Part,
    Schedule,
    Stats,
    TickReport,
    Transition,
    WorkOrder,
)
from shared import db
from shared import logging as slog
from shared.events import Received, emit

_log = slog.get_logger("switchyard.maintenance")
TREND_DAYS = 14
LOW_STOCK_TOP = 10
PM_BATCH = 500


def _now() -> datetime:
    return datetime.now(UTC)


def _id() -> str:
    return str(uuid.uuid4())


def _aware(value: datetime) -> datetime:
    aware = db.utc(value)
    assert aware is not None
    return aware


# --- users copy --------------------------------------------------------------------------------


def apply_user_event(event: Received) -> bool:
    """Keep the local copy of a user current; an event older than the stored version is
    ignored (equal versions re-apply: idempotent). Returns whether it was applied."""
    if event.event_type not in USER_EVENTS:
        _log.warning("ignored unexpected event %s", event.event_type)
        return False
    facts = event.parse(UserFacts)
    deleted = event.event_type == "user.deleted"
    with db.transaction() as tx:
        applied = store.upsert_user(
            tx,
            id=facts.id,
            email=facts.email,
            name=facts.name,
            roles=facts.roles,
            active=facts.active and not deleted,
            deleted=deleted,
            version=facts.version,
            now=_now(),
        )
    if not applied:
        _log.info(
            "ignored %s v%d of user %s: a newer version is held",
            event.event_type,
            facts.version,
            facts.id,
        )
    return applied


def _check_assignee(tx: Session, assignee_id: str | None) -> None:
    if assignee_id is None:
        return
    why = model.usable_assignee(store.user(tx, assignee_id))
    if why:
        raise model.InvalidReference("assignee_id", why)


# --- assets ------------------------------------------------------------------------------------


def _usable_asset(tx: Session, asset_id: str, field: str = "asset_id") -> Asset:
    asset = store.asset(tx, asset_id)
    if asset is None:
        raise model.InvalidReference(field, "no such asset")
    if asset.status == "retired":
        raise model.InvalidReference(field, "the asset is retired")
    return asset


def _check_parent(tx: Session, asset_id: str | None, parent_id: str | None) -> None:
    if parent_id is None:
        return
    _usable_asset(tx, parent_id, "parent_id")
    chain = store.ancestors(tx, parent_id, model.MAX_HIERARCHY_DEPTH)
    model.check_parent(asset_id, parent_id, chain)


def create_asset(
    actor: Actor,
    *,
    tag: str,
    name: str,
    category: str | None,
    location: str | None,
    parent_id: str | None,
    status: model.LiveAssetStatus,
    criticality: model.Criticality,
) -> Asset:
    now = _now()
    asset = Asset(
        id=_id(),
        tag=tag,
        name=name,
        category=category,
        location=location,
        parent_id=parent_id,
        status=status,
        criticality=criticality,
        version=1,
        created_at=now,
        updated_at=now,
        retired_at=None,
    )
    with db.transaction() as tx:
        if store.tag_taken(tx, tag):
            raise model.DuplicateTag(tag)
        _check_parent(tx, None, parent_id)
        try:
            store.insert_asset(tx, asset)
            tx.flush()
        except IntegrityError:  # a concurrent create with the same tag won
            raise model.DuplicateTag(tag) from None
    return asset


def get_asset(asset_id: str) -> Asset:
    with db.transaction() as tx:
        asset = store.asset(tx, asset_id)
    if asset is None:
        raise model.AssetNotFound()
    return asset


def _status_change(tx: Session, asset: Asset, new_status: str, now: datetime) -> dict[str, Any]:
    """The fields a status change of an asset sets; refuses retiring an asset in use."""
    if new_status == "retired":
        why = model.retire_blockers(
            store.active_work_orders_of(tx, asset.id), store.live_children_of(tx, asset.id)
        )
        if why:
            raise model.AssetInUse(why)
        return {"status": new_status, "retired_at": now}
    return {"status": new_status, "retired_at": None}


def _changed(current: object, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `changes` whose value differs from `current`'s."""
    return {k: v for k, v in changes.items() if getattr(current, k) != v}


def update_asset(actor: Actor, asset_id: str, changes: Mapping[str, Any]) -> Asset:
    """Apply a partial update; a status change emits asset.status.changed."""
    now = _now()
    with db.transaction() as tx:
        row = store.asset(tx, asset_id, lock=True)
        if row is None:
            raise model.AssetNotFound()
        changed = _changed(row, changes)
        if row.status == "retired" and changed.get("status", "retired") == "retired":
            raise model.AssetRetired()
        if "tag" in changed and store.tag_taken(tx, changed["tag"], other_than=asset_id):
            raise model.DuplicateTag(changed["tag"])
        if "parent_id" in changed:
            store.lock_hierarchy(tx)
            _check_parent(tx, asset_id, changed["parent_id"])
        if "status" in changed:
            changed.update(_status_change(tx, row, changed["status"], now))
        if changed:
            try:
                store.change_asset(tx, asset_id, **changed, version=row.version + 1, updated_at=now)
                tx.flush()
            except IntegrityError:
                raise model.DuplicateTag(changed.get("tag", row.tag)) from None
        if "status" in changed:
            emit(
                tx,
                AssetStatusChanged(
                    id=asset_id,
                    tag=changed.get("tag", row.tag),
                    from_status=row.status,
                    to_status=changed["status"],
                ),
            )
        out = store.asset(tx, asset_id)
    assert out is not None
    return out


def retire_asset(actor: Actor, asset_id: str) -> None:
    """Soft delete: the asset becomes retired (kept for history); refused while it has
    active work orders or live children. Retiring a retired asset is a no-op."""
    if get_asset(asset_id).status == "retired":
        return
    update_asset(actor, asset_id, {"status": "retired"})


def list_assets(**filters: Any) -> list[Asset]:
    with db.transaction() as tx:
        return store.search_assets(tx, **filters)


def asset_history(asset_id: str, *, after: tuple[int] | None, limit: int) -> list[WorkOrder]:
    """The work orders of an asset, newest first."""
    today = _now().date()
    with db.transaction() as tx:
        if store.asset(tx, asset_id) is None:
            raise model.AssetNotFound()
        return store.search_work_orders(
            tx,
            statuses=None,
            priorities=None,
            types=None,
            asset_id=asset_id,
            assignee_id=None,
            overdue=None,
            q=None,
            today=today,
            after=after,
            limit=limit,
        )


# --- work orders -------------------------------------------------------------------------------


def _load(tx: Session, wo_id: str, *, lock: bool = False) -> WorkOrder:
    wo = store.work_order(tx, wo_id, lock=lock)
    if wo is None:
        raise model.WorkOrderNotFound()
    return wo


def _log_move(
    tx: Session,
    wo_id: str,
    from_status: str | None,
    to_status: str,
    reason: str | None,
    actor: Actor,
    now: datetime,
) -> None:
    store.log_transition(
        tx,
        id=_id(),
        work_order_id=wo_id,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        actor_id=actor.id,
        at=now,
    )


def _insert_work_order(
    tx: Session,
    actor: Actor,
    new: NewWorkOrder,
    now: datetime,
    *,
    wo_id: str | None = None,
    pm_schedule_id: str | None = None,
) -> str:
    """Insert a new order (validated by the caller), log and emit its creation."""
    wo_id = wo_id or _id()
    status = model.initial_status(new.assignee_id)
    number = store.next_number(tx)
    store.insert_work_order(
        tx,
        new,
        id=wo_id,
        number=number,
        status=status,
        pm_schedule_id=pm_schedule_id,
        created_by=actor.id,
        version=1,
        created_at=now,
        updated_at=now,
    )
    _log_move(tx, wo_id, None, status, None, actor, now)
    emit(
        tx,
        WorkOrderCreated(
            id=wo_id,
            number=number,
            title=new.title,
            asset_id=new.asset_id,
            priority=new.priority,
            type=new.type,
            status=status,
            assignee_id=new.assignee_id,
            due_date=new.due_date,
            pm_schedule_id=pm_schedule_id,
        ),
    )
    return wo_id


def create_work_order(actor: Actor, new: NewWorkOrder) -> WorkOrder:
    now = _now()
    with db.transaction() as tx:
        _usable_asset(tx, new.asset_id)
        _check_assignee(tx, new.assignee_id)
        wo_id = _insert_work_order(tx, actor, new, now)
        wo = _load(tx, wo_id)
    return wo.as_of(now.date())


def get_work_order(wo_id: str) -> WorkOrder:
    with db.transaction() as tx:
        wo = _load(tx, wo_id)
    return wo.as_of(_now().date())


def _emit_status(
    tx: Session, wo: WorkOrder, to_status: str, reason: str | None, assignee_id: str | None
) -> None:
    emit(
        tx,
        WorkOrderStatusChanged(
            id=wo.id,
            number=wo.number,
            asset_id=wo.asset_id,
            from_status=wo.status,
            to_status=to_status,
            reason=reason,
            assignee_id=assignee_id,
        ),
    )


def update_work_order(actor: Actor, wo_id: str, changes: Mapping[str, Any]) -> WorkOrder:
    """Partial update. Managers change any field; an operator only `labour_notes` of an order
    assigned to them. Assigning an open order makes it assigned; unassigning an assigned one
    makes it open (workorder.status.changed)."""
    now = _now()
    with db.transaction() as tx:
        row = _load(tx, wo_id, lock=True)
        if not actor.manages:
            if set(changes) - {"labour_notes"}:
                raise model.NotAllowed("Operators may only change labour_notes.")
            if row.assignee_id != actor.id:
                raise model.NotAllowed("Operators may only change work orders assigned to them.")
        if row.status in model.TERMINAL:
            raise model.WorkOrderLocked(row.status)
        changed = _changed(row, changes)
        if "asset_id" in changed:
            _usable_asset(tx, changed["asset_id"])
        new_status: str = row.status
        if "assignee_id" in changed:
            _check_assignee(tx, changed["assignee_id"])
            new_status = model.assignment_status(
                row.status, row.assignee_id, changed["assignee_id"]
            )
        if changed:
            if new_status != row.status:
                changed["status"] = new_status
            store.change_work_order(tx, wo_id, **changed, version=row.version + 1, updated_at=now)
        if new_status != row.status:
            reason = "assigned" if new_status == "assigned" else "unassigned"
            _log_move(tx, wo_id, row.status, new_status, reason, actor, now)
            _emit_status(tx, row, new_status, reason, changed.get("assignee_id"))
        out = _load(tx, wo_id)
    return out.as_of(now.date())


def transition(
    actor: Actor, wo_id: str, status: str, reason: str | None, assignee_id: str | None = None
) -> WorkOrder:
    """Move an order along its lifecycle (model.TRANSITIONS). Moving to `assigned` may name
    the assignee. Emits workorder.status.changed, and workorder.completed on completion."""
    now = _now()
    reason = reason or None
    with db.transaction() as tx:
        row = _load(tx, wo_id, lock=True)
        assignee = row.assignee_id
        if assignee_id is not None:
            if status != "assigned":
                raise model.InvalidReference("assignee_id", "only with status assigned")
            if not actor.manages:
                raise model.NotAllowed("Assigning work orders is for managers.")
            assignee = assignee_id
        model.check_transition(actor, row.status, status, assignee_id=assignee, reason=reason)
        if assignee_id is not None:
            _check_assignee(tx, assignee_id)
        changes = model.transition_changes(row.status, status, now)
        if status == "assigned":
            changes["assignee_id"] = assignee
        store.change_work_order(tx, wo_id, **changes, version=row.version + 1, updated_at=now)
        _log_move(tx, wo_id, row.status, status, reason, actor, now)
        _emit_status(tx, row, status, reason, changes.get("assignee_id", row.assignee_id))
        if status == "completed":
            emit(
                tx,
                WorkOrderCompleted(
                    id=wo_id,
                    number=row.number,
                    asset_id=row.asset_id,
                    type=row.type,
                    priority=row.priority,
                    assignee_id=row.assignee_id,
                    completed_at=now,
                    repair_hours=model.repair_hours(row.created_at, now),
                ),
            )
        out = _load(tx, wo_id)
    return out.as_of(now.date())


def list_work_orders(*, assignee_id: str | None = None, **filters: Any) -> list[WorkOrder]:
    today = _now().date()
    with db.transaction() as tx:
        return store.search_work_orders(tx, assignee_id=assignee_id, today=today, **filters)


def work_order_transitions(wo_id: str) -> list[Transition]:
    with db.transaction() as tx:
        _load(tx, wo_id)
        return store.transitions_of(tx, wo_id)


def work_order_parts(
    wo_id: str, *, after: tuple[datetime, str] | None, limit: int
) -> list[Movement]:
    with db.transaction() as tx:
        _load(tx, wo_id)
        return store.movements(tx, work_order_id=wo_id, after=after, limit=limit)


def consume_part(
    actor: Actor, wo_id: str, part_id: str, quantity: int, note: str | None = None
) -> Movement:
    """Take `quantity` of a part for a work order: stock decremented atomically (never below
    zero: 409 and nothing written), a `consume` movement linked to the order, and
    part.stock.low when the stock crosses the reorder point."""
    with db.transaction() as tx:
        row = _load(tx, wo_id)
        if not actor.manages and row.assignee_id != actor.id:
            raise model.NotAllowed(
                "Operators may only consume parts on work orders assigned to them."
            )
        if row.status in model.TERMINAL:
            raise model.WorkOrderLocked(row.status)
        if store.part(tx, part_id) is None:
            raise model.InvalidReference("part_id", "no such part")
        return _move(tx, actor, part_id, "consume", quantity, note, work_order_id=wo_id)


# --- parts -------------------------------------------------------------------------------------


def _move(
    tx: Session,
    actor: Actor,
    part_id: str,
    kind: model.MovementKind,
    quantity: int,
    note: str | None,
    *,
    work_order_id: str | None = None,
) -> Movement:
    now = _now()
    delta = model.stock_delta(kind, quantity)
    after = store.move_stock(tx, part_id, delta, now)
    if after is None:
        current = store.part(tx, part_id)
        if current is None:
            raise model.PartNotFound()
        raise model.InsufficientStock(current.sku, current.stock, -delta)
    movement = Movement(
        id=_id(),
        part_id=part_id,
        kind=kind,
        quantity=quantity,
        delta=delta,
        stock_after=after.stock,
        note=note,
        work_order_id=work_order_id,
        actor_id=actor.id,
        created_at=now,
        sku=after.sku,
        part_name=after.name,
    )
    store.insert_movement(tx, movement)
    if model.crossed_reorder_point(after.stock - delta, after.stock, after.reorder_point):
        emit(
            tx,
            PartStockLow(
                id=part_id,
                sku=after.sku,
                name=after.name,
                stock=after.stock,
                reorder_point=after.reorder_point,
                work_order_id=work_order_id,
            ),
        )
    return movement


def create_part(
    actor: Actor,
    *,
    sku: str,
    name: str,
    unit: str,
    stock: int,
    reorder_point: int,
    location: str | None,
) -> Part:
    """A new part; an initial stock is recorded as a `receive` movement (the ledger sums to
    the stock)."""
    now = _now()
    part = Part(
        id=_id(),
        sku=sku,
        name=name,
        unit=unit,
        stock=0,
        reorder_point=reorder_point,
        location=location,
        version=1,
        created_at=now,
        updated_at=now,
    )
    with db.transaction() as tx:
        if store.sku_taken(tx, sku):
            raise model.DuplicateSku(sku)
        try:
            store.insert_part(tx, part)
            tx.flush()
        except IntegrityError:
            raise model.DuplicateSku(sku) from None
        if stock:
            _move(tx, actor, part.id, "receive", stock, "initial stock")
        out = store.part(tx, part.id)
    assert out is not None
    return out


def get_part(part_id: str) -> Part:
    with db.transaction() as tx:
        part = store.part(tx, part_id)
    if part is None:
        raise model.PartNotFound()
    return part


def update_part(actor: Actor, part_id: str, changes: Mapping[str, Any]) -> Part:
    """Change the part's description (not its stock: that moves only through movements).
    The row is locked before it is read: a concurrent movement (which bumps the version in
    SQL) then either commits first and is seen here, or waits for this edit."""
    now = _now()
    with db.transaction() as tx:
        row = store.part(tx, part_id, lock=True)
        if row is None:
            raise model.PartNotFound()
        changed = _changed(row, changes)
        if "sku" in changed and store.sku_taken(tx, changed["sku"], other_than=part_id):
            raise model.DuplicateSku(changed["sku"])
        if changed:
            try:
                store.change_part(tx, part_id, **changed, version=row.version + 1, updated_at=now)
                tx.flush()
            except IntegrityError:
                raise model.DuplicateSku(changed.get("sku", row.sku)) from None
        out = store.part(tx, part_id)
    assert out is not None
    return out


def record_movement(
    actor: Actor, part_id: str, kind: model.MovementKind, quantity: int, note: str | None
) -> Movement:
    with db.transaction() as tx:
        if store.part(tx, part_id) is None:
            raise model.PartNotFound()
        return _move(tx, actor, part_id, kind, quantity, note)


def part_movements(
    part_id: str, *, after: tuple[datetime, str] | None, limit: int
) -> list[Movement]:
    with db.transaction() as tx:
        if store.part(tx, part_id) is None:
            raise model.PartNotFound()
        return store.movements(tx, part_id=part_id, after=after, limit=limit)


def list_parts(**filters: Any) -> list[Part]:
    with db.transaction() as tx:
        return store.search_parts(tx, **filters)


# --- PM schedules ------------------------------------------------------------------------------


def _check_recurrence(interval_days: int | None, cron: str | None) -> None:
    why = model.recurrence_problem(interval_days, cron)
    if why:
        field = "cron" if cron is not None and interval_days is None else "interval_days"
        raise model.InvalidReference(field, why)


def create_schedule(
    actor: Actor,
    *,
    asset_id: str,
    interval_days: int | None,
    cron: str | None,
    title: str,
    description: str | None,
    priority: model.Priority,
    type: model.PmType,
    next_due_at: datetime | None,
    active: bool,
) -> Schedule:
    now = _now()
    _check_recurrence(interval_days, cron)
    schedule = Schedule(
        id=_id(),
        asset_id=asset_id,
        interval_days=interval_days,
        cron=cron,
        title=title,
        description=description,
        priority=priority,
        type=type,
        next_due_at=(
            _aware(next_due_at)
            if next_due_at is not None
            else model.next_occurrence(interval_days, cron, now)
        ),
        active=active,
        last_generated_at=None,
        version=1,
        created_at=now,
        updated_at=now,
    )
    with db.transaction() as tx:
        _usable_asset(tx, asset_id)
        store.insert_schedule(tx, schedule)
    return schedule


def get_schedule(schedule_id: str) -> Schedule:
    with db.transaction() as tx:
        schedule = store.schedule(tx, schedule_id)
    if schedule is None:
        raise model.ScheduleNotFound()
    return schedule


def update_schedule(actor: Actor, schedule_id: str, changes: Mapping[str, Any]) -> Schedule:
    now = _now()
    if changes.get("next_due_at") is not None:
        changes = {**changes, "next_due_at": _aware(changes["next_due_at"])}
    with db.transaction() as tx:
        row = store.schedule(tx, schedule_id, lock=True)
        if row is None:
            raise model.ScheduleNotFound()
        _check_recurrence(
            changes.get("interval_days", row.interval_days), changes.get("cron", row.cron)
        )
        changed = _changed(row, changes)
        if "asset_id" in changed:
            _usable_asset(tx, changed["asset_id"])
        if changed:
            store.change_schedule(
                tx, schedule_id, **changed, version=row.version + 1, updated_at=now
            )
        out = store.schedule(tx, schedule_id)
    assert out is not None
    return out


def list_schedules(**filters: Any) -> list[Schedule]:
    with db.transaction() as tx:
        return store.search_schedules(tx, **filters)


def run_due_schedules(now: datetime) -> TickReport:
    """Create the work orders of every active schedule due at `now` (the Cloud Scheduler
    schedule time), each (schedule, due time) exactly once: a second call for the same time,
    even concurrent, finds the schedule advanced, locked (skipped), or the run key taken.
    One transaction per schedule, so one broken schedule does not hold back the others."""
    now = _aware(now)
    created: list[str] = []
    with db.transaction() as tx:
        ids = store.due_schedule_ids(tx, now, PM_BATCH)
    for schedule_id in ids:
        with db.transaction() as tx:
            row = store.schedule(tx, schedule_id, lock=True, skip_locked=True)
            if row is None or not model.is_due(row.active, row.next_due_at, now):
                continue  # another tick holds it or has handled it
            due_at = row.next_due_at
            wo_id = _pm_work_order(tx, row, due_at, now)
            if wo_id:
                created.append(wo_id)
            store.change_schedule(
                tx,
                schedule_id,
                last_generated_at=now,
                next_due_at=model.next_due(row.interval_days, row.cron, due_at, now),
            )
    if created:
        _log.info("pm-tick created %d work orders for %s", len(created), now.isoformat())
    return TickReport(
        schedule_time=now, due=len(ids), created=len(created), work_order_ids=tuple(created)
    )


def _pm_work_order(tx: Session, schedule: Schedule, due_at: datetime, now: datetime) -> str | None:
    asset = store.asset(tx, schedule.asset_id)
    if asset is None or asset.status == "retired":
        _log.info("PM schedule %s skipped: its asset is retired", schedule.id)
        return None
    new = NewWorkOrder(
        title=schedule.title,
        description=schedule.description,
        asset_id=schedule.asset_id,
        priority=schedule.priority,
        type=schedule.type,
        due_date=due_at.date(),
    )
    # Insert the run key first: if it is taken, this (schedule, due time) already has its
    # order and nothing is created.
    wo_id = _id()
    if not store.claim_run(tx, schedule.id, due_at, wo_id, now):
        return None
    return _insert_work_order(tx, model.SYSTEM, new, now, wo_id=wo_id, pm_schedule_id=schedule.id)


# --- stats -------------------------------------------------------------------------------------


def stats(now: datetime | None = None) -> Stats:
    """The dashboard's figures, each computed in SQL from indexes (grouped counts,
    conditional sums; index-only scans on PostgreSQL once autovacuum has run)."""
    now = now or _now()
    today = now.date()
    with db.transaction() as tx:
        pairs = store.work_order_counts(tx)
        overdue = store.overdue_count(tx, today)
        mttr, mttr_n = store.mean_time_to_repair(tx)
        assets_by = store.assets_by_status(tx)
        low_count, low_items = store.low_stock(tx, LOW_STOCK_TOP)
        trend = store.daily_trend(tx, today - timedelta(days=TREND_DAYS - 1), TREND_DAYS)
    by_status: dict[str, int] = dict.fromkeys(model.WORK_ORDER_STATUSES, 0)
    by_priority: dict[str, int] = dict.fromkeys(model.PRIORITIES, 0)
    for status, priority, n in pairs:
        by_status[status] = by_status.get(status, 0) + n
        if status in model.ACTIVE:
            by_priority[priority] = by_priority.get(priority, 0) + n
    return Stats(
        work_orders_total=sum(by_status.values()),
        work_orders_active=sum(by_status[s] for s in model.ACTIVE),
        work_orders_by_status=by_status,
        work_orders_by_priority=by_priority,
        overdue=overdue,
        mttr_hours=mttr,
        mttr_sample=mttr_n,
        assets_down=assets_by.get("down", 0),
        assets_by_status={s: assets_by.get(s, 0) for s in model.ASSET_STATUSES},
        low_stock_count=low_count,
        low_stock_parts=tuple(low_items),
        trend=tuple(trend),
        generated_at=now,
    )
