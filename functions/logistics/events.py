"""Events of the logistics context (one Pub/Sub topic each; the audit trail stores them all).

Every payload carries the package's lane facts (`_Lane`: ids, tracking number, regions and
coordinates of origin and destination, service level, promise, status, version), so a
consumer (agents' delay and anomaly analysis, realtime's feeds) keeps a local read model from
events alone and never reads logistics' tables. Names and people (sender, recipient, street
addresses) stay out of events: ask the API. Timestamps are RFC 3339 UTC strings. These schemas
are a contract: add optional fields only; anything else is a new `schema_version`.

- `package.created`, `package.updated` (with `changed`): the package after the change.
- `package.status.changed`: every status move, by a scan (`scan_id`, `scan_kind`) or by a
  person (`reason` manual/cancelled), with `occurred_at` of the move (the scan's time).
- `package.delivered`: the delivery, with `delivered_at`, `picked_up_at`, `transit_seconds` and
  `on_time`.
- `package.exception.raised`: an exception scan that moved the package (where, when, note).
- `tracking.event.recorded`: every stored scan, whether it moved the status or not
  (`out_of_order`: older than the package's latest scan).
"""

from __future__ import annotations

from typing import ClassVar

from shared.events import Event


class _Lane(Event):
    package_id: str
    tracking_number: str
    origin_region: str
    destination_region: str
    origin_lat: float
    origin_lon: float
    destination_lat: float
    destination_lon: float
    service_level: str
    weight_kg: float
    promised_by: str | None  # RFC 3339 UTC
    status: str  # after the change
    version: int


class PackageCreated(_Lane):
    event_type: ClassVar[str] = "package.created"
    schema_version: ClassVar[int] = 1

    created_at: str


class PackageUpdated(_Lane):
    event_type: ClassVar[str] = "package.updated"
    schema_version: ClassVar[int] = 1

    changed: list[str]


class PackageStatusChanged(_Lane):
    event_type: ClassVar[str] = "package.status.changed"
    schema_version: ClassVar[int] = 1

    old: str
    new: str
    reason: str  # "scan", "manual" or "cancelled"
    occurred_at: str  # when the move happened (the scan's time for a scan)
    scan_id: str | None
    scan_kind: str | None
    lat: float | None  # where the moving scan was taken
    lon: float | None
    actor: str


class PackageDelivered(_Lane):
    event_type: ClassVar[str] = "package.delivered"
    schema_version: ClassVar[int] = 1

    scan_id: str
    location: str
    lat: float
    lon: float
    delivered_at: str
    picked_up_at: str | None
    transit_seconds: float | None
    on_time: bool | None  # None without a promise


class PackageExceptionRaised(_Lane):
    event_type: ClassVar[str] = "package.exception.raised"
    schema_version: ClassVar[int] = 1

    scan_id: str
    location: str
    lat: float
    lon: float
    occurred_at: str
    note: str | None


class TrackingEventRecorded(_Lane):
    event_type: ClassVar[str] = "tracking.event.recorded"
    schema_version: ClassVar[int] = 1

    scan_id: str
    kind: str
    location: str
    lat: float
    lon: float
    occurred_at: str
    recorded_at: str
    note: str | None
    status_from: str
    status_to: str | None  # None: the scan did not move the status
    out_of_order: bool
