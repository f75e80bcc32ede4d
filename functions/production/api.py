"""HTTP routes of production-api (/api/batches): parse and validate, call the service, shape
the answer.

Any authenticated user may read batches, their history and the metrics. Creating and editing
batches and moving them through production needs the operator or manager role; the QA
decisions (hold, release, reject) need the qa permission, which is the manager role for now
(admin passes everywhere). Status and stage change only through `POST .../transitions`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import flask
from pydantic import (
    AfterValidator,
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from functions.production import model, service
from shared import auth as sauth
from shared.http import (
    ApiModel,
    OutModel,
    Page,
    PageQuery,
    Unprocessable,
    body,
    create_app,
    describe,
    json_body,
    json_response,
    page,
    query,
)

app = create_app("production")

MAX_METRICS_DAYS = 366

BatchNumber = Annotated[
    str,
    # the rule normalize_batch_number checks, in any case (stored upper-case)
    StringConstraints(max_length=40, pattern=model.BATCH_NUMBER_ANY_CASE),
    AfterValidator(model.normalize_batch_number),
    Field(
        description="Unique, human-readable: ^[A-Z0-9][A-Z0-9-]{2,39}$ (stored upper-case).",
        examples=["PCM-2026-0001"],
    ),
]
Product = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Unit = Annotated[
    str,
    StringConstraints(min_length=1, max_length=20, pattern=model.UNIT.pattern),
    Field(examples=["kg", "tablets"]),
]
Notes = Annotated[str, StringConstraints(max_length=4000)]
PlannedQuantity = Annotated[
    float, Field(gt=0, le=model.MAX_QUANTITY), AfterValidator(model.check_quantity)
]
ActualQuantity = Annotated[
    float, Field(ge=0, le=model.MAX_QUANTITY), AfterValidator(model.check_quantity)
]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(lambda v: v.astimezone(UTC)),
    Field(description="RFC 3339 with an offset; stored in UTC."),
]


class BatchCreate(ApiModel):
    batch_number: BatchNumber
    product: Product
    planned_quantity: PlannedQuantity
    unit: Unit
    notes: Notes | None = None
    planned_start: UtcDatetime | None = None


class BatchUpdate(ApiModel):
    """Partial edit: only the fields present change. `notes`, `planned_start` and
    `actual_quantity` may be set to null; the definition fields (batch_number, product,
    planned_quantity, unit, planned_start) change only while the batch is planned.
    `version`, when given, must be the batch's current version (else 409)."""

    # absent or a value, never null (`_no_nulls`): the schema leaves null out for these
    batch_number: BatchNumber | SkipJsonSchema[None] = None
    product: Product | SkipJsonSchema[None] = None
    planned_quantity: PlannedQuantity | SkipJsonSchema[None] = None
    unit: Unit | SkipJsonSchema[None] = None
    notes: Notes | None = None
    planned_start: UtcDatetime | None = None
    actual_quantity: ActualQuantity | None = None
    version: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(
                k
                for k, v in data.items()
                if v is None
                and k in ("batch_number", "product", "planned_quantity", "unit", "version")
            )
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: null is not allowed; omit the field")
        return data


class TransitionIn(ApiModel):
    """Exactly one of `status` and `stage`, with a reason. `actual_quantity` only when
    completing (required then unless the batch already has one)."""

    # The rules of `_one_target`, stated in the schema.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["status"], "properties": {"status": {"type": "string"}}},
                {"required": ["stage"], "properties": {"stage": {"type": "string"}}},
            ],
            "if": {
                "required": ["actual_quantity"],
                "properties": {"actual_quantity": {"type": "number"}},
            },
            "then": {"required": ["status"], "properties": {"status": {"const": "completed"}}},
        }
    )

    status: model.Status | None = None
    stage: model.Stage | None = None
    reason: Reason
    actual_quantity: ActualQuantity | None = None
    version: int | None = Field(None, ge=1, description="Expected current version (else 409).")

    @model_validator(mode="after")
    def _one_target(self) -> TransitionIn:
        if (self.status is None) == (self.stage is None):
            raise ValueError("give exactly one of status and stage")
        if self.actual_quantity is not None and self.status != "completed":
            raise ValueError("actual_quantity is only accepted when completing a batch")
        return self

    def target(self) -> model.Target:
        if self.status is not None:
            return model.Target("status", self.status)
        assert self.stage is not None
        return model.Target("stage", self.stage)


class BatchQuery(PageQuery):
    q: str | None = Field(
        None, max_length=40, description="Part of the batch number (case-insensitive)."
    )
    status: list[model.Status] | None = Field(None, description="Repeat for several.")
    stage: list[model.Stage] | None = Field(None, description="Repeat for several.")
    product: str | None = Field(None, max_length=200, description="Exactly this product.")
    planned_from: AwareDatetime | None = Field(None, description="planned_start >= this.")
    planned_to: AwareDatetime | None = Field(None, description="planned_start < this.")
    created_from: AwareDatetime | None = Field(None, description="created_at >= this.")
    created_to: AwareDatetime | None = Field(None, description="created_at < this.")

    @field_validator("status", "stage", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def filters(self) -> dict[str, Any]:
        return {
            "q": self.q,
            "statuses": self.status,
            "stages": self.stage,
            "product": self.product,
            "planned_from": self.planned_from,
            "planned_to": self.planned_to,
            "created_from": self.created_from,
            "created_to": self.created_to,
        }


class MetricsQuery(ApiModel):
    from_: date | None = Field(
        None, alias="from", description="First UTC day (default: 29 days before `to`)."
    )
    to: date | None = Field(None, description="Last UTC day, included (default: today).")
    product: str | None = Field(None, max_length=200, description="Only this product.")

    def days(self) -> tuple[date, date]:
        default_from, default_to = service.default_range()
        day_to = self.to or default_to
        day_from = self.from_ or day_to - (default_to - default_from)
        if day_from > day_to:
            raise Unprocessable(
                "`from` must not be after `to`.",
                errors=[{"field": "from", "message": "after `to`", "type": "range"}],
            )
        if (day_to - day_from) >= timedelta(days=MAX_METRICS_DAYS):
            raise Unprocessable(
                f"The range spans at most {MAX_METRICS_DAYS} days.",
                errors=[
                    {
                        "field": "from",
                        "message": f"more than {MAX_METRICS_DAYS} days before `to`",
                        "type": "range",
                    }
                ],
            )
        return day_from, day_to


# --- responses -------------------------------------------------------------------------------


class BatchOut(OutModel):
    id: str
    batch_number: str
    product: str
    planned_quantity: float
    actual_quantity: float | None
    unit: str
    stage: model.Stage
    status: model.Status
    notes: str | None
    planned_start: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class TransitionOut(OutModel):
    model_config = ConfigDict(serialize_by_alias=True)

    id: int
    kind: model.Kind
    from_: str | None = Field(
        validation_alias="from_value",
        serialization_alias="from",
        description="null for the creation entry",
    )
    to: str = Field(validation_alias="to_value")
    reason: str
    actor: str = Field(description="User id (token subject) who made the change.")
    at: datetime


class ProductYield(OutModel):
    product: str
    batches: int
    yield_avg: float
    yield_min: float
    yield_max: float


class StageCycle(OutModel):
    stage: model.Stage
    batches: int = Field(description="Stage visits ended in the range.")
    avg_seconds: float | None


class DayCount(OutModel):
    day: date
    completed: int


class MetricsOut(OutModel):
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    product: str | None
    total: int
    by_status: dict[str, int]
    by_stage: dict[str, int]
    yield_by_product: list[ProductYield]
    cycle_time_by_stage: list[StageCycle]
    throughput: list[DayCount]
    completed_total: int


def _out(batch: model.Batch) -> dict[str, Any]:
    return BatchOut.model_validate(batch).model_dump(mode="json")


def _transition_out(t: model.Transition) -> dict[str, Any]:
    return TransitionOut.model_validate(t).model_dump(mode="json")


def _actor() -> str:
    return sauth.current_user().sub


# --- routes (metrics before /<id>: a literal path segment is never read as an id) -------------


@app.get("/api/batches/metrics")
@describe("Production metrics", query=MetricsQuery, response=MetricsOut)
def get_metrics() -> flask.Response:
    """Counts by status and stage (now), yield per product of the batches completed in the
    range, mean time per stage (entering to leaving it, for stages left in the range) and
    completions per UTC day. The range is `from`..`to` (days, both included; default the last
    30 days); `product` narrows everything."""
    params = query(MetricsQuery)
    day_from, day_to = params.days()
    metrics = service.metrics(day_from=day_from, day_to=day_to, product=params.product)
    return json_response(MetricsOut.model_validate(metrics).model_dump(mode="json"))


@app.get("/api/batches")
@describe("List and search batches", query=BatchQuery, response=Page[BatchOut])
def list_batches() -> flask.Response:
    """Batches, newest first, filtered by `q` (part of the batch number), `status`, `stage`,
    `product` and planned-start or creation time ranges, a page at a time (`next_cursor`)."""
    params = query(BatchQuery)
    batches = service.list_batches(
        after=params.keyset(datetime, str), limit=params.limit + 1, **params.filters()
    )
    return json_response(
        page(batches, params.limit, key=lambda b: (b.created_at, b.id), shape=_out)
    )


@app.post("/api/batches")
@describe("Create a batch (operator, manager)", request=BatchCreate, response=BatchOut, status=201)
@sauth.require_roles("operator", "manager")
def create_batch() -> flask.Response:
    """Plan a batch: status planned, stage dispensing. 409 when the batch number is taken."""
    data = body(BatchCreate)
    batch = service.create_batch(**data.model_dump(), actor=_actor())
    return json_response(_out(batch), 201, headers={"Location": f"/api/batches/{batch.id}"})


@app.get("/api/batches/<uuid:batch_id>")
@describe("One batch", response=BatchOut)
def get_batch(batch_id: UUID) -> flask.Response:
    """One batch by id."""
    return json_response(_out(service.get_batch(str(batch_id))))


@app.put("/api/batches/<uuid:batch_id>")
@describe("Edit a batch (operator, manager)", request=BatchUpdate, response=BatchOut)
@sauth.require_roles("operator", "manager")
def update_batch(batch_id: UUID) -> flask.Response:
    """Change the given fields. 409 for a closed batch, for definition fields once production
    started, and when `version` is not the current one; status and stage are refused (422):
    they change through transitions."""
    raw = json_body()
    if isinstance(raw, dict):
        moves = [k for k in ("status", "stage") if k in raw]
        if moves:
            raise Unprocessable(
                "Status and stage change only through POST /api/batches/{id}/transitions.",
                errors=[
                    {
                        "field": k,
                        "type": "transition_only",
                        "message": "change it with POST /api/batches/{id}/transitions",
                    }
                    for k in moves
                ],
            )
    data = body(BatchUpdate)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    batch = service.update_batch(
        str(batch_id), changes, expected_version=data.version, actor=_actor()
    )
    return json_response(_out(batch))


@app.post("/api/batches/<uuid:batch_id>/transitions")
@describe("Move a batch through its lifecycle", request=TransitionIn, response=BatchOut)
@sauth.require_roles("operator", "manager")
def transition(batch_id: UUID) -> flask.Response:
    """Change the status (`{"status": ...}`) or advance the stage (`{"stage": ...}`), with a
    `reason`. 409 with `allowed` (the transitions possible now) when the lifecycle forbids it;
    hold, release and reject need the qa permission (manager)."""
    data = body(TransitionIn)
    target = data.target()
    if model.needs_qa_permission(target) and not sauth.current_user().has_role(model.QA_ROLE):
        raise model.QaPermissionRequired(target)
    batch = service.transition(
        str(batch_id),
        target,
        reason=data.reason,
        actor=_actor(),
        actual_quantity=data.actual_quantity,
        expected_version=data.version,
    )
    return json_response(_out(batch))


@app.get("/api/batches/<uuid:batch_id>/history")
@describe("Lifecycle history of a batch", query=PageQuery, response=Page[TransitionOut])
def get_history(batch_id: UUID) -> flask.Response:
    """Every transition of the batch (its creation first) in the order they happened, with
    reason and actor, a page at a time."""
    params = query(PageQuery)
    items = service.history(
        str(batch_id), after=params.keyset(datetime, int), limit=params.limit + 1
    )
    return json_response(
        page(items, params.limit, key=lambda t: (t.at, t.id), shape=_transition_out)
    )
