"""Logistics' domain rules in plain Python: the package lifecycle, what a scan does to a
package, tracking numbers (UPU S10 with its check digit), lateness and transit time, and the
context's errors. No I/O here. The rules are docs/decisions/0018-package-lifecycle-and-scans.md:

    created ──pickup──> picked_up ──departure/arrival──> in_transit ──out_for_delivery──>
    out_for_delivery ──delivery──> delivered (terminal)
    any open status ──exception──> exception ──(the next scan)──> picked_up | in_transit | ...
    created ──cancel──> cancelled (terminal; only before pickup)
    in_transit | out_for_delivery | exception ──return──> returned (terminal)

A scan names a target status (`SCAN_TARGET`). A scan at or after the package's latest scan
moves the status when the lifecycle allows it (same status: recorded, nothing moves). A scan
older than the latest one is history arriving late: recorded, never moves the status back.
A scan the lifecycle cannot explain (anything on a cancelled package, a newer pickup of a
delivered one) is refused with 409 naming what the package still accepts.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, get_args

from shared.errors import Conflict, NotFound, Problem, Unprocessable

Status = Literal[
    "created",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "exception",
    "returned",
    "cancelled",
]
ScanKind = Literal["pickup", "arrival", "departure", "out_for_delivery", "delivery", "exception"]
ServiceLevel = Literal["economy", "standard", "express", "overnight"]

STATUSES: tuple[str, ...] = get_args(Status)
SCAN_KINDS: tuple[str, ...] = get_args(ScanKind)
SERVICE_LEVELS: tuple[str, ...] = get_args(ServiceLevel)
INITIAL_STATUS = "created"
TERMINAL = frozenset({"delivered", "returned", "cancelled"})
# Not expected to move any more for lateness: a late open package is one still on its way.
CLOSED = TERMINAL

SCAN_TARGET: dict[str, str] = {
    "pickup": "picked_up",
    "arrival": "in_transit",
    "departure": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "delivery": "delivered",
    "exception": "exception",
}

# status -> the statuses it may move to (scans and manual moves alike). Lenient where real
# scanners are: a missed pickup scan (created -> in_transit) or a counter delivery
# (in_transit -> delivered) still moves the package.
MOVES: dict[str, tuple[str, ...]] = {
    "created": ("picked_up", "in_transit", "exception", "cancelled"),
    "picked_up": ("in_transit", "out_for_delivery", "delivered", "exception"),
    "in_transit": ("out_for_delivery", "delivered", "exception", "returned"),
    "out_for_delivery": ("in_transit", "delivered", "exception", "returned"),
    "exception": ("picked_up", "in_transit", "out_for_delivery", "delivered", "returned"),
    "delivered": (),
    "returned": (),
    "cancelled": (),
}
# What a person may set by hand (PUT status / DELETE): cancel, return to sender, flag or
# clear an exception. Pickup, out-for-delivery and delivery are facts only a scan records.
MANUAL_TARGETS = frozenset({"in_transit", "exception", "returned", "cancelled"})

EDITABLE_FIELDS = (
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
    "service_level",
    "weight_kg",
    "promised_by",
)
# Where the package comes from is a fact once it has been picked up.
ORIGIN_FIELDS = ("sender", "origin_address", "origin_lat", "origin_lon", "origin_region")

REGION = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,39}$")
REGION_ANY_CASE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"  # the request schema's (upper-cased)
TRACKING_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9-]{5,39}$")
TRACKING_NUMBER_ANY_CASE = r"^[A-Za-z0-9][A-Za-z0-9-]{5,39}$"  # the request schema's
S10 = re.compile(r"^([A-Z]{2})(\d{8})(\d)([A-Z]{2})$")
S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
GENERATED_PREFIX, GENERATED_SUFFIX = "SY", "SW"


# --- errors ------------------------------------------------------------------------------


class LogisticsError(Problem):
    """Base of every error the logistics context raises (problem+json via shared.http)."""


class PackageNotFound(LogisticsError, NotFound):
    def __init__(self, ref: str | None = None) -> None:
        super().__init__(f"No package {ref}." if ref else "No such package.")


class TrackingNumberTaken(LogisticsError, Conflict):
    def __init__(self, number: str) -> None:
        super().__init__(f"A package with tracking number {number} already exists.")


class ConcurrentChange(LogisticsError, Conflict):
    def __init__(self) -> None:
        super().__init__("The package was changed concurrently; read it again and retry.")


class PackageClosed(LogisticsError, Conflict):
    def __init__(self, status: str) -> None:
        super().__init__(f"The package is {status}; a closed package cannot be edited.")


class FieldLocked(LogisticsError, Conflict):
    """An edit the package's status no longer accepts."""


class InvalidTransition(LogisticsError, Conflict):
    """A status move the lifecycle does not allow; `allowed` lists the statuses it does."""

    def __init__(self, status: str, target: str, options: list[str] | None = None) -> None:
        options = list(MOVES[status]) if options is None else options
        shown = ", ".join(options) or "none"
        why = " (only a scan records it)" if target in MOVES[status] else ""
        super().__init__(
            f"A package that is {status} cannot be moved to {target} by hand{why}; "
            f"allowed: {shown}."
            if why
            else f"A package that is {status} cannot move to {target}; allowed: {shown}.",
            allowed=options,
        )


class ImpossibleScan(LogisticsError, Conflict):
    """A scan the package's lifecycle cannot explain; `allowed_kinds` lists the scan kinds the
    package accepts now (their targets are `allowed`)."""

    def __init__(self, status: str, kind: str) -> None:
        kinds = allowed_scan_kinds(status)
        shown = ", ".join(kinds) or "none"
        super().__init__(
            f"A {kind} scan is impossible for a package that is {status}; "
            f"scans it accepts now: {shown}.",
            allowed=list(MOVES[status]),
            allowed_kinds=kinds,
        )


class IdempotencyKeyReused(LogisticsError, Unprocessable):
    def __init__(self, key: str) -> None:
        super().__init__(
            f"The idempotency key {key!r} was already used for a different scan.",
            errors=[
                {
                    "field": "idempotency_key",
                    "type": "reused",
                    "message": "already used for a scan with other values",
                }
            ],
        )


class BadCheckDigit(LogisticsError, Unprocessable):
    def __init__(self, number: str, expected: int) -> None:
        super().__init__(
            f"{number} is not a valid S10 tracking number: its check digit should be {expected}.",
            errors=[
                {"field": "tracking_number", "type": "check_digit", "message": "bad check digit"}
            ],
        )


# --- tracking numbers ----------------------------------------------------------------------


def s10_check_digit(serial: str) -> int:
    """The UPU S10 check digit of an 8-digit serial (weights 8 6 4 2 3 5 9 7, mod 11)."""
    if len(serial) != 8 or not serial.isdigit():
        raise ValueError("an S10 serial is 8 digits")
    total = sum(int(d) * w for d, w in zip(serial, S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)


def new_tracking_number(serial: int | None = None) -> str:
    """A fresh S10 number `SY<8 digits><check>SW` (random serial unless given)."""
    number = f"{secrets.randbelow(10**8) if serial is None else serial:08d}"
    return f"{GENERATED_PREFIX}{number}{s10_check_digit(number)}{GENERATED_SUFFIX}"


def normalize_tracking_number(value: str) -> str:
    """Upper-case, 6-40 of [A-Z0-9-]; an S10-shaped number must carry its right check digit."""
    number = value.strip().upper()
    if not TRACKING_NUMBER.match(number):
        raise ValueError(
            "6-40 characters: letters, digits and '-', starting with a letter or digit"
        )
    return number


def check_tracking_number(number: str) -> None:
    """BadCheckDigit (422) when `number` has the S10 shape and a wrong check digit."""
    m = S10.match(number)
    if m and int(m.group(3)) != s10_check_digit(m.group(2)):
        raise BadCheckDigit(number, s10_check_digit(m.group(2)))


def normalize_region(value: str) -> str:
    region = value.strip().upper()
    if not REGION.match(region):
        raise ValueError("1-40 characters: letters, digits, '_' and '-'")
    return region


# --- lifecycle -----------------------------------------------------------------------------


def allowed_scan_kinds(status: str) -> list[str]:
    """Scan kinds a package in `status` accepts now, in SCAN_KINDS order (a scan that keeps the
    status, such as another arrival while in transit, counts as accepted)."""
    if status == "cancelled":
        return []
    return [k for k in SCAN_KINDS if SCAN_TARGET[k] == status or SCAN_TARGET[k] in MOVES[status]]


def check_move(status: str, target: str) -> None:
    """InvalidTransition (409, naming the allowed moves) unless `status -> target` is allowed."""
    if target not in MOVES[status]:
        raise InvalidTransition(status, target)


def manual_moves(status: str) -> list[str]:
    """The statuses a person may move a package in `status` to (MOVES order)."""
    return [t for t in MOVES[status] if t in MANUAL_TARGETS]


def check_manual_move(status: str, target: str) -> None:
    """InvalidTransition (409, naming the manual moves allowed now) unless a person may move a
    package from `status` to `target`."""
    if target not in manual_moves(status):
        raise InvalidTransition(status, target, manual_moves(status))


@dataclass(frozen=True)
class PackageState:
    """What a scan needs to know of its package (and what it changes)."""

    status: str
    last_scan_at: datetime | None = None
    picked_up_at: datetime | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class ScanOutcome:
    """What a scan does: the status before and after (None when it does not move it), why it
    does not move it, and the package's new state."""

    status_from: str
    status_to: str | None
    note: str | None
    out_of_order: bool
    state: PackageState

    @property
    def moved(self) -> bool:
        return self.status_to is not None

    @property
    def status_after(self) -> str:
        return self.status_to or self.status_from


def apply_scan(state: PackageState, kind: str, occurred_at: datetime) -> ScanOutcome:
    """The effect of a `kind` scan taken at `occurred_at` on a package in `state`, or
    ImpossibleScan (409). See the module docstring for the rules."""
    status = state.status
    if status == "cancelled":
        raise ImpossibleScan(status, kind)
    target = SCAN_TARGET[kind]
    out_of_order = state.last_scan_at is not None and occurred_at < state.last_scan_at
    latest = occurred_at if not out_of_order else state.last_scan_at
    new = replace(state, last_scan_at=latest)
    if kind == "pickup" and (state.picked_up_at is None or occurred_at < state.picked_up_at):
        new = replace(new, picked_up_at=occurred_at)
    if out_of_order:
        # History arriving late: kept, and it may tell when the pickup really was; the
        # status never goes back.
        return ScanOutcome(status, None, "older than the latest scan", True, new)
    if target == status:
        return ScanOutcome(status, None, f"already {status}", False, new)
    if target not in MOVES[status]:
        raise ImpossibleScan(status, kind)
    if new.picked_up_at is None and status == INITIAL_STATUS:
        # the first scan of a package whose pickup scan was missed: its journey starts here
        new = replace(new, picked_up_at=occurred_at)
    if target == "delivered":
        new = replace(new, delivered_at=occurred_at)
    return ScanOutcome(status, target, None, False, replace(new, status=target))


# --- domain objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    id: str
    tracking_number: str
    sender: str
    recipient: str
    origin_address: str
    origin_lat: float
    origin_lon: float
    origin_region: str
    destination_address: str
    destination_lat: float
    destination_lon: float
    destination_region: str
    service_level: str
    weight_kg: float
    promised_by: datetime | None
    status: str
    picked_up_at: datetime | None
    delivered_at: datetime | None
    last_scan_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, row: dict[str, Any]) -> Package:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def state(self) -> PackageState:
        return PackageState(self.status, self.last_scan_at, self.picked_up_at, self.delivered_at)

    def late(self, now: datetime) -> bool:
        return is_late(self.status, self.promised_by, self.delivered_at, now)

    @property
    def transit_seconds(self) -> float | None:
        return transit_seconds(self.picked_up_at, self.delivered_at)


@dataclass(frozen=True)
class Scan:
    """A stored tracking event, with what it did to its package when it was recorded."""

    id: str
    package_id: str
    kind: str
    location: str
    lat: float
    lon: float
    note: str | None
    occurred_at: datetime
    recorded_at: datetime
    idempotency_key: str
    actor: str
    status_from: str
    status_to: str | None
    out_of_order: bool

    @classmethod
    def of(cls, row: dict[str, Any]) -> Scan:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    @property
    def moved(self) -> bool:
        return self.status_to is not None

    @property
    def status_after(self) -> str:
        return self.status_to or self.status_from

    def same_as(
        self,
        package_id: str,
        kind: str,
        occurred_at: datetime,
        lat: float,
        lon: float,
        location: str,
        note: str | None,
    ) -> bool:
        """True when a re-sent scan carries the values this one was stored with."""
        return (
            self.package_id,
            self.kind,
            self.occurred_at,
            self.lat,
            self.lon,
            self.location,
            self.note,
        ) == (package_id, kind, occurred_at, lat, lon, location, note)


# --- facts ---------------------------------------------------------------------------------


def is_late(
    status: str, promised_by: datetime | None, delivered_at: datetime | None, now: datetime
) -> bool:
    """Delivered after the promise, or still on its way past it (never for returned or
    cancelled packages, nor without a promise)."""
    if promised_by is None or status in ("returned", "cancelled"):
        return False
    if delivered_at is not None:
        return delivered_at > promised_by
    return now > promised_by


def transit_seconds(picked_up_at: datetime | None, delivered_at: datetime | None) -> float | None:
    """Seconds from pickup to delivery (None until both are known)."""
    if picked_up_at is None or delivered_at is None:
        return None
    return (delivered_at - picked_up_at).total_seconds()


def check_edit(status: str, fields: list[str]) -> None:
    """Refuse an edit changing `fields` that a package in `status` does not accept (409)."""
    if status in TERMINAL:
        raise PackageClosed(status)
    locked = [f for f in fields if f in ORIGIN_FIELDS]
    if locked and status != INITIAL_STATUS:
        raise FieldLocked(
            f"{', '.join(locked)} cannot change once the package has been picked up "
            f"(it is {status})."
        )


def changed_fields(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Names of the editable fields whose wanted value differs from the current one, in order."""
    return [f for f in EDITABLE_FIELDS if f in wanted and wanted[f] != current[f]]
