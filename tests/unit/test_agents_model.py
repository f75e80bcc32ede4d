"""The agents' analysis on constructed scan histories, lane samples, stops and diffs with known
answers; routes checked against brute force on small inputs."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from functions.agents import model as m

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)
NEW_YORK = (40.7128, -74.0060)
BERLIN = (52.5200, 13.4050)
MADRID = (40.4168, -3.7038)
BRUSSELS = (50.8503, 4.3517)
LIMITS = m.Thresholds()


def scan(i, kind, hours, where=None, name=None, **kw):
    lat, lon = where if where else (None, None)
    return m.Scan(
        id=f"s{i}",
        kind=kind,
        occurred_at=T0 + timedelta(hours=hours),
        lat=lat,
        lon=lon,
        location=name,
        **kw,
    )


def package(**kw):
    base = {
        "id": "p1",
        "tracking_number": "SY1",
        "origin": m.Place(*PARIS, region="FR"),
        "destination": m.Place(*BERLIN, region="DE"),
        "created_at": T0 - timedelta(hours=2),
    }
    base.update(kw)
    return m.Package(**base)


def codes(outcome):
    return [f.code for f in outcome.findings]


def only(outcome, code):
    found = [f for f in outcome.findings if f.code == code]
    assert len(found) == 1, codes(outcome)
    return found[0]


def test_model_loads_no_web_framework_nor_solver():
    probe = (
        "import sys, functions.agents.model; "
        "print([k for k in ('flask', 'jwt', 'ortools', 'detect_secrets', 'unidiff') "
        "if k in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- geometry ----------------------------------------------------------------------------


def test_haversine_known_distances():
    assert m.haversine_km(0, 0, 0, 1) == pytest.approx(111.195, abs=0.01)
    assert m.haversine_km(*PARIS, *LONDON) == pytest.approx(343.9, abs=1.0)
    assert m.haversine_km(*PARIS, *PARIS) == 0


def test_corridor_distance_cross_track_and_beyond_the_ends():
    start, end = (0.0, 0.0), (0.0, 10.0)
    assert m.corridor_distance_km((0.0, 5.0), start, end) == pytest.approx(0, abs=1e-6)
    assert m.corridor_distance_km((1.0, 5.0), start, end) == pytest.approx(111.195, abs=0.05)
    assert m.corridor_distance_km((-2.0, 3.0), start, end) == pytest.approx(222.39, abs=0.1)
    # past the end: the distance to the end, not to the great circle
    assert m.corridor_distance_km((0.0, 12.0), start, end) == pytest.approx(222.39, abs=0.1)
    assert m.corridor_distance_km((0.0, -1.0), start, end) == pytest.approx(111.195, abs=0.05)


# --- anomaly -----------------------------------------------------------------------------


def test_impossible_speed_between_two_scans():
    scans = [
        scan(1, "pickup", 0, PARIS, "Paris"),
        scan(2, "arrival", 0.5, NEW_YORK, "New York"),
    ]
    out = m.anomalies(package(), scans, now=T0 + timedelta(hours=1))
    f = only(out, "impossible_speed")
    assert f.severity == "critical"
    km = m.haversine_km(*PARIS, *NEW_YORK)
    assert f.evidence["distance_km"] == pytest.approx(km, abs=0.1)
    assert f.evidence["speed_kmh"] == pytest.approx(km / 0.5, abs=0.2)
    assert "Paris" in f.message and "New York" in f.message and "km/h" in f.message


def test_a_truck_pace_is_not_impossible_and_same_instant_is():
    km = m.haversine_km(*PARIS, *BRUSSELS)
    fine = [scan(1, "pickup", 0, PARIS), scan(2, "arrival", km / 80, BRUSSELS)]
    assert "impossible_speed" not in codes(m.anomalies(package(), fine, now=T0))
    instant = [scan(1, "pickup", 0, PARIS), scan(2, "arrival", 0, BRUSSELS)]
    f = only(m.anomalies(package(), instant, now=T0), "impossible_speed")
    assert f.evidence["speed_kmh"] is None and "instantly" in f.message
    strict = m.Thresholds(max_speed_kmh=60)
    assert "impossible_speed" in codes(m.anomalies(package(), fine, now=T0, limits=strict))


def test_scan_after_delivery_and_pickup_out_of_order():
    scans = [
        scan(1, "arrival", 1, PARIS),
        scan(2, "pickup", 2, PARIS),
        scan(3, "delivery", 20, BERLIN),
        scan(4, "departure", 21, BERLIN),
    ]
    out = m.anomalies(package(), scans, now=T0 + timedelta(hours=30))
    assert only(out, "pickup_out_of_order").evidence["scan_id"] == "s2"
    after = only(out, "scan_after_delivery")
    assert after.severity == "critical" and after.evidence["scan_id"] == "s4"


def test_back_in_network_after_out_for_delivery_unless_an_exception_came_between():
    bad = [
        scan(1, "pickup", 0, PARIS),
        scan(2, "out_for_delivery", 10, BERLIN),
        scan(3, "arrival", 12, BERLIN),
    ]
    assert "back_in_network" in codes(m.anomalies(package(), bad, now=T0 + timedelta(hours=13)))
    ok = bad[:2] + [scan(9, "exception", 11, BERLIN, note="nobody home"), bad[2]]
    assert "back_in_network" not in codes(m.anomalies(package(), ok, now=T0 + timedelta(hours=13)))


def test_long_stall_ongoing_and_past():
    hub = (50.0, 8.0)
    scans = [
        scan(1, "pickup", 0, PARIS, "Paris"),
        scan(2, "arrival", 8, hub, "Frankfurt hub"),
        scan(3, "departure", 8 + 60, hub, "Frankfurt hub"),
        scan(4, "arrival", 75, BERLIN, "Berlin depot"),
    ]
    now = T0 + timedelta(hours=75 + 120)
    stalls = [f for f in m.anomalies(package(), scans, now=now).findings if f.code == "long_stall"]
    assert [
        (f.evidence["location"], f.evidence["hours"], f.evidence["ongoing"]) for f in stalls
    ] == [
        ("Frankfurt hub", 60.0, False),
        ("Berlin depot", 120.0, True),
    ]
    assert [f.severity for f in stalls] == ["warning", "critical"]
    # delivered: the last place is not a stall
    done = [*scans, scan(5, "delivery", 76, BERLIN, "Berlin depot")]
    stalls = [f for f in m.anomalies(package(), done, now=now).findings if f.code == "long_stall"]
    assert [f.evidence["location"] for f in stalls] == ["Frankfurt hub"]


def test_off_corridor_scan():
    scans = [
        scan(1, "pickup", 0, PARIS),
        scan(2, "arrival", 20, MADRID, "Madrid"),
        scan(3, "arrival", 50, BERLIN),
    ]
    out = m.anomalies(package(), scans, now=T0 + timedelta(hours=51))
    f = only(out, "off_corridor")
    assert f.evidence["location"] == "Madrid"
    expected = m.corridor_distance_km(MADRID, PARIS, BERLIN)
    assert f.evidence["off_route_km"] == pytest.approx(expected, abs=0.1)
    lane_km = m.haversine_km(*PARIS, *BERLIN)
    assert f.evidence["corridor_km"] == pytest.approx(max(200, 0.25 * lane_km), abs=0.1)


def test_repeated_exceptions():
    base = [scan(1, "pickup", 0, PARIS)]
    two = base + [scan(i, "exception", i, PARIS, note=f"n{i}") for i in (2, 3)]
    f = only(m.anomalies(package(), two, now=T0 + timedelta(hours=4)), "repeated_exceptions")
    assert f.severity == "warning" and f.evidence["exceptions"] == 2
    four = base + [scan(i, "exception", i, PARIS) for i in (2, 3, 4, 5)]
    f = only(m.anomalies(package(), four, now=T0 + timedelta(hours=6)), "repeated_exceptions")
    assert f.severity == "critical"
    one = base + [scan(2, "exception", 2, PARIS)]
    assert "repeated_exceptions" not in codes(m.anomalies(package(), one, now=T0))


def test_clean_history_has_no_anomaly_and_findings_are_json():
    scans = [
        scan(1, "pickup", 0, PARIS),
        scan(2, "arrival", 6, BRUSSELS),
        scan(3, "departure", 10, BRUSSELS),
        scan(4, "out_for_delivery", 20, BERLIN),
        scan(5, "delivery", 22, BERLIN),
    ]
    out = m.anomalies(package(), scans, now=T0 + timedelta(hours=23))
    assert codes(out) == ["no_anomaly"]
    assert out.top_severity == "info"
    json.dumps([f.as_dict() for f in out.findings])


# --- lane history ------------------------------------------------------------------------


def test_percentile_interpolates_like_numpy():
    assert m.percentile([1, 2, 3, 4], 50) == 2.5
    assert m.percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    assert m.percentile([5], 10) == 5
    with pytest.raises(ValueError):
        m.percentile([], 50)


SAMPLES = [
    m.LaneSample(float(h), {"line_haul": h * 0.5, "hub_handling": h * 0.3})
    for h in range(10, 101, 10)
]  # 10, 20, ..., 100 hours


def test_predict_conditions_on_elapsed_time():
    fresh = m.predict(T0, SAMPLES, T0)
    assert fresh.p50 == T0 + timedelta(hours=55)
    assert fresh.p10 == T0 + timedelta(hours=19)
    assert fresh.p90 == T0 + timedelta(hours=91)
    late = m.predict(T0, SAMPLES, T0 + timedelta(hours=60))  # only 70, 80, 90, 100 remain
    assert late.p50 == T0 + timedelta(hours=85)
    beyond = m.predict(T0, SAMPLES, T0 + timedelta(hours=150))
    assert beyond.beyond_history and beyond.p50 > T0 + timedelta(hours=150)


def test_delay_likely_late_with_known_probability():
    pkg = package(promised_at=T0 + timedelta(hours=35))
    scans = [scan(1, "pickup", 0, PARIS)]
    out = m.delay(pkg, scans, SAMPLES, now=T0 + timedelta(hours=1))
    f = out.findings[0]
    # 7 of the 10 journeys took longer than the 35 h budget
    assert f.code == "likely_late" and f.evidence["late_probability"] == 0.7
    assert f.severity == "warning"
    assert out.result["expected_at"] == "2026-03-04T15:00:00Z"  # T0 + 55 h


def test_delay_on_track_late_and_insufficient_history():
    scans = [scan(1, "pickup", 0, PARIS)]
    on_track = m.delay(package(promised_at=T0 + timedelta(hours=200)), scans, SAMPLES, now=T0)
    assert on_track.findings[0].code == "on_track"
    late = m.delay(
        package(promised_at=T0 + timedelta(hours=5)), scans, SAMPLES, now=T0 + timedelta(hours=9)
    )
    assert late.findings[0].code == "late" and late.findings[0].evidence["late_hours"] == 4.0
    few = m.delay(package(promised_at=T0 + timedelta(hours=50)), scans, SAMPLES[:3], now=T0)
    assert few.findings[0].code == "insufficient_history"
    assert few.findings[0].evidence == {"lane": "FR->DE", "samples": 3, "needed": 5}


def test_delay_names_the_stage_where_time_was_lost():
    lane = [m.LaneSample(30.0, {"first_mile": 4, "line_haul": 20, "hub_handling": 6})] * 5
    pkg = package(promised_at=T0 + timedelta(hours=40))
    scans = [
        scan(1, "pickup", 0, PARIS),
        scan(2, "arrival", 4, BRUSSELS),  # first mile 4 h (usual)
        scan(3, "departure", 4 + 50, BRUSSELS),  # hub handling 50 h (usual 6)
        scan(4, "arrival", 54 + 20, BERLIN),  # line haul 20 h (usual)
        scan(5, "delivery", 80, BERLIN),  # 6 h hub handling again
    ]
    out = m.delay(pkg, scans, lane, now=T0 + timedelta(hours=81))
    assert out.findings[0].code == "delivered_late"
    assert out.findings[0].evidence["late_hours"] == 40.0
    lost = only(out, "time_lost_at_stage")
    assert lost.evidence["stage"] == "hub_handling"
    assert lost.evidence["hours"] == 56.0 and lost.evidence["excess_hours"] == 50.0
    assert "being handled at a hub" in lost.message


def test_lane_sample_of_a_delivered_package():
    scans = [
        scan(1, "pickup", 0, PARIS),
        scan(2, "arrival", 5, BRUSSELS),
        scan(3, "departure", 7, BRUSSELS),
        scan(4, "arrival", 17, BERLIN),
        scan(5, "out_for_delivery", 18, BERLIN),
        scan(6, "delivery", 21, BERLIN),
    ]
    sample = m.lane_sample(package(), scans)
    assert sample is not None and sample.transit_hours == 21.0
    assert sample.stages == {
        "first_mile": 5.0,
        "hub_handling": 3.0,
        "line_haul": 10.0,
        "last_mile": 3.0,
    }
    assert m.lane_sample(package(), scans[:-1]) is None
    assert m.lane_key(package().origin, package().destination) == "FR->DE"
    assert m.lane_key(m.Place(48.9, 2.3), m.Place(None, None)) == "48:2->UNKNOWN"


def test_eta_interval_from_history():
    pkg = package(promised_at=T0 + timedelta(hours=40))
    out = m.eta(pkg, [scan(1, "pickup", 0, PARIS)], SAMPLES, now=T0)
    assert out.result == {
        "lane": "FR->DE",
        "eta": "2026-03-04T15:00:00Z",
        "low": "2026-03-03T03:00:00Z",
        "high": "2026-03-06T03:00:00Z",
    }
    assert codes(out) == ["eta", "eta_after_promise"]
    assert "80% likely" in out.findings[0].message
    none = m.eta(pkg, [], SAMPLES[:2], now=T0)
    assert none.result["eta"] is None and codes(none) == ["insufficient_history"]
    done = m.eta(pkg, [scan(1, "delivery", 3, BERLIN)], SAMPLES, now=T0)
    assert codes(done) == ["delivered"]


# --- route -------------------------------------------------------------------------------


def brute_force(stops, *, departure, speed, closed):
    matrix = m.distance_matrix(stops)
    best = None
    for rest in itertools.permutations(range(1, len(stops))):
        order = (0, *rest)
        _, late = m.schedule(stops, order, matrix, departure=departure, speed_kmh=speed)
        if any(late):
            continue
        length = m.route_length(order, matrix, closed=closed)
        if best is None or length < best:
            best = length
    return best


def random_stops(rng, n, windows=False):
    stops = []
    for i in range(n):
        lat, lon = rng.uniform(48.0, 49.5), rng.uniform(1.5, 3.5)
        ws = we = None
        if windows and i and rng.random() < 0.6:
            start = rng.randint(0, 240)
            ws = T0 + timedelta(minutes=start)
            we = ws + timedelta(minutes=rng.randint(90, 300))
        stops.append(m.Stop(f"S{i}", lat, lon, ws, we, service_minutes=rng.choice((0, 5, 10))))
    return stops


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("closed", [False, True])
def test_route_matches_brute_force(seed, closed):
    rng = random.Random(seed)
    stops = random_stops(rng, rng.randint(4, 7))
    plan = m.plan_route(stops, departure=T0, return_to_start=closed, time_limit_ms=300)
    assert plan.order[0] == 0 and sorted(plan.order) == list(range(len(stops)))
    assert plan.distance_m == brute_force(stops, departure=T0, speed=50.0, closed=closed)
    assert plan.distance_m <= plan.given_distance_m


@pytest.mark.parametrize("seed", range(8))
def test_route_with_time_windows_matches_brute_force(seed):
    rng = random.Random(100 + seed)
    stops = random_stops(rng, rng.randint(4, 7), windows=True)
    best = brute_force(stops, departure=T0, speed=40.0, closed=False)
    plan = m.plan_route(stops, departure=T0, speed_kmh=40.0, time_limit_ms=300)
    if best is None:
        assert any(plan.late_minutes)
    else:
        assert not any(plan.late_minutes)
        assert plan.distance_m == best


def test_route_respects_a_window_that_forces_a_detour():
    # On a line A(0) - B(1) - C(2), 11.1 km apart: C first is a detour (23 min at 60 km/h),
    # but C closes after 25 min and B first would reach C after 12 + 10 + 12 = 34 min.
    stops = [
        m.Stop("A", 0.0, 0.0),
        m.Stop("B", 0.0, 0.1, service_minutes=10),
        m.Stop("C", 0.0, 0.2, window_end=T0 + timedelta(minutes=25)),
    ]
    free = m.plan_route(stops[:2] + [m.Stop("C", 0.0, 0.2)], departure=T0, time_limit_ms=200)
    assert free.order == (0, 1, 2)
    timed = m.plan_route(stops, departure=T0, speed_kmh=60.0, time_limit_ms=200)
    assert timed.order == (0, 2, 1) and not any(timed.late_minutes)


def test_route_outcome_names_missed_windows():
    stops = [
        m.Stop("Depot", 0.0, 0.0),
        m.Stop("Far", 0.0, 5.0, window_end=T0 + timedelta(minutes=10)),
    ]
    out = m.route(stops, departure=T0, time_limit_ms=100)
    missed = only(out, "window_missed")
    assert missed.evidence["name"] == "Far" and missed.evidence["late_minutes"] > 0
    assert out.result["stops"][0]["name"] == "Depot"
    with pytest.raises(m.Problem):
        m.plan_route(stops[:1], departure=T0)


# --- commit analysis ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "feat(api): add the route endpoint",
            (True, "feat", "api", False, "add the route endpoint"),
        ),
        ("fix!: drop the old header", (True, "fix", None, True, "drop the old header")),
        ("Refactor(core/db)!: split", (True, "refactor", "core/db", True, "split")),
        (
            "chore: bump\n\nBREAKING CHANGE: python 3.12 needed",
            (True, "chore", None, True, "bump"),
        ),
        ("Update README", (False, None, None, False, "Update README")),
        ("feat:missing space", (False, None, None, False, "feat:missing space")),
        ("feat(): empty scope", (False, None, None, False, "feat(): empty scope")),
    ],
)
def test_conventional_header(message, expected):
    h = m.parse_header(message)
    assert (h.conventional, h.type, h.scope, h.breaking, h.subject) == expected


def test_languages_by_extension():
    assert m.language_of("src/app/main.py") == "Python"
    assert m.language_of("web/App.TSX") == "TypeScript"
    assert m.language_of("infra/main.tf") == "HCL"
    assert m.language_of("Dockerfile") == "Dockerfile"
    assert m.language_of("docker/Dockerfile.prod") == "Dockerfile"
    assert m.language_of("LICENSE") is None and m.language_of(".env") is None


AWS_KEY = "AKIAZ7QW3RTY5UIO2PLK"
DIFF = f"""diff --git a/app/settings.py b/app/settings.py
index 1111111..2222222 100644
--- a/app/settings.py
+++ b/app/settings.py
@@ -1,3 +1,5 @@
 import os
-DEBUG = True
+DEBUG = False
+AWS_ACCESS_KEY_ID = "{AWS_KEY}"
+REGION = "eu-west-1"
 NAME = "app"
diff --git a/migrations/versions/0002_add.py b/migrations/versions/0002_add.py
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/migrations/versions/0002_add.py
@@ -0,0 +1,2 @@
+revision = "0002"
+down_revision = "0001"
"""


def test_parse_diff_counts_lines_and_statuses():
    files = m.parse_diff(DIFF)
    assert files == [
        m.FileChange("app/settings.py", "modified", 3, 1),
        m.FileChange("migrations/versions/0002_add.py", "added", 2, 0),
    ]
    for bad in ("", "   ", "hello, this is not a diff"):
        with pytest.raises(m.BadDiff):
            m.parse_diff(bad)


def test_a_malformed_diff_is_refused_without_echoing_its_lines():
    broken = DIFF.replace("@@ -1,3 +1,5 @@", "@@ -1,3 +1,9 @@")  # the hunk is too short
    broken = broken.replace("+++ b/app/settings.py\n", f"+++ b/app/settings.py\n+{AWS_KEY}\n")
    for bad in (broken, f"--- a/x\n+++ b/x\n@@ -1 +1 @@\n?{AWS_KEY}\n"):
        with pytest.raises(m.BadDiff) as caught:
            m.parse_diff(bad)
        shown = json.dumps([caught.value.detail, caught.value.errors])
        assert AWS_KEY not in shown


def test_scan_secrets_reports_place_and_type_never_the_value():
    hits = m.scan_secrets(DIFF)
    assert m.SecretHit("app/settings.py", 3, "AWS Access Key") in hits
    assert all(h.path == "app/settings.py" for h in hits)
    assert AWS_KEY not in repr(hits)
    assert m.scan_secrets(DIFF.replace(AWS_KEY, "not-a-key")) == []


def test_analyse_commit_known_risk_and_no_secret_value():
    files = m.parse_diff(DIFF)
    out = m.analyse_commit(
        message="feat(config): read keys", files=files, secrets=m.scan_secrets(DIFF)
    )
    # churn 6 -> round(25*log10(7)/3) = 7; 2 files -> 3; migrations 15; secret 40
    assert out.result["risk_score"] == 65 and out.result["risk_level"] == "high"
    assert out.result["type"] == "feat" and out.result["scope"] == "config"
    assert out.result["sensitive"] == ["migrations"]
    assert out.result["languages"] == ["Python"]
    secret = only(out, "secret_detected")
    assert secret.severity == "critical"
    assert secret.evidence == {
        "file": "app/settings.py",
        "line": 3,
        "secret_type": "AWS Access Key",
    }
    assert AWS_KEY not in json.dumps([f.as_dict() for f in out.findings]) + out.summary
    assert out.top_severity == "critical"


def test_analyse_commit_from_file_list_only():
    files = [
        m.FileChange(".github/workflows/ci.yml", "modified", 4, 1),
        m.FileChange("infra/main.tf", "modified", 30, 10),
        m.FileChange("src/auth/tokens.py", "modified", 50, 20),
        m.FileChange("requirements.txt", "modified", 1, 1),
    ]
    out = m.analyse_commit(message="Update things", files=files, diff_scanned=False)
    assert out.result["sensitive"] == ["auth", "ci", "dependencies", "infra"]
    # churn 117 -> round(25*log10(118)/3) = 17; 4 files -> 6; 15+20+10+5
    assert out.result["risk_score"] == 73
    assert "not_conventional" in codes(out) and "secrets_not_scanned" in codes(out)
    assert only(out, "size").evidence["size"] == "M"
    assert m.size_class(9) == "XS" and m.size_class(1000) == "XL"


def test_a_small_docs_change_is_low_risk():
    out = m.analyse_commit(
        message="docs: typo", files=[m.FileChange("README.md", "modified", 1, 1)]
    )
    assert out.result["risk_level"] == "low" and out.top_severity == "info"
    assert codes(out) == ["conventional_commit", "size", "languages", "risk"]


def test_worst_and_claims():
    assert m.worst(["info", "critical", "warning"]) == "critical"
    assert m.worst([]) == "info"
    assert m.allowed_claim("queued") and not m.allowed_claim("running")
