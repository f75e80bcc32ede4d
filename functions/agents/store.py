"""The agents' documents in Firestore, and the outbox table of their events (schema `agents`).

Collections:
- `agents_investigations/{id}` and `agents_analyses/{id}`: one document per piece of work,
  with its status (queued -> running -> completed | failed), findings, summary and result. The
  move queued -> running is a conditional update (`last_update_time` precondition), so of two
  deliveries exactly one claims the work; the finishing write is conditional on the claim.
- `agents_packages/{package_id}` (+ subcollection `scans/{scan_id}`): the local read model of
  logistics' packages and scans, fed by its events (never its tables). Package facts carry the
  package's version, so an older event never overwrites a newer one whatever order Pub/Sub
  delivers them in; scans are named by their id (idempotent).
- `agents_lane_samples/{package_id}`: one transit-time sample per delivered package (lane,
  hours, hours per stage), read newest first per lane.
- `agents_commits/{repo~sha}`: the commits source recorded, as the analysis reads them.
- `agents_diffs/{analysis_id}`: a diff waiting for its analysis (it may hold secrets, so it is
  never put in an event); deleted once analysed, and by the TTL on `expires_at` otherwise.

Lists are keyset pages ordered by `created_at DESC, __name__ DESC`. The composite indexes the
queries need (equality field + created_at DESC; lane + delivered_at DESC; status + finished_at
DESC) are listed in docs/decisions/0020-agents-work-in-firestore.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import MetaData

from functions.agents import model
from shared import db
from shared.clients import firestore
from shared.events import outbox_table

SCHEMA = "agents"
metadata: MetaData = db.metadata(SCHEMA)
outbox = outbox_table(metadata)

INVESTIGATIONS = "agents_investigations"
ANALYSES = "agents_analyses"
PACKAGES = "agents_packages"
SCANS = "scans"
LANE_SAMPLES = "agents_lane_samples"
COMMITS = "agents_commits"
DIFFS = "agents_diffs"
DIFF_TTL = timedelta(days=2)
MAX_LANE_SAMPLES = 500
PACKAGE_FIELDS = (
    "tracking_number",
    "origin",
    "destination",
    "service_level",
    "promised_at",
    "status",
)


def _col(name: str) -> Any:
    return firestore().collection(name)


def _aware(value: Any) -> Any:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def _loaded(snapshot: Any) -> dict[str, Any]:
    doc = snapshot.to_dict() or {}
    doc.setdefault("id", snapshot.id)
    return {k: _aware(v) for k, v in doc.items()}


# --- work documents (investigations, analyses) --------------------------------------------


def create(collection: str, doc: dict[str, Any]) -> None:
    """Create the document of a new piece of work (fails if the id exists)."""
    _col(collection).document(doc["id"]).create(doc)


def ensure(collection: str, doc: dict[str, Any]) -> bool:
    """Create the document unless it exists; True when this call created it."""
    from google.api_core.exceptions import AlreadyExists

    try:
        create(collection, doc)
        return True
    except AlreadyExists:
        return False


def get(collection: str, doc_id: str) -> dict[str, Any] | None:
    snap = _col(collection).document(doc_id).get()
    return _loaded(snap) if snap.exists else None


def investigation(doc_id: str) -> model.Investigation | None:
    doc = get(INVESTIGATIONS, doc_id)
    return None if doc is None else model.work_of(model.Investigation, doc)


def analysis(doc_id: str) -> model.Analysis | None:
    doc = get(ANALYSES, doc_id)
    return None if doc is None else model.work_of(model.Analysis, doc)


def claim(collection: str, doc_id: str, claimant: str, now: datetime) -> str:
    """Move queued -> running for `claimant` (an event id), once.

    'claimed' (go on), 'missing', 'finished' (already completed or failed), or 'taken'
    (running for another claimant). A claimant that finds its own claim (its earlier delivery
    failed half-way) goes on: the event handler lets one delivery of an event run at a time."""
    from google.api_core.exceptions import FailedPrecondition
    from google.cloud.firestore_v1 import Client, Increment

    ref = _col(collection).document(doc_id)
    for _ in range(5):
        snap = ref.get()
        if not snap.exists:
            return "missing"
        doc = snap.to_dict() or {}
        status = doc.get("status")
        if status in model.FINISHED:
            return "finished"
        if status == "running":
            return "claimed" if doc.get("claimed_by") == claimant else "taken"
        if not model.allowed_claim(str(status)):
            return "taken"
        try:
            ref.update(
                {
                    "status": "running",
                    "claimed_by": claimant,
                    "started_at": now,
                    "updated_at": now,
                    "attempts": Increment(1),
                },
                option=Client.write_option(last_update_time=snap.update_time),
            )
            return "claimed"
        except FailedPrecondition:
            continue  # changed under us: read again
    return "taken"


def finish(collection: str, doc_id: str, claimant: str, fields: dict[str, Any]) -> bool:
    """Write the end of the work (status completed/failed and results) if `claimant` still
    holds it; False when it does not (nothing written)."""
    from google.api_core.exceptions import FailedPrecondition
    from google.cloud.firestore_v1 import Client

    ref = _col(collection).document(doc_id)
    for _ in range(5):
        snap = ref.get()
        doc = snap.to_dict() or {} if snap.exists else None
        if doc is None or doc.get("status") != "running" or doc.get("claimed_by") != claimant:
            return False
        try:
            ref.update(fields, option=Client.write_option(last_update_time=snap.update_time))
            return True
        except FailedPrecondition:
            continue
    return False


def page(
    collection: str,
    *,
    equals: dict[str, str],
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Documents newest first (created_at DESC, id DESC) matching every `field == value`,
    after the keyset `after`; at most `limit`."""
    from google.cloud.firestore_v1 import FieldFilter, Query

    q = _col(collection)
    for name, value in sorted(equals.items()):
        q = q.where(filter=FieldFilter(name, "==", value))
    q = q.order_by("created_at", direction=Query.DESCENDING).order_by(
        "__name__", direction=Query.DESCENDING
    )
    if after is not None:
        q = q.start_after([after[0], after[1]])
    return [_loaded(s) for s in q.limit(limit).stream()]


def count(collection: str, status: str) -> int:
    from google.cloud.firestore_v1 import FieldFilter

    q = _col(collection).where(filter=FieldFilter("status", "==", status))
    result = q.count(alias="n").get()
    return int(result[0][0].value) if result and result[0] else 0


def latest_finished(collection: str, status: str, limit: int) -> list[dict[str, Any]]:
    from google.cloud.firestore_v1 import FieldFilter, Query

    q = (
        _col(collection)
        .where(filter=FieldFilter("status", "==", status))
        .order_by("finished_at", direction=Query.DESCENDING)
        .limit(limit)
    )
    return [_loaded(s) for s in q.stream()]


# --- the package read model ----------------------------------------------------------------


def apply_package(
    package_id: str, facts: dict[str, Any], version: int, once: dict[str, Any]
) -> bool:
    """Merge what an event says about a package: `facts` (the package after the change, at
    `version`) replace the stored ones unless those are of a newer version; `once` (facts that
    never change, such as when it was created or delivered) are kept from whichever event
    brought them first. True when anything changed."""
    from google.api_core.exceptions import AlreadyExists, FailedPrecondition
    from google.cloud.firestore_v1 import Client

    ref = _col(PACKAGES).document(package_id)
    for _ in range(8):
        snap = ref.get()
        current = snap.to_dict() or {} if snap.exists else {}
        changes: dict[str, Any] = {}
        if int(current.get("version") or 0) <= version:
            changes.update(
                {k: v for k, v in facts.items() if k in PACKAGE_FIELDS and current.get(k) != v}
            )
            if current.get("version") != version:
                changes["version"] = version
        changes.update({k: v for k, v in once.items() if v is not None and current.get(k) is None})
        if not changes:
            return False
        changes["updated_at"] = _now()
        try:
            if snap.exists:
                ref.update(changes, option=Client.write_option(last_update_time=snap.update_time))
            else:
                ref.create({**changes, "id": package_id})
            return True
        except (AlreadyExists, FailedPrecondition):
            continue
    raise RuntimeError(f"package {package_id}: too many concurrent changes")


def add_scan(package_id: str, scan: dict[str, Any]) -> None:
    """Store one scan (named by its id: a redelivery overwrites itself)."""
    _col(PACKAGES).document(package_id).collection(SCANS).document(scan["id"]).set(scan)


def package(package_id: str) -> model.Package | None:
    snap = _col(PACKAGES).document(package_id).get()
    if not snap.exists:
        return None
    doc = _loaded(snap)

    def place(raw: Any) -> model.Place:
        raw = raw or {}
        return model.Place(
            lat=raw.get("lat"),
            lon=raw.get("lon"),
            region=raw.get("region"),
            address=raw.get("address"),
        )

    return model.Package(
        id=package_id,
        tracking_number=doc.get("tracking_number") or "",
        origin=place(doc.get("origin")),
        destination=place(doc.get("destination")),
        service_level=doc.get("service_level"),
        promised_at=_aware(doc.get("promised_at")),
        status=doc.get("status"),
        created_at=_aware(doc.get("created_at")),
        delivered_at=_aware(doc.get("delivered_at")),
        picked_up_at=_aware(doc.get("picked_up_at")),
    )


def scans(package_id: str) -> list[model.Scan]:
    docs = _col(PACKAGES).document(package_id).collection(SCANS).stream()
    out = []
    for snap in docs:
        d = _loaded(snap)
        out.append(
            model.Scan(
                id=str(d["id"]),
                kind=str(d.get("kind")),
                occurred_at=d["occurred_at"],
                lat=d.get("lat"),
                lon=d.get("lon"),
                location=d.get("location"),
                recorded_at=d.get("recorded_at"),
                note=d.get("note"),
            )
        )
    return model.in_time_order(out)


def put_lane_sample(
    package_id: str, lane: str, sample: model.LaneSample, delivered_at: datetime
) -> None:
    _col(LANE_SAMPLES).document(package_id).set(
        {
            "package_id": package_id,
            "lane": lane,
            "transit_hours": sample.transit_hours,
            "stages": dict(sample.stages),
            "delivered_at": delivered_at,
        }
    )


def lane_samples(lane: str, limit: int = MAX_LANE_SAMPLES) -> list[model.LaneSample]:
    """The lane's most recent samples (newest first)."""
    from google.cloud.firestore_v1 import FieldFilter, Query

    q = (
        _col(LANE_SAMPLES)
        .where(filter=FieldFilter("lane", "==", lane))
        .order_by("delivered_at", direction=Query.DESCENDING)
        .limit(limit)
    )
    return [
        model.LaneSample(float(d["transit_hours"]), dict(d.get("stages") or {}))
        for d in (s.to_dict() or {} for s in q.stream())
    ]


# --- commits ------------------------------------------------------------------------------


def commit_key(repository: str, sha: str) -> str:
    return f"{repository.replace('/', '~')}~{sha}"


def put_commit(doc: dict[str, Any]) -> None:
    _col(COMMITS).document(commit_key(doc["repository"], doc["sha"])).set(doc)


def get_commit(repository: str, sha: str) -> dict[str, Any] | None:
    snap = _col(COMMITS).document(commit_key(repository, sha)).get()
    return _loaded(snap) if snap.exists else None


def put_diff(analysis_id: str, diff: str) -> None:
    _col(DIFFS).document(analysis_id).set({"diff": diff, "expires_at": _now() + DIFF_TTL})


def get_diff(analysis_id: str) -> str | None:
    snap = _col(DIFFS).document(analysis_id).get()
    return (snap.to_dict() or {}).get("diff") if snap.exists else None


def drop_diff(analysis_id: str) -> None:
    _col(DIFFS).document(analysis_id).delete()


def _now() -> datetime:
    return datetime.now(UTC)
