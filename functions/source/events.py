"""Events of the source context (one Pub/Sub topic each; the audit trail stores them all).

- `github.delivery.received`: a verified, new GitHub delivery was stored (raw body in
  Firestore `source_deliveries/{delivery_id}`); source-ingest turns it into commits.
- `commit.recorded`: a commit was recorded for the first time in a repository, whichever way
  it came (webhook push, the poller, by hand). Published once per (repository, sha). The
  agents context analyses it. Its fields are a contract: add, never rename or drop.
- `repository.created|updated|deleted`: the tracked repositories (never the webhook secret:
  only whether one is set).

Consumed: `analysis.completed` (agents): the headline of a commit's analysis (risk, type,
how many secrets - never what they are) is kept on the commit row, so commits can be listed
and filtered by risk; the findings themselves stay the agents' (`GET /api/agents/analyses/{id}`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shared.events import ConsumedModel, Event, consumes


class GithubDeliveryReceived(Event):
    event_type: ClassVar[str] = "github.delivery.received"
    schema_version: ClassVar[int] = 1

    delivery_id: str = Field(description="X-GitHub-Delivery")
    event: str = Field(description="X-GitHub-Event: push, pull_request, ...")
    action: str | None
    repository: str = Field(description="owner/name as GitHub sent it")
    repository_id: str
    size_bytes: int
    received_at: str  # RFC 3339 UTC


class CommitRecorded(Event):
    event_type: ClassVar[str] = "commit.recorded"
    schema_version: ClassVar[int] = 1

    repository: str = Field(description="owner/name")
    repository_id: str
    sha: str
    author: str = Field(description="The author's name as git recorded it")
    author_email: str | None
    author_login: str | None = Field(description="GitHub login, when GitHub knows it")
    message: str
    branch: str | None = Field(description="The branch it was first seen on")
    timestamp: str = Field(description="Author date, RFC 3339 UTC")
    added: list[str]
    removed: list[str]
    modified: list[str]
    files_known: bool = Field(description="False when the source did not list the files")
    additions: int | None = Field(description="Lines added, when known (poller, by hand)")
    deletions: int | None
    url: str | None
    source: str = Field(description="webhook | poll | manual")
    conventional_type: str | None = Field(description="Conventional Commits type, if any")
    conventional_scope: str | None
    breaking: bool


class _RepositoryFacts(Event):
    id: str
    repository: str
    provider: str
    default_branch: str
    polling: bool
    has_webhook_secret: bool
    version: int


class RepositoryCreated(_RepositoryFacts):
    event_type: ClassVar[str] = "repository.created"
    schema_version: ClassVar[int] = 1


class RepositoryUpdated(_RepositoryFacts):
    event_type: ClassVar[str] = "repository.updated"
    schema_version: ClassVar[int] = 1

    changed: list[str]


class RepositoryDeleted(_RepositoryFacts):
    event_type: ClassVar[str] = "repository.deleted"
    schema_version: ClassVar[int] = 1


@consumes("analysis.completed")
class AnalysisFacts(ConsumedModel):
    """What source keeps of an agents analysis of one of its commits."""

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
