"""The agents' analysis in plain Python: package investigations (anomaly, delay, route, eta) and
commit analysis. Pure functions on frozen dataclasses; no I/O, no web framework.

Every analysis answers `Outcome(findings, summary, result)`; a `Finding` is one thing found,
said in plain words (`message`), with a stable `code`, a `severity` (info, warning, critical)
and the numbers behind it (`evidence`, JSON-able). The thresholds are a `Thresholds` value the
service builds from settings, so tests pass their own.

- anomaly: lifecycle order of the scans, speed between consecutive scans (haversine distance /
  time), stays at one place, distance from the origin-destination corridor (cross-track distance
  to the great-circle segment), repeated exceptions;
- delay and eta: the lane's historical transit times (origin region -> destination region),
  read as empirical percentiles conditioned on the time already spent, against the promise;
  the stage where time was lost is the package's stage that exceeds the lane's median most;
- route: an ordering of stops by Google OR-Tools' routing solver (guided local search) on a
  haversine distance matrix, time windows as hard earliest times and heavily penalised latest
  times (so a plan always exists and names the stops it cannot reach in time);
- commit: Conventional Commits header, size, risk score from churn and sensitive paths,
  secrets in added lines (Yelp's detect-secrets on the diff; the value is never kept),
  languages by extension.

OR-Tools, unidiff and detect-secrets are imported inside the functions that use them: the API
deployment validates with this module without paying for them.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from shared.errors import Conflict, NotFound, Problem, Unprocessable

Kind = Literal["anomaly", "delay", "route", "eta"]
AnalysisKind = Literal["commit", "code"]
Status = Literal["queued", "running", "completed", "failed"]
Severity = Literal["info", "warning", "critical"]
ScanKind = Literal["pickup", "arrival", "departure", "out_for_delivery", "delivery", "exception"]
KINDS: tuple[str, ...] = get_args(Kind)
ANALYSIS_KINDS: tuple[str, ...] = get_args(AnalysisKind)
STATUSES: tuple[str, ...] = get_args(Status)
SEVERITIES: tuple[str, ...] = get_args(Severity)
PACKAGE_KINDS = ("anomaly", "delay", "eta")  # need a package; route needs stops
FINISHED = frozenset({"completed", "failed"})
EARTH_RADIUS_KM = 6371.0088
MAX_STOPS = 60


# --- errors ------------------------------------------------------------------------------


class AgentsError(Problem):
    """Base of every error the agents context raises (problem+json via shared.http)."""


class InvestigationNotFound(AgentsError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such investigation.")


class AnalysisNotFound(AgentsError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such analysis.")


class UnknownReference(AgentsError, Unprocessable):
    """The body names something the agents do not have: the URL's resource (the collection a
    POST adds to) is there, the request is not (422 naming the field, as maintenance and
    automation answer; 404 is for the URL's own resource)."""

    def __init__(self, field: str, message: str, detail: str | None = None) -> None:
        super().__init__(
            detail or f"{field}: {message}",
            errors=[{"field": field, "message": message, "type": "reference"}],
        )


class PackageUnknown(UnknownReference):
    def __init__(self, package_id: str) -> None:
        super().__init__(
            "package_id",
            "no such package",
            f"The agents know no package {package_id} (yet): packages reach them through "
            "logistics' events (package.created, tracking.event.recorded).",
        )


class CommitUnknown(UnknownReference):
    def __init__(self, repository: str, sha: str) -> None:
        super().__init__(
            "sha",
            f"no recorded commit of {repository}",
            f"The agents have no recorded commit {sha} of {repository} "
            "(commits reach them through commit.recorded).",
        )


class BadDiff(AgentsError, Unprocessable):
    def __init__(self, why: str) -> None:
        super().__init__(
            f"The diff is not a unified diff: {why}",
            errors=[{"field": "diff", "message": why, "type": "unified_diff"}],
        )


class AlreadyFinished(AgentsError, Conflict):
    def __init__(self, status: str) -> None:
        super().__init__(f"The work is already {status}.")


# --- the work: investigations and analyses -------------------------------------------------


@dataclass(frozen=True)
class Investigation:
    id: str
    kind: str
    package_id: str | None
    stops: tuple[dict[str, Any], ...]
    departure_at: datetime | None
    return_to_start: bool
    status: str
    findings: tuple[dict[str, Any], ...]
    summary: str | None
    result: dict[str, Any]
    error: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    # {status: written | unavailable, text, model, reason}; None when the narrative is off
    narrative: dict[str, Any] | None = None


@dataclass(frozen=True)
class Analysis:
    id: str
    kind: str
    repository: str | None
    sha: str | None
    message: str | None
    diff_bytes: int
    origin: str  # api | commit.recorded
    status: str
    findings: tuple[dict[str, Any], ...]
    summary: str | None
    result: dict[str, Any]
    error: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int


def work_of(cls: type[Any], doc: Mapping[str, Any]) -> Any:
    """A stored document as `Investigation` or `Analysis` (missing fields take defaults)."""
    defaults: dict[str, Any] = {
        "stops": (),
        "findings": (),
        "result": {},
        "summary": None,
        "error": None,
        "started_at": None,
        "finished_at": None,
        "attempts": 0,
        "departure_at": None,
        "return_to_start": False,
        "package_id": None,
        "repository": None,
        "sha": None,
        "message": None,
        "diff_bytes": 0,
        "origin": "api",
        "narrative": None,
    }
    values = {}
    for name in cls.__dataclass_fields__:
        value = doc.get(name, defaults.get(name))
        if name in ("stops", "findings"):
            value = tuple(value or ())
        if name == "result":
            value = dict(value or {})
        values[name] = value
    return cls(**values)


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class Outcome:
    findings: tuple[Finding, ...]
    summary: str
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def top_severity(self) -> Severity:
        return worst(f.severity for f in self.findings)


def worst(severities: Iterable[str]) -> Severity:
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    best: Severity = "info"
    for s in severities:
        if rank.get(s, 0) > rank[best]:
            best = s  # type: ignore[assignment]
    return best


def allowed_claim(status: str) -> bool:
    """Only queued work may be claimed (queued -> running, once)."""
    return status == "queued"


@dataclass(frozen=True)
class Thresholds:
    max_speed_kmh: float = 900.0  # faster than this between two scans is impossible
    min_move_km: float = 1.0  # closer than this is the same place (GPS jitter)
    stall_hours: float = 48.0  # staying longer than this at one place is a stall
    corridor_km: float = 200.0  # minimum half-width of the origin-destination corridor
    corridor_ratio: float = 0.25  # ... or this share of the lane length, whichever is wider
    exceptions_warn: int = 2
    exceptions_critical: int = 4
    min_samples: int = 5  # lane samples needed for delay and eta percentiles


# --- geometry ----------------------------------------------------------------------------


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.atan2(y, x)


def corridor_distance_km(
    point: tuple[float, float], start: tuple[float, float], end: tuple[float, float]
) -> float:
    """Distance from `point` to the great-circle segment start-end: the cross-track distance
    where the point projects inside the segment, else the distance to the nearer end."""
    d13 = haversine_km(*start, *point) / EARTH_RADIUS_KM
    d12 = haversine_km(*start, *end) / EARTH_RADIUS_KM
    if d12 == 0:
        return d13 * EARTH_RADIUS_KM
    t13 = _bearing(*start, *point)
    t12 = _bearing(*start, *end)
    xt = math.asin(max(-1.0, min(1.0, math.sin(d13) * math.sin(t13 - t12))))
    cos_xt = math.cos(xt)
    along = math.acos(max(-1.0, min(1.0, math.cos(d13) / cos_xt))) if cos_xt else 0.0
    if math.cos(t13 - t12) < 0:
        along = -along
    if along < 0:
        return d13 * EARTH_RADIUS_KM
    if along > d12:
        return haversine_km(*end, *point)
    return abs(xt) * EARTH_RADIUS_KM


# --- packages and scans ------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    lat: float | None = None
    lon: float | None = None
    region: str | None = None
    address: str | None = None

    @property
    def located(self) -> bool:
        return self.lat is not None and self.lon is not None


@dataclass(frozen=True)
class Package:
    id: str
    tracking_number: str = ""
    origin: Place = Place()
    destination: Place = Place()
    service_level: str | None = None
    promised_at: datetime | None = None
    status: str | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None
    picked_up_at: datetime | None = None


@dataclass(frozen=True)
class Scan:
    id: str
    kind: str
    occurred_at: datetime
    lat: float | None = None
    lon: float | None = None
    location: str | None = None
    recorded_at: datetime | None = None
    note: str | None = None

    @property
    def located(self) -> bool:
        return self.lat is not None and self.lon is not None

    def where(self) -> str:
        if self.location:
            return self.location
        if self.located:
            return f"({self.lat:.3f}, {self.lon:.3f})"
        return "an unknown place"


@dataclass(frozen=True)
class LaneSample:
    """One delivered package of a lane: hours from first pickup (or creation) to delivery,
    and the hours it spent in each stage."""

    transit_hours: float
    stages: Mapping[str, float] = field(default_factory=dict)


# Rank of each scan kind in the lifecycle; exceptions can happen anywhere.
RANK = {"pickup": 0, "departure": 1, "arrival": 1, "out_for_delivery": 2, "delivery": 3}
STAGES = ("awaiting_pickup", "first_mile", "line_haul", "hub_handling", "last_mile", "exception")
STAGE_WORDS = {
    "awaiting_pickup": "waiting to be picked up",
    "first_mile": "between pickup and the first hub",
    "line_haul": "in line haul between hubs",
    "hub_handling": "being handled at a hub",
    "last_mile": "out for delivery",
    "exception": "recovering from exceptions",
}


def in_time_order(scans: Iterable[Scan]) -> list[Scan]:
    return sorted(scans, key=lambda s: (s.occurred_at, RANK.get(s.kind, 1), s.id))


def lane_key(origin: Place, destination: Place) -> str:
    """`<origin region>-><destination region>`; a 1-degree cell when a region is missing."""

    def region(p: Place) -> str:
        if p.region:
            return p.region.strip().upper()
        if p.located:
            assert p.lat is not None and p.lon is not None
            return f"{math.floor(p.lat)}:{math.floor(p.lon)}"
        return "UNKNOWN"

    return f"{region(origin)}->{region(destination)}"


def _hours(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 3600.0


def _stamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _r(value: float, digits: int = 1) -> float:
    return round(value, digits)


# --- anomaly -----------------------------------------------------------------------------


def anomalies(
    package: Package, scans: Sequence[Scan], *, now: datetime, limits: Thresholds = Thresholds()
) -> Outcome:
    """Everything odd in a package's scans, each explained."""
    ordered = in_time_order(scans)
    findings: list[Finding] = []
    findings += _order_findings(ordered)
    findings += _speed_findings(ordered, limits)
    findings += _stall_findings(package, ordered, now, limits)
    findings += _corridor_findings(package, ordered, limits)
    findings += _exception_findings(ordered, limits)
    if not ordered:
        findings.append(
            Finding("no_scans", "info", "The package has no scans yet: nothing to check.")
        )
    elif not findings:
        findings.append(
            Finding(
                "no_anomaly",
                "info",
                f"{len(ordered)} scans checked: order, speeds, stays, route and exceptions "
                "look normal.",
                {"scans": len(ordered)},
            )
        )
    odd = [f for f in findings if f.severity != "info"]
    summary = (
        f"{len(odd)} anomal{'y' if len(odd) == 1 else 'ies'} in {len(ordered)} scans"
        + (f" (worst: {worst(f.severity for f in odd)})" if odd else "")
        + "."
    )
    return Outcome(tuple(findings), summary, {"scans": len(ordered)})


def _order_findings(ordered: Sequence[Scan]) -> list[Finding]:
    out: list[Finding] = []
    delivered: Scan | None = None
    highest = -1
    out_for_delivery = False
    excepted_since_ofd = False
    for scan in ordered:
        rank = RANK.get(scan.kind)
        if delivered is not None and scan.kind != "delivery":
            out.append(
                Finding(
                    "scan_after_delivery",
                    "critical",
                    f"A {scan.kind} scan at {scan.where()} on {_stamp(scan.occurred_at)} comes "
                    f"after the package was delivered ({_stamp(delivered.occurred_at)}).",
                    {
                        "scan_id": scan.id,
                        "kind": scan.kind,
                        "occurred_at": _stamp(scan.occurred_at),
                        "delivered_at": _stamp(delivered.occurred_at),
                    },
                )
            )
            continue
        if scan.kind == "pickup" and highest >= 1:
            out.append(
                Finding(
                    "pickup_out_of_order",
                    "warning",
                    f"The pickup scan at {scan.where()} ({_stamp(scan.occurred_at)}) is dated "
                    "after the package was already moving through the network.",
                    {"scan_id": scan.id, "occurred_at": _stamp(scan.occurred_at)},
                )
            )
        if rank == 1 and out_for_delivery and not excepted_since_ofd:
            out.append(
                Finding(
                    "back_in_network",
                    "warning",
                    f"A {scan.kind} scan at {scan.where()} ({_stamp(scan.occurred_at)}) follows "
                    "out-for-delivery with no failed-delivery exception in between.",
                    {"scan_id": scan.id, "occurred_at": _stamp(scan.occurred_at)},
                )
            )
        if scan.kind == "out_for_delivery":
            out_for_delivery, excepted_since_ofd = True, False
        elif scan.kind == "exception":
            excepted_since_ofd = True
        elif scan.kind == "delivery":
            delivered = scan
        if rank is not None:
            highest = max(highest, rank)
    late = [
        s
        for s in ordered
        if s.recorded_at is not None and _hours(s.occurred_at, s.recorded_at) > 24
    ]
    if late:
        worst_late = max(late, key=lambda s: _hours(s.occurred_at, s.recorded_at or s.occurred_at))
        lag = _hours(worst_late.occurred_at, worst_late.recorded_at or worst_late.occurred_at)
        out.append(
            Finding(
                "late_reported_scans",
                "info",
                f"{len(late)} scan(s) reached us more than a day after they happened (the "
                f"longest {_r(lag)} h late, at {worst_late.where()}).",
                {"scans": len(late), "max_lag_hours": _r(lag), "scan_id": worst_late.id},
            )
        )
    return out


def _speed_findings(ordered: Sequence[Scan], limits: Thresholds) -> list[Finding]:
    out: list[Finding] = []
    located = [s for s in ordered if s.located]
    for a, b in zip(located, located[1:], strict=False):
        assert a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None
        km = haversine_km(a.lat, a.lon, b.lat, b.lon)
        if km < limits.min_move_km:
            continue
        hours = _hours(a.occurred_at, b.occurred_at)
        speed = math.inf if hours <= 0 else km / hours
        if speed <= limits.max_speed_kmh:
            continue
        shown = "instantly" if hours <= 0 else f"in {_r(hours * 60)} minutes"
        out.append(
            Finding(
                "impossible_speed",
                "critical",
                f"The package went {_r(km)} km from {a.where()} to {b.where()} {shown}"
                + ("" if hours <= 0 else f" ({_r(speed)} km/h)")
                + f", faster than any vehicle allowed ({_r(limits.max_speed_kmh)} km/h): one of "
                "the two scans is wrong.",
                {
                    "from_scan": a.id,
                    "to_scan": b.id,
                    "from": a.where(),
                    "to": b.where(),
                    "distance_km": _r(km),
                    "hours": _r(hours, 3),
                    "speed_kmh": None if math.isinf(speed) else _r(speed),
                    "limit_kmh": limits.max_speed_kmh,
                },
            )
        )
    return out


def _stall_findings(
    package: Package, ordered: Sequence[Scan], now: datetime, limits: Thresholds
) -> list[Finding]:
    out: list[Finding] = []
    located = [s for s in ordered if s.located]
    runs: list[list[Scan]] = []
    for scan in located:
        if runs:
            first = runs[-1][0]
            assert first.lat is not None and first.lon is not None
            assert scan.lat is not None and scan.lon is not None
            if haversine_km(first.lat, first.lon, scan.lat, scan.lon) < max(
                limits.min_move_km, 5.0
            ):
                runs[-1].append(scan)
                continue
        runs.append([scan])
    delivered = package.delivered_at is not None or any(s.kind == "delivery" for s in ordered)
    for i, run in enumerate(runs):
        begin = run[0].occurred_at
        last = i == len(runs) - 1
        end = now if last and not delivered else run[-1].occurred_at
        hours = _hours(begin, end)
        if hours <= limits.stall_hours:
            continue
        ongoing = last and not delivered
        out.append(
            Finding(
                "long_stall",
                "critical" if hours > 2 * limits.stall_hours else "warning",
                f"The package {'has stayed' if ongoing else 'stayed'} {_r(hours)} h at "
                f"{run[0].where()} (from {_stamp(begin)}"
                + (" until now" if ongoing else f" to {_stamp(end)}")
                + f"), longer than the {_r(limits.stall_hours)} h a stop should take.",
                {
                    "location": run[0].where(),
                    "since": _stamp(begin),
                    "until": _stamp(end),
                    "hours": _r(hours),
                    "ongoing": ongoing,
                    "limit_hours": limits.stall_hours,
                    "scans": len(run),
                },
            )
        )
    return out


def _corridor_findings(
    package: Package, ordered: Sequence[Scan], limits: Thresholds
) -> list[Finding]:
    o, d = package.origin, package.destination
    if not (o.located and d.located):
        return []
    assert o.lat is not None and o.lon is not None and d.lat is not None and d.lon is not None
    lane_km = haversine_km(o.lat, o.lon, d.lat, d.lon)
    width = max(limits.corridor_km, limits.corridor_ratio * lane_km)
    out: list[Finding] = []
    for scan in ordered:
        if not scan.located:
            continue
        assert scan.lat is not None and scan.lon is not None
        off = corridor_distance_km((scan.lat, scan.lon), (o.lat, o.lon), (d.lat, d.lon))
        if off <= width:
            continue
        out.append(
            Finding(
                "off_corridor",
                "critical" if off > 3 * width else "warning",
                f"The {scan.kind} scan at {scan.where()} is {_r(off)} km away from the direct "
                f"route between origin and destination (the corridor is {_r(width)} km wide "
                "each side): a misroute or a wrong location.",
                {
                    "scan_id": scan.id,
                    "location": scan.where(),
                    "off_route_km": _r(off),
                    "corridor_km": _r(width),
                    "lane_km": _r(lane_km),
                },
            )
        )
    return out


def _exception_findings(ordered: Sequence[Scan], limits: Thresholds) -> list[Finding]:
    raised = [s for s in ordered if s.kind == "exception"]
    if len(raised) < limits.exceptions_warn:
        return []
    notes = [s.note for s in raised if s.note]
    return [
        Finding(
            "repeated_exceptions",
            "critical" if len(raised) >= limits.exceptions_critical else "warning",
            f"{len(raised)} exceptions were raised on this package (at "
            f"{', '.join(dict.fromkeys(s.where() for s in raised))}): it keeps failing and "
            "needs a person to look at it.",
            {
                "exceptions": len(raised),
                "scan_ids": [s.id for s in raised],
                "notes": notes[:10],
            },
        )
    ]


# --- lane history: delay and eta ---------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (numpy's default) of a non-empty sequence; p in 0..100."""
    if not values:
        raise ValueError("percentile of nothing")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def journey_start(package: Package, scans: Sequence[Scan]) -> datetime | None:
    """The first pickup scan (or the pickup time logistics reported), else the creation."""
    pickups = [s.occurred_at for s in scans if s.kind == "pickup"]
    if package.picked_up_at is not None:
        pickups.append(package.picked_up_at)
    return min(pickups) if pickups else package.created_at


def stage_of(previous: str | None, current: str) -> str:
    """The stage the time between two consecutive scans (kinds) was spent in."""
    if previous is None:
        return "awaiting_pickup"
    if previous == "exception" or current == "exception":
        return "exception"
    if previous == "pickup":
        return "first_mile"
    if previous == "departure" and current == "arrival":
        return "line_haul"
    if previous == "out_for_delivery":
        return "last_mile"
    if current == "arrival":
        return "line_haul"
    return "hub_handling"


def stage_hours(package: Package, scans: Sequence[Scan], *, until: datetime | None = None) -> dict:
    """Hours the package spent in each stage, from its creation through its scans (and on to
    `until`, in the stage after its last scan, when given and it is not delivered)."""
    ordered = in_time_order(scans)
    out: dict[str, float] = {}
    prev_kind: str | None = None
    prev_at = package.created_at
    for scan in ordered:
        if prev_at is not None and scan.occurred_at > prev_at:
            stage = stage_of(prev_kind, scan.kind)
            out[stage] = out.get(stage, 0.0) + _hours(prev_at, scan.occurred_at)
        prev_kind, prev_at = scan.kind, max(prev_at or scan.occurred_at, scan.occurred_at)
        if scan.kind == "delivery":
            return {k: _r(v, 3) for k, v in out.items()}
    if until is not None and prev_at is not None and until > prev_at:
        nxt = {"out_for_delivery": "delivery", "arrival": "departure"}.get(prev_kind or "", "")
        stage = stage_of(prev_kind, nxt or "arrival") if prev_kind else "awaiting_pickup"
        out[stage] = out.get(stage, 0.0) + _hours(prev_at, until)
    return {k: _r(v, 3) for k, v in out.items()}


def lane_sample(package: Package, scans: Sequence[Scan]) -> LaneSample | None:
    """What a delivered package teaches its lane; None when it is not delivered."""
    deliveries = [s.occurred_at for s in scans if s.kind == "delivery"]
    delivered = package.delivered_at or (min(deliveries) if deliveries else None)
    start = journey_start(package, scans)
    if delivered is None or start is None or delivered <= start:
        return None
    stages = stage_hours(package, scans)
    stages.pop("awaiting_pickup", None)
    return LaneSample(transit_hours=_r(_hours(start, delivered), 3), stages=stages)


@dataclass(frozen=True)
class Prediction:
    start: datetime
    elapsed_hours: float
    samples: int
    p10: datetime
    p50: datetime
    p90: datetime
    beyond_history: bool


def predict(start: datetime, samples: Sequence[LaneSample], now: datetime) -> Prediction:
    """Arrival percentiles for a package under way since `start`, from the lane's transit
    times conditioned on the time already spent (only journeys that lasted longer count); when
    the package is already slower than every journey seen, the remaining time is taken from
    the spread of the history instead (and `beyond_history` says so)."""
    elapsed = max(0.0, _hours(start, now))
    totals = [s.transit_hours for s in samples]
    longer = [t for t in totals if t > elapsed]
    beyond = not longer
    if beyond:
        spread = max(1.0, percentile(totals, 90) - percentile(totals, 50))
        base = [elapsed + spread * f for f in (0.1, 0.5, 1.0)]
        p10, p50, p90 = base
    else:
        p10, p50, p90 = (percentile(longer, p) for p in (10, 50, 90))
    return Prediction(
        start=start,
        elapsed_hours=_r(elapsed, 2),
        samples=len(totals),
        p10=start + timedelta(hours=p10),
        p50=start + timedelta(hours=p50),
        p90=start + timedelta(hours=p90),
        beyond_history=beyond,
    )


def _insufficient(samples: Sequence[LaneSample], lane: str, limits: Thresholds) -> Finding:
    return Finding(
        "insufficient_history",
        "info",
        f"The lane {lane} has {len(samples)} delivered package(s) on record; at least "
        f"{limits.min_samples} are needed to estimate transit times.",
        {"lane": lane, "samples": len(samples), "needed": limits.min_samples},
    )


def _lost_time(
    package: Package,
    scans: Sequence[Scan],
    samples: Sequence[LaneSample],
    now: datetime,
) -> Finding | None:
    """The stage where this package lost the most time against the lane's medians."""
    delivered = package.delivered_at is not None or any(s.kind == "delivery" for s in scans)
    mine = stage_hours(package, scans, until=None if delivered else now)
    mine.pop("awaiting_pickup", None)
    if not mine:
        return None
    medians: dict[str, float] = {}
    for stage in STAGES:
        values = [s.stages[stage] for s in samples if stage in s.stages]
        if values:
            medians[stage] = percentile(values, 50)
    excess = {st: h - medians.get(st, 0.0) for st, h in mine.items()}
    stage, lost = max(excess.items(), key=lambda kv: kv[1])
    if lost <= 0:
        return None
    typical = medians.get(stage)
    return Finding(
        "time_lost_at_stage",
        "warning" if lost >= 12 else "info",
        f"Most time was lost {STAGE_WORDS[stage]}: {_r(mine[stage])} h"
        + (f" against a usual {_r(typical)} h on this lane" if typical is not None else "")
        + f" ({_r(lost)} h more).",
        {
            "stage": stage,
            "hours": _r(mine[stage]),
            "lane_median_hours": None if typical is None else _r(typical),
            "excess_hours": _r(lost),
            "stages": {k: _r(v) for k, v in mine.items()},
        },
    )


def delay(
    package: Package,
    scans: Sequence[Scan],
    samples: Sequence[LaneSample],
    *,
    now: datetime,
    limits: Thresholds = Thresholds(),
) -> Outcome:
    """Will the package (or did it) miss its promised date, and where was time lost."""
    lane = lane_key(package.origin, package.destination)
    findings: list[Finding] = []
    result: dict[str, Any] = {"lane": lane, "samples": len(samples)}
    deliveries = sorted(s.occurred_at for s in scans if s.kind == "delivery")
    delivered = package.delivered_at or (deliveries[0] if deliveries else None)
    start = journey_start(package, scans)
    promised = package.promised_at
    if promised is not None:
        result["promised_at"] = _stamp(promised)
    if delivered is not None:
        result["delivered_at"] = _stamp(delivered)
        if promised is None:
            findings.append(
                Finding("no_promise", "info", "The package was delivered; it had no promise.")
            )
        elif delivered > promised:
            late = _hours(promised, delivered)
            findings.append(
                Finding(
                    "delivered_late",
                    "warning",
                    f"Delivered {_r(late)} h after the promised {_stamp(promised)}.",
                    {"late_hours": _r(late), "delivered_at": _stamp(delivered)},
                )
            )
        else:
            findings.append(
                Finding(
                    "delivered_on_time",
                    "info",
                    f"Delivered {_r(_hours(delivered, promised))} h before the promise.",
                    {"delivered_at": _stamp(delivered), "promised_at": _stamp(promised)},
                )
            )
    elif start is None:
        findings.append(Finding("not_started", "info", "The package has no pickup or creation."))
    elif len(samples) < limits.min_samples:
        findings.append(_insufficient(samples, lane, limits))
        if promised is not None and now > promised:
            findings.append(
                Finding(
                    "late",
                    "critical",
                    f"The promised date {_stamp(promised)} has passed "
                    f"{_r(_hours(promised, now))} h ago and the package is not delivered.",
                    {"late_hours": _r(_hours(promised, now))},
                )
            )
    else:
        pred = predict(start, samples, now)
        result.update(
            expected_at=_stamp(pred.p50),
            expected_p10=_stamp(pred.p10),
            expected_p90=_stamp(pred.p90),
        )
        if promised is None:
            findings.append(
                Finding(
                    "no_promise",
                    "info",
                    f"No promised date; expected around {_stamp(pred.p50)}.",
                    {"expected_at": _stamp(pred.p50)},
                )
            )
        elif now > promised:
            findings.append(
                Finding(
                    "late",
                    "critical",
                    f"The promised date {_stamp(promised)} has passed "
                    f"{_r(_hours(promised, now))} h ago; it should arrive around "
                    f"{_stamp(pred.p50)} (80% between {_stamp(pred.p10)} and {_stamp(pred.p90)}).",
                    {
                        "late_hours": _r(_hours(promised, now)),
                        "expected_at": _stamp(pred.p50),
                    },
                )
            )
        else:
            totals = [s.transit_hours for s in samples]
            pool = [t for t in totals if t > pred.elapsed_hours] or totals
            budget = _hours(start, promised)
            risk = sum(1 for t in pool if t > budget) / len(pool)
            if pred.beyond_history:
                risk = 1.0 if pred.p50 > promised else risk
            severity: Severity = "critical" if risk >= 0.8 else "warning" if risk >= 0.3 else "info"
            code = "likely_late" if risk >= 0.5 else "at_risk" if risk >= 0.3 else "on_track"
            words = {
                "likely_late": "is likely to miss",
                "at_risk": "may miss",
                "on_track": "should make",
            }[code]
            findings.append(
                Finding(
                    code,
                    severity,
                    f"The package {words} its promised {_stamp(promised)}: "
                    f"{round(risk * 100)}% of comparable journeys on {lane} took longer than "
                    f"the {_r(budget)} h it has; expected around {_stamp(pred.p50)}.",
                    {
                        "late_probability": round(risk, 3),
                        "budget_hours": _r(budget),
                        "expected_at": _stamp(pred.p50),
                        "p10": _stamp(pred.p10),
                        "p90": _stamp(pred.p90),
                        "samples": pred.samples,
                    },
                )
            )
            result["late_probability"] = round(risk, 3)
    lost = _lost_time(package, scans, samples, now)
    if lost is not None:
        findings.append(lost)
    head = findings[0]
    return Outcome(tuple(findings), head.message, result)


def eta(
    package: Package,
    scans: Sequence[Scan],
    samples: Sequence[LaneSample],
    *,
    now: datetime,
    limits: Thresholds = Thresholds(),
) -> Outcome:
    """Predicted arrival with an 80% interval (p10..p90) from the lane history."""
    lane = lane_key(package.origin, package.destination)
    deliveries = sorted(s.occurred_at for s in scans if s.kind == "delivery")
    delivered = package.delivered_at or (deliveries[0] if deliveries else None)
    if delivered is not None:
        f = Finding(
            "delivered",
            "info",
            f"Already delivered on {_stamp(delivered)}.",
            {"delivered_at": _stamp(delivered)},
        )
        return Outcome((f,), f.message, {"lane": lane, "eta": _stamp(delivered)})
    start = journey_start(package, scans)
    if start is None or len(samples) < limits.min_samples:
        f = _insufficient(samples, lane, limits)
        return Outcome((f,), "No prediction: " + f.message, {"lane": lane, "eta": None})
    pred = predict(start, samples, now)
    low, mid, high = (max(v, now) for v in (pred.p10, pred.p50, pred.p90))
    words = (
        f"Expected {_stamp(mid)}, 80% likely between {_stamp(low)} and {_stamp(high)}: from "
        f"{pred.samples} delivered packages on {lane}"
    )
    if pred.beyond_history:
        words += (
            f"; it is already slower than every one of them ({_r(pred.elapsed_hours)} h under "
            "way), so the estimate adds the lane's usual spread to now"
        )
    else:
        words += f", counting only journeys longer than the {_r(pred.elapsed_hours)} h so far"
    findings = [
        Finding(
            "eta",
            "warning" if pred.beyond_history else "info",
            words + ".",
            {
                "eta": _stamp(mid),
                "low": _stamp(low),
                "high": _stamp(high),
                "samples": pred.samples,
                "elapsed_hours": pred.elapsed_hours,
                "beyond_history": pred.beyond_history,
            },
        )
    ]
    if package.promised_at is not None and mid > package.promised_at:
        findings.append(
            Finding(
                "eta_after_promise",
                "warning",
                f"The expected arrival is {_r(_hours(package.promised_at, mid))} h after the "
                f"promised {_stamp(package.promised_at)}.",
                {"promised_at": _stamp(package.promised_at)},
            )
        )
    return Outcome(
        tuple(findings),
        findings[0].message,
        {"lane": lane, "eta": _stamp(mid), "low": _stamp(low), "high": _stamp(high)},
    )


# --- route -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stop:
    name: str
    lat: float
    lon: float
    window_start: datetime | None = None
    window_end: datetime | None = None
    service_minutes: int = 0


@dataclass(frozen=True)
class RoutePlan:
    order: tuple[int, ...]  # indexes into the stops, the first stop first
    distance_m: int
    given_distance_m: int
    arrivals: tuple[datetime, ...]  # per position in `order`
    late_minutes: tuple[int, ...]  # per position in `order`


def distance_matrix(stops: Sequence[Stop]) -> list[list[int]]:
    """Whole metres between every two stops (haversine), the solver's integer costs."""
    return [[round(haversine_km(a.lat, a.lon, b.lat, b.lon) * 1000) for b in stops] for a in stops]


def travel_minutes(metres: int, speed_kmh: float) -> int:
    return math.ceil(metres / (speed_kmh * 1000.0 / 60.0)) if metres else 0


def schedule(
    stops: Sequence[Stop],
    order: Sequence[int],
    matrix: Sequence[Sequence[int]],
    *,
    departure: datetime,
    speed_kmh: float,
) -> tuple[list[int], list[int]]:
    """Arrival minute (after departure) and minutes late at each stop of `order`, waiting for
    a window to open when early (what the solver's time dimension models)."""
    arrivals: list[int] = []
    late: list[int] = []
    t = 0
    prev: int | None = None
    for i in order:
        if prev is not None:
            t += stops[prev].service_minutes + travel_minutes(matrix[prev][i], speed_kmh)
        stop = stops[i]
        if stop.window_start is not None:
            t = max(t, _minutes(departure, stop.window_start))
        arrivals.append(t)
        end = None if stop.window_end is None else _minutes(departure, stop.window_end)
        late.append(max(0, t - end) if end is not None else 0)
        prev = i
    return arrivals, late


def _minutes(departure: datetime, at: datetime) -> int:
    return math.floor((at - departure).total_seconds() / 60.0)


def route_length(order: Sequence[int], matrix: Sequence[Sequence[int]], *, closed: bool) -> int:
    total = sum(matrix[a][b] for a, b in zip(order, order[1:], strict=False))
    if closed and len(order) > 1:
        total += matrix[order[-1]][order[0]]
    return total


def plan_route(
    stops: Sequence[Stop],
    *,
    departure: datetime,
    speed_kmh: float = 50.0,
    return_to_start: bool = False,
    time_limit_ms: int = 1000,
) -> RoutePlan:
    """The shortest visiting order of `stops` starting at the first one (ending anywhere, or
    back at the first with `return_to_start`), by OR-Tools' routing solver.

    Time windows: arriving before `window_start` waits; arriving after `window_end` is allowed
    but costs far more than any detour (a soft upper bound), so the solver meets every window
    it can and the plan says which it could not."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    n = len(stops)
    if n < 2:
        raise Unprocessable("A route needs at least two stops.")
    matrix = distance_matrix(stops)
    # An open route ends at a dummy node reached for free from everywhere.
    size = n if return_to_start else n + 1
    end = 0 if return_to_start else n

    def dist(i: int, j: int) -> int:
        if i >= n or j >= n:
            return 0
        return matrix[i][j]

    manager = pywrapcp.RoutingIndexManager(size, 1, [0], [end])
    routing = pywrapcp.RoutingModel(manager)

    def distance_cb(from_index: int, to_index: int) -> int:
        return dist(manager.IndexToNode(from_index), manager.IndexToNode(to_index))

    transit = routing.RegisterTransitCallback(distance_cb)
    routing.SetArcCostEvaluatorOfAllVehicles(transit)

    windows = any(s.window_start or s.window_end for s in stops)
    if windows:
        worst_leg = max(max(row) for row in matrix)
        horizon = (
            sum(s.service_minutes for s in stops)
            + n * travel_minutes(worst_leg, speed_kmh)
            + max([_minutes(departure, s.window_start) for s in stops if s.window_start] + [0])
            + 1
        )
        penalty = sum(sum(row) for row in matrix) + 1  # per minute late: more than any detour

        def time_cb(from_index: int, to_index: int) -> int:
            i, j = manager.IndexToNode(from_index), manager.IndexToNode(to_index)
            if i >= n or j >= n:
                return 0
            return stops[i].service_minutes + travel_minutes(matrix[i][j], speed_kmh)

        time_transit = routing.RegisterTransitCallback(time_cb)
        routing.AddDimension(time_transit, horizon, horizon, False, "time")
        time_dim = routing.GetDimensionOrDie("time")
        time_dim.CumulVar(routing.Start(0)).SetRange(0, 0)
        for node, stop in enumerate(stops):
            if node == 0:
                continue
            index = manager.NodeToIndex(node)
            if stop.window_start is not None:
                time_dim.CumulVar(index).SetMin(max(0, _minutes(departure, stop.window_start)))
            if stop.window_end is not None:
                time_dim.SetCumulVarSoftUpperBound(
                    index, max(0, _minutes(departure, stop.window_end)), penalty
                )

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    # Guided local search runs until the limit: small instances need far less than big ones.
    params.time_limit.FromMilliseconds(max(50, min(time_limit_ms, 200 + 40 * n)))
    solution = routing.SolveWithParameters(params)
    if solution is None:
        raise Unprocessable("The route solver found no plan for these stops.")
    order: list[int] = []
    index = routing.Start(0)
    while not routing.IsEnd(index):
        order.append(manager.IndexToNode(index))
        index = solution.Value(routing.NextVar(index))
    arrivals, late = schedule(stops, order, matrix, departure=departure, speed_kmh=speed_kmh)
    return RoutePlan(
        order=tuple(order),
        distance_m=route_length(order, matrix, closed=return_to_start),
        given_distance_m=route_length(list(range(n)), matrix, closed=return_to_start),
        arrivals=tuple(departure + timedelta(minutes=m) for m in arrivals),
        late_minutes=tuple(late),
    )


def route(
    stops: Sequence[Stop],
    *,
    departure: datetime,
    speed_kmh: float = 50.0,
    return_to_start: bool = False,
    time_limit_ms: int = 1000,
) -> Outcome:
    """The route plan, explained."""
    plan = plan_route(
        stops,
        departure=departure,
        speed_kmh=speed_kmh,
        return_to_start=return_to_start,
        time_limit_ms=time_limit_ms,
    )
    km, given_km = plan.distance_m / 1000, plan.given_distance_m / 1000
    saved = given_km - km
    names = [stops[i].name for i in plan.order]
    findings = [
        Finding(
            "route_plan",
            "info",
            f"Visit the {len(stops)} stops in this order: {' -> '.join(names)}"
            + (" -> back to the start" if return_to_start else "")
            + f"; {_r(km)} km"
            + (
                f", {_r(saved)} km ({round(100 * saved / given_km)}%) shorter than the order given"
                if saved > 0.05 and given_km
                else ", no shorter than the order given"
            )
            + ".",
            {
                "order": list(plan.order),
                "distance_km": _r(km, 3),
                "given_distance_km": _r(given_km, 3),
                "saved_km": _r(saved, 3),
            },
        )
    ]
    for pos, minutes in enumerate(plan.late_minutes):
        if minutes > 0:
            stop = stops[plan.order[pos]]
            findings.append(
                Finding(
                    "window_missed",
                    "warning",
                    f"{stop.name} cannot be reached within its time window: the earliest "
                    f"arrival is {_stamp(plan.arrivals[pos])}, {minutes} min after it closes.",
                    {"stop": plan.order[pos], "name": stop.name, "late_minutes": minutes},
                )
            )
    result = {
        "order": list(plan.order),
        "stops": [
            {
                "index": i,
                "name": stops[i].name,
                "lat": stops[i].lat,
                "lon": stops[i].lon,
                "arrival": _stamp(plan.arrivals[pos]),
                "late_minutes": plan.late_minutes[pos],
            }
            for pos, i in enumerate(plan.order)
        ],
        "distance_km": _r(km, 3),
        "given_distance_km": _r(given_km, 3),
        "return_to_start": return_to_start,
        "departure": _stamp(departure),
        "speed_kmh": speed_kmh,
    }
    return Outcome(tuple(findings), findings[0].message, result)


# --- commit analysis ---------------------------------------------------------------------

CONVENTIONAL = re.compile(
    r"^(?P<type>[A-Za-z]+)(?:\((?P<scope>[^()\r\n]+)\))?(?P<breaking>!)?: (?P<subject>\S.*)$"
)
BREAKING_FOOTER = re.compile(r"^BREAKING[ -]CHANGE: ", re.MULTILINE)
KNOWN_TYPES = (
    "feat",
    "fix",
    "docs",
    "style",
    "refactor",
    "perf",
    "test",
    "build",
    "ci",
    "chore",
    "revert",
)

LANGUAGES: dict[str, str] = {
    ".py": "Python",
    ".pyi": "Python",
    ".js": "JavaScript",
    ".mjs": "JavaScript",
    ".cjs": "JavaScript",
    ".jsx": "JavaScript",
    ".ts": "TypeScript",
    ".tsx": "TypeScript",
    ".go": "Go",
    ".rs": "Rust",
    ".java": "Java",
    ".kt": "Kotlin",
    ".kts": "Kotlin",
    ".scala": "Scala",
    ".rb": "Ruby",
    ".php": "PHP",
    ".cs": "C#",
    ".c": "C",
    ".h": "C",
    ".cc": "C++",
    ".cpp": "C++",
    ".cxx": "C++",
    ".hpp": "C++",
    ".swift": "Swift",
    ".m": "Objective-C",
    ".sh": "Shell",
    ".bash": "Shell",
    ".zsh": "Shell",
    ".ps1": "PowerShell",
    ".sql": "SQL",
    ".tf": "HCL",
    ".tfvars": "HCL",
    ".hcl": "HCL",
    ".html": "HTML",
    ".htm": "HTML",
    ".css": "CSS",
    ".scss": "SCSS",
    ".vue": "Vue",
    ".svelte": "Svelte",
    ".md": "Markdown",
    ".rst": "reStructuredText",
    ".yaml": "YAML",
    ".yml": "YAML",
    ".json": "JSON",
    ".toml": "TOML",
    ".xml": "XML",
    ".proto": "Protocol Buffers",
    ".dart": "Dart",
    ".ex": "Elixir",
    ".exs": "Elixir",
    ".erl": "Erlang",
    ".hs": "Haskell",
    ".lua": "Lua",
    ".r": "R",
    ".pl": "Perl",
    ".mako": "Mako",
}
FILENAME_LANGUAGES = {"Dockerfile": "Dockerfile", "Makefile": "Makefile", "Jenkinsfile": "Groovy"}

# Sensitive areas of a repository: (category, risk points, why, path pattern).
SENSITIVE: tuple[tuple[str, int, str, re.Pattern[str]], ...] = (
    (
        "migrations",
        15,
        "database migrations change stored data and are hard to undo",
        re.compile(r"(^|/)(migrations?|migrate|alembic|flyway|liquibase)/|\.sql$", re.I),
    ),
    (
        "infra",
        15,
        "infrastructure changes affect every environment",
        re.compile(
            r"(^|/)(infra|infrastructure|terraform|deploy|k8s|kubernetes|helm|charts)/"
            r"|\.(tf|tfvars|hcl)$|(^|/)Dockerfile[^/]*$|(^|/)docker-compose[^/]*\.ya?ml$",
            re.I,
        ),
    ),
    (
        "auth",
        20,
        "authentication and authorization code guards every request",
        re.compile(
            r"(^|/|_|-)(auth|authn|authz|oauth2?|jwt|login|session|sessions|password|"
            r"passwords|permissions?|rbac|acl|security|crypto|secrets?|credentials?)"
            r"(/|_|-|\.|$)",
            re.I,
        ),
    ),
    (
        "ci",
        10,
        "CI and delivery pipelines decide what ships",
        re.compile(
            r"^\.github/workflows/|^\.gitlab-ci\.ya?ml$|^\.circleci/|(^|/)Jenkinsfile$"
            r"|(^|/)cloudbuild[^/]*\.ya?ml$|^\.ci/|^azure-pipelines\.ya?ml$|^\.travis\.ya?ml$"
            r"|^\.buildkite/",
            re.I,
        ),
    ),
    (
        "dependencies",
        5,
        "dependency changes bring in code nobody here reviewed",
        re.compile(
            r"(^|/)(requirements[^/]*\.txt|pyproject\.toml|poetry\.lock|Pipfile(\.lock)?|"
            r"package(-lock)?\.json|yarn\.lock|pnpm-lock\.yaml|go\.(mod|sum)|Cargo\.(toml|lock)|"
            r"Gemfile(\.lock)?|pom\.xml|build\.gradle(\.kts)?)$",
            re.I,
        ),
    ),
)
SECRET_POINTS = 40
BREAKING_POINTS = 10


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str = "modified"  # added | modified | removed | renamed
    additions: int = 0
    deletions: int = 0
    old_path: str | None = None


@dataclass(frozen=True)
class SecretHit:
    """A secret found in an added line: where and what kind, never the value."""

    path: str
    line: int
    type: str


@dataclass(frozen=True)
class Header:
    conventional: bool
    type: str | None
    scope: str | None
    breaking: bool
    subject: str


def parse_header(message: str) -> Header:
    """The Conventional Commits 1.0 header (`type(scope)!: subject`) of a commit message, and
    whether a footer says `BREAKING CHANGE:`."""
    lines = (message or "").strip().splitlines()
    first = lines[0].strip() if lines else ""
    footer_breaking = bool(BREAKING_FOOTER.search("\n".join(lines[1:])))
    m = CONVENTIONAL.match(first)
    if m is None:
        return Header(False, None, None, footer_breaking, first)
    scope = m.group("scope")
    return Header(
        True,
        m.group("type").lower(),
        scope.strip() if scope else None,
        bool(m.group("breaking")) or footer_breaking,
        m.group("subject").strip(),
    )


def language_of(path: str) -> str | None:
    name = path.rsplit("/", 1)[-1]
    if name in FILENAME_LANGUAGES:
        return FILENAME_LANGUAGES[name]
    if name.startswith("Dockerfile"):
        return "Dockerfile"
    dot = name.rfind(".")
    if dot <= 0:
        return None
    return LANGUAGES.get(name[dot:].lower())


def parse_diff(diff: str) -> list[FileChange]:
    """The files of a unified diff (git's or plain) with their added and removed line counts."""
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError

    if not diff or not diff.strip():
        raise BadDiff("it is empty")
    try:
        patch = PatchSet.from_string(diff)
    except UnidiffParseError as exc:
        raise BadDiff(_parse_problem(exc)) from None
    if not len(patch):
        raise BadDiff("it names no file (no ---/+++ headers)")
    out: list[FileChange] = []
    for pf in patch:
        if pf.is_added_file:
            status = "added"
        elif pf.is_removed_file:
            status = "removed"
        elif pf.is_rename:
            status = "renamed"
        else:
            status = "modified"
        out.append(
            FileChange(
                path=_clean_path(pf.path),
                status=status,
                additions=pf.added,
                deletions=pf.removed,
                old_path=_clean_path(pf.source_file) if pf.is_rename else None,
            )
        )
    return out


def _parse_problem(exc: Exception) -> str:
    """What unidiff objected to, without the offending line: it may hold a secret."""
    return str(exc).split(":", 1)[0].strip()[:100] or type(exc).__name__


def _clean_path(path: str) -> str:
    for prefix in ("a/", "b/"):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


_secrets_lock = threading.Lock()  # detect-secrets keeps its settings in process globals


def scan_secrets(diff: str) -> list[SecretHit]:
    """Secrets in the added lines of a unified diff, found by detect-secrets (every plugin,
    its default heuristic filters; the file-existence filter is off: the files are not here).
    Only the place and the kind are kept; the value never leaves this function."""
    from detect_secrets import settings as ds_settings
    from detect_secrets.core.scan import scan_diff

    hits: dict[tuple[str, int, str], None] = {}
    with _secrets_lock, ds_settings.default_settings() as conf:
        conf.disable_filters("detect_secrets.filters.common.is_invalid_file")
        ds_settings.get_filters.cache_clear()
        try:
            for secret in scan_diff(diff):
                hits[(_clean_path(secret.filename), int(secret.line_number), secret.type)] = None
        except Exception as exc:  # unidiff refuses it: parse_diff has said why already
            raise BadDiff(_parse_problem(exc)) from None
    return [SecretHit(path, line, kind) for path, line, kind in hits]


def size_class(churn: int) -> str:
    for limit, name in ((10, "XS"), (50, "S"), (250, "M"), (1000, "L")):
        if churn < limit:
            return name
    return "XL"


def risk_level(score: int) -> str:
    return "high" if score >= 60 else "medium" if score >= 30 else "low"


def analyse_commit(
    *,
    message: str,
    files: Sequence[FileChange],
    secrets: Sequence[SecretHit] = (),
    diff_scanned: bool = True,
    totals: tuple[int, int] | None = None,
) -> Outcome:
    """Type and scope, size, risk, secrets and languages of one change, explained. `totals`
    (additions, deletions) stand in for the per-file counts when only a file list is known."""
    header = parse_header(message)
    findings: list[Finding] = []
    if not message.strip():
        pass
    elif header.conventional:
        known = header.type in KNOWN_TYPES
        findings.append(
            Finding(
                "conventional_commit",
                "info" if known else "warning",
                f"A {header.type} commit"
                + (f" in {header.scope}" if header.scope else "")
                + (" that breaks compatibility" if header.breaking else "")
                + f": {header.subject}"
                + ("" if known else f" ({header.type} is not one of the usual types)")
                + ".",
                {"type": header.type, "scope": header.scope, "breaking": header.breaking},
            )
        )
    else:
        findings.append(
            Finding(
                "not_conventional",
                "info",
                "The message does not follow Conventional Commits (`type(scope): subject`), "
                "so its intent is not machine-readable.",
                {"header": header.subject[:200]},
            )
        )
    additions = sum(f.additions for f in files)
    deletions = sum(f.deletions for f in files)
    if totals is not None and not (additions or deletions):
        additions, deletions = totals
    churn = additions + deletions
    size = size_class(churn)
    findings.append(
        Finding(
            "size",
            "warning" if size == "XL" else "info",
            f"{len(files)} file(s) changed, +{additions} -{deletions} lines (size {size})"
            + ("; a change this large is hard to review." if size == "XL" else "."),
            {
                "files": len(files),
                "additions": additions,
                "deletions": deletions,
                "churn": churn,
                "size": size,
            },
        )
    )
    score = min(25, round(25 * math.log10(1 + churn) / 3)) + min(15, round(1.5 * len(files)))
    categories: dict[str, list[str]] = {}
    for change in files:
        for category, _, _, pattern in SENSITIVE:
            paths = [change.path] + ([change.old_path] if change.old_path else [])
            if any(pattern.search(p) for p in paths):
                categories.setdefault(category, []).append(change.path)
    for category, points, why, _ in SENSITIVE:
        if category not in categories:
            continue
        score += points
        touched = categories[category]
        findings.append(
            Finding(
                f"sensitive_{category}",
                "warning",
                f"Touches {category} ({len(touched)} file(s), e.g. {touched[0]}): {why}.",
                {"category": category, "files": touched[:20], "points": points},
            )
        )
    for hit in secrets:
        findings.append(
            Finding(
                "secret_detected",
                "critical",
                f"A {hit.type} appears in an added line of {hit.path} (line {hit.line}): "
                "revoke it and remove it from the history; the value is not shown here.",
                {"file": hit.path, "line": hit.line, "secret_type": hit.type},
            )
        )
    if secrets:
        score += SECRET_POINTS
    if not diff_scanned:
        findings.append(
            Finding(
                "secrets_not_scanned",
                "info",
                "No diff came with this commit, so its lines were not scanned for secrets.",
            )
        )
    if header.breaking:
        score += BREAKING_POINTS
    score = min(100, score)
    level = risk_level(score)
    languages: dict[str, int] = {}
    for change in files:
        lang = language_of(change.path)
        if lang:
            languages[lang] = languages.get(lang, 0) + 1
    if languages:
        ranked = sorted(languages.items(), key=lambda kv: (-kv[1], kv[0]))
        findings.append(
            Finding(
                "languages",
                "info",
                "Languages touched: " + ", ".join(f"{k} ({v})" for k, v in ranked) + ".",
                {"languages": dict(ranked)},
            )
        )
    findings.append(
        Finding(
            "risk",
            {"low": "info", "medium": "warning", "high": "critical"}[level],  # type: ignore[arg-type]
            f"Risk {score}/100 ({level}): "
            + _risk_reasons(churn, len(files), list(categories), bool(secrets), header.breaking)
            + ".",
            {"score": score, "level": level, "categories": sorted(categories)},
        )
    )
    summary = (
        (
            (f"{header.type}" + (f"({header.scope})" if header.scope else "") + ": ")
            if header.conventional
            else ""
        )
        + f"{len(files)} file(s), +{additions} -{deletions}, risk {score} ({level})"
        + (f", {len(secrets)} secret(s) found" if secrets else "")
    )
    result = {
        "type": header.type,
        "scope": header.scope,
        "breaking": header.breaking,
        "conventional": header.conventional,
        "files": len(files),
        "additions": additions,
        "deletions": deletions,
        "size": size,
        "risk_score": score,
        "risk_level": level,
        "languages": sorted(languages),
        "secrets": len(secrets),
        "sensitive": sorted(categories),
    }
    return Outcome(tuple(findings), summary, result)


def _risk_reasons(
    churn: int, files: int, categories: list[str], secrets: bool, breaking: bool
) -> str:
    parts = [f"{churn} changed lines in {files} file(s)"]
    if categories:
        parts.append("sensitive areas: " + ", ".join(categories))
    if secrets:
        parts.append("secrets in added lines")
    if breaking:
        parts.append("a breaking change")
    return "; ".join(parts)
