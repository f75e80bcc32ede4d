"""Production's use cases: create, read, edit and search batches; move them through their
lifecycle; read their history; compute production metrics.

One transaction each. Every change goes through `store.change` with the version the use case
read, so two concurrent changes of one batch cannot both apply: the loser gets 409
(`ConcurrentChange`) and nothing of it is written. Each lifecycle move writes its
`batch_transitions` row and its events in the same transaction as the batch row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
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

    @classmethod
    def of(cls, row: dict[str, Any]) -> Batch:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def facts(self) -> dict[str, Any]:
        """What batch.created / batch.updated carry."""
        return {
            "batch_id": self.id,
            "batch_number": self.batch_number,
            "product": self.product,
            "planned_quantity": self.planned_quantity,
            "actual_quantity": self.actual_quantity,
            "unit": self.unit,
            "stage": self.stage,
            "status": self.status,
            "planned_start": rfc3339(self.planned_start) if self.planned_start else None,
            "notes": self.notes,
            "version": self.version,
        }


@dataclass(frozen=True)
class Transition:
    id: int
    kind: str
    from_value: str | None
    to_value: str
    reason: str
    actor: str
    at: datetime


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
) -> Batch:
    now = _now()
    batch = Batch(
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
            store.insert(tx, **{k: getattr(batch, k) for k in Batch.__dataclass_fields__})
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
        emit(tx, BatchCreated(**batch.facts()), actor=actor)
    return batch


def get_batch(batch_id: str) -> Batch:
    with db.transaction() as tx:
        row = store.get(tx, batch_id)
    if row is None:
        raise model.BatchNotFound()
    return Batch.of(row)


def list_batches(
    *, limit: int, after: tuple[datetime, str] | None = None, **filters: Any
) -> list[Batch]:
    """Up to `limit` batches, newest first, after the keyset `after` (see store.search)."""
    with db.transaction() as tx:
        rows = store.search(tx, after=after, limit=limit, **filters)
    return [Batch.of(r) for r in rows]


def update_batch(
    batch_id: str, changes: dict[str, Any], *, expected_version: int | None, actor: str
) -> Batch:
    """Apply a partial edit (only the given fields); a no-op leaves the version unchanged."""
    now = _now()
    with db.transaction() as tx:
        row = store.get(tx, batch_id)
        if row is None:
            raise model.BatchNotFound()
        if expected_version is not None and expected_version != row["version"]:
            raise model.ConcurrentChange()
        changed = model.changed_fields(row, changes)
        model.check_edit(row["status"], changed)
        if not changed:
            return Batch.of(row)
        wanted = {
            **row,
            **{f: changes[f] for f in changed},
            "updated_at": now,
            "version": row["version"] + 1,
        }
        if "batch_number" in changed and store.number_taken(
            tx, wanted["batch_number"], other_than=batch_id
        ):
            raise model.BatchNumberTaken(wanted["batch_number"])
        try:
            applied = store.change(
                tx, batch_id, row["version"], updated_at=now, **{f: wanted[f] for f in changed}
            )
        except IntegrityError:
            raise model.BatchNumberTaken(wanted["batch_number"]) from None
        if not applied:
            raise model.ConcurrentChange()
        batch = Batch.of(wanted)
        emit(tx, BatchUpdated(**batch.facts(), changed=changed), actor=actor)
    return batch


def transition(
    batch_id: str,
    target: model.Target,
    *,
    reason: str,
    actor: str,
    actual_quantity: float | None = None,
    expected_version: int | None = None,
) -> Batch:
    """Move a batch one step of its lifecycle (see model.plan); records it and emits events."""
    now = _now()
    with db.transaction() as tx:
        row = store.get(tx, batch_id)
        if row is None:
            raise model.BatchNotFound()
        if expected_version is not None and expected_version != row["version"]:
            raise model.ConcurrentChange()
        step = model.plan(row["status"], row["stage"], target)
        values: dict[str, Any] = {"status": step.status, "stage": step.stage, "updated_at": now}
        if step.starts:
            values["started_at"] = now
        if step.completes:
            quantity = actual_quantity if actual_quantity is not None else row["actual_quantity"]
            if quantity is None:
                raise model.QuantityRequired()
            values.update(actual_quantity=quantity, completed_at=now)
        if not store.change(tx, batch_id, row["version"], **values):
            raise model.ConcurrentChange()
        batch = Batch.of({**row, **values, "version": row["version"] + 1})
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
                    yield_=model.batch_yield(batch.actual_quantity, batch.planned_quantity),
                    completed_at=rfc3339(batch.completed_at),
                ),
                actor=actor,
            )
    return batch


def history(batch_id: str, *, after: tuple[datetime, int] | None, limit: int) -> list[Transition]:
    with db.transaction() as tx:
        if store.get(tx, batch_id) is None:
            raise model.BatchNotFound()
        rows = store.history(tx, batch_id, after=after, limit=limit)
    return [Transition(**{k: r[k] for k in Transition.__dataclass_fields__}) for r in rows]


# --- metrics -------------------------------------------------------------------------------

DEFAULT_DAYS = 30


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last DEFAULT_DAYS days, today (UTC) included."""
    today = today or _now().date()
    return today - timedelta(days=DEFAULT_DAYS - 1), today


def metrics(*, day_from: date, day_to: date, product: str | None = None) -> dict[str, Any]:
    """Production metrics. Counts are of every batch now; yield, cycle times and throughput
    cover the UTC days day_from..day_to (both included). `product` narrows all of them."""
    start = datetime.combine(day_from, time(), UTC)
    end = datetime.combine(day_to + timedelta(days=1), time(), UTC)
    with db.transaction() as tx:
        counts = store.count_by_status_and_stage(tx, product)
        yields = store.yield_by_product(tx, start, end, product)
        cycles = store.cycle_times(tx, start, end, product)
        per_day = store.completed_per_day(tx, start, end, product)
    by_status = {
        s: sum(n for (status, _), n in counts.items() if status == s) for s in model.STATUSES
    }
    by_stage = {s: sum(n for (_, stage), n in counts.items() if stage == s) for s in model.STAGES}
    days = [day_from + timedelta(days=i) for i in range((day_to - day_from).days + 1)]
    return {
        "from": day_from.isoformat(),
        "to": day_to.isoformat(),
        "product": product,
        "total": sum(counts.values()),
        "by_status": by_status,
        "by_stage": by_stage,
        "yield_by_product": yields,
        "cycle_time_by_stage": [
            {
                "stage": s,
                "batches": cycles.get(s, (0, 0.0))[0],
                "avg_seconds": cycles[s][1] if s in cycles else None,
            }
            for s in model.STAGES
        ],
        "throughput": [{"day": d.isoformat(), "completed": per_day.get(d, 0)} for d in days],
        "completed_total": sum(per_day.values()),
    }
