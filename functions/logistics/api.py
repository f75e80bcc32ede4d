"""HTTP routes of logistics-api (/api/packages, /api/tracking-events, /api/logistics): parse and
validate, call the service, shape the answer.

Every authenticated user (viewer and up) reads packages, timelines, stats and exports.
Operators (and managers) create packages and record scans; managers edit packages, move their
status by hand and cancel them (DELETE); admins pass everywhere. A scan carries the scanner's
`idempotency_key`: sent again, it is stored once and answered as the first time (with
`Idempotent-Replayed: true`). `POST /api/tracking-events:batch` takes up to 1,000 scans and
answers each one (accepted, duplicate or refused with its own problem); a body over the size
limit is 413, more scans than the limit 422. The export streams CSV or NDJSON from a
server-side cursor (constant memory).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import flask
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from functions.logistics import model, service
from shared import auth as sauth
from shared.errors import Problem
from shared.http import (
    ApiModel,
    OutModel,
    Page,
    PageQuery,
    Unprocessable,
    body,
    create_app,
    describe,
    json_default,
    json_response,
    page,
    query,
    validation_errors,
)

app = create_app("logistics")

MAX_BATCH = 1_000
MAX_STATS_DAYS = 366
FUTURE_SKEW = timedelta(minutes=10)  # a scanner clock may run a little fast, not more

TrackingNumber = Annotated[
    str,
    # the syntax normalize_tracking_number checks, in any case (stored upper-case)
    StringConstraints(max_length=40, pattern=model.TRACKING_NUMBER_ANY_CASE),
    AfterValidator(model.normalize_tracking_number),
    Field(
        description="Unique: ^[A-Z0-9][A-Z0-9-]{5,39}$ (stored upper-case). An UPU S10 number "
        "(2 letters, 8 digits, check digit, 2 letters) must carry its right check digit. "
        "Generated (S10, `SY...SW`) when absent.",
        examples=["SY123456785SW"],
    ),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Address = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Region = Annotated[
    str,
    # the rule normalize_region checks, in any case (upper-cased)
    StringConstraints(max_length=40, pattern=model.REGION_ANY_CASE),
    AfterValidator(model.normalize_region),
    Field(description="Region code: ^[A-Z0-9][A-Z0-9_-]{0,39}$ (upper-cased).", examples=["DE-BE"]),
]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]
Weight = Annotated[float, Field(gt=0, le=1000, description="Kilograms.")]
Location = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Note = Annotated[str, StringConstraints(max_length=500)]
IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$"),
    Field(description="Chosen by the scanner, unique per scan: a re-sent scan is stored once."),
]
UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(lambda v: v.astimezone(UTC)),
    Field(description="RFC 3339 with an offset; stored in UTC."),
]


class Place(ApiModel):
    address: Address
    lat: Lat
    lon: Lon
    region: Region


class PackageCreate(ApiModel):
    tracking_number: TrackingNumber | None = None
    sender: Name
    recipient: Name
    origin: Place
    destination: Place
    service_level: model.ServiceLevel = "standard"
    weight_kg: Weight
    promised_by: UtcDatetime | None = Field(None, description="Promised delivery (deliver by).")

    def fields(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "recipient": self.recipient,
            **_place("origin", self.origin),
            **_place("destination", self.destination),
            "service_level": self.service_level,
            "weight_kg": self.weight_kg,
            "promised_by": self.promised_by,
        }


def _place(prefix: str, place: Place) -> dict[str, Any]:
    return {
        f"{prefix}_address": place.address,
        f"{prefix}_lat": place.lat,
        f"{prefix}_lon": place.lon,
        f"{prefix}_region": place.region,
    }


class PackageUpdate(ApiModel):
    """Partial edit: only the fields present change (`origin`/`destination` as a whole).
    `promised_by` may be set to null. `status` moves the package by hand where the
    lifecycle allows: to in_transit (an exception cleared), exception, returned or cancelled
    (409 naming the moves allowed now; pickup and delivery are recorded only by scans).
    Sender and origin are fixed once picked up; a delivered, returned or cancelled package
    refuses every edit. `version`, when given, must be the package's current version (else
    409)."""

    # absent or a value, never null (`_no_nulls`): the schema leaves null out for these
    sender: Name | SkipJsonSchema[None] = None
    recipient: Name | SkipJsonSchema[None] = None
    origin: Place | SkipJsonSchema[None] = None
    destination: Place | SkipJsonSchema[None] = None
    service_level: model.ServiceLevel | SkipJsonSchema[None] = None
    weight_kg: Weight | SkipJsonSchema[None] = None
    promised_by: UtcDatetime | None = None
    status: model.Status | SkipJsonSchema[None] = None
    version: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None and k != "promised_by")
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: null is not allowed; omit the field")
        return data

    def changes(self) -> dict[str, Any]:
        given = self.model_dump(exclude_unset=True, exclude={"version", "status"})
        out: dict[str, Any] = {}
        for key, value in given.items():
            if key in ("origin", "destination"):
                out.update(_place(key, Place(**value)))
            else:
                out[key] = value
        return out


class ScanIn(ApiModel):
    kind: model.ScanKind
    location: Location = Field(description="Where the scan was taken (facility, vehicle).")
    lat: Lat
    lon: Lon
    occurred_at: UtcDatetime = Field(
        description="The scanner's time (RFC 3339 with an offset); scans may arrive out of "
        "order. At most 10 minutes in the future."
    )
    idempotency_key: IdempotencyKey
    note: Note | None = Field(None, description="Free text, e.g. why an exception was raised.")


class BatchScanIn(ScanIn):
    """A scan of the batch intake: its package by `package_id` or by `tracking_number`."""

    package_id: UUID | None = None
    tracking_number: TrackingNumber | None = None

    @model_validator(mode="after")
    def _one_package(self) -> BatchScanIn:
        if (self.package_id is None) == (self.tracking_number is None):
            raise ValueError("give exactly one of package_id and tracking_number")
        return self


class ScanBatchIn(ApiModel):
    """Up to 1,000 scans, each answered on its own. An item that is an object but not a
    valid BatchScanIn is refused alone (its result's problem names the fields) and the
    others are recorded; only a body that is not a list of 1 to 1,000 objects is refused
    whole (422)."""

    scans: list[BatchScanIn | dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="Up to 1,000 scans. Each should be a BatchScanIn; an object that is not "
        "(a bad field, a missing field, a clock too far ahead) is refused on its own with a "
        "422 problem in its result, and the others are still recorded.",
    )


class _ScanBatchEnvelope(ApiModel):
    """What is parsed: the list (refused whole when it is not one of 1..1,000 objects); each
    scan is then validated on its own (refused alone)."""

    scans: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class _Filters(ApiModel):
    q: str | None = Field(
        None,
        max_length=200,
        description="A tracking number (exact, case-insensitive) or part of the recipient.",
    )
    status: list[model.Status] | None = Field(None, description="Repeat for several.")
    service_level: list[model.ServiceLevel] | None = Field(None, description="Repeat for several.")
    origin_region: Region | None = None
    destination_region: Region | None = None
    promised_after: AwareDatetime | None = Field(None, description="promised_by >= this.")
    promised_before: AwareDatetime | None = Field(None, description="promised_by < this.")
    late: bool | None = Field(
        None,
        description="true: only late packages (delivered after the promise, or still on their "
        "way past it); false: only the others.",
    )

    @field_validator("status", "service_level", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def filters(self) -> dict[str, Any]:
        return {
            "q": self.q,
            "statuses": self.status,
            "service_levels": self.service_level,
            "origin_region": self.origin_region,
            "destination_region": self.destination_region,
            "promised_after": self.promised_after,
            "promised_before": self.promised_before,
            "late": self.late,
        }


class PackageQuery(PageQuery, _Filters):
    pass


class ExportQuery(_Filters):
    format: Literal["csv", "ndjson"] = "csv"


class StatsQuery(ApiModel):
    from_: date | None = Field(
        None, alias="from", description="First UTC day (default: 29 days before `to`)."
    )
    to: date | None = Field(None, description="Last UTC day, included (default: today).")

    def days(self) -> tuple[date, date]:
        default_from, default_to = service.default_range()
        day_to = self.to or default_to
        day_from = self.from_ or day_to - (default_to - default_from)
        if day_from > day_to:
            raise Unprocessable(
                "`from` must not be after `to`.",
                errors=[{"field": "from", "message": "after `to`", "type": "range"}],
            )
        if (day_to - day_from) >= timedelta(days=MAX_STATS_DAYS):
            raise Unprocessable(
                f"The range spans at most {MAX_STATS_DAYS} days.",
                errors=[{"field": "from", "message": "range too long", "type": "range"}],
            )
        return day_from, day_to


# --- responses -------------------------------------------------------------------------------


class PlaceOut(OutModel):
    address: str
    lat: float
    lon: float
    region: str


class PackageOut(OutModel):
    id: str
    tracking_number: str
    sender: str
    recipient: str
    origin: PlaceOut
    destination: PlaceOut
    service_level: model.ServiceLevel
    weight_kg: float
    promised_by: datetime | None
    status: model.Status
    late: bool = Field(description="Delivered after the promise, or on its way past it (now).")
    picked_up_at: datetime | None
    delivered_at: datetime | None
    transit_seconds: float | None = Field(description="Pickup to delivery, once delivered.")
    last_scan_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class ScanOut(OutModel):
    id: str
    package_id: str
    kind: model.ScanKind
    location: str
    lat: float
    lon: float
    note: str | None
    occurred_at: datetime
    recorded_at: datetime
    idempotency_key: str
    actor: str = Field(description="User id (token subject) who recorded it.")
    status_from: model.Status = Field(description="The package's status when it was recorded.")
    status_to: model.Status | None = Field(description="The status it moved to; null: none.")
    out_of_order: bool = Field(description="Older than the package's latest scan then.")
    moved: bool
    package_status: model.Status = Field(description="The package's status right after it.")


class ProblemOut(BaseModel):
    status: int
    title: str
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None
    allowed: list[str] | None = None
    allowed_kinds: list[str] | None = None


class BatchItemOut(BaseModel):
    index: int = Field(description="Position of the scan in the request.")
    outcome: Literal["accepted", "duplicate", "refused"]
    scan: ScanOut | None = None
    problem: ProblemOut | None = Field(None, description="Why it was refused.")


class BatchOut(BaseModel):
    accepted: int
    duplicates: int
    refused: int
    results: list[BatchItemOut]


class Transit(BaseModel):
    packages: int
    avg_seconds: float
    min_seconds: float
    max_seconds: float


class LaneTransit(Transit):
    origin_region: str
    destination_region: str


class LevelTransit(Transit):
    service_level: str


class DayExceptions(BaseModel):
    day: date
    exceptions: int


class StatsOut(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    total: int
    by_status: dict[str, int]
    late_open: int = Field(description="Packages on their way past their promise, now.")
    delivered: int = Field(description="Deliveries in the range.")
    delivered_with_promise: int
    delivered_on_time: int
    delivered_late: int
    on_time_rate: float | None = Field(description="On time / delivered with a promise.")
    transit_by_lane: list[LaneTransit]
    transit_by_service_level: list[LevelTransit]
    exceptions_per_day: list[DayExceptions]
    exceptions_total: int


def package_fields(p: model.Package, now: datetime) -> dict[str, Any]:
    """A package in the shape of PackageOut (datetimes as datetimes)."""
    return {
        "id": p.id,
        "tracking_number": p.tracking_number,
        "sender": p.sender,
        "recipient": p.recipient,
        "origin": {
            "address": p.origin_address,
            "lat": p.origin_lat,
            "lon": p.origin_lon,
            "region": p.origin_region,
        },
        "destination": {
            "address": p.destination_address,
            "lat": p.destination_lat,
            "lon": p.destination_lon,
            "region": p.destination_region,
        },
        "service_level": p.service_level,
        "weight_kg": p.weight_kg,
        "promised_by": p.promised_by,
        "status": p.status,
        "late": p.late(now),
        "picked_up_at": p.picked_up_at,
        "delivered_at": p.delivered_at,
        "transit_seconds": p.transit_seconds,
        "last_scan_at": p.last_scan_at,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "version": p.version,
    }


def package_out(p: model.Package, now: datetime | None = None) -> dict[str, Any]:
    """A package as the API answers it (through PackageOut)."""
    fields = package_fields(p, now or datetime.now(UTC))
    return PackageOut.model_validate(fields).model_dump(mode="json")


def scan_out(s: model.Scan) -> dict[str, Any]:
    return ScanOut.model_validate(
        {**vars(s), "moved": s.moved, "package_status": s.status_after}
    ).model_dump(mode="json")


def _problem_out(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, ValidationError):
        return {
            "status": 422,
            "title": "Unprocessable Content",
            "detail": "The scan is not valid.",
            "errors": validation_errors(exc),
        }
    assert isinstance(exc, Problem)
    out = {"status": exc.status, "title": exc.title, "detail": exc.detail}
    if exc.errors:
        out["errors"] = exc.errors
    return {**out, **exc.extra}


def _actor() -> str:
    return sauth.current_user().sub


def _check_clock(scan: ScanIn, now: datetime, field: str = "occurred_at") -> None:
    if scan.occurred_at > now + FUTURE_SKEW:
        raise Unprocessable(
            "The scan's time is in the future.",
            errors=[{"field": field, "type": "future", "message": "more than 10 minutes ahead"}],
        )


def _request(scan: ScanIn, **ref: str | None) -> service.ScanRequest:
    return service.ScanRequest(
        kind=scan.kind,
        location=scan.location,
        lat=scan.lat,
        lon=scan.lon,
        occurred_at=scan.occurred_at,
        idempotency_key=scan.idempotency_key,
        note=scan.note,
        **ref,
    )


# --- routes (literal segments before /<id>) -------------------------------------------------

EXPORT_COLUMNS = (
    "id",
    "tracking_number",
    "status",
    "late",
    "service_level",
    "weight_kg",
    "sender",
    "recipient",
    "origin_address",
    "origin_lat",
    "origin_lon",
    "origin_region",
    "destination_address",
    "destination_lat",
    "destination_lon",
    "destination_region",
    "promised_by",
    "picked_up_at",
    "delivered_at",
    "transit_seconds",
    "last_scan_at",
    "created_at",
    "updated_at",
    "version",
)


def _csv_lines(rows: Iterator[model.Package], now: datetime) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    chunk = 0
    for p in rows:
        values = {**vars(p), "late": p.late(now), "transit_seconds": p.transit_seconds}
        writer.writerow(
            [
                ""
                if values[c] is None
                else json_default(values[c])
                if isinstance(values[c], datetime)
                else values[c]
                for c in EXPORT_COLUMNS
            ]
        )
        chunk += 1
        if chunk == 500:  # a few tens of kB per write: fewer, larger chunks on the wire
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
            chunk = 0
    yield buf.getvalue()


def _ndjson_lines(rows: Iterator[model.Package], now: datetime) -> Iterator[str]:
    lines: list[str] = []
    for p in rows:
        # the fields of PackageOut without validating a model per row (a million rows); the
        # integration test holds an exported line equal to the API's answer
        fields = package_fields(p, now)
        lines.append(json.dumps(fields, default=json_default, separators=(",", ":")))
        if len(lines) == 500:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"


@app.get("/api/packages/export")
@describe("Export packages (CSV or NDJSON, streamed)", query=ExportQuery)
def export_packages() -> flask.Response:
    """Every package matching the list filters, newest first, as `text/csv` (a header row,
    then one row per package) or `application/x-ndjson` (one package object per line),
    streamed from a server-side cursor with flat memory, as an attachment."""
    params = query(ExportQuery)
    now = datetime.now(UTC)
    rows = service.export_packages(**params.filters())
    first = next(rows, None)  # run the query now: a database error is still a problem+json

    def chained() -> Iterator[model.Package]:
        if first is not None:
            yield first
            yield from rows

    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if params.format == "csv":
        stream, mimetype = _csv_lines(chained(), now), "text/csv"
    else:
        stream, mimetype = _ndjson_lines(chained(), now), "application/x-ndjson"
    resp = flask.Response(stream, mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="packages-{stamp}.{params.format}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@app.get("/api/packages")
@describe("List and search packages", query=PackageQuery, response=Page[PackageOut])
def list_packages() -> flask.Response:
    """Packages, newest first, filtered by `status`, `service_level`, `origin_region`,
    `destination_region`, promise range and `late`, searched by `q` (tracking number or
    recipient), a page at a time (`next_cursor`)."""
    params = query(PackageQuery)
    keyset = params.keyset(datetime, str)
    found = service.list_packages(after=keyset, limit=params.limit + 1, **params.filters())
    now = datetime.now(UTC)
    return json_response(
        page(
            found,
            params.limit,
            key=lambda p: (p.created_at, p.id),
            shape=lambda p: package_out(p, now),
        )
    )


@app.post("/api/packages")
@describe(
    "Create a package (operator, manager)", request=PackageCreate, response=PackageOut, status=201
)
@sauth.require_roles("operator", "manager")
def create_package() -> flask.Response:
    """Register a package (status created). Without `tracking_number` an S10 number is
    generated; a taken one is 409."""
    data = body(PackageCreate)
    package = service.create_package(
        tracking_number=data.tracking_number, actor=_actor(), **data.fields()
    )
    return json_response(
        package_out(package), 201, headers={"Location": f"/api/packages/{package.id}"}
    )


@app.get("/api/packages/<uuid:package_id>")
@describe("One package", response=PackageOut)
def get_package(package_id: UUID) -> flask.Response:
    """One package by id."""
    return json_response(package_out(service.get_package(str(package_id))))


@app.put("/api/packages/<uuid:package_id>")
@describe("Edit a package (manager)", request=PackageUpdate, response=PackageOut)
@sauth.require_roles("manager")
def update_package(package_id: UUID) -> flask.Response:
    """Change the given fields and/or move the status by hand (`status`). 409 for a closed
    package, for sender/origin once picked up, for a move the lifecycle does not allow
    (`allowed` lists those it does) and when `version` is not the current one."""
    data = body(PackageUpdate)
    package = service.update_package(
        str(package_id),
        data.changes(),
        status=data.status,
        expected_version=data.version,
        actor=_actor(),
    )
    return json_response(package_out(package))


@app.delete("/api/packages/<uuid:package_id>")
@describe("Cancel a package (manager)", status=204)
@sauth.require_roles("manager")
def cancel_package(package_id: UUID) -> flask.Response:
    """Cancel a package that has not been picked up yet (the package and its history stay;
    its status becomes cancelled). 409 naming the allowed moves otherwise."""
    service.cancel_package(str(package_id), actor=_actor())
    return flask.Response(status=204)


@app.post("/api/packages/<uuid:package_id>/events")
@describe("Record a scan (operator, manager)", request=ScanIn, response=ScanOut, status=201)
@sauth.require_roles("operator", "manager")
def record_scan(package_id: UUID) -> flask.Response:
    """Record a tracking event. It moves the package's status when the lifecycle allows it;
    an older scan than the latest is kept without moving the status back; an impossible scan
    (e.g. on a cancelled package) is 409 with `allowed_kinds`. The same `idempotency_key`
    again answers the first result (`Idempotent-Replayed: true`); with other values, 422."""
    data = body(ScanIn)
    _check_clock(data, datetime.now(UTC))
    (result,) = service.record_scans([_request(data, package_id=str(package_id))], actor=_actor())
    if result.problem is not None:
        raise result.problem
    assert result.scan is not None
    headers = {"Location": f"/api/packages/{package_id}/events"}
    if result.outcome == "duplicate":
        headers["Idempotent-Replayed"] = "true"
    return json_response(scan_out(result.scan), 201, headers=headers)


class TimelineQuery(PageQuery):
    pass


@app.get("/api/packages/<uuid:package_id>/events")
@describe("Scans of a package, in time order", query=TimelineQuery, response=Page[ScanOut])
def list_scans(package_id: UUID) -> flask.Response:
    """The package's tracking events ordered by `occurred_at` (the scanner's time), whatever
    order they arrived in, a page at a time."""
    params = query(TimelineQuery)
    scans = service.timeline(
        str(package_id), after=params.keyset(datetime, str), limit=params.limit + 1
    )
    return json_response(
        page(scans, params.limit, key=lambda s: (s.occurred_at, s.id), shape=scan_out)
    )


@app.post("/api/tracking-events:batch")
@describe("Record up to 1,000 scans (operator, manager)", request=ScanBatchIn, response=BatchOut)
@sauth.require_roles("operator", "manager")
def record_batch() -> flask.Response:
    """Bulk intake: each scan is accepted, a duplicate (its idempotency key was seen: the
    stored scan is answered) or refused with its own problem (invalid, unknown package,
    impossible, key reused); the accepted ones are committed together. Scans of one package
    are applied in `occurred_at` order. More than 1,000 scans: 422; a body over the size
    limit: 413."""
    envelope = body(_ScanBatchEnvelope)
    now = datetime.now(UTC)
    parsed: list[tuple[int, service.ScanRequest]] = []
    items: list[dict[str, Any] | None] = [None] * len(envelope.scans)
    for i, raw in enumerate(envelope.scans):
        try:
            scan = BatchScanIn.model_validate(raw)
            _check_clock(scan, now)
        except (ValidationError, Unprocessable) as exc:
            items[i] = {"index": i, "outcome": "refused", "problem": _problem_out(exc)}
            continue
        ref = (
            {"package_id": str(scan.package_id)}
            if scan.package_id
            else {"tracking_number": scan.tracking_number}
        )
        parsed.append((i, _request(scan, **ref)))
    results = service.record_scans([r for _, r in parsed], actor=_actor()) if parsed else []
    for (i, _), result in zip(parsed, results, strict=True):
        item: dict[str, Any] = {"index": i, "outcome": result.outcome}
        if result.scan is not None:
            item["scan"] = scan_out(result.scan)
        if result.problem is not None:
            item["problem"] = _problem_out(result.problem)
        items[i] = item
    done = [x for x in items if x is not None]
    counts = {
        k: sum(1 for x in done if x["outcome"] == k) for k in ("accepted", "duplicate", "refused")
    }
    return json_response(
        {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicate"],
            "refused": counts["refused"],
            "results": done,
        }
    )


@app.get("/api/logistics/stats")
@describe("Logistics stats", query=StatsQuery, response=StatsOut)
def get_stats() -> flask.Response:
    """Counts by status and late packages on their way (now); over the UTC days `from`..`to`
    (default the last 30): deliveries and the on-time rate, mean/min/max transit time (pickup
    to delivery) per lane (origin region -> destination region) and per service level, and
    exception scans per day. Computed in SQL."""
    params = query(StatsQuery)
    day_from, day_to = params.days()
    return json_response(service.stats(day_from=day_from, day_to=day_to))
