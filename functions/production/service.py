"""Production's use cases: create, read, edit and search batches; move them through their
lifecycle; read their history; compute production metrics.

One transaction each. Every change goes through `store.change` with the version the use case
read, so two concurrent changes of one batch cannot both apply: the loser gets 409
(`ConcurrentChange`) and nothing of it is written. Each lifecycle move writes its
`batch_transitions` row and its events in the same transaction as the batch row.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from functions.production import model, store
from functions.production.events import (
    BatchCompleted,
    BatchCreated,
    BatchStageChanged,
    BatchStatusChanged,
    BatchUpdated,
)
from shared import db
from shared.events import emit, rfc3339

CREATED_REASON = "created"


def _facts(batch: model.Batch) -> dict[str, Any]:
    """What batch.created / batch.updated carry."""
    return {
        "batch_id": batch.id,
        "batch_number": batch.batch_number,
        "product": batch.product,
        "planned_quantity": batch.planned_quantity,
        "actual_quantity": batch.actual_quantity,
        "unit": batch.unit,
        "stage": batch.stage,
        "status": batch.status,
        "planned_start": rfc3339(batch.planned_start) if batch.planned_start else None,
        "notes": batch.notes,
        "version": batch.version,
    }


def _now() -> datetime:
    return datetime.now(UTC)


def create_batch(
    *,
    batch_number: str,
    product: str,
    planned_quantity: float,
    unit: str,
    notes: str | None,
    planned_start: datetime | None,
    actor: str,
) -> model.Batch:
    now = _now()
    batch = model.Batch(
        id=str(uuid.uuid4()),
        batch_number=batch_number,
        product=product,
        planned_quantity=planned_quantity,
        actual_quantity=None,
        unit=unit,
        stage=model.FIRST_STAGE,
        status=model.INITIAL_STATUS,
        notes=notes,
        planned_start=planned_start,
        started_at=None,
        completed_at=None,
        created_at=now,
        updated_at=now,
        version=1,
    )
    with db.transaction() as tx:
        if store.number_taken(tx, batch_number):
            raise model.BatchNumberTaken(batch_number)
        try:
            store.add(tx, batch)
        except IntegrityError:  # a concurrent create with the same number won
            raise model.BatchNumberTaken(batch_number) from None
        store.record(
            tx,
            batch_id=batch.id,
            kind="status",
            from_value=None,
            to_value=batch.status,
            reason=CREATED_REASON,
            actor=actor,
            at=now,
        )
        emit(tx, BatchCreated(**_facts(batch)), actor=actor)
    return batch


def get_batch(batch_id: str) -> model.Batch:
    with db.transaction() as tx:
        batch = store.get(tx, batch_id)
    if batch is None:
        raise model.BatchNotFound()
    return batch


def list_batches(
    *, limit: int, after: tuple[datetime, str] | None = None, **filters: Any
) -> list[model.Batch]:
    """Up to `limit` batches, newest first, after the keyset `after` (see store.search)."""
    with db.transaction() as tx:
        return store.search(tx, after=after, limit=limit, **filters)


def update_batch(
    batch_id: str, changes: dict[str, Any], *, expected_version: int | None, actor: str
) -> model.Batch:
    """Apply a partial edit (only the given fields); a no-op leaves the version unchanged."""
    now = _now()
    with db.transaction() as tx:
        current = store.get(tx, batch_id)
        if current is None:
            raise model.BatchNotFound()
        if expected_version is not None and expected_version != current.version:
            raise model.ConcurrentChange()
        changed = model.changed_fields(asdict(current), changes)
        model.check_edit(current.status, changed)
        if not changed:
            return current
        edits = {f: changes[f] for f in changed}
        batch = replace(current, **edits, updated_at=now, version=current.version + 1)
        if "batch_number" in changed and store.number_taken(
            tx, batch.batch_number, other_than=batch_id
        ):
            raise model.BatchNumberTaken(batch.batch_number)
        try:
            applied = store.change(tx, batch_id, current.version, updated_at=now, **edits)
        except IntegrityError:
            raise model.BatchNumberTaken(batch.batch_number) from None
        if not applied:
            raise model.ConcurrentChange()
        emit(tx, BatchUpdated(**_facts(batch), changed=changed), actor=actor)
    return batch


def transition(
    batch_id: str,
    target: model.Target,
    *,
    reason: str,
    actor: str,
    actual_quantity: float | None = None,
    expected_version: int | None = None,
) -> model.Batch:
    """Move a batch one step of its lifecycle (see model.plan); records it and emits events."""
    now = _now()
    with db.transaction() as tx:
        current = store.get(tx, batch_id)
        if current is None:
            raise model.BatchNotFound()
        if expected_version is not None and expected_version != current.version:
            raise model.ConcurrentChange()
        step = model.plan(current.status, current.stage, target)
        values: dict[str, Any] = {"status": step.status, "stage": step.stage, "updated_at": now}
        if step.starts:
            values["started_at"] = now
        if step.completes:
            quantity = actual_quantity if actual_quantity is not None else current.actual_quantity
            if quantity is None:
                raise model.QuantityRequired()
            values.update(actual_quantity=quantity, completed_at=now)
        if not store.change(tx, batch_id, current.version, **values):
            raise model.ConcurrentChange()
        batch = replace(current, **values, version=current.version + 1)
        left = model.stage_left(step)
        entered = store.entered_at(tx, batch_id, *model.stage_entry(left)) if left else None
        store.record(
            tx,
            batch_id=batch_id,
            kind=step.kind,
            from_value=step.old,
            to_value=step.new,
            reason=reason,
            actor=actor,
            at=now,
            stage_entered_at=entered,
        )
        moved = BatchStageChanged if step.kind == "stage" else BatchStatusChanged
        emit(
            tx,
            moved(
                batch_id=batch_id,
                batch_number=batch.batch_number,
                old=step.old,
                new=step.new,
                reason=reason,
                actor=actor,
            ),
            actor=actor,
        )
        if step.completes:
            assert batch.actual_quantity is not None and batch.completed_at is not None
            emit(
                tx,
                BatchCompleted(
                    batch_id=batch_id,
                    batch_number=batch.batch_number,
                    product=batch.product,
                    planned_quantity=batch.planned_quantity,
                    actual_quantity=batch.actual_quantity,
                    unit=batch.unit,
                    **{"yield": model.batch_yield(batch.actual_quantity, batch.planned_quantity)},
                    completed_at=rfc3339(batch.completed_at),
                ),
                actor=actor,
            )
    return batch


def history(
    batch_id: str, *, after: tuple[datetime, int] | None, limit: int
) -> list[model.Transition]:
    with db.transaction() as tx:
        if store.get(tx, batch_id) is None:
            raise model.BatchNotFound()
        return store.history(tx, batch_id, after=after, limit=limit)


# --- metrics -------------------------------------------------------------------------------

DEFAULT_DAYS = 30


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last DEFAULT_DAYS days, today (UTC) included."""
    today = today or _now().date()
    return today - timedelta(days=DEFAULT_DAYS - 1), today


def metrics(*, day_from: date, day_to: date, product: str | None = None) -> model.Metrics:
    """Production metrics. Counts are of every batch now; yield, cycle times and throughput
    cover the UTC days day_from..day_to (both included). `product` narrows all of them."""
    start = datetime.combine(day_from, time(), UTC)
    end = datetime.combine(day_to + timedelta(days=1), time(), UTC)
    with db.transaction() as tx:
        counts = store.count_by_status_and_stage(tx, product)
        yields = store.yield_by_product(tx, start, end, product)
        cycles = store.cycle_times(tx, start, end, product)
        per_day = store.completed_per_day(tx, start, end, product)
    days = [day_from + timedelta(days=i) for i in range((day_to - day_from).days + 1)]
    return model.Metrics(
        from_=day_from,
        to=day_to,
        product=product,
        total=sum(counts.values()),
        by_status={
            s: sum(n for (status, _), n in counts.items() if status == s) for s in model.STATUSES
        },
        by_stage={
            s: sum(n for (_, stage), n in counts.items() if stage == s) for s in model.STAGES
        },
        yield_by_product=yields,
        cycle_time_by_stage=[
            model.StageCycle(
                stage=s,
                batches=cycles[s][0] if s in cycles else 0,
                avg_seconds=cycles[s][1] if s in cycles else None,
            )
            for s in model.STAGES
        ],
        throughput=[model.DayCount(day=d, completed=per_day.get(d, 0)) for d in days],
        completed_total=sum(per_day.values()),
    )
