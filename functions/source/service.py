"""Source's use cases: tracked repositories, recorded commits and their statistics, the
webhook deliveries as the API shows them.

One transaction each. `record_commits` is the one way a commit enters the store, whatever
brought it (webhook push, the poller, by hand): it inserts each (repository, sha) once,
links the branch it was pushed to, advances the repository's last seen commit and emits
`commit.recorded` for the commits it inserted - so a commit seen by the webhook and by the
poller is recorded and announced once. Webhook secrets are kept in `shared.secrets` under
`source-webhook-<repository id>`; the repository row holds only that name and the version.
"""

from __future__ import annotations

import json
import secrets as pysecrets
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from functions.source import model, store
from functions.source.events import (
    AnalysisFacts,
    CommitRecorded,
    RepositoryCreated,
    RepositoryDeleted,
    RepositoryUpdated,
)
from shared import db
from shared import logging as slog
from shared.events import emit, emit_many, rfc3339

_log = slog.get_logger(__name__)
GENERATED_SECRET_BYTES = 32


def _now() -> datetime:
    return datetime.now(UTC)


def _secrets() -> Any:
    from shared import secrets

    return secrets


# --- repositories ---------------------------------------------------------------------------


def _facts(repo: model.Repository) -> dict[str, Any]:
    return {
        "id": repo.id,
        "repository": repo.full_name,
        "provider": repo.provider,
        "default_branch": repo.default_branch,
        "polling": repo.polling,
        "has_webhook_secret": repo.has_webhook_secret,
        "version": repo.version,
    }


def _store_secret(name: str, value: str) -> str:
    return str(_secrets().put(name, value))


def new_webhook_secret() -> str:
    return pysecrets.token_hex(GENERATED_SECRET_BYTES)


def get_repository(owner: str, name: str) -> model.Repository:
    with db.transaction() as tx:
        repo = store.repository_by_key(tx, model.full_name_key(owner, name))
    if repo is None:
        raise model.RepositoryNotFound()
    return repo


def list_repositories(
    *, after: tuple[datetime, str] | None, limit: int, polling: bool | None
) -> list[model.Repository]:
    with db.transaction() as tx:
        return store.list_repositories(tx, after=after, limit=limit, polling=polling)


def create_repository(
    *,
    owner: str,
    name: str,
    provider: str,
    default_branch: str,
    polling: bool,
    webhook_secret: str | None,
    actor: str,
) -> model.Repository:
    """Track a repository; its webhook secret (if any) goes to shared.secrets first, so the
    row never points at a secret that is not there (a failed insert deletes it again)."""
    now = _now()
    repo_id = str(uuid.uuid4())
    key = model.full_name_key(owner, name)
    with db.transaction() as tx:
        if store.repository_by_key(tx, key) is not None:
            raise model.RepositoryExists(model.full_name(owner, name))
    secret_name = secret_version = None
    if webhook_secret is not None:
        secret_name = model.webhook_secret_name(repo_id)
        secret_version = _store_secret(secret_name, webhook_secret)
    repo = model.Repository(
        id=repo_id,
        owner=owner,
        name=name,
        full_name_key=key,
        provider=provider,
        default_branch=default_branch,
        polling=polling,
        webhook_secret_name=secret_name,
        webhook_secret_version=secret_version,
        last_seen_sha=None,
        last_seen_at=None,
        poll_etag=None,
        last_polled_at=None,
        created_at=now,
        updated_at=now,
        version=1,
    )
    try:
        with db.transaction() as tx:
            store.insert_repository(tx, **{k: getattr(repo, k) for k in _REPO_COLUMNS})
            emit(tx, RepositoryCreated(**_facts(repo)), actor=actor)
    except IntegrityError:
        _forget_secret(secret_name)
        raise model.RepositoryExists(repo.full_name) from None
    except BaseException:
        _forget_secret(secret_name)
        raise
    return repo


_REPO_COLUMNS = tuple(c.name for c in store.repositories.columns)


def _forget_secret(name: str | None) -> None:
    if name is None:
        return
    try:
        _secrets().delete(name)
    except Exception:
        _log.warning("could not delete the webhook secret %s", name, exc_info=True)


def update_repository(
    owner: str,
    name: str,
    changes: dict[str, Any],
    *,
    webhook_secret: str | None,
    remove_webhook_secret: bool,
    expected_version: int | None,
    actor: str,
) -> model.Repository:
    """Change default branch and polling; rotate (a new secret version) or remove the
    webhook secret. Only the fields given change; a no-op keeps the version."""
    key = model.full_name_key(owner, name)
    with db.transaction() as tx:
        current = store.repository_by_key(tx, key)
    if current is None:
        raise model.RepositoryNotFound()
    if expected_version is not None and expected_version != current.version:
        raise model.ConcurrentChange()
    new_version = None
    secret_name = current.webhook_secret_name or model.webhook_secret_name(current.id)
    if webhook_secret is not None:
        new_version = _store_secret(secret_name, webhook_secret)
    now = _now()
    with db.transaction() as tx:
        # NO KEY UPDATE: an edit waits for no recorder of its commits (their foreign keys
        # hold KEY SHARE), only for another edit or the end of a recorder (decision 0048)
        repo = store.repository_by_key(tx, key, lock="no key update")
        if repo is None:
            raise model.RepositoryNotFound()
        if expected_version is not None and expected_version != repo.version:
            raise model.ConcurrentChange()
        values = {k: v for k, v in changes.items() if getattr(repo, k) != v}
        if new_version is not None:
            values.update(webhook_secret_name=secret_name, webhook_secret_version=new_version)
        elif remove_webhook_secret and repo.has_webhook_secret:
            values.update(webhook_secret_name=None, webhook_secret_version=None)
        if not values:
            return repo
        store.change_repository(tx, repo.id, **values, updated_at=now)
        changed = sorted("webhook_secret" if k.startswith("webhook_secret") else k for k in values)
        repo = replace(repo, **values, updated_at=now, version=repo.version + 1)
        emit(tx, RepositoryUpdated(**_facts(repo), changed=sorted(set(changed))), actor=actor)
    if remove_webhook_secret and webhook_secret is None and current.has_webhook_secret:
        _forget_secret(current.webhook_secret_name)
    return repo


def delete_repository(owner: str, name: str, *, actor: str) -> None:
    """Stop tracking a repository: its commits, branches and webhook secret go with it
    (deliveries stay, as the record of what GitHub sent)."""
    with db.transaction() as tx:
        repo = store.repository_by_key(tx, model.full_name_key(owner, name), lock=True)
        if repo is None:
            raise model.RepositoryNotFound()
        store.delete_repository(tx, repo.id)
        emit(tx, RepositoryDeleted(**_facts(repo)), actor=actor)
    _forget_secret(repo.webhook_secret_name)


# --- commits --------------------------------------------------------------------------------


def _commit_values(
    repo: model.Repository,
    facts: model.CommitFacts,
    *,
    branch: str | None,
    source: str,
    delivery_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    parsed = model.conventional(facts.message)
    return {
        "repository_id": repo.id,
        "sha": facts.sha,
        "message": facts.message,
        "author_name": facts.author_name[:200],
        "author_email": facts.author_email,
        "author_login": facts.author_login,
        "author_key": model.author_key(facts.author_email, facts.author_login, facts.author_name),
        "branch": branch,
        "committed_at": facts.committed_at,
        "recorded_at": now,
        "conventional_type": parsed.type[:40] if parsed else None,
        "conventional_scope": (parsed.scope or "")[:100] or None if parsed else None,
        "breaking": bool(parsed and parsed.breaking),
        "added": json.dumps(list(facts.added)),
        "removed": json.dumps(list(facts.removed)),
        "modified": json.dumps(list(facts.modified)),
        "files_changed": facts.files_changed,
        "additions": facts.additions,
        "deletions": facts.deletions,
        "url": facts.url,
        "source": source,
        "delivery_id": delivery_id,
    }


def record_commits(
    tx: Session,
    repo: model.Repository,
    commits: Iterable[model.CommitFacts],
    *,
    branch: str | None,
    source: str,
    delivery_id: str | None = None,
    actor: str = "system",
) -> list[model.CommitFacts]:
    """Record `commits` of `repo` in `tx` (see module doc); the ones that were new, in the
    order given.

    Set-based (decision 0048): the commits go in a few multi-row `INSERT ... ON CONFLICT DO
    NOTHING RETURNING sha` statements, the branch links in one more, their `commit.recorded`
    outbox rows (one event per new commit, as before) in one `shared.events.emit_many`, the
    rollup in one upsert, the repository's last seen commit in one update. Locks are taken in
    one order by every recorder - commits and branch links by sha, the rollup rows by key, the
    repository row last - so concurrent pushes to one repository never deadlock and hold the
    hot rows (the day's rollup, the repository) only from the end of their work to their
    commit. A sha listed twice counts once (its first listing)."""
    now = _now()
    given: dict[str, model.CommitFacts] = {}
    latest: model.CommitFacts | None = None
    for facts in commits:
        given.setdefault(facts.sha, facts)
        if latest is None or facts.committed_at >= latest.committed_at:
            latest = facts
    if latest is None:
        return []
    values = {
        sha: _commit_values(
            repo, facts, branch=branch, source=source, delivery_id=delivery_id, now=now
        )
        for sha, facts in given.items()
    }
    inserted = store.insert_commits(tx, list(values.values()))
    if branch is not None:
        store.link_branches(tx, repo.id, list(given), branch)
        store.set_branch_if_missing(tx, repo.id, [s for s in given if s not in inserted], branch)
    new = [facts for sha, facts in given.items() if sha in inserted]
    emit_many(
        tx,
        [_recorded(repo, facts, values[facts.sha], branch, source) for facts in new],
        actor=actor,
    )
    store.count_commits(tx, [values[facts.sha] for facts in new])  # the daily rollup
    store.advance_last_seen(tx, repo.id, latest.sha, latest.committed_at)
    return new


def _recorded(
    repo: model.Repository,
    facts: model.CommitFacts,
    values: dict[str, Any],
    branch: str | None,
    source: str,
) -> CommitRecorded:
    return CommitRecorded(
        repository=repo.full_name,
        repository_id=repo.id,
        sha=facts.sha,
        author=facts.author_name,
        author_email=facts.author_email,
        author_login=facts.author_login,
        message=facts.message,
        branch=branch,
        timestamp=rfc3339(facts.committed_at),
        added=list(facts.added),
        removed=list(facts.removed),
        modified=list(facts.modified),
        files_known=facts.files_known,
        additions=facts.additions,
        deletions=facts.deletions,
        url=facts.url,
        source=source,
        conventional_type=values["conventional_type"],
        conventional_scope=values["conventional_scope"],
        breaking=values["breaking"],
    )


def track_commit(
    owner: str, name: str, facts: model.CommitFacts, *, branch: str | None, actor: str
) -> model.Commit:
    """Record one commit by hand (the seed's `POST /commits`); 409 when already recorded."""
    with db.transaction() as tx:
        repo = store.repository_by_key(tx, model.full_name_key(owner, name))
        if repo is None:
            raise model.RepositoryNotFound()
        if not record_commits(tx, repo, [facts], branch=branch, source="manual", actor=actor):
            raise model.CommitExists(facts.sha)
        (commit,) = store.commits_by_sha(tx, facts.sha, repo.id)
        return replace(
            commit,
            repository=repo.full_name,
            branches=tuple(store.branches_of(tx, repo.id, facts.sha)),
        )


def _named(tx: Session, commits: list[model.Commit]) -> list[model.Commit]:
    repos = store.repositories_by_id(tx, [c.repository_id for c in commits])
    return [
        replace(c, repository=repos[c.repository_id].full_name if c.repository_id in repos else "")
        for c in commits
    ]


def _repository_ids(tx: Session, repositories: list[str] | None) -> list[str] | None:
    """Ids of the given `owner/name`s (unknown ones match nothing)."""
    if not repositories:
        return None
    ids = []
    for full in repositories:
        repo = store.repository_by_key(tx, full.lower())
        if repo is not None:
            ids.append(repo.id)
    return ids


def list_commits(
    *,
    after: tuple[datetime, str, str] | None,
    limit: int,
    repositories: list[str] | None,
    **filters: Any,
) -> list[model.Commit]:
    with db.transaction() as tx:
        ids = _repository_ids(tx, repositories)
        rows = store.search_commits(tx, after=after, limit=limit, repository_ids=ids, **filters)
        return _named(tx, rows)


def get_commit(sha: str, *, repository: str | None) -> model.Commit:
    with db.transaction() as tx:
        repo_id = None
        if repository is not None:
            repo = store.repository_by_key(tx, repository.lower())
            if repo is None:
                raise model.RepositoryNotFound()
            repo_id = repo.id
        found = _named(tx, store.commits_by_sha(tx, sha, repo_id))
        if not found:
            raise model.CommitNotFound()
        if len(found) > 1:
            raise model.AmbiguousCommit(sha, sorted(c.repository for c in found))
        commit = found[0]
        return replace(commit, branches=tuple(store.branches_of(tx, commit.repository_id, sha)))


def repository_commits(
    owner: str,
    name: str,
    *,
    after: tuple[datetime, str, str] | None,
    limit: int,
    **filters: Any,
) -> list[model.Commit]:
    with db.transaction() as tx:
        repo = store.repository_by_key(tx, model.full_name_key(owner, name))
        if repo is None:
            raise model.RepositoryNotFound()
        rows = store.search_commits(
            tx, after=after, limit=limit, repository_ids=[repo.id], **filters
        )
        return [replace(c, repository=repo.full_name) for c in rows]


def commit_statistics(
    *, repositories: list[str] | None, top: int, **filters: Any
) -> dict[str, Any]:
    with db.transaction() as tx:
        ids = _repository_ids(tx, repositories)
        stats = store.commit_statistics(tx, top=top, repository_ids=ids, **filters)
        names = store.repositories_by_id(tx, [r["repository_id"] for r in stats["by_repository"]])
    for row in stats["by_repository"]:
        repo = names.get(row["repository_id"])
        row["repository"] = repo.full_name if repo else None
    return stats


def record_analysis(facts: AnalysisFacts, at: datetime) -> str:
    """Keep the headline of an agents analysis (`analysis.completed`, sent at `at`) on its
    commit: the newest wins, a failure never hides a completed analysis, a redelivery
    changes nothing. Analyses of no tracked commit (a bare diff, a forgotten repository)
    are skipped."""
    if not facts.repository or not facts.sha:
        return "skipped"
    with db.transaction() as tx:
        repo = store.repository_by_key(tx, facts.repository.lower())
        if repo is None:
            return "skipped"
        changed = store.keep_analysis(
            tx,
            repo.id,
            facts.sha,
            at,
            {
                "analysis_id": facts.analysis_id,
                "analysis_status": facts.status,
                "analysis_type": facts.commit_type,
                "risk_score": facts.risk_score,
                "risk_level": facts.risk_level,
                "secrets": facts.secrets,
                "findings": facts.findings,
                "top_severity": facts.top_severity,
                "analysis_summary": facts.summary[:2000],
            },
        )
    return "kept" if changed else "unchanged"


# --- deliveries -----------------------------------------------------------------------------


def list_deliveries(
    *,
    after: tuple[datetime, str] | None,
    limit: int,
    statuses: list[str] | None,
    event: str | None,
    repository: str | None,
) -> list[model.Delivery]:
    with db.transaction() as tx:
        return store.search_deliveries(
            tx, statuses=statuses, event=event, repository=repository, after=after, limit=limit
        )


def get_delivery(delivery_id: str) -> model.Delivery:
    with db.transaction() as tx:
        found = store.delivery(tx, delivery_id[:64])
    if found is None:
        raise model.DeliveryNotFound()
    return found


def delivery_statistics(since: datetime | None) -> dict[str, Any]:
    with db.transaction() as tx:
        raw = store.delivery_statistics(tx, since)
    by_event: dict[str, dict[str, int]] = {}
    by_status = {s: 0 for s in model.DELIVERY_STATUSES}
    for event, status, n in raw["by"]:
        by_event.setdefault(event, {s: 0 for s in model.DELIVERY_STATUSES})[status] = n
        by_status[status] = by_status.get(status, 0) + n
    return {
        "since": since,
        "total": sum(by_status.values()),
        "by_event": [
            {"event": e, **counts, "total": sum(counts.values())}
            for e, counts in sorted(by_event.items())
        ],
        "by_status": by_status,
        "failures": raw["failures"],
        "unprocessed": by_status.get("received", 0),
        "oldest_unprocessed_at": raw["oldest_unprocessed"],
        "latency": {
            "processed": raw["processed"],
            "avg_seconds": raw["avg_seconds"],
            "max_seconds": raw["max_seconds"],
        },
    }
