"""Events of the agents context (one Pub/Sub topic each; the audit trail stores them all).

`investigation.requested` and `analysis.requested` are the work orders the API hands to the
worker: they carry the whole request (stops, package, commit) except a diff, which may hold
secrets and so waits in Firestore for the worker instead (only its size and hash travel).
`investigation.completed` and `analysis.completed` say how the work ended (`status` completed
or failed) with its headline figures; the findings themselves are read from the API.
A secret found in a diff is never in an event: only its count.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from shared.events import ConsumedModel, Event, consumes


class StopFacts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    lat: float
    lon: float
    window_start: str | None = None  # RFC 3339 UTC
    window_end: str | None = None
    service_minutes: int = 0


class InvestigationRequested(Event):
    event_type: ClassVar[str] = "investigation.requested"
    schema_version: ClassVar[int] = 1

    investigation_id: str
    kind: Literal["anomaly", "delay", "route", "eta"]
    package_id: str | None
    stops: list[StopFacts] | None
    departure_at: str | None  # route: RFC 3339 UTC
    return_to_start: bool
    requested_by: str
    requested_at: str  # RFC 3339 UTC


class InvestigationCompleted(Event):
    event_type: ClassVar[str] = "investigation.completed"
    schema_version: ClassVar[int] = 1

    investigation_id: str
    kind: str
    package_id: str | None
    status: Literal["completed", "failed"]
    findings: int
    top_severity: str | None
    summary: str
    error: str | None


class AnalysisRequested(Event):
    event_type: ClassVar[str] = "analysis.requested"
    schema_version: ClassVar[int] = 1

    analysis_id: str
    kind: Literal["commit", "code"]
    repository: str | None
    sha: str | None
    message: str | None
    # kind code: the diff waits in Firestore (agents_diffs/{analysis_id}) until analysed; it
    # may hold secrets, so it never travels in an event (nor reaches the audit trail).
    diff_sha256: str | None
    diff_bytes: int
    requested_by: str
    requested_at: str


class AnalysisCompleted(Event):
    event_type: ClassVar[str] = "analysis.completed"
    schema_version: ClassVar[int] = 1

    analysis_id: str
    kind: str
    repository: str | None
    sha: str | None
    status: Literal["completed", "failed"]
    commit_type: str | None
    risk_score: int | None
    risk_level: str | None
    secrets: int
    findings: int
    top_severity: str | None
    summary: str
    error: str | None


# --- copies of what the agents read from other contexts' events ------------------------------


@consumes(
    "package.created",
    "package.updated",
    "package.status.changed",
    "package.delivered",
    "tracking.event.recorded",
)
class PackageFacts(ConsumedModel):
    """The lane facts every logistics event carries (the package after the change)."""

    package_id: str
    tracking_number: str
    origin_region: str
    destination_region: str
    origin_lat: float
    origin_lon: float
    destination_lat: float
    destination_lon: float
    service_level: str
    promised_by: str | None
    status: str
    version: int


@consumes("package.created")
class PackageCreatedFacts(ConsumedModel):
    created_at: str


@consumes("package.delivered")
class PackageDeliveredFacts(ConsumedModel):
    delivered_at: str
    picked_up_at: str | None


@consumes("tracking.event.recorded")
class ScanFacts(ConsumedModel):
    scan_id: str
    kind: str
    location: str
    lat: float
    lon: float
    occurred_at: str
    recorded_at: str
    note: str | None


@consumes("commit.recorded")
class CommitFacts(ConsumedModel):
    repository: str
    sha: str
    message: str
    branch: str | None
    timestamp: str
    added: list[str]
    removed: list[str]
    modified: list[str]
    files_known: bool
    additions: int | None
    deletions: int | None
    url: str | None
