"""HTTP routes of agents-api (/api/agents): start investigations and analyses, read them back.

Any authenticated user (viewers included) reads; starting an investigation or an analysis needs
the operator role (admin passes everywhere). Starting answers 202 with the queued document and
its `Location`: the work runs in agents-worker, fed by `investigation.requested` /
`analysis.requested`; poll the document until its status is completed or failed.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import flask
from pydantic import (
    AfterValidator,
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from functions.agents import model, service
from shared import auth as sauth
from shared.http import (
    ApiModel,
    OutModel,
    Page,
    PageQuery,
    body,
    create_app,
    describe,
    json_response,
    page,
    query,
)

app = create_app("agents")

MAX_DIFF_CHARS = 900_000  # under the gateway's 1 MiB body limit, with room for JSON escaping
REPOSITORY = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9._-]{1,100}$"
SHA = r"^[0-9a-fA-F]{7,64}$"
PACKAGE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"

UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(lambda v: v.astimezone(UTC)),
    Field(description="RFC 3339 with an offset; read in UTC."),
]
Repository = Annotated[
    str, StringConstraints(pattern=REPOSITORY), Field(examples=["octo-org/switchyard"])
]
Sha = Annotated[str, StringConstraints(pattern=SHA), Field(description="7 to 64 hex digits")]
PackageId = Annotated[str, StringConstraints(pattern=PACKAGE_ID)]


class StopIn(ApiModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    window_start: UtcDatetime | None = Field(None, description="Arrive no earlier (wait).")
    window_end: UtcDatetime | None = Field(None, description="Arrive no later, if at all possible.")
    service_minutes: int = Field(0, ge=0, le=1440, description="Time spent at the stop.")

    @model_validator(mode="after")
    def _window(self) -> StopIn:
        if self.window_start and self.window_end and self.window_start > self.window_end:
            raise ValueError("window_start must not be after window_end")
        return self


class InvestigationCreate(ApiModel):
    """`anomaly`, `delay` and `eta` investigate a package (`package_id`); `route` orders
    `stops` (the first is where the vehicle starts) to minimise distance, respecting their time
    windows when given, leaving at `departure_at` (default: now)."""

    # `_fits_kind`, said in the schema.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"kind": {"const": "route"}}, "required": ["kind"]},
            "then": {"required": ["stops"], "properties": {"stops": {"type": "array"}}},
            "else": {
                "required": ["package_id"],
                "properties": {
                    "package_id": {"type": "string"},
                    "stops": {"type": "null"},
                    "departure_at": {"type": "null"},
                    "return_to_start": {"const": False},
                },
            },
        }
    )

    kind: model.Kind
    package_id: PackageId | None = None
    stops: list[StopIn] | None = Field(None, min_length=2, max_length=model.MAX_STOPS)
    departure_at: UtcDatetime | None = None
    return_to_start: bool = False

    @model_validator(mode="after")
    def _fits_kind(self) -> InvestigationCreate:
        if self.kind == "route":
            if not self.stops:
                raise ValueError("a route investigation needs `stops` (at least two)")
        else:
            if not self.package_id:
                raise ValueError(f"an {self.kind} investigation needs `package_id`")
            if self.stops is not None or self.departure_at is not None or self.return_to_start:
                raise ValueError("`stops`, `departure_at` and `return_to_start` are for routes")
        return self


class CodeAnalysisIn(ApiModel):
    """A unified diff (as `git diff` or `git show` prints it); the commit message and where it
    comes from are optional context."""

    diff: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_DIFF_CHARS, strip_whitespace=False)
    ] = Field(description="Scanned for secrets; never stored, never echoed.")
    message: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    repository: Repository | None = None
    sha: Sha | None = None


class CommitAnalysisIn(ApiModel):
    """A commit source recorded (the agents keep a copy from `commit.recorded`)."""

    repository: Repository
    sha: Sha


class InvestigationQuery(PageQuery):
    package_id: PackageId | None = Field(None, description="Only this package's.")
    kind: model.Kind | None = None


class InteractionQuery(PageQuery):
    kind: Literal["anomaly", "delay", "route", "eta", "commit", "code"] | None = None
    status: model.Status | None = None
    repository: Repository | None = Field(None, description="Analyses of this repository.")
    package_id: PackageId | None = Field(None, description="Investigations of this package.")

    @model_validator(mode="after")
    def _one_subject(self) -> InteractionQuery:
        if self.repository and self.package_id:
            raise ValueError("filter by repository or by package_id, not both")
        return self


# --- responses -------------------------------------------------------------------------------


class FindingOut(OutModel):
    code: str
    severity: model.Severity
    message: str
    evidence: dict[str, Any]


class NarrativeOut(OutModel):
    """A hosted model's retelling of the findings (present only when the deployment has a
    narrative model configured); the findings never depend on it."""

    status: Literal["written", "unavailable"]
    text: str | None = Field(description="The narrative; null when unavailable.")
    model: str = Field(description="The Vertex AI model asked, e.g. gemini-2.5-flash.")
    reason: str | None = Field(description="Why the narrative is unavailable.")


class InvestigationOut(OutModel):
    id: str
    kind: model.Kind
    package_id: str | None
    stops: list[dict[str, Any]]
    departure_at: datetime | None
    return_to_start: bool
    status: model.Status
    findings: list[FindingOut]
    summary: str | None
    result: dict[str, Any]
    error: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    narrative: NarrativeOut | None = Field(
        None,
        description="Off by default: null unless a narrative model is configured (then set "
        "when the investigation completes, written or unavailable with the reason).",
    )


class AnalysisOut(OutModel):
    id: str
    kind: model.AnalysisKind
    repository: str | None
    sha: str | None
    message: str | None
    diff_bytes: int
    origin: str = Field(description="api, or commit.recorded for the automatic analysis")
    status: model.Status
    findings: list[FindingOut]
    summary: str | None
    result: dict[str, Any]
    error: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int


class InteractionOut(OutModel):
    type: Literal["investigation", "analysis"]
    id: str
    kind: str
    status: model.Status
    package_id: str | None = None
    repository: str | None = None
    sha: str | None = None
    summary: str | None = None
    top_severity: model.Severity | None = None
    findings: int
    error: str | None = None
    requested_by: str
    created_at: datetime
    finished_at: datetime | None = None


class QueueCounts(OutModel):
    queued: int
    running: int
    completed: int
    failed: int


class StatusOut(OutModel):
    queue_depth: int = Field(description="Queued and running, investigations and analyses.")
    failures: int
    investigations: QueueCounts
    analyses: QueueCounts
    last_results: list[InteractionOut]
    last_failures: list[InteractionOut]


class PlaceOut(OutModel):
    lat: float | None
    lon: float | None
    region: str | None


class ScanOut(OutModel):
    id: str
    kind: str
    occurred_at: datetime
    lat: float | None
    lon: float | None
    location: str | None
    note: str | None


class PackageViewOut(OutModel):
    id: str
    tracking_number: str
    origin: PlaceOut
    destination: PlaceOut
    status: str | None
    promised_at: datetime | None
    delivered_at: datetime | None
    lane: str
    lane_samples: int
    scans: list[ScanOut]


def _investigation(inv: model.Investigation) -> dict[str, Any]:
    return InvestigationOut.model_validate(asdict(inv)).model_dump(mode="json")


def _analysis(a: model.Analysis) -> dict[str, Any]:
    return AnalysisOut.model_validate(asdict(a)).model_dump(mode="json")


def _interaction(doc: dict[str, Any]) -> dict[str, Any]:
    return InteractionOut.model_validate(
        {**doc, "findings": len(doc.get("findings") or [])}
    ).model_dump(mode="json")


def _actor() -> str:
    return sauth.current_user().sub


# --- routes ----------------------------------------------------------------------------------


@app.post("/api/agents/investigations")
@describe(
    "Start an investigation (operator)",
    request=InvestigationCreate,
    response=InvestigationOut,
    status=202,
)
@sauth.require_roles("operator")
def start_investigation() -> flask.Response:
    """Queue an anomaly, delay, eta or route investigation; 202 with the queued document.
    422 naming `package_id` when the agents know no such package (yet)."""
    data = body(InvestigationCreate)
    inv = service.request_investigation(
        kind=data.kind,
        package_id=data.package_id,
        stops=[s.model_dump(mode="json") for s in data.stops] if data.stops else None,
        departure_at=data.departure_at,
        return_to_start=data.return_to_start,
        actor=_actor(),
    )
    return json_response(
        _investigation(inv), 202, headers={"Location": f"/api/agents/investigations/{inv.id}"}
    )


@app.get("/api/agents/investigations")
@describe("List investigations", query=InvestigationQuery, response=Page[InvestigationOut])
def list_investigations() -> flask.Response:
    """Investigations newest first, optionally of one package and/or kind, a page at a time."""
    params = query(InvestigationQuery)
    items = service.list_investigations(
        package_id=params.package_id,
        kind=params.kind,
        after=params.keyset(datetime, str),
        limit=params.limit + 1,
    )
    return json_response(
        page(items, params.limit, key=lambda i: (i.created_at, i.id), shape=_investigation)
    )


@app.get("/api/agents/investigations/<uuid:inv_id>")
@describe("One investigation", response=InvestigationOut)
def get_investigation(inv_id: UUID) -> flask.Response:
    """Status (queued, running, completed, failed) and, once completed, the findings."""
    return json_response(_investigation(service.get_investigation(str(inv_id))))


@app.post("/api/agents/analyze/code")
@describe("Analyse a diff (operator)", request=CodeAnalysisIn, response=AnalysisOut, status=202)
@sauth.require_roles("operator")
def analyze_code() -> flask.Response:
    """Queue the analysis of a unified diff: type and scope (from `message`), size, risk,
    secrets in added lines (place and kind only), languages. 422 when it is not a diff."""
    data = body(CodeAnalysisIn)
    a = service.request_code_analysis(
        diff=data.diff,
        message=data.message,
        repository=data.repository,
        sha=data.sha,
        actor=_actor(),
    )
    return json_response(_analysis(a), 202, headers={"Location": f"/api/agents/analyses/{a.id}"})


@app.post("/api/agents/analyze/commit")
@describe(
    "Analyse a recorded commit (operator)",
    request=CommitAnalysisIn,
    response=AnalysisOut,
    status=202,
)
@sauth.require_roles("operator")
def analyze_commit() -> flask.Response:
    """Queue a new analysis of a commit the agents have from `commit.recorded` (every recorded
    commit is also analysed automatically). 422 naming `sha` when they have no such commit."""
    data = body(CommitAnalysisIn)
    a = service.request_commit_analysis(repository=data.repository, sha=data.sha, actor=_actor())
    return json_response(_analysis(a), 202, headers={"Location": f"/api/agents/analyses/{a.id}"})


@app.get("/api/agents/analyses/<uuid:analysis_id>")
@describe("One analysis", response=AnalysisOut)
def get_analysis(analysis_id: UUID) -> flask.Response:
    """Status and, once completed, the findings of an analysis."""
    return json_response(_analysis(service.get_analysis(str(analysis_id))))


@app.get("/api/agents/status")
@describe("Agents status", response=StatusOut)
def get_status() -> flask.Response:
    """Queue depth (queued + running), counts per status, the latest results and failures."""
    out = service.status()
    out["last_results"] = [_interaction(d) for d in out["last_results"]]
    out["last_failures"] = [_interaction(d) for d in out["last_failures"]]
    return json_response(StatusOut.model_validate(out).model_dump(mode="json"))


@app.get("/api/agents/interactions")
@describe("Investigations and analyses", query=InteractionQuery, response=Page[InteractionOut])
def list_interactions() -> flask.Response:
    """Every investigation and analysis, newest first, filtered by kind, status, repository
    (analyses) or package (investigations), a page at a time."""
    params = query(InteractionQuery)
    docs = service.interactions(
        kind=params.kind,
        status_=params.status,
        repository=params.repository,
        package_id=params.package_id,
        after=params.keyset(datetime, str),
        limit=params.limit + 1,
    )
    return json_response(
        page(docs, params.limit, key=lambda d: (d["created_at"], d["id"]), shape=_interaction)
    )


@app.get("/api/agents/packages/<package_id>")
@describe("What the agents know of a package", response=PackageViewOut)
def get_package(package_id: str) -> flask.Response:
    """The read model the investigations use: the package's facts, its scans in time order
    and how many delivered packages its lane has on record."""
    if not re.match(PACKAGE_ID, package_id):
        raise model.AgentsError("No such package.", status=404, title="Not Found")
    view = service.package_view(package_id)
    pkg = view["package"]
    out = PackageViewOut.model_validate(
        {
            **asdict(pkg),
            "lane": view["lane"],
            "lane_samples": view["lane_samples"],
            "scans": [asdict(s) for s in view["scans"]],
        }
    )
    return json_response(out.model_dump(mode="json"))
