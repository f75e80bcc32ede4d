"""The realtime plans (what one event writes), the dashboard counters and the SSE format."""

from __future__ import annotations

import json

import pytest

from functions.realtime import model
from functions.realtime.store import add_counts, shape_counters


def lane(status: str = "in_transit", version: int = 3, pid: str = "p-1") -> dict:
    return {
        "package_id": pid,
        "tracking_number": "SY123",
        "origin_region": "DE-BE",
        "destination_region": "FR-75",
        "service_level": "express",
        "promised_by": "2026-12-03T00:00:00+00:00",
        "status": status,
        "version": version,
    }


def test_created_counts_the_package_in_its_status_and_feeds_package_and_dashboard():
    p = model.plan("package.created", lane("created", 1), "2026-12-01T10:00:00+00:00")
    assert p.streams == ("package:p-1", "dashboard")
    assert p.counts == {"status.created": 1, "packages": 1}
    assert p.package is not None and p.package["status"] == "created"
    assert p.position is None


def test_status_change_moves_one_package_between_statuses():
    data = {**lane("in_transit"), "old": "picked_up", "new": "in_transit"}
    data |= {"occurred_at": "2026-12-01T11:00:00+00:00", "lat": 1.0, "lon": 2.0}
    p = model.plan("package.status.changed", data, "x")
    assert p.counts == {"status.picked_up": -1, "status.in_transit": 1}
    (item, dash) = p.items
    assert (item.type, item.data["old"], item.data["new"]) == ("status", "picked_up", "in_transit")
    assert dash.stream == "dashboard"


def test_scan_moves_the_map_position_unless_it_is_out_of_order():
    scan = {"scan_id": "s1", "kind": "arrival", "location": "Paris", "lat": 48.8, "lon": 2.35}
    scan |= {"occurred_at": "2026-12-01T12:00:00+00:00", "out_of_order": False}
    p = model.plan("tracking.event.recorded", {**lane(), **scan}, "x")
    assert p.streams == ("package:p-1", "map", "dashboard")
    assert p.position == {
        "package_id": "p-1",
        "tracking_number": "SY123",
        "status": "in_transit",
        "lat": 48.8,
        "lon": 2.35,
        "at": "2026-12-01T12:00:00+00:00",
    }
    late = model.plan("tracking.event.recorded", {**lane(), **scan, "out_of_order": True}, "x")
    assert late.position is None and late.streams == ("package:p-1", "dashboard")


def test_delivery_counts_late_ones():
    data = {**lane("delivered"), "lat": 0.0, "lon": 0.0, "delivered_at": "t", "on_time": False}
    counts = model.plan("package.delivered", data, "x").counts
    assert counts == {"delivered": 1, "delivered_late": 1}
    data["on_time"] = None  # no promise: not late
    assert model.plan("package.delivered", data, "x").counts["delivered_late"] == 0


def test_investigation_feeds_agents_and_its_package():
    data = {"investigation_id": "i1", "kind": "anomaly", "package_id": "p-9", "status": "completed"}
    data |= {"findings": 2, "top_severity": "high", "summary": "impossible speed"}
    p = model.plan("investigation.completed", data, "2026-12-01T10:00:00+00:00")
    assert p.streams == ("agents", "package:p-9", "dashboard")
    assert p.agent is not None and p.agent["findings"] == 2
    assert p.counts == {"investigations_completed": 1}
    data["package_id"] = None
    assert model.plan("investigation.completed", data, "t").streams == ("agents", "dashboard")


def test_every_plan_that_moves_a_counter_feeds_the_dashboard():
    # an open dashboard learns every counter change, not only at the next status move
    scan = {"scan_id": "s1", "kind": "arrival", "location": "Paris", "lat": 48.8, "lon": 2.35}
    scan |= {"occurred_at": "t", "out_of_order": False}
    agent = {"investigation_id": "i1", "kind": "anomaly", "package_id": None, "status": "failed"}
    agent |= {"findings": 0, "top_severity": None, "summary": None}
    plans = [
        model.plan("package.created", lane("created", 1), "t"),
        model.plan(
            "package.status.changed", {**lane(), "old": "a", "new": "b", "occurred_at": "t"}, "t"
        ),
        model.plan("package.delivered", {**lane(), "delivered_at": "t", "on_time": True}, "t"),
        model.plan(
            "package.exception.raised",
            {**lane(), "occurred_at": "t", "location": "x", "note": "n"},
            "t",
        ),
        model.plan("tracking.event.recorded", {**lane(), **scan}, "t"),
        model.plan("investigation.completed", agent, "t"),
    ]
    for p in plans:
        assert p.counts and p.streams.count("dashboard") == 1, p


def test_unknown_event_and_bad_stream_names_are_refused():
    with pytest.raises(ValueError):
        model.plan("user.created", lane(), "x")
    with pytest.raises(model.UnknownStream):
        model.stream_key("package", "../etc")
    with pytest.raises(model.UnknownStream):
        model.stream_key("everything")
    assert model.stream_key("package", "abc") == "package:abc"


def test_counters_add_deltas_and_a_package_moves_between_statuses():
    c = add_counts({}, {"status.created": 1, "packages": 1})
    c = add_counts(c, {"status.created": 1, "packages": 1})
    c = add_counts(c, {"status.created": -1, "status.picked_up": 1})
    assert shape_counters(c) == {"by_status": {"created": 1, "picked_up": 1}, "packages": 2}


def test_sse_frames_multiline_data_and_ids():
    frame = model.sse({"a": 1}, event="status", id=7).decode()
    assert frame == 'id: 7\nevent: status\ndata: {"a":1}\n\n'
    assert model.sse("x\ny").decode() == "data: x\ndata: y\n\n"
    assert json.loads(model.sse([1, 2]).decode().removeprefix("data: ")) == [1, 2]
    assert model.heartbeat().startswith(b":")


@pytest.mark.parametrize(("raw", "want"), [("12", 12), (" 3 ", 3), ("", None), ("x", None)])
def test_last_event_id(raw, want):
    assert model.last_event_id(raw) == want
    assert model.last_event_id(None) is None


def test_recent_entries_stay_complete_above_their_base_when_trimmed(monkeypatch):
    from functions.realtime import store

    monkeypatch.setattr(store, "RECENT", 3)
    recent = store._Recent(base=10)
    recent.extend([{"seq": s} for s in (11, 12)])
    recent.extend([{"seq": s} for s in (12, 13, 14, 15)])  # 12 again: a re-read overlap
    assert [d["seq"] for d in recent.items] == [13, 14, 15]
    assert (recent.base, recent.top) == (12, 15)
    hub = store.Hub()
    hub._recent["k"] = recent
    assert [d["seq"] for d in hub.since("k", 13) or []] == [14, 15]
    assert hub.since("k", 15) == []
    assert hub.since("k", 11) is None  # older than memory: read the feed
    assert hub.since("other", 0) is None
