"""Logistics' use cases: create, read, edit, cancel, search and export packages; record scans
one by one or in bulk; read a package's timeline; compute the stats.

One transaction each. A package edit goes through `store.change` with the version the use case
read (two concurrent edits cannot both apply: the loser gets 409). Scans lock their packages
(`store.lock`) and go through `record_scans`, the one path for a single scan and a batch: the
scans of each package are applied in `occurred_at` order through `model.apply_scan`; each is
accepted, a duplicate (its idempotency key was seen: the stored result is answered) or refused
with its own problem; the accepted ones, their package changes and their events are committed
together. Events are emitted here only, into the outbox, in the same transaction.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError

from functions.logistics import model, store
from functions.logistics.events import (
    PackageCreated,
    PackageDelivered,
    PackageExceptionRaised,
    PackageStatusChanged,
    PackageUpdated,
    TrackingEventRecorded,
)
from functions.logistics.model import Package, Scan
from shared import db
from shared.errors import Conflict, Problem
from shared.events import Event, emit, emit_many, rfc3339

CREATE_ATTEMPTS = 5  # generated tracking numbers are random: retry the rare collision


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def lane(p: Package) -> dict[str, Any]:
    """The facts every event of a package carries (events._Lane)."""
    return {
        "package_id": p.id,
        "tracking_number": p.tracking_number,
        "origin_region": p.origin_region,
        "destination_region": p.destination_region,
        "origin_lat": p.origin_lat,
        "origin_lon": p.origin_lon,
        "destination_lat": p.destination_lat,
        "destination_lon": p.destination_lon,
        "service_level": p.service_level,
        "weight_kg": p.weight_kg,
        "promised_by": _ts(p.promised_by),
        "status": p.status,
        "version": p.version,
    }


# --- packages ------------------------------------------------------------------------------


def create_package(*, tracking_number: str | None, actor: str, **fields: Any) -> Package:
    """A new package (status created). A given tracking number must be free (409); without
    one an S10 number is generated."""
    if tracking_number is not None:
        model.check_tracking_number(tracking_number)
    for _ in range(CREATE_ATTEMPTS):
        now = _now()
        package = Package(
            id=str(uuid.uuid4()),
            tracking_number=tracking_number or model.new_tracking_number(),
            status=model.INITIAL_STATUS,
            picked_up_at=None,
            delivered_at=None,
            last_scan_at=None,
            created_at=now,
            updated_at=now,
            version=1,
            **fields,
        )
        try:
            with db.transaction() as tx:
                if store.number_taken(tx, package.tracking_number):
                    raise model.TrackingNumberTaken(package.tracking_number)
                store.insert(tx, package)
                emit(tx, PackageCreated(**lane(package), created_at=rfc3339(now)), actor=actor)
            return package
        except (model.TrackingNumberTaken, IntegrityError):
            if tracking_number is not None:
                raise model.TrackingNumberTaken(tracking_number) from None
    raise Conflict("Could not allocate a free tracking number; retry.")


def get_package(package_id: str) -> Package:
    with db.transaction() as tx:
        package = store.get(tx, package_id)
    if package is None:
        raise model.PackageNotFound()
    return package


def list_packages(
    *, limit: int, after: tuple[datetime, str] | None = None, **filters: Any
) -> list[Package]:
    """Up to `limit` packages, newest first, after the keyset `after` (see store.search)."""
    with db.transaction() as tx:
        return store.search(tx, after=after, limit=limit, now=_now(), **filters)


def export_packages(**filters: Any) -> Iterator[Package]:
    """Every matching package, newest first, streamed from a server-side cursor. The
    connection is held while the caller iterates and released when it stops."""
    now = _now()
    with db.engine().connect() as conn, conn.begin():
        yield from store.export(conn, now=now, **filters)


def update_package(
    package_id: str,
    changes: dict[str, Any],
    *,
    status: str | None,
    expected_version: int | None,
    actor: str,
) -> Package:
    """Apply a partial edit and, with `status`, a manual status move (model.manual_moves). A
    no-op leaves the version unchanged."""
    now = _now()
    with db.transaction() as tx:
        current = _locked(tx, package_id)
        if expected_version is not None and expected_version != current.version:
            raise model.ConcurrentChange()
        row = {f: getattr(current, f) for f in model.EDITABLE_FIELDS}
        changed = model.changed_fields(row, changes)
        moving = status is not None and status != current.status
        if changed or moving:
            model.check_edit(current.status, changed)
        if moving:
            assert status is not None
            model.check_manual_move(current.status, status)
        if not changed and not moving:
            return current
        values: dict[str, Any] = {f: changes[f] for f in changed}
        values["updated_at"] = now
        if moving:
            values["status"] = status
        if not store.change(tx, package_id, current.version, **values):
            raise model.ConcurrentChange()
        package = replace(current, **values, version=current.version + 1)
        if changed:
            emit(tx, PackageUpdated(**lane(package), changed=changed), actor=actor)
        if moving:
            _emit_manual_move(tx, current, package, now, actor, reason="manual")
    return package


def _locked(tx: Any, package_id: str) -> Package:
    found = store.lock(tx, ids=[package_id], numbers=[])
    if not found:
        raise model.PackageNotFound()
    return found[0]


def cancel_package(package_id: str, *, actor: str) -> Package:
    """Cancel a package (only before pickup: 409 naming the allowed moves otherwise)."""
    now = _now()
    with db.transaction() as tx:
        current = _locked(tx, package_id)
        model.check_manual_move(current.status, "cancelled")
        if not store.change(tx, package_id, current.version, status="cancelled", updated_at=now):
            raise model.ConcurrentChange()
        package = replace(current, status="cancelled", updated_at=now, version=current.version + 1)
        _emit_manual_move(tx, current, package, now, actor, reason="cancelled")
    return package


def _emit_manual_move(
    tx: Any, old: Package, new: Package, now: datetime, actor: str, *, reason: str
) -> None:
    emit(
        tx,
        PackageStatusChanged(
            **lane(new),
            old=old.status,
            new=new.status,
            reason=reason,
            occurred_at=rfc3339(now),
            scan_id=None,
            scan_kind=None,
            lat=None,
            lon=None,
            actor=actor,
        ),
        actor=actor,
    )


# --- scans ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanRequest:
    """One scan as a scanner sends it; the package by id or by tracking number."""

    kind: str
    location: str
    lat: float
    lon: float
    occurred_at: datetime
    idempotency_key: str
    note: str | None = None
    package_id: str | None = None
    tracking_number: str | None = None

    @property
    def ref(self) -> str:
        return self.package_id or self.tracking_number or "?"


Outcome = Literal["accepted", "duplicate", "refused"]


@dataclass(frozen=True)
class ScanResult:
    outcome: Outcome
    scan: Scan | None = None
    tracking_number: str | None = None
    problem: Problem | None = None


def record_scans(requests: list[ScanRequest], *, actor: str) -> list[ScanResult]:
    """Record scans (one or a batch): a result per request, in request order. A concurrent
    writer of the same idempotency key makes the insert skip it (PostgreSQL's ON CONFLICT,
    `store.KeyRace`) or fail on the unique index: then the batch is rolled back and evaluated
    again, once, and sees that key as already used."""
    try:
        return _record(requests, actor)
    except (IntegrityError, store.KeyRace):
        try:
            return _record(requests, actor)
        except (IntegrityError, store.KeyRace):
            raise model.ConcurrentChange() from None


def _record(requests: list[ScanRequest], actor: str) -> list[ScanResult]:
    now = _now()
    results: list[ScanResult | None] = [None] * len(requests)
    with db.transaction() as tx:
        locked = store.lock(
            tx,
            ids=sorted({r.package_id for r in requests if r.package_id}),
            numbers=sorted({r.tracking_number for r in requests if r.tracking_number}),
        )
        by_id = {p.id: p for p in locked}
        by_number = {p.tracking_number: p for p in locked}
        known = store.scans_by_key(tx, sorted({r.idempotency_key for r in requests}))
        first_of_key: dict[str, int] = {}
        echoes: list[tuple[int, int]] = []  # (request, earlier request with the same key)
        groups: dict[str, list[int]] = {}
        resolved: dict[int, str] = {}
        for i, r in enumerate(requests):
            pkg = (
                by_id.get(r.package_id) if r.package_id else by_number.get(r.tracking_number or "")
            )
            if pkg is None:
                results[i] = ScanResult("refused", problem=model.PackageNotFound(r.ref))
                continue
            resolved[i] = pkg.id
            stored = known.get(r.idempotency_key)
            if stored is not None:
                results[i] = _replay(stored, r, pkg)
                continue
            if r.idempotency_key in first_of_key:
                echoes.append((i, first_of_key[r.idempotency_key]))
                continue
            first_of_key[r.idempotency_key] = i
            groups.setdefault(pkg.id, []).append(i)

        new_scans: list[Scan] = []
        ids = _new_ids(sum(len(g) for g in groups.values()))
        changes: list[dict[str, Any]] = []
        outbox: list[Event] = []  # the batch's events, in order, written by one emit_many
        for package_id, indexes in groups.items():
            pkg = by_id[package_id]
            state, version = pkg.state(), pkg.version
            applied: list[tuple[Scan, model.ScanOutcome, int]] = []
            for i in sorted(indexes, key=lambda i: (requests[i].occurred_at, i)):
                r = requests[i]
                try:
                    outcome = model.apply_scan(state, r.kind, r.occurred_at)
                except model.ImpossibleScan as exc:
                    results[i] = ScanResult("refused", problem=exc)
                    continue
                state, version = outcome.state, version + 1
                scan = Scan(
                    id=next(ids),
                    package_id=package_id,
                    kind=r.kind,
                    location=r.location,
                    lat=r.lat,
                    lon=r.lon,
                    note=r.note,
                    occurred_at=r.occurred_at,
                    recorded_at=now,
                    idempotency_key=r.idempotency_key,
                    actor=actor,
                    status_from=outcome.status_from,
                    status_to=outcome.status_to,
                    out_of_order=outcome.out_of_order,
                )
                new_scans.append(scan)
                applied.append((scan, outcome, version))
                results[i] = ScanResult("accepted", scan, pkg.tracking_number)
            if not applied:
                continue
            values: dict[str, Any] = {
                "status": state.status,
                "last_scan_at": state.last_scan_at,
                "picked_up_at": state.picked_up_at,
                "delivered_at": state.delivered_at,
                "updated_at": now,
            }
            changes.append({"id": package_id, "seen": pkg.version, "version": version, **values})
            by_id[package_id] = replace(pkg, **values, version=version)
            for scan, outcome, v in applied:
                outbox.extend(_scan_events(pkg, scan, outcome, v, actor))
        if not store.change_many(tx, changes):
            raise model.ConcurrentChange()  # cannot happen under the row locks
        store.insert_scans(tx, new_scans)
        emit_many(tx, outbox, actor=actor)

    for i, j in echoes:
        first = results[j]
        assert first is not None
        r = requests[i]
        if first.scan is None:
            results[i] = first  # the same refusal
        elif resolved[i] == first.scan.package_id and first.scan.same_as(
            resolved[i], r.kind, r.occurred_at, r.lat, r.lon, r.location, r.note
        ):
            results[i] = ScanResult("duplicate", first.scan, first.tracking_number)
        else:
            results[i] = ScanResult(
                "refused", problem=model.IdempotencyKeyReused(r.idempotency_key)
            )
    return [r for r in results if r is not None]


def _new_ids(n: int) -> Iterator[str]:
    """n random (version 4) UUIDs from one read of the system's randomness (a read per id
    was a tenth of a loaded machine's time for a batch)."""
    raw = os.urandom(16 * n)
    return (str(uuid.UUID(bytes=raw[i : i + 16], version=4)) for i in range(0, 16 * n, 16))


def _replay(stored: Scan, r: ScanRequest, pkg: Package) -> ScanResult:
    if stored.same_as(pkg.id, r.kind, r.occurred_at, r.lat, r.lon, r.location, r.note):
        return ScanResult("duplicate", stored, pkg.tracking_number)
    return ScanResult("refused", problem=model.IdempotencyKeyReused(r.idempotency_key))


def _scan_events(
    pkg: Package, scan: Scan, outcome: model.ScanOutcome, version: int, actor: str
) -> list[Event]:
    """The events of one accepted scan: its tracking event, then, when it moved the package,
    the status change and the delivery or exception it was."""
    state = outcome.state
    facts = {
        **lane(pkg),
        "status": state.status,
        "version": version,
    }
    out: list[Event] = [
        TrackingEventRecorded(
            **facts,
            scan_id=scan.id,
            kind=scan.kind,
            location=scan.location,
            lat=scan.lat,
            lon=scan.lon,
            occurred_at=rfc3339(scan.occurred_at),
            recorded_at=rfc3339(scan.recorded_at),
            note=scan.note,
            status_from=scan.status_from,
            status_to=scan.status_to,
            out_of_order=scan.out_of_order,
        )
    ]
    if not outcome.moved:
        return out
    out.append(
        PackageStatusChanged(
            **facts,
            old=outcome.status_from,
            new=outcome.status_after,
            reason="scan",
            occurred_at=rfc3339(scan.occurred_at),
            scan_id=scan.id,
            scan_kind=scan.kind,
            lat=scan.lat,
            lon=scan.lon,
            actor=actor,
        )
    )
    if outcome.status_to == "delivered":
        assert state.delivered_at is not None
        on_time = None if pkg.promised_by is None else state.delivered_at <= pkg.promised_by
        out.append(
            PackageDelivered(
                **facts,
                scan_id=scan.id,
                location=scan.location,
                lat=scan.lat,
                lon=scan.lon,
                delivered_at=rfc3339(state.delivered_at),
                picked_up_at=_ts(state.picked_up_at),
                transit_seconds=model.transit_seconds(state.picked_up_at, state.delivered_at),
                on_time=on_time,
            )
        )
    elif outcome.status_to == "exception":
        out.append(
            PackageExceptionRaised(
                **facts,
                scan_id=scan.id,
                location=scan.location,
                lat=scan.lat,
                lon=scan.lon,
                occurred_at=rfc3339(scan.occurred_at),
                note=scan.note,
            )
        )
    return out


def timeline(package_id: str, *, after: tuple[datetime, str] | None, limit: int) -> list[Scan]:
    with db.transaction() as tx:
        if store.get(tx, package_id) is None:
            raise model.PackageNotFound()
        return store.timeline(tx, package_id, after=after, limit=limit)


# --- stats ---------------------------------------------------------------------------------

DEFAULT_DAYS = 30


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last DEFAULT_DAYS days, today (UTC) included."""
    today = today or _now().date()
    return today - timedelta(days=DEFAULT_DAYS - 1), today


def _transit(rows: list[tuple[tuple[str, ...], int, float, float, float]], *names: str) -> list:
    return [
        {
            **dict(zip(names, key, strict=True)),
            "packages": n,
            "avg_seconds": avg,
            "min_seconds": lo,
            "max_seconds": hi,
        }
        for key, n, avg, lo, hi in rows
    ]


def stats(*, day_from: date, day_to: date) -> dict[str, Any]:
    """Counts by status and the late packages on their way are of now; deliveries (on-time
    rate, transit per lane and service level) and exceptions per day cover the UTC days
    day_from..day_to (both included)."""
    now = _now()
    start = datetime.combine(day_from, time(), UTC)
    end = datetime.combine(day_to + timedelta(days=1), time(), UTC)
    with db.transaction() as tx:
        counts = store.count_by_status(tx)
        late_open = store.count_late_open(tx, now)
        delivered = store.deliveries(tx, start, end)
        lanes = store.transit_by(tx, start, end, "origin_region", "destination_region")
        levels = store.transit_by(tx, start, end, "service_level")
        per_day = store.exceptions_per_day(tx, start, end)
    days = [day_from + timedelta(days=i) for i in range((day_to - day_from).days + 1)]
    promised = delivered["promised"]
    return {
        "from": day_from.isoformat(),
        "to": day_to.isoformat(),
        "total": sum(counts.values()),
        "by_status": {s: counts.get(s, 0) for s in model.STATUSES},
        "late_open": late_open,
        "delivered": delivered["delivered"],
        "delivered_with_promise": promised,
        "delivered_on_time": delivered["on_time"],
        "delivered_late": promised - delivered["on_time"],
        "on_time_rate": delivered["on_time"] / promised if promised else None,
        "transit_by_lane": _transit(lanes, "origin_region", "destination_region"),
        "transit_by_service_level": _transit(levels, "service_level"),
        "exceptions_per_day": [
            {"day": d.isoformat(), "exceptions": per_day.get(d, 0)} for d in days
        ],
        "exceptions_total": sum(per_day.values()),
    }
