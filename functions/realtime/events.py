"""Copies of what realtime reads from other contexts' events (it publishes none).

Each copy names only the fields the live documents need; `tests/unit/test_event_contracts.py`
checks them against the publishers' schemas (logistics, agents).
"""

from __future__ import annotations

from typing import Literal

from shared.events import ConsumedModel, consumes

LOGISTICS_EVENTS = (
    "package.created",
    "package.status.changed",
    "package.delivered",
    "package.exception.raised",
    "tracking.event.recorded",
)


@consumes(*LOGISTICS_EVENTS)
class PackageFacts(ConsumedModel):
    """The package after the change (every logistics event carries it)."""

    package_id: str
    tracking_number: str
    origin_region: str
    destination_region: str
    service_level: str
    promised_by: str | None
    status: str
    version: int


@consumes("package.status.changed")
class StatusChangeFacts(ConsumedModel):
    old: str
    new: str
    occurred_at: str
    lat: float | None
    lon: float | None


@consumes("package.delivered")
class DeliveredFacts(ConsumedModel):
    lat: float
    lon: float
    delivered_at: str
    on_time: bool | None


@consumes("package.exception.raised")
class ExceptionFacts(ConsumedModel):
    location: str
    lat: float
    lon: float
    occurred_at: str
    note: str | None


@consumes("tracking.event.recorded")
class ScanFacts(ConsumedModel):
    scan_id: str
    kind: str
    location: str
    lat: float
    lon: float
    occurred_at: str
    out_of_order: bool


@consumes("investigation.completed")
class InvestigationFacts(ConsumedModel):
    investigation_id: str
    kind: str
    package_id: str | None
    status: Literal["completed", "failed"]
    findings: int
    top_severity: str | None
    summary: str
