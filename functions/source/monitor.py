"""The monitor: poll GitHub for commits the webhook missed, and control its schedule.

`poll(trigger)` walks the repositories with polling on (least recently polled first) and
lists each one's default branch through the REST API (`github`), `since` a fixed horizon
(the repository's registration minus `HORIZON`: older commits are history, not something the
webhook missed). The URL stays the same from poll to poll, so the first page is a conditional
request (`If-None-Match` with the ETag kept from the last answer; 304 = nothing new, free of
rate limit); on a change, pages are followed while they bring unknown commits. New
commits are fetched one by one for their files and line counts while the rate limit allows,
then recorded through `service.record_commits` (once per repository + sha, webhook or not).
The run stops early when `X-RateLimit-Remaining` falls to `RATE_RESERVE` (or GitHub says the
limit is spent) and records when it resets. Every run is a `monitor_runs` row: what
`GET /api/source/monitor/status` reports with the schedule's state.

Schedule control (`pause`, `resume`, `job`): in the cloud Cloud Scheduler's REST API v1
(`projects/{project}/locations/{region}/jobs/source-monitor`, `:pause`, `:resume`); locally the
local scheduler's control endpoint, whose address the running stack writes to
`<SWITCHYARD_LOCAL_DIR>/scheduler/control.json`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from functions.source import github, model, service, store
from shared import clients, db
from shared import logging as slog
from shared.config import settings

_log = slog.get_logger(__name__)
JOB = "source-monitor"
RATE_RESERVE = 5
PER_PAGE = 100
MAX_PAGES = 10
MAX_DETAILS = 50  # single-commit requests per run (files, additions, deletions)
HORIZON = timedelta(days=7)


@dataclass
class Tally:
    repositories_checked: int = 0
    commits_found: int = 0
    not_modified: int = 0
    stopped_early: bool = False
    details: int = 0
    errors: list[str] | None = None


def poll(trigger: str = "schedule", scheduled_for: datetime | None = None) -> model.MonitorRun:
    """One poll of every repository with polling on (see module doc)."""
    run_id = str(uuid.uuid4())
    started = datetime.now(UTC)
    with db.transaction() as tx:
        store.insert_run(
            tx,
            id=run_id,
            trigger=trigger,
            scheduled_for=scheduled_for,
            started_at=started,
            repositories_checked=0,
            commits_found=0,
            requests=0,
            not_modified=0,
            stopped_early=False,
        )
        repos = store.polled_repositories(tx)
    gh = github.client()
    tally = Tally(errors=[])
    for repo in repos:
        if gh.rate_remaining is not None and gh.rate_remaining <= RATE_RESERVE:
            tally.stopped_early = True
            break
        try:
            _poll_repository(gh, repo, tally)
        except github.RateLimited:
            tally.stopped_early = True
            break
        except github.GitHubError as exc:
            assert tally.errors is not None
            tally.errors.append(f"{repo.full_name}: {exc}")
            _log.warning("polling %s failed: %s", repo.full_name, exc)
    finished = datetime.now(UTC)
    values: dict[str, Any] = {
        "finished_at": finished,
        "repositories_checked": tally.repositories_checked,
        "commits_found": tally.commits_found,
        "requests": gh.requests,
        "not_modified": tally.not_modified,
        "rate_limit_remaining": gh.rate_remaining,
        "rate_limit_reset": gh.rate_reset,
        "stopped_early": tally.stopped_early,
        "error": "; ".join(tally.errors or [])[:2000] or None,
    }
    with db.transaction() as tx:
        store.finish_run(tx, run_id, **values)
    _log.info(
        "monitor run %s: %d repositories, %d new commits, %d requests",
        run_id,
        tally.repositories_checked,
        tally.commits_found,
        gh.requests,
    )
    return model.MonitorRun(
        id=run_id, trigger=trigger, scheduled_for=scheduled_for, started_at=started, **values
    )


def _poll_repository(gh: github.Client, repo: model.Repository, tally: Tally) -> None:
    polled_at = datetime.now(UTC)
    since = repo.created_at - HORIZON
    url: str | None = gh.commits_url(
        repo.owner, repo.name, branch=repo.default_branch, since=since, per_page=PER_PAGE
    )
    etag = repo.poll_etag
    first_etag: str | None = None
    found: list[model.CommitFacts] = []
    pages = 0
    while url and pages < MAX_PAGES:
        answer = gh.get(url, etag=etag if pages == 0 else None)
        pages += 1
        if answer.status == 304:
            tally.not_modified += 1
            first_etag = etag
            break
        if pages == 1:
            first_etag = answer.etag
        if not isinstance(answer.items, list):
            raise github.GitHubError(200, "the commit list is not a JSON array")
        page = [model.parse_rest_commit(item) for item in answer.items]
        with db.transaction() as tx:
            known = store.known_shas(tx, repo.id, [c.sha for c in page])
        fresh = [c for c in page if c.sha not in known]
        found.extend(fresh)
        if not fresh:
            break  # reached what we have
        url = answer.next_url
    found = [_detailed(gh, repo, c, tally) for c in found]
    with db.transaction() as tx:
        # KEY SHARE, not FOR UPDATE: kept from deletion without making the webhook's
        # recorders wait; the row itself is updated last (decision 0048)
        current = store.repository_by_key(tx, repo.full_name_key, lock="key share")
        if current is None or current.id != repo.id:
            return  # deleted meanwhile
        new = service.record_commits(
            tx, current, reversed(found), branch=current.default_branch, source="poll"
        )
        store.touch_poll(tx, repo.id, poll_etag=first_etag, last_polled_at=polled_at)
    tally.repositories_checked += 1
    tally.commits_found += len(new)


def _detailed(
    gh: github.Client, repo: model.Repository, facts: model.CommitFacts, tally: Tally
) -> model.CommitFacts:
    """The commit with its files and line counts, when the budget and rate limit allow."""
    if tally.details >= MAX_DETAILS or (
        gh.rate_remaining is not None and gh.rate_remaining <= RATE_RESERVE
    ):
        return _unknown_files(facts)
    try:
        answer = gh.get(gh.commit_url(repo.owner, repo.name, facts.sha))
    except github.RateLimited:
        raise
    except github.GitHubError:
        return _unknown_files(facts)
    tally.details += 1
    try:
        return model.parse_rest_commit(answer.items)
    except model.PayloadInvalid:
        return _unknown_files(facts)


def _unknown_files(facts: model.CommitFacts) -> model.CommitFacts:
    from dataclasses import replace

    return replace(facts, files_known=False)


# --- the schedule ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    state: str  # ENABLED | PAUSED | UNKNOWN
    next_run: datetime | None
    last_attempt: datetime | None
    detail: str | None = None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _local_control() -> str:
    path = settings().local_dir / "scheduler" / "control.json"
    try:
        url = json.loads(path.read_text())["url"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        raise model.MonitorUnavailable(
            "The local scheduler is not running (no scheduler/control.json): start the stack "
            "with `make dev`."
        ) from None
    return str(url)


SCHEDULER_API = "https://cloudscheduler.googleapis.com"


def _cloud_job() -> str:
    s = settings()
    if not s.region:
        raise model.MonitorUnavailable("GOOGLE_CLOUD_REGION is not set: the job is unknown.")
    return f"{SCHEDULER_API}/v1/projects/{s.project_id}/locations/{s.region}/jobs/{JOB}"


def _call(method: str, url: str) -> dict[str, Any]:
    try:
        if settings().in_cloud:
            resp = clients.google_api(SCHEDULER_API).request(method, url, timeout=10)
        else:
            resp = requests.request(method, url, timeout=10)
    except requests.RequestException as exc:
        raise model.MonitorUnavailable(
            f"The scheduler is unreachable: {type(exc).__name__}"
        ) from None
    if resp.status_code != 200:
        raise model.MonitorUnavailable(f"The scheduler answered {resp.status_code}.")
    body = resp.json()
    return body if isinstance(body, dict) else {"jobs": body}


def _state(body: dict[str, Any]) -> JobState:
    if "jobs" in body:  # the local control's GET /jobs: a list
        match = [j for j in body["jobs"] if isinstance(j, dict) and j.get("name") == JOB]
        if not match:
            return JobState("UNKNOWN", None, None, "the local scheduler runs no source-monitor")
        body = match[0]
    if "next_run" in body or "last_run" in body:  # local shape
        return JobState(
            str(body.get("state") or "UNKNOWN"),
            _time(body.get("next_run")),
            _time(body.get("last_run")),
        )
    return JobState(  # Cloud Scheduler's Job resource
        str(body.get("state") or "UNKNOWN"),
        _time(body.get("scheduleTime")),
        _time(body.get("lastAttemptTime")),
    )


def job() -> JobState:
    if settings().in_cloud:
        return _state(_call("GET", _cloud_job()))
    return _state(_call("GET", f"{_local_control()}/jobs"))


def pause() -> JobState:
    if settings().in_cloud:
        return _state(_call("POST", f"{_cloud_job()}:pause"))
    return _state(_call("POST", f"{_local_control()}/jobs/{JOB}/pause"))


def resume() -> JobState:
    if settings().in_cloud:
        return _state(_call("POST", f"{_cloud_job()}:resume"))
    return _state(_call("POST", f"{_local_control()}/jobs/{JOB}/resume"))


def status() -> dict[str, Any]:
    """The schedule's state and the last run's figures."""
    try:
        state = job()
    except model.MonitorUnavailable as exc:
        state = JobState("UNKNOWN", None, None, exc.detail)
    with db.transaction() as tx:
        runs = store.last_runs(tx, 1)
        polled = len(store.polled_repositories(tx))
    last = runs[0] if runs else None
    return {
        "state": state.state,
        "detail": state.detail,
        "next_run": state.next_run,
        "last_run": last,
        "repositories_polled": polled,
    }
