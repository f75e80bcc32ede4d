"""Events of the automation context (one Pub/Sub topic each; the audit trail stores them all).

A run's life: `job.run.requested` (by a user or a schedule; the runner consumes it),
`job.run.started` (claimed by a runner), `job.run.finished` (succeeded, failed, cancelled or
timed_out; or failed when its runner was lost), and `target.unreachable` for each target a run
could not reach. Changes of targets, credentials, jobs, schedules and tag grants are one
`<entity>.changed` event each with the `action` (created, updated, deleted, rotated, paused,
resumed) and the acting user in the envelope. No event carries a secret value.
"""

from __future__ import annotations

from typing import ClassVar

from shared.events import Event


class JobRunRequested(Event):
    event_type: ClassVar[str] = "job.run.requested"
    schema_version: ClassVar[int] = 1

    run_id: str
    job_id: str
    job_version: int
    requested_by: str
    schedule_id: str | None
    due_at: str | None  # RFC 3339 UTC: the schedule slot, for scheduled runs
    targets: int


class JobRunStarted(Event):
    event_type: ClassVar[str] = "job.run.started"
    schema_version: ClassVar[int] = 1

    run_id: str
    job_id: str
    job_version: int
    targets: int


class JobRunFinished(Event):
    event_type: ClassVar[str] = "job.run.finished"
    schema_version: ClassVar[int] = 1

    run_id: str
    job_id: str
    job_version: int
    status: str  # succeeded | failed | cancelled | timed_out
    duration_s: float | None
    targets_succeeded: int
    targets_failed: int
    error: str | None


class TargetUnreachable(Event):
    event_type: ClassVar[str] = "target.unreachable"
    schema_version: ClassVar[int] = 1

    target_id: str
    target_name: str
    run_id: str
    reason: str


class _Changed(Event):
    id: str
    name: str
    action: str


class TargetChanged(_Changed):
    event_type: ClassVar[str] = "target.changed"
    schema_version: ClassVar[int] = 1


class CredentialChanged(_Changed):
    """Metadata only: the version id after the change, never the value."""

    event_type: ClassVar[str] = "credential.changed"
    schema_version: ClassVar[int] = 1

    version: str | None


class JobChanged(_Changed):
    event_type: ClassVar[str] = "job.changed"
    schema_version: ClassVar[int] = 1

    version: int


class ScheduleChanged(_Changed):
    event_type: ClassVar[str] = "schedule.changed"
    schema_version: ClassVar[int] = 1

    job_id: str


class GrantChanged(Event):
    event_type: ClassVar[str] = "grant.changed"
    schema_version: ClassVar[int] = 1

    subject: str
    tags: list[str]
