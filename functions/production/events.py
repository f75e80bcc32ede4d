"""Events of the production context (one Pub/Sub topic each; the audit trail stores them all).

`batch.created` and `batch.updated` carry the batch's facts after the change and its version
(consumers ignore versions older than what they hold). Every lifecycle move is a
`batch.status.changed` or `batch.stage.changed` with the reason and the acting user; completing
a batch additionally publishes `batch.completed` with its quantities and yield.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict, Field

from shared.events import Event


class _BatchFacts(Event):
    batch_id: str
    batch_number: str
    product: str
    planned_quantity: float
    actual_quantity: float | None
    unit: str
    stage: str
    status: str
    planned_start: str | None  # RFC 3339 UTC
    notes: str | None
    version: int


class BatchCreated(_BatchFacts):
    event_type: ClassVar[str] = "batch.created"
    schema_version: ClassVar[int] = 1


class BatchUpdated(_BatchFacts):
    event_type: ClassVar[str] = "batch.updated"
    schema_version: ClassVar[int] = 1

    changed: list[str]


class _Move(Event):
    batch_id: str
    batch_number: str
    old: str
    new: str
    reason: str
    actor: str


class BatchStatusChanged(_Move):
    event_type: ClassVar[str] = "batch.status.changed"
    schema_version: ClassVar[int] = 1


class BatchStageChanged(_Move):
    event_type: ClassVar[str] = "batch.stage.changed"
    schema_version: ClassVar[int] = 1


class BatchCompleted(Event):
    """`yield` is a Python keyword: the attribute is `yield_`, the payload field `yield`."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        serialize_by_alias=True,
        validate_by_name=True,
        validate_by_alias=True,
    )
    event_type: ClassVar[str] = "batch.completed"
    schema_version: ClassVar[int] = 1

    batch_id: str
    batch_number: str
    product: str
    planned_quantity: float
    actual_quantity: float
    unit: str
    yield_: float = Field(alias="yield", description="actual_quantity / planned_quantity")
    completed_at: str  # RFC 3339 UTC
