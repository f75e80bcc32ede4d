"""source-ingest: turn a stored GitHub delivery into facts (consumer of
`github.delivery.received`). No Flask app, no api.py: an event deployment's cold start.

- `push` to a branch: every listed commit is recorded (`service.record_commits`: once per
  repository + sha, whichever of webhook and poller saw it first; `commit.recorded` for the
  new ones), linked to the branch, and the branch's ref moves to `after`. A forced push
  records the same way and stamps the ref `forced_at`: the commits it rewrote away stay
  recorded, as the history of what was pushed. A branch deletion records no commit and marks
  the ref deleted. A tag push records the tag's ref, no commits (the tagged commit came with
  its branch).
- `pull_request`: the summary (action, number, head and base) is kept on the delivery.
- `analysis.completed` (agents): the analysis' headline is kept on its commit
  (`service.record_analysis`).
The delivery row is locked for the work and moves to `processed` in the same transaction
as the commits, so a second delivery of the event does nothing. A payload that cannot be
parsed is marked `failed` (retrying cannot help); any other error leaves it `received`,
counts the attempt and re-raises so Pub/Sub retries and finally dead-letters it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from functions.source import model, rawstore, service, store
from functions.source.events import AnalysisFacts
from functions.source.intake import parse_body
from shared import db
from shared import logging as slog
from shared.errors import BadRequest
from shared.events import Received

_log = slog.get_logger(__name__)


def handle(event: Received) -> str:
    """source-ingest's one entry point: a delivery to ingest, or an analysis to keep."""
    if event.event_type == "analysis.completed":
        return service.record_analysis(event.parse(AnalysisFacts), event.occurred_at)
    return ingest(str(event.data["delivery_id"]))


def ingest(delivery_id: str) -> str:
    """Process one delivery; returns its status afterwards."""
    with db.transaction() as tx:
        row = store.delivery(tx, delivery_id)
    if row is None:
        raise model.DeliveryNotFound()
    if row.status != "received":
        return row.status
    try:
        body, content_type = rawstore.load(delivery_id)
    except Exception as exc:
        _count_attempt(delivery_id, f"raw delivery unavailable: {exc}")
        raise
    try:
        payload = parse_body(body, content_type)
        return _apply(delivery_id, row.event, payload)
    except (model.PayloadInvalid, BadRequest) as exc:
        _fail(delivery_id, str(exc))
        return "failed"
    except Exception as exc:
        _count_attempt(delivery_id, f"{type(exc).__name__}: {exc}"[:2000])
        raise


def _apply(delivery_id: str, event: str, payload: Any) -> str:
    now = datetime.now(UTC)
    with db.transaction() as tx:
        row = store.delivery(tx, delivery_id, lock=True)
        if row is None or row.status != "received":
            return row.status if row else "missing"
        repo = _repository(tx, row, payload)
        recorded = 0
        if repo is None:
            summary: dict[str, Any] = {"reason": "the repository is no longer tracked"}
            status = "ignored"
        elif event == "push":
            summary, recorded = _push(tx, repo, model.parse_push(payload), delivery_id, now)
            status = "processed"
        elif event == "pull_request":
            pr = model.parse_pull_request(payload)
            summary = {
                "action": pr.action,
                "number": pr.number,
                "title": pr.title[:300],
                "state": pr.state,
                "merged": pr.merged,
                "author": pr.author_login,
                "head": {"ref": pr.head_ref, "sha": pr.head_sha},
                "base": {"ref": pr.base_ref},
            }
            status = "processed"
        else:
            summary, status = {"reason": f"{event} events are not ingested"}, "ignored"
        store.finish_delivery(
            tx,
            delivery_id,
            status=status,
            processed_at=now,
            commits_recorded=recorded,
            summary=json.dumps(summary),
            error=None,
        )
    _log.info("delivery %s (%s): %s, %d new commits", delivery_id, event, status, recorded)
    return status


def _repository(tx: Any, row: model.Delivery, payload: Any) -> model.Repository | None:
    full = model.repository_of(payload) or row.repository or ""
    # KEY SHARE: the repository cannot be deleted under the work; nothing else waits on it
    repo = store.repository_by_key(tx, full.lower(), lock="key share")
    if repo is None or (row.repository_id and repo.id != row.repository_id):
        return None  # deleted (and perhaps registered again) since the delivery arrived
    return repo


def _push(
    tx: Any, repo: model.Repository, push: model.Push, delivery_id: str, now: datetime
) -> tuple[dict[str, Any], int]:
    summary: dict[str, Any] = {
        "ref": push.ref,
        "ref_type": push.ref_type,
        "before": push.before,
        "after": push.after,
        "created": push.created,
        "deleted": push.deleted,
        "forced": push.forced,
        "pusher": push.pusher,
        "commits": len(push.commits),
    }
    recorded = 0
    if push.records_commits:
        new = service.record_commits(
            tx, repo, push.commits, branch=push.ref_name, source="webhook", delivery_id=delivery_id
        )
        summary["new_commits"] = recorded = len(new)
    # The ref last (decision 0048): two pushes to one branch wait on each other only from
    # here to their commit, not for each other's commits.
    store.move_ref(
        tx,
        repository_id=repo.id,
        ref=push.ref[:300],
        ref_type=push.ref_type,
        head_sha=None if push.deleted else push.after,
        deleted=push.deleted,
        forced_at=now if push.forced else None,
        updated_at=now,
        delivery_id=delivery_id,
    )
    return summary, recorded


def _fail(delivery_id: str, error: str) -> None:
    with db.transaction() as tx:
        store.finish_delivery(
            tx,
            delivery_id,
            status="failed",
            processed_at=datetime.now(UTC),
            error=error[:2000],
        )
    _log.warning("delivery %s failed: %s", delivery_id, error)


def _count_attempt(delivery_id: str, error: str) -> None:
    try:
        with db.transaction() as tx:
            store.finish_delivery(tx, delivery_id, error=error[:2000])
    except Exception:
        _log.warning("could not count the attempt of %s", delivery_id, exc_info=True)
