"""HTTP routes of source-api: parse and validate, call the service, shape the answer.

Roles: any authenticated user (viewer and up) reads repositories, commits, statistics,
deliveries and the monitor's status; operators (and up) track a commit by hand; managers and
admins register, change and delete repositories and start, stop and run the monitor. A
webhook secret is accepted on create and on rotation (or generated: then shown once, in that
answer); afterwards only `has_webhook_secret` and its reference (`name@version` in the secret
store) are ever returned.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

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

from functions.source import model, monitor, service
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
    json_response,
    page,
    query,
)
from shared.openapi import responds

app = create_app("source")

DEFAULT_STATS_DAYS = 90

# Patterns: the rules of model.check_owner / check_name / check_branch, stated in the schema
# (without look-arounds: pydantic's regex engine has none); the checks stay.
Owner = Annotated[
    str,
    StringConstraints(min_length=1, max_length=39, pattern=model.OWNER.pattern),
    AfterValidator(model.check_owner),
    Field(examples=["octo-org"]),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=model.NAME_SCHEMA),
    AfterValidator(model.check_name),
    Field(examples=["hello-world"]),
]
Branch = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=model.BRANCH_SCHEMA),
    AfterValidator(model.check_branch),
    Field(json_schema_extra={"not": {"anyOf": [{"pattern": p} for p in model.BRANCH_NEVER]}}),
]
Secret = Annotated[
    str,
    StringConstraints(min_length=16, max_length=256),
    Field(description="The webhook secret set on GitHub (never returned)."),
]
Sha = Annotated[
    str,
    StringConstraints(min_length=40, max_length=64, pattern=model.SHA_ANY_CASE),
    AfterValidator(model.check_sha),
    Field(description="Full commit SHA (40 hex digits; 64 for SHA-256 repositories)."),
]
Path = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
FullName = Annotated[
    str,
    StringConstraints(min_length=3, max_length=140, pattern=r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$"),
    Field(examples=["octo-org/hello-world"]),
]
ConventionalType = Annotated[
    str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9-]*$")
]
UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(lambda v: v.astimezone(UTC)),
    Field(description="RFC 3339 with an offset."),
]


def _split(owner_name: str) -> tuple[str, str]:
    owner, _, name = owner_name.partition("/")
    return owner, name


# --- requests --------------------------------------------------------------------------------


def _given(name: str) -> dict[str, Any]:
    """JSON Schema: `name` is given (a secret, or a flag set)."""
    value = {"type": "string"} if name == "webhook_secret" else {"const": True}
    return {"required": [name], "properties": {name: value}}


def _together(*names: str) -> dict[str, Any]:
    return {"allOf": [_given(n) for n in names]}


class RepositoryCreate(ApiModel):
    # `_one_secret`, stated in the schema
    model_config = ConfigDict(
        json_schema_extra={"not": _together("webhook_secret", "generate_webhook_secret")}
    )

    owner: Owner
    name: Name
    provider: model.Provider = "github"
    default_branch: Branch = "main"
    polling: bool = Field(False, description="Poll GitHub's REST API for missed commits.")
    webhook_secret: Secret | None = None
    generate_webhook_secret: bool = Field(
        False, description="Generate the secret; it is shown once, in this answer."
    )

    @model_validator(mode="after")
    def _one_secret(self) -> RepositoryCreate:
        if self.webhook_secret is not None and self.generate_webhook_secret:
            raise ValueError("give webhook_secret or generate_webhook_secret, not both")
        return self


class RepositoryUpdate(ApiModel):
    """Partial: only the fields given change. A new `webhook_secret` (or
    `generate_webhook_secret`) rotates it; `remove_webhook_secret` stops webhook intake."""

    # `_one_secret`, stated in the schema
    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "anyOf": [
                    _together("webhook_secret", "generate_webhook_secret"),
                    _together("webhook_secret", "remove_webhook_secret"),
                    _together("generate_webhook_secret", "remove_webhook_secret"),
                ]
            }
        }
    )

    # absent or a value, never null (refused in the view): the schema leaves null out
    default_branch: Branch | SkipJsonSchema[None] = None
    polling: bool | SkipJsonSchema[None] = None
    webhook_secret: Secret | None = None
    generate_webhook_secret: bool = False
    remove_webhook_secret: bool = False
    version: int | None = Field(None, ge=1, description="Expected current version (else 409).")

    @model_validator(mode="after")
    def _one_secret(self) -> RepositoryUpdate:
        given = [
            self.webhook_secret is not None,
            self.generate_webhook_secret,
            self.remove_webhook_secret,
        ]
        if sum(given) > 1:
            raise ValueError(
                "give at most one of webhook_secret, generate_webhook_secret, remove_webhook_secret"
            )
        return self


class RepositoryQuery(PageQuery):
    polling: bool | None = Field(None, description="Only repositories with polling on/off.")


class CommitCreate(ApiModel):
    """A commit tracked by hand (it must belong to a tracked repository)."""

    repository: FullName
    sha: Sha
    message: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
    author_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    author_email: Annotated[str, StringConstraints(max_length=320)] | None = None
    author_login: Annotated[str, StringConstraints(max_length=100)] | None = None
    timestamp: UtcDatetime
    branch: Branch | None = None
    added: list[Path] = Field(default_factory=list, max_length=10_000)
    removed: list[Path] = Field(default_factory=list, max_length=10_000)
    modified: list[Path] = Field(default_factory=list, max_length=10_000)
    additions: int | None = Field(None, ge=0)
    deletions: int | None = Field(None, ge=0)
    url: Annotated[str, StringConstraints(max_length=2000)] | None = None

    def facts(self) -> model.CommitFacts:
        return model.CommitFacts(
            sha=self.sha,
            message=self.message,
            author_name=self.author_name,
            author_email=self.author_email,
            author_login=self.author_login,
            committed_at=self.timestamp,
            url=self.url,
            added=tuple(self.added),
            removed=tuple(self.removed),
            modified=tuple(self.modified),
            additions=self.additions,
            deletions=self.deletions,
        )


class _CommitFilters(ApiModel):
    author: Annotated[str, StringConstraints(max_length=320)] | None = Field(
        None, description="Author e-mail (or GitHub login when git recorded no e-mail)."
    )
    branch: Branch | None = Field(None, description="Commits pushed to this branch.")
    since: UtcDatetime | None = Field(None, description="committed_at >= this.")
    until: UtcDatetime | None = Field(None, description="committed_at < this.")
    q: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="Words that must all appear in the message."
    )
    type: list[ConventionalType] | None = Field(
        None, description="Conventional Commits type (feat, fix, ...; `none`); repeatable."
    )

    risk: list[Literal["low", "medium", "high", "none"]] | None = Field(
        None, description="Risk level of the newest analysis (`none`: not analysed); repeatable."
    )
    secrets: bool | None = Field(
        None, description="Only commits whose analysis found secrets (true) or none (false)."
    )

    @field_validator("type", "risk", mode="before")
    @classmethod
    def _types(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def filters(self) -> dict[str, Any]:
        if self.since and self.until and self.since >= self.until:
            raise Unprocessable(
                "`since` must be before `until`.",
                errors=[{"field": "since", "message": "not before `until`", "type": "range"}],
            )
        return {
            "author": self.author,
            "branch": self.branch,
            "since": self.since,
            "until": self.until,
            "search": self.q,
            "types": self.type,
            "risks": self.risk,
            "secrets": self.secrets,
        }


class RepositoryCommitQuery(PageQuery, _CommitFilters):
    pass


class CommitQuery(PageQuery, _CommitFilters):
    repository: list[FullName] | None = Field(None, description="owner/name; repeatable.")

    @field_validator("repository", mode="before")
    @classmethod
    def _repos(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class StatisticsQuery(_CommitFilters):
    repository: list[FullName] | None = Field(None, description="owner/name; repeatable.")
    top: int = Field(20, ge=1, le=100, description="Repositories and authors listed.")

    @field_validator("repository", mode="before")
    @classmethod
    def _repos(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class OneCommitQuery(ApiModel):
    repository: FullName | None = Field(None, description="Needed when the SHA is ambiguous.")


class DeliveryQuery(PageQuery):
    status: list[model.DeliveryStatus] | None = Field(None, description="Repeatable.")
    event: Annotated[str, StringConstraints(max_length=64)] | None = None
    repository: FullName | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class UnprocessedQuery(PageQuery):
    repository: FullName | None = None


class DeliveryStatisticsQuery(ApiModel):
    since: UtcDatetime | None = Field(None, description="Deliveries received from then on.")


# --- responses -------------------------------------------------------------------------------


class RepositoryOut(OutModel):
    id: str
    owner: str
    name: str
    full_name: str
    provider: str
    default_branch: str
    polling: bool
    has_webhook_secret: bool
    webhook_secret_ref: str | None = Field(
        description="Where the secret is kept (name@version); never the secret."
    )
    last_seen_sha: str | None
    last_seen_at: datetime | None
    last_polled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class RepositorySecretOut(RepositoryOut):
    webhook_secret: str | None = Field(
        None, description="Only when generated by this request: shown this once."
    )


class AnalysisHeadlineOut(OutModel):
    """The newest agents analysis of the commit, as `analysis.completed` told it: the
    findings (secret detector names, files, lines - never a secret) are at
    `GET /api/agents/analyses/{id}`."""

    id: str = Field(validation_alias="analysis_id")
    status: str = Field(validation_alias="analysis_status")
    type: str | None = Field(validation_alias="analysis_type")
    risk_score: int | None
    risk_level: str | None
    secrets: int | None = Field(description="How many secrets were found in added lines.")
    findings: int | None
    top_severity: str | None
    summary: str | None = Field(validation_alias="analysis_summary")
    analyzed_at: datetime


class CommitOut(OutModel):
    repository: str
    sha: str
    message: str
    author_name: str
    author_email: str | None
    author_login: str | None
    branch: str | None
    branches: list[str]
    committed_at: datetime
    recorded_at: datetime
    conventional_type: str | None
    conventional_scope: str | None
    breaking: bool
    added: list[str]
    removed: list[str]
    modified: list[str]
    files_changed: int | None
    additions: int | None
    deletions: int | None
    url: str | None
    source: str
    analysis: AnalysisHeadlineOut | None = Field(
        description="The newest analysis by the agents; null until one finished."
    )


class Figures(OutModel):
    commits: int
    additions: int
    deletions: int
    files_changed: int


class RepositoryFigures(Figures):
    repository: str | None


class AuthorFigures(Figures):
    author: str


class DayFigures(Figures):
    day: str


class TypeFigures(Figures):
    type: str


class StatisticsOut(OutModel):
    since: datetime | None
    until: datetime | None
    total: Figures
    by_repository: list[RepositoryFigures]
    by_author: list[AuthorFigures]
    by_day: list[DayFigures]
    by_type: list[TypeFigures]


class DeliveryOut(OutModel):
    id: str
    event: str
    action: str | None
    repository: str | None
    status: model.DeliveryStatus
    received_at: datetime
    processed_at: datetime | None
    size_bytes: int
    stored_bytes: int
    chunks: int
    commits_recorded: int
    attempts: int
    error: str | None
    summary: dict[str, Any] | None

    @field_validator("summary", mode="before")
    @classmethod
    def _summary(cls, value: Any) -> Any:
        import json

        return json.loads(value) if isinstance(value, str) else value


class EventCounts(OutModel):
    event: str
    received: int
    processed: int
    ignored: int
    failed: int
    total: int


class Latency(OutModel):
    processed: int
    avg_seconds: float | None = Field(description="Received to processed, mean.")
    max_seconds: float | None


class DeliveryStatisticsOut(OutModel):
    since: datetime | None
    total: int
    by_event: list[EventCounts]
    by_status: dict[str, int]
    failures: int
    unprocessed: int
    oldest_unprocessed_at: datetime | None
    latency: Latency


class MonitorRunOut(OutModel):
    id: str
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    repositories_checked: int
    commits_found: int
    requests: int
    not_modified: int
    rate_limit_remaining: int | None
    rate_limit_reset: datetime | None
    stopped_early: bool
    error: str | None


class MonitorStatusOut(OutModel):
    state: str = Field(description="ENABLED, PAUSED or UNKNOWN (scheduler unreachable).")
    detail: str | None
    next_run: datetime | None
    last_run: MonitorRunOut | None
    repositories_polled: int = Field(description="Repositories with polling on.")
    repositories_checked: int | None = Field(description="In the last run.")
    commits_found: int | None = Field(description="In the last run.")
    rate_limit_remaining: int | None = Field(description="After the last run.")


class ScheduleOut(OutModel):
    state: str
    next_run: datetime | None


def _dump(out: type[OutModel], obj: Any) -> dict[str, Any]:
    return out.model_validate(obj).model_dump(mode="json")


def _repo_out(repo: model.Repository, secret: str | None = None) -> dict[str, Any]:
    data = RepositoryOut.model_validate(repo).model_dump(mode="json")
    if secret is not None:
        data["webhook_secret"] = secret
    return data


def _commit_out(commit: model.Commit) -> dict[str, Any]:
    data = asdict(commit)
    data["analysis"] = {**data} if commit.analysis_id and commit.analyzed_at else None
    return _dump(CommitOut, data)


def _actor() -> str:
    return sauth.current_user().sub


def _commit_key(c: model.Commit) -> tuple[datetime, str, str]:
    return (c.committed_at, c.repository_id, c.sha)


# --- repositories ------------------------------------------------------------------------


@app.get("/api/repositories")
@describe("List tracked repositories", query=RepositoryQuery, response=Page[RepositoryOut])
def list_repositories() -> flask.Response:
    """Tracked repositories in the order they were registered, a page at a time."""
    params = query(RepositoryQuery)
    repos = service.list_repositories(
        after=params.keyset(datetime, str), limit=params.limit + 1, polling=params.polling
    )
    return json_response(
        page(repos, params.limit, key=lambda r: (r.created_at, r.id), shape=_repo_out)
    )


@app.post("/api/repositories")
@describe(
    "Track a repository (manager)",
    request=RepositoryCreate,
    response=RepositorySecretOut,
    status=201,
)
@responds(409)  # already tracked
@sauth.require_roles("manager")
def create_repository() -> flask.Response:
    """Register a GitHub repository: default branch, polling, and its webhook secret
    (given, or generated and shown once). 409 when it is already tracked."""
    data = body(RepositoryCreate)
    secret = data.webhook_secret
    generated = service.new_webhook_secret() if data.generate_webhook_secret else None
    repo = service.create_repository(
        owner=data.owner,
        name=data.name,
        provider=data.provider,
        default_branch=data.default_branch,
        polling=data.polling,
        webhook_secret=secret if secret is not None else generated,
        actor=_actor(),
    )
    return json_response(
        _repo_out(repo, generated),
        201,
        headers={"Location": f"/api/repositories/{repo.full_name}", "Cache-Control": "no-store"},
    )


@app.get("/api/repositories/<owner>/<name>")
@describe("One tracked repository", response=RepositoryOut)
def get_repository(owner: str, name: str) -> flask.Response:
    """A repository by owner and name (case-insensitive)."""
    return json_response(_repo_out(service.get_repository(owner, name)))


@app.put("/api/repositories/<owner>/<name>")
@describe("Change a repository (manager)", request=RepositoryUpdate, response=RepositorySecretOut)
@sauth.require_roles("manager")
def update_repository(owner: str, name: str) -> flask.Response:
    """Change the default branch or polling, rotate the webhook secret (a new version in the
    secret store; a generated one is shown once) or remove it."""
    data = body(RepositoryUpdate)
    changes = data.model_dump(
        exclude_unset=True,
        exclude={"version", "webhook_secret", "generate_webhook_secret", "remove_webhook_secret"},
    )
    nulls = sorted(k for k, v in changes.items() if v is None)
    if nulls:
        raise Unprocessable(
            f"{', '.join(nulls)}: null is not allowed; omit the field",
            errors=[{"field": k, "message": "null", "type": "null"} for k in nulls],
        )
    generated = service.new_webhook_secret() if data.generate_webhook_secret else None
    repo = service.update_repository(
        owner,
        name,
        changes,
        webhook_secret=data.webhook_secret if data.webhook_secret is not None else generated,
        remove_webhook_secret=data.remove_webhook_secret,
        expected_version=data.version,
        actor=_actor(),
    )
    return json_response(_repo_out(repo, generated), headers={"Cache-Control": "no-store"})


@app.delete("/api/repositories/<owner>/<name>")
@describe("Stop tracking a repository (manager)", status=204)
@sauth.require_roles("manager")
def delete_repository(owner: str, name: str) -> flask.Response:
    """Forget the repository, its commits and its webhook secret (deliveries are kept)."""
    service.delete_repository(owner, name, actor=_actor())
    return flask.Response(status=204)


@app.get("/api/repositories/<owner>/<name>/commits")
@describe("Commits of one repository", query=RepositoryCommitQuery, response=Page[CommitOut])
def repository_commits(owner: str, name: str) -> flask.Response:
    """The repository's commits, newest first, with the filters of `GET /api/commits`."""
    params = query(RepositoryCommitQuery)
    commits = service.repository_commits(
        owner,
        name,
        after=params.keyset(datetime, str, str),
        limit=params.limit + 1,
        **params.filters(),
    )
    return json_response(page(commits, params.limit, key=_commit_key, shape=_commit_out))


# --- commits -----------------------------------------------------------------------------


@app.get("/api/commits/statistics")
@describe("Commit statistics", query=StatisticsQuery, response=StatisticsOut)
def commit_statistics() -> flask.Response:
    """Commits, lines added and deleted and files touched, in total and per repository,
    author (top `top`), UTC day and Conventional Commits type (`none` for the others). The
    range is `since`..`until` (default: the last 90 days); the filters of `GET
    /api/commits` apply."""
    params = query(StatisticsQuery)
    filters = params.filters()
    if filters["since"] is None and filters["until"] is None:
        filters["since"] = datetime.now(UTC) - timedelta(days=DEFAULT_STATS_DAYS)
    stats = service.commit_statistics(repositories=params.repository, top=params.top, **filters)
    stats.update(since=filters["since"], until=filters["until"])
    return json_response(_dump(StatisticsOut, stats))


@app.get("/api/commits")
@describe("List and search commits", query=CommitQuery, response=Page[CommitOut])
def list_commits() -> flask.Response:
    """Recorded commits, newest first (author date), filtered by repository, author,
    branch, time range, message words and Conventional Commits type."""
    params = query(CommitQuery)
    commits = service.list_commits(
        after=params.keyset(datetime, str, str),
        limit=params.limit + 1,
        repositories=params.repository,
        **params.filters(),
    )
    return json_response(page(commits, params.limit, key=_commit_key, shape=_commit_out))


@app.post("/api/commits")
@describe("Track a commit by hand (operator)", request=CommitCreate, response=CommitOut, status=201)
@responds(404, 409)  # the repository is not tracked; the commit is already recorded
@sauth.require_roles("operator", "manager")
def track_commit() -> flask.Response:
    """Record a commit of a tracked repository that neither the webhook nor the poller
    brought; publishes `commit.recorded`. 409 when it is already recorded."""
    data = body(CommitCreate)
    owner, name = _split(data.repository)
    commit = service.track_commit(owner, name, data.facts(), branch=data.branch, actor=_actor())
    return json_response(
        _commit_out(commit),
        201,
        headers={"Location": f"/api/commits/{commit.sha}?repository={commit.repository}"},
    )


@app.get("/api/commits/<sha>")
@describe("One commit", query=OneCommitQuery, response=CommitOut)
@responds(409, params={"sha": {"pattern": model.SHA_ANY_CASE}})  # 409: ambiguous
def get_commit(sha: str) -> flask.Response:
    """A commit by its full SHA (with `?repository=owner/name` when several tracked
    repositories hold it: forks share history). 409 lists them when ambiguous."""
    params = query(OneCommitQuery)
    try:
        checked = model.check_sha(sha)
    except ValueError:
        raise Unprocessable(
            "Not a full commit SHA.",
            errors=[{"field": "sha", "message": "40 or 64 hex digits", "type": "sha"}],
        ) from None
    return json_response(_commit_out(service.get_commit(checked, repository=params.repository)))


# --- webhook deliveries ------------------------------------------------------------------


def _delivery_out(d: model.Delivery) -> dict[str, Any]:
    return _dump(DeliveryOut, d)


@app.get("/api/webhook/events")
@describe("Webhook deliveries", query=DeliveryQuery, response=Page[DeliveryOut])
def list_deliveries() -> flask.Response:
    """GitHub deliveries as received (newest first): event, status (received, processed,
    ignored, failed), sizes, what the ingest made of them."""
    params = query(DeliveryQuery)
    rows = service.list_deliveries(
        after=params.keyset(datetime, str),
        limit=params.limit + 1,
        statuses=list(params.status) if params.status else None,
        event=params.event,
        repository=params.repository,
    )
    return json_response(
        page(rows, params.limit, key=lambda d: (d.received_at, d.id), shape=_delivery_out)
    )


@app.get("/api/webhook/events/unprocessed")
@describe("Deliveries not ingested yet", query=UnprocessedQuery, response=Page[DeliveryOut])
def unprocessed_deliveries() -> flask.Response:
    """Deliveries still `received` (waiting for or retrying the ingest) or `failed`."""
    params = query(UnprocessedQuery)
    rows = service.list_deliveries(
        after=params.keyset(datetime, str),
        limit=params.limit + 1,
        statuses=["received", "failed"],
        event=None,
        repository=params.repository,
    )
    return json_response(
        page(rows, params.limit, key=lambda d: (d.received_at, d.id), shape=_delivery_out)
    )


@app.get("/api/webhook/events/<delivery_id>")
@describe("One webhook delivery", response=DeliveryOut)
def get_delivery(delivery_id: str) -> flask.Response:
    """A delivery by its `X-GitHub-Delivery` id: its status and what the ingest made of it."""
    return json_response(_delivery_out(service.get_delivery(delivery_id)))


@app.get("/api/webhook/statistics")
@describe(
    "Webhook delivery statistics", query=DeliveryStatisticsQuery, response=DeliveryStatisticsOut
)
def delivery_statistics() -> flask.Response:
    """Deliveries by event type and status, failures, what waits, and the latency from
    receipt to ingest."""
    params = query(DeliveryStatisticsQuery)
    return json_response(_dump(DeliveryStatisticsOut, service.delivery_statistics(params.since)))


# --- monitor -----------------------------------------------------------------------------


def _status_out() -> dict[str, Any]:
    status = monitor.status()
    last = status["last_run"]
    status.update(
        repositories_checked=last.repositories_checked if last else None,
        commits_found=last.commits_found if last else None,
        rate_limit_remaining=last.rate_limit_remaining if last else None,
    )
    return _dump(MonitorStatusOut, status)


@app.get("/api/source/monitor/status")
@describe("The monitor's state and last run", response=MonitorStatusOut)
def monitor_status() -> flask.Response:
    """Whether the schedule runs (ENABLED/PAUSED), its next run, and the last run's
    figures: repositories checked, commits found, rate limit left."""
    return json_response(_status_out())


@app.post("/api/source/monitor/start")
@describe("Resume the monitor's schedule (manager)", response=ScheduleOut)
@sauth.require_roles("manager")
def monitor_start() -> flask.Response:
    """Resume the `source-monitor` job (Cloud Scheduler; the local scheduler locally)."""
    return json_response(_dump(ScheduleOut, monitor.resume()))


@app.post("/api/source/monitor/stop")
@describe("Pause the monitor's schedule (manager)", response=ScheduleOut)
@sauth.require_roles("manager")
def monitor_stop() -> flask.Response:
    """Pause the `source-monitor` job; `run-once` still works."""
    return json_response(_dump(ScheduleOut, monitor.pause()))


@app.post("/api/source/monitor/run-once")
@describe("Poll GitHub now (manager)", response=MonitorRunOut)
@sauth.require_roles("manager")
def monitor_run_once() -> flask.Response:
    """One poll of every repository with polling on, now, in this request; its figures."""
    return json_response(_dump(MonitorRunOut, monitor.poll("manual")))
