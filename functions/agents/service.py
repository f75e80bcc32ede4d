"""The agents' use cases: request, run and read investigations and analyses; keep the local read
model of packages, scans, lane history and commits from other contexts' events.

Requesting work writes its Firestore document (status queued) and emits the request event in
one SQL transaction on the agents' outbox: if the document cannot be written nothing is
emitted, and an event is never lost once the document exists (a crash before the commit leaves
a queued document with no event; the worker recreates a missing document from its event, so
the two can be written in either order). Running work (`handle`, the worker) claims the
document queued -> running once per event (a conditional update), computes the findings with
the pure functions of `model`, and writes the end (completed or failed) conditionally on its
claim in the same transaction that emits `investigation.completed` / `analysis.completed`.
Bad input the worker can never succeed on (a package the agents never heard of after the
retries, a diff that does not parse) ends as failed, not as a dead letter.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from functions.agents import model, narrative, store
from functions.agents.events import (
    AnalysisCompleted,
    AnalysisRequested,
    CommitFacts,
    InvestigationCompleted,
    InvestigationRequested,
    PackageCreatedFacts,
    PackageDeliveredFacts,
    PackageFacts,
    ScanFacts,
    StopFacts,
)
from shared import db
from shared import logging as slog
from shared.config import settings
from shared.events import Received, emit, rfc3339

_log = slog.get_logger(__name__)

PACKAGE_EVENTS = (
    "package.created",
    "package.updated",
    "package.status.changed",
    "package.delivered",
    "tracking.event.recorded",
)
WAIT_FOR_PACKAGE_ATTEMPTS = 3  # deliveries of a request before an unknown package fails it
LAST_RESULTS = 5


class PackageNotYetKnown(RuntimeError):
    """The read model has no such package (yet): Pub/Sub retries the request."""


def _now() -> datetime:
    return datetime.now(UTC)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def thresholds() -> model.Thresholds:
    s = settings()
    return model.Thresholds(
        max_speed_kmh=s.agents_max_speed_kmh,
        stall_hours=s.agents_stall_hours,
        corridor_km=s.agents_corridor_km,
    )


def _max_attempts() -> int:
    from shared.manifests import catalog

    dep = catalog().deployments.get(settings().deployment)
    return dep.retry.max_attempts if dep is not None else 5


# --- investigations ----------------------------------------------------------------------


def request_investigation(
    *,
    kind: str,
    package_id: str | None,
    stops: list[dict[str, Any]] | None,
    departure_at: datetime | None,
    return_to_start: bool,
    actor: str,
) -> model.Investigation:
    if package_id is not None and store.package(package_id) is None:
        raise model.PackageUnknown(package_id)
    now = _now()
    inv_id = str(uuid.uuid4())
    facts = [StopFacts(**s) for s in stops] if stops else None
    doc = _investigation_doc(
        inv_id=inv_id,
        kind=kind,
        package_id=package_id,
        stops=[f.model_dump() for f in facts] if facts else [],
        departure_at=departure_at,
        return_to_start=return_to_start,
        actor=actor,
        now=now,
    )
    with db.transaction() as tx:
        store.create(store.INVESTIGATIONS, doc)
        emit(
            tx,
            InvestigationRequested(
                investigation_id=inv_id,
                kind=kind,  # type: ignore[arg-type]
                package_id=package_id,
                stops=facts,
                departure_at=rfc3339(departure_at) if departure_at else None,
                return_to_start=return_to_start,
                requested_by=actor,
                requested_at=rfc3339(now),
            ),
            actor=actor,
        )
    return model.work_of(model.Investigation, doc)


def _investigation_doc(
    *,
    inv_id: str,
    kind: str,
    package_id: str | None,
    stops: list[dict[str, Any]],
    departure_at: datetime | None,
    return_to_start: bool,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": inv_id,
        "type": "investigation",
        "kind": kind,
        "package_id": package_id,
        "stops": stops,
        "departure_at": departure_at,
        "return_to_start": return_to_start,
        "status": "queued",
        "findings": [],
        "summary": None,
        "result": {},
        "error": None,
        "requested_by": actor,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "attempts": 0,
        "narrative": None,
    }


def get_investigation(inv_id: str) -> model.Investigation:
    found = store.investigation(inv_id)
    if found is None:
        raise model.InvestigationNotFound()
    return found


def list_investigations(
    *, package_id: str | None, kind: str | None, after: tuple[datetime, str] | None, limit: int
) -> list[model.Investigation]:
    equals = {k: v for k, v in (("package_id", package_id), ("kind", kind)) if v}
    docs = store.page(store.INVESTIGATIONS, equals=equals, after=after, limit=limit)
    return [model.work_of(model.Investigation, d) for d in docs]


def run_investigation(event: Received) -> str:
    """The worker's part of an investigation; returns how it ended (or why it did nothing)."""
    req = event.parse(InvestigationRequested)
    if store.get(store.INVESTIGATIONS, req.investigation_id) is None:
        store.ensure(
            store.INVESTIGATIONS,
            _investigation_doc(
                inv_id=req.investigation_id,
                kind=req.kind,
                package_id=req.package_id,
                stops=[s.model_dump() for s in req.stops or []],
                departure_at=_time(req.departure_at),
                return_to_start=req.return_to_start,
                actor=req.requested_by,
                now=_time(req.requested_at) or _now(),
            ),
        )
    state = store.claim(store.INVESTIGATIONS, req.investigation_id, event.event_id, _now())
    if state != "claimed":
        _log.info("investigation %s: %s, nothing to do", req.investigation_id, state)
        return state
    try:
        outcome = investigate(req)
    except model.Problem as exc:
        return _end_investigation(req, event, None, str(exc.detail or exc))
    except PackageNotYetKnown:
        if event.delivery_attempt < WAIT_FOR_PACKAGE_ATTEMPTS:
            raise
        return _end_investigation(
            req,
            event,
            None,
            f"The agents know no package {req.package_id}: it reaches them through logistics' "
            "events (package.created, tracking.event.recorded).",
        )
    except Exception:
        if event.delivery_attempt < _max_attempts():
            raise
        _log.exception("investigation %s failed on its last attempt", req.investigation_id)
        return _end_investigation(req, event, None, "The analysis failed; see the logs.")
    # Outside any transaction, bounded, never raising: the findings are done without it.
    told = narrative.narrate(req.kind, outcome)
    return _end_investigation(req, event, outcome, None, told)


def investigate(req: InvestigationRequested, *, now: datetime | None = None) -> model.Outcome:
    """Compute the findings of one investigation request from the read model."""
    now = now or _now()
    s = settings()
    if req.kind == "route":
        stops = [
            model.Stop(
                name=f.name,
                lat=f.lat,
                lon=f.lon,
                window_start=_time(f.window_start),
                window_end=_time(f.window_end),
                service_minutes=f.service_minutes,
            )
            for f in req.stops or []
        ]
        return model.route(
            stops,
            departure=_time(req.departure_at) or now,
            speed_kmh=s.agents_route_speed_kmh,
            return_to_start=req.return_to_start,
            time_limit_ms=s.agents_route_time_limit_ms,
        )
    if not req.package_id:
        raise model.AgentsError("This investigation needs a package.", status=422)
    package = store.package(req.package_id)
    if package is None:
        raise PackageNotYetKnown(req.package_id)
    scans = store.scans(req.package_id)
    limits = thresholds()
    if req.kind == "anomaly":
        return model.anomalies(package, scans, now=now, limits=limits)
    samples = store.lane_samples(model.lane_key(package.origin, package.destination))
    if req.kind == "delay":
        return model.delay(package, scans, samples, now=now, limits=limits)
    return model.eta(package, scans, samples, now=now, limits=limits)


class _Lost(Exception):
    """The claim was lost before the end could be written: undo the emitted event."""


def _end_investigation(
    req: InvestigationRequested,
    event: Received,
    outcome: model.Outcome | None,
    error: str | None,
    told: dict[str, Any] | None = None,
) -> str:
    now = _now()
    status = "failed" if outcome is None else "completed"
    fields: dict[str, Any] = {
        "status": status,
        "updated_at": now,
        "finished_at": now,
        "error": error,
    }
    if outcome is not None:
        fields.update(
            findings=[f.as_dict() for f in outcome.findings],
            summary=outcome.summary,
            result=outcome.result,
            top_severity=outcome.top_severity,
            narrative=told,
        )
    try:
        with db.transaction() as tx:
            emit(
                tx,
                InvestigationCompleted(
                    investigation_id=req.investigation_id,
                    kind=req.kind,
                    package_id=req.package_id,
                    status=status,  # type: ignore[arg-type]
                    findings=len(outcome.findings) if outcome else 0,
                    top_severity=outcome.top_severity if outcome else None,
                    summary=outcome.summary if outcome else (error or ""),
                    error=error,
                ),
                actor=req.requested_by,
            )
            if not store.finish(store.INVESTIGATIONS, req.investigation_id, event.event_id, fields):
                raise _Lost()
    except _Lost:
        _log.warning("investigation %s: claim lost before finishing", req.investigation_id)
        return "lost"
    return status


# --- analyses ------------------------------------------------------------------------------


def _analysis_doc(
    *,
    analysis_id: str,
    kind: str,
    repository: str | None,
    sha: str | None,
    message: str | None,
    diff: str | None,
    origin: str,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    raw = (diff or "").encode()
    return {
        "id": analysis_id,
        "type": "analysis",
        "kind": kind,
        "repository": repository,
        "sha": sha,
        "message": message,
        # The diff itself stays in the event (it may hold secrets and exceed a document).
        "diff_bytes": len(raw),
        "diff_sha256": hashlib.sha256(raw).hexdigest() if diff else None,
        "origin": origin,
        "status": "queued",
        "findings": [],
        "summary": None,
        "result": {},
        "error": None,
        "requested_by": actor,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "attempts": 0,
    }


def request_code_analysis(
    *, diff: str, message: str | None, repository: str | None, sha: str | None, actor: str
) -> model.Analysis:
    model.parse_diff(diff)  # 422 now rather than a failed analysis later
    return _request_analysis(
        kind="code", repository=repository, sha=sha, message=message, diff=diff, actor=actor
    )


def request_commit_analysis(*, repository: str, sha: str, actor: str) -> model.Analysis:
    commit = store.get_commit(repository, sha)
    if commit is None:
        raise model.CommitUnknown(repository, sha)
    return _request_analysis(
        kind="commit",
        repository=repository,
        sha=sha,
        message=commit.get("message"),
        diff=None,
        actor=actor,
    )


def _request_analysis(
    *,
    kind: str,
    repository: str | None,
    sha: str | None,
    message: str | None,
    diff: str | None,
    actor: str,
) -> model.Analysis:
    now = _now()
    analysis_id = str(uuid.uuid4())
    doc = _analysis_doc(
        analysis_id=analysis_id,
        kind=kind,
        repository=repository,
        sha=sha,
        message=message,
        diff=diff,
        origin="api",
        actor=actor,
        now=now,
    )
    with db.transaction() as tx:
        if diff is not None:
            store.put_diff(analysis_id, diff)
        store.create(store.ANALYSES, doc)
        emit(
            tx,
            AnalysisRequested(
                analysis_id=analysis_id,
                kind=kind,  # type: ignore[arg-type]
                repository=repository,
                sha=sha,
                message=message,
                diff_sha256=doc["diff_sha256"],
                diff_bytes=doc["diff_bytes"],
                requested_by=actor,
                requested_at=rfc3339(now),
            ),
            actor=actor,
        )
    return model.work_of(model.Analysis, doc)


def get_analysis(analysis_id: str) -> model.Analysis:
    found = store.analysis(analysis_id)
    if found is None:
        raise model.AnalysisNotFound()
    return found


def run_analysis(event: Received) -> str:
    req = event.parse(AnalysisRequested)
    if store.get(store.ANALYSES, req.analysis_id) is None:
        store.ensure(
            store.ANALYSES,
            _analysis_doc(
                analysis_id=req.analysis_id,
                kind=req.kind,
                repository=req.repository,
                sha=req.sha,
                message=req.message,
                diff=store.get_diff(req.analysis_id),
                origin="api",
                actor=req.requested_by,
                now=_time(req.requested_at) or _now(),
            ),
        )
    return _run_analysis(req.analysis_id, req, event)


def _run_analysis(analysis_id: str, req: AnalysisRequested, event: Received) -> str:
    state = store.claim(store.ANALYSES, analysis_id, event.event_id, _now())
    if state != "claimed":
        _log.info("analysis %s: %s, nothing to do", analysis_id, state)
        return state
    try:
        outcome = analyse(req)
    except model.Problem as exc:
        ended = _end_analysis(analysis_id, req, event, None, str(exc.detail or exc))
    except Exception:
        if event.delivery_attempt < _max_attempts():
            raise
        _log.exception("analysis %s failed on its last attempt", analysis_id)
        ended = _end_analysis(analysis_id, req, event, None, "The analysis failed; see the logs.")
    else:
        ended = _end_analysis(analysis_id, req, event, outcome, None)
    if req.kind == "code" and ended != "lost":
        store.drop_diff(analysis_id)
    return ended


def analyse(req: AnalysisRequested) -> model.Outcome:
    """The findings of one analysis: a diff (kind code) or a recorded commit (kind commit)."""
    if req.kind == "code":
        diff = store.get_diff(req.analysis_id)
        if diff is None:
            raise model.AgentsError("The diff of this analysis is no longer stored.", status=410)
        if req.diff_sha256 and hashlib.sha256(diff.encode()).hexdigest() != req.diff_sha256:
            raise model.AgentsError("The stored diff is not the one requested.", status=409)
        files = model.parse_diff(diff)
        return model.analyse_commit(
            message=req.message or "", files=files, secrets=model.scan_secrets(diff)
        )
    commit = store.get_commit(req.repository or "", req.sha or "")
    if commit is None:
        raise model.CommitUnknown(req.repository or "", req.sha or "")
    return commit_outcome(commit)


def commit_outcome(commit: dict[str, Any]) -> model.Outcome:
    files = [model.FileChange(**f) for f in commit.get("files") or []]
    adds, dels = commit.get("additions"), commit.get("deletions")
    return model.analyse_commit(
        message=commit.get("message") or "",
        files=files,
        diff_scanned=False,
        totals=(int(adds or 0), int(dels or 0)) if adds is not None or dels is not None else None,
    )


def _end_analysis(
    analysis_id: str,
    req: AnalysisRequested,
    event: Received,
    outcome: model.Outcome | None,
    error: str | None,
) -> str:
    now = _now()
    status = "failed" if outcome is None else "completed"
    fields: dict[str, Any] = {
        "status": status,
        "updated_at": now,
        "finished_at": now,
        "error": error,
    }
    result = outcome.result if outcome else {}
    if outcome is not None:
        fields.update(
            findings=[f.as_dict() for f in outcome.findings],
            summary=outcome.summary,
            result=outcome.result,
            top_severity=outcome.top_severity,
        )
    try:
        with db.transaction() as tx:
            emit(
                tx,
                AnalysisCompleted(
                    analysis_id=analysis_id,
                    kind=req.kind,
                    repository=req.repository,
                    sha=req.sha,
                    status=status,  # type: ignore[arg-type]
                    commit_type=result.get("type"),
                    risk_score=result.get("risk_score"),
                    risk_level=result.get("risk_level"),
                    secrets=int(result.get("secrets") or 0),
                    findings=len(outcome.findings) if outcome else 0,
                    top_severity=outcome.top_severity if outcome else None,
                    summary=outcome.summary if outcome else (error or ""),
                    error=error,
                ),
                actor=req.requested_by,
            )
            if not store.finish(store.ANALYSES, analysis_id, event.event_id, fields):
                raise _Lost()
    except _Lost:
        _log.warning("analysis %s: claim lost before finishing", analysis_id)
        return "lost"
    return status


def auto_analysis_id(repository: str, sha: str) -> str:
    """The id of the automatic analysis of a recorded commit (one per repository + sha)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"switchyard:agents:commit:{repository}:{sha}"))


def on_commit_recorded(event: Received) -> str:
    """Keep the commit and analyse it (once per repository + sha)."""
    facts = event.parse(CommitFacts)
    files = (
        [{"path": p, "status": "added", "additions": 0, "deletions": 0} for p in facts.added]
        + [{"path": p, "status": "removed", "additions": 0, "deletions": 0} for p in facts.removed]
        + [
            {"path": p, "status": "modified", "additions": 0, "deletions": 0}
            for p in facts.modified
        ]
    )
    store.put_commit(
        {
            "repository": facts.repository,
            "sha": facts.sha,
            "message": facts.message,
            "branch": facts.branch,
            "timestamp": _time(facts.timestamp),
            "files": files,
            "files_known": facts.files_known,
            "additions": facts.additions,
            "deletions": facts.deletions,
            "url": facts.url,
            "recorded_at": event.occurred_at,
        }
    )
    analysis_id = auto_analysis_id(facts.repository, facts.sha)
    req = AnalysisRequested(
        analysis_id=analysis_id,
        kind="commit",
        repository=facts.repository,
        sha=facts.sha,
        message=facts.message,
        diff_sha256=None,
        diff_bytes=0,
        requested_by="system",
        requested_at=rfc3339(event.occurred_at),
    )
    doc = _analysis_doc(
        analysis_id=analysis_id,
        kind="commit",
        repository=facts.repository,
        sha=facts.sha,
        message=facts.message,
        diff=None,
        origin="commit.recorded",
        actor="system",
        now=_now(),
    )
    store.ensure(store.ANALYSES, doc)
    return _run_analysis(analysis_id, req, event)


# --- the package read model ---------------------------------------------------------------


def on_package_event(event: Received) -> None:
    """Fold one logistics event into the read model (idempotent, order-independent)."""
    lane = event.parse(PackageFacts)
    facts = {
        "tracking_number": lane.tracking_number,
        "origin": {"lat": lane.origin_lat, "lon": lane.origin_lon, "region": lane.origin_region},
        "destination": {
            "lat": lane.destination_lat,
            "lon": lane.destination_lon,
            "region": lane.destination_region,
        },
        "service_level": lane.service_level,
        "promised_at": _time(lane.promised_by),
        "status": lane.status,
    }
    once: dict[str, Any] = {}
    if event.event_type == "package.created":
        once["created_at"] = _time(event.parse(PackageCreatedFacts).created_at)
    if event.event_type == "package.delivered":
        done = event.parse(PackageDeliveredFacts)
        once["delivered_at"] = _time(done.delivered_at)
        once["picked_up_at"] = _time(done.picked_up_at)
    store.apply_package(lane.package_id, facts, lane.version, once)
    if event.event_type == "tracking.event.recorded":
        scan = event.parse(ScanFacts)
        store.add_scan(
            lane.package_id,
            {
                "id": scan.scan_id,
                "kind": scan.kind,
                "location": scan.location,
                "lat": scan.lat,
                "lon": scan.lon,
                "occurred_at": _time(scan.occurred_at),
                "recorded_at": _time(scan.recorded_at),
                "note": scan.note,
            },
        )
    refresh_lane_sample(lane.package_id)


def refresh_lane_sample(package_id: str) -> bool:
    """(Re)compute the lane sample of a delivered package; False when it is not delivered."""
    package = store.package(package_id)
    if package is None or package.delivered_at is None:
        return False
    sample = model.lane_sample(package, store.scans(package_id))
    if sample is None:
        return False
    lane = model.lane_key(package.origin, package.destination)
    store.put_lane_sample(package_id, lane, sample, package.delivered_at)
    return True


def package_view(package_id: str) -> dict[str, Any]:
    """What the agents know of a package: its facts, scans and lane history size."""
    package = store.package(package_id)
    if package is None:
        raise model.AgentsError(
            f"The agents know no package {package_id} (yet).", status=404, title="Not Found"
        )
    scans = store.scans(package_id)
    lane = model.lane_key(package.origin, package.destination)
    return {
        "package": package,
        "scans": scans,
        "lane": lane,
        "lane_samples": len(store.lane_samples(lane)),
    }


# --- the worker ----------------------------------------------------------------------------


def handle(event: Received) -> str:
    """The agents-worker: one entry point for every topic it subscribes to."""
    if event.event_type == "investigation.requested":
        return run_investigation(event)
    if event.event_type == "analysis.requested":
        return run_analysis(event)
    if event.event_type == "commit.recorded":
        return on_commit_recorded(event)
    if event.event_type in PACKAGE_EVENTS:
        on_package_event(event)
        return "applied"
    _log.warning("ignored unexpected event %s", event.event_type)
    return "ignored"


# --- status and interactions ---------------------------------------------------------------


def status() -> dict[str, Any]:
    """Queue depth, failures and the latest results, over investigations and analyses."""
    out: dict[str, Any] = {}
    finished: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for name, collection in (
        ("investigations", store.INVESTIGATIONS),
        ("analyses", store.ANALYSES),
    ):
        counts = {st: store.count(collection, st) for st in model.STATUSES}
        out[name] = counts
        finished += store.latest_finished(collection, "completed", LAST_RESULTS)
        failures += store.latest_finished(collection, "failed", LAST_RESULTS)

    def newest(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        def key(d: dict[str, Any]) -> tuple[datetime, str]:
            return (d.get("finished_at") or d["created_at"], d["id"])

        return sorted(docs, key=key, reverse=True)[:LAST_RESULTS]

    out["queue_depth"] = sum(
        out[n]["queued"] + out[n]["running"] for n in ("investigations", "analyses")
    )
    out["failures"] = sum(out[n]["failed"] for n in ("investigations", "analyses"))
    out["last_results"] = newest(finished)
    out["last_failures"] = newest(failures)
    return out


def interactions(
    *,
    kind: str | None,
    status_: str | None,
    repository: str | None,
    package_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Investigations and analyses newest first, merged into one keyset order (created_at,
    id): each collection gives its next `limit` after the cursor, the merge keeps `limit`."""
    sources: list[tuple[str, dict[str, str]]] = []
    inv_kind = kind is None or kind in model.KINDS
    ana_kind = kind is None or kind in model.ANALYSIS_KINDS
    if inv_kind and repository is None:
        sources.append((store.INVESTIGATIONS, {"package_id": package_id} if package_id else {}))
    if ana_kind and package_id is None:
        sources.append((store.ANALYSES, {"repository": repository} if repository else {}))
    docs: list[dict[str, Any]] = []
    for collection, equals in sources:
        if kind:
            equals = {**equals, "kind": kind}
        if status_:
            equals = {**equals, "status": status_}
        docs += store.page(collection, equals=equals, after=after, limit=limit)
    docs.sort(key=lambda d: (d["created_at"], d["id"]), reverse=True)
    return docs[:limit]
