"""functions.logistics.model: the package lifecycle checked exhaustively against explicit
tables, what every scan kind does from every status (in order and out of order), tracking
numbers (UPU S10 check digit), lateness, edit rules, and the request models and event schemas
of the context."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from functions.logistics import model
from functions.logistics.api import (
    BatchScanIn,
    PackageCreate,
    PackageQuery,
    PackageUpdate,
    ScanBatchIn,
    ScanIn,
    StatsQuery,
    _ScanBatchEnvelope,
)
from functions.logistics.events import PackageDelivered, TrackingEventRecorded
from shared.http import Unprocessable

CR, PU, IT, OFD, DL, EX, RT, CA = (
    "created",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "exception",
    "returned",
    "cancelled",
)
# Every status move the lifecycle allows, by hand.
ALLOWED = {
    (CR, PU),
    (CR, IT),
    (CR, EX),
    (CR, CA),
    (PU, IT),
    (PU, OFD),
    (PU, DL),
    (PU, EX),
    (IT, OFD),
    (IT, DL),
    (IT, EX),
    (IT, RT),
    (OFD, IT),
    (OFD, DL),
    (OFD, EX),
    (OFD, RT),
    (EX, PU),
    (EX, IT),
    (EX, OFD),
    (EX, DL),
    (EX, RT),
}
KIND_TARGET = {
    "pickup": PU,
    "arrival": IT,
    "departure": IT,
    "out_for_delivery": OFD,
    "delivery": DL,
    "exception": EX,
}
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.mark.parametrize("status", model.STATUSES)
@pytest.mark.parametrize("target", model.STATUSES)
def test_every_status_move_is_allowed_exactly_as_the_table_says(status, target):
    if (status, target) in ALLOWED:
        model.check_move(status, target)
    else:
        with pytest.raises(model.InvalidTransition) as info:
            model.check_move(status, target)
        assert info.value.status == 409
        assert sorted(info.value.extra["allowed"]) == sorted(t for s, t in ALLOWED if s == status)
        assert target in str(info.value.detail)


def test_manual_moves_are_the_lifecycle_moves_a_person_may_make():
    assert model.manual_moves(CR) == ["in_transit", "exception", "cancelled"]
    assert model.manual_moves(PU) == ["in_transit", "exception"]
    assert model.manual_moves(EX) == ["in_transit", "returned"]
    assert model.manual_moves(DL) == []
    model.check_manual_move(IT, RT)
    for target in (PU, OFD, DL):
        with pytest.raises(model.InvalidTransition) as info:
            model.check_manual_move(IT if target != PU else CR, target)
        assert "only a scan records it" in str(info.value.detail)
    with pytest.raises(model.InvalidTransition) as info:
        model.check_manual_move(PU, CA)
    assert info.value.extra["allowed"] == ["in_transit", "exception"]


def test_terminal_statuses_allow_nothing_and_say_so():
    for status in (DL, RT, CA):
        with pytest.raises(model.InvalidTransition) as info:
            model.check_move(status, IT)
        assert info.value.extra["allowed"] == []
        assert "none" in str(info.value.detail)


@pytest.mark.parametrize("status", model.STATUSES)
@pytest.mark.parametrize("kind", model.SCAN_KINDS)
def test_an_in_order_scan_from_every_status(status, kind):
    target = KIND_TARGET[kind]
    state = model.PackageState(status, last_scan_at=at(0), picked_up_at=at(0))
    if status == CA or (target != status and (status, target) not in ALLOWED):
        with pytest.raises(model.ImpossibleScan) as info:
            model.apply_scan(state, kind, at(1))
        assert info.value.status == 409
        assert kind not in info.value.extra["allowed_kinds"]
        return
    out = model.apply_scan(state, kind, at(1))
    assert kind in model.allowed_scan_kinds(status)
    assert out.out_of_order is False
    assert out.state.last_scan_at == at(1)
    if target == status:
        assert (out.moved, out.status_after, out.note) == (False, status, f"already {status}")
    else:
        assert (out.moved, out.status_from, out.status_to) == (True, status, target)
        assert out.state.status == target


def test_allowed_scan_kinds_by_hand():
    assert model.allowed_scan_kinds(CR) == ["pickup", "arrival", "departure", "exception"]
    assert model.allowed_scan_kinds(IT) == [
        "arrival",
        "departure",
        "out_for_delivery",
        "delivery",
        "exception",
    ]
    assert model.allowed_scan_kinds(DL) == ["delivery"]  # a re-scan at the door: recorded
    assert model.allowed_scan_kinds(RT) == []
    assert model.allowed_scan_kinds(CA) == []


def test_a_delivery_of_a_cancelled_package_is_impossible_even_out_of_order():
    state = model.PackageState(CA, last_scan_at=None)
    with pytest.raises(model.ImpossibleScan) as info:
        model.apply_scan(state, "delivery", at(1))
    assert "cancelled" in str(info.value.detail) and info.value.extra["allowed_kinds"] == []
    late = model.PackageState(CA, last_scan_at=at(5))
    with pytest.raises(model.ImpossibleScan):
        model.apply_scan(late, "pickup", at(1))


def test_an_older_scan_is_recorded_but_never_moves_the_status_back():
    state = model.PackageState(OFD, last_scan_at=at(10), picked_up_at=at(1))
    out = model.apply_scan(state, "departure", at(5))
    assert (out.moved, out.out_of_order, out.status_after) == (False, True, OFD)
    assert out.note == "older than the latest scan"
    assert out.state.last_scan_at == at(10)  # the latest stays the latest
    # even on a delivered package, late history is kept (no 409)
    done = model.PackageState(DL, last_scan_at=at(20), picked_up_at=at(1), delivered_at=at(20))
    out = model.apply_scan(done, "arrival", at(15))
    assert (out.moved, out.out_of_order, out.state.status) == (False, True, DL)


def test_a_newer_impossible_scan_on_a_delivered_package_is_refused():
    done = model.PackageState(DL, last_scan_at=at(20), delivered_at=at(20))
    with pytest.raises(model.ImpossibleScan):
        model.apply_scan(done, "pickup", at(21))


def test_a_scan_at_the_same_time_as_the_latest_is_in_order():
    state = model.PackageState(PU, last_scan_at=at(3), picked_up_at=at(3))
    out = model.apply_scan(state, "departure", at(3))
    assert (out.out_of_order, out.status_to) == (False, IT)


def test_pickup_time_journey_and_transit():
    state = model.PackageState(CR)
    steps = [("pickup", 0), ("departure", 2), ("arrival", 20), ("out_for_delivery", 30)]
    for kind, h in steps:
        state = model.apply_scan(state, kind, at(h)).state
    assert (state.status, state.picked_up_at) == (OFD, at(0))
    out = model.apply_scan(state, "delivery", at(33.5))
    assert out.state.delivered_at == at(33.5)
    assert model.transit_seconds(out.state.picked_up_at, out.state.delivered_at) == 33.5 * 3600


def test_a_missed_pickup_scan_starts_the_journey_at_the_first_scan():
    out = model.apply_scan(model.PackageState(CR), "departure", at(4))
    assert (out.status_to, out.state.picked_up_at) == (IT, at(4))
    # the pickup scan arriving late corrects when the journey began
    late = model.apply_scan(out.state, "pickup", at(1))
    assert (late.moved, late.out_of_order, late.state.picked_up_at) == (False, True, at(1))


def test_exception_and_recovery():
    state = model.PackageState(IT, last_scan_at=at(1), picked_up_at=at(0))
    raised = model.apply_scan(state, "exception", at(2))
    assert raised.status_to == EX
    recovered = model.apply_scan(raised.state, "arrival", at(5))
    assert (recovered.status_from, recovered.status_to) == (EX, IT)


def test_lateness():
    promised = at(48)
    assert model.is_late(DL, promised, at(49), now=at(100)) is True
    assert model.is_late(DL, promised, at(47), now=at(100)) is False
    assert model.is_late(IT, promised, None, now=at(49)) is True
    assert model.is_late(IT, promised, None, now=at(47)) is False
    assert model.is_late(RT, promised, None, now=at(100)) is False
    assert model.is_late(CA, promised, None, now=at(100)) is False
    assert model.is_late(IT, None, None, now=at(100)) is False


# --- tracking numbers ------------------------------------------------------------------------


def test_s10_check_digit_of_the_upu_example_and_the_special_cases():
    assert model.s10_check_digit("47312482") == 9  # RR473124829GB, the S10 standard's example
    # sum % 11 == 1 -> 11 - 1 = 10 -> 0; sum % 11 == 0 -> 11 -> 5
    assert model.s10_check_digit("00000001") == 4  # 7 -> 11 - 7
    assert model.s10_check_digit("00000000") == 5
    assert model.s10_check_digit("00000008") == 0  # 56 % 11 == 1 -> 10 -> 0
    with pytest.raises(ValueError):
        model.s10_check_digit("1234")


def test_generated_tracking_numbers_are_valid_s10():
    for _ in range(200):
        number = model.new_tracking_number()
        assert model.S10.match(number) and number.startswith("SY") and number.endswith("SW")
        model.check_tracking_number(number)
    assert model.new_tracking_number(47312482) == "SY473124829SW"


def test_a_given_s10_number_needs_its_check_digit_others_only_the_shape():
    model.check_tracking_number("RR473124829GB")
    with pytest.raises(model.BadCheckDigit) as info:
        model.check_tracking_number("RR473124828GB")
    assert info.value.status == 422 and "9" in str(info.value.detail)
    model.check_tracking_number("1Z999AA10123456784")  # not S10: shape only
    assert model.normalize_tracking_number(" rr473124829gb ") == "RR473124829GB"
    for bad in ("abc", "-ABCDEF", "A" * 41, "ABC DEF"):
        with pytest.raises(ValueError):
            model.normalize_tracking_number(bad)


# --- edits -----------------------------------------------------------------------------------


def test_edit_rules():
    model.check_edit(CR, ["sender", "origin_lat", "recipient"])
    model.check_edit(IT, ["recipient", "destination_address", "promised_by"])
    with pytest.raises(model.FieldLocked) as info:
        model.check_edit(IT, ["recipient", "origin_address"])
    assert "origin_address" in str(info.value.detail)
    for closed in (DL, RT, CA):
        with pytest.raises(model.PackageClosed):
            model.check_edit(closed, ["recipient"])
    current = {f: 1 for f in model.EDITABLE_FIELDS}
    assert model.changed_fields(current, {"weight_kg": 2, "sender": 1, "colour": 3}) == [
        "weight_kg"
    ]


# --- request models --------------------------------------------------------------------------

PLACE = {"address": "Hauptstr. 1, Berlin", "lat": 52.5, "lon": 13.4, "region": "de-be"}


def test_package_create_validates_and_normalises():
    data = PackageCreate.model_validate(
        {
            "sender": " Acme ",
            "recipient": "Ada",
            "origin": PLACE,
            "destination": {**PLACE, "region": "FR-IDF"},
            "weight_kg": 1.5,
            "promised_by": "2026-12-03T18:00:00+01:00",
        }
    )
    fields = data.fields()
    assert (fields["sender"], fields["origin_region"], fields["destination_region"]) == (
        "Acme",
        "DE-BE",
        "FR-IDF",
    )
    assert fields["service_level"] == "standard" and data.tracking_number is None
    assert fields["promised_by"] == datetime(2026, 12, 3, 17, tzinfo=UTC)
    with pytest.raises(ValidationError) as info:
        PackageCreate.model_validate(
            {
                "sender": "A",
                "recipient": "B",
                "origin": {**PLACE, "lat": 91},
                "destination": PLACE,
                "weight_kg": 0,
                "service_level": "teleport",
                "colour": "red",
                "promised_by": "2026-12-03T18:00:00",
            }
        )
    fields_in_error = {".".join(map(str, e["loc"])) for e in info.value.errors()}
    assert fields_in_error == {
        "origin.lat",
        "weight_kg",
        "service_level",
        "colour",
        "promised_by",
    }


def test_package_update_is_partial_and_refuses_nulls_but_promised_by():
    upd = PackageUpdate.model_validate({"destination": PLACE, "promised_by": None, "version": 2})
    assert upd.changes() == {
        "destination_address": PLACE["address"],
        "destination_lat": 52.5,
        "destination_lon": 13.4,
        "destination_region": "DE-BE",
        "promised_by": None,
    }
    with pytest.raises(ValidationError):
        PackageUpdate.model_validate({"recipient": None})
    with pytest.raises(ValidationError):
        PackageUpdate.model_validate({"status": "lost"})


SCAN = {
    "kind": "arrival",
    "location": "Leipzig hub",
    "lat": 51.3,
    "lon": 12.4,
    "occurred_at": "2026-11-02T10:00:00Z",
    "idempotency_key": "scanner-7:000123",
}


def test_scan_models():
    assert ScanIn.model_validate(SCAN).occurred_at == datetime(2026, 11, 2, 10, tzinfo=UTC)
    for bad in (
        {"kind": "teleport"},
        {"idempotency_key": "short"},
        {"idempotency_key": "has space in it"},
        {"occurred_at": "2026-11-02T10:00:00"},
        {"lon": 181},
    ):
        with pytest.raises(ValidationError):
            ScanIn.model_validate({**SCAN, **bad})
    with pytest.raises(ValidationError):
        BatchScanIn.model_validate(SCAN)  # no package
    with pytest.raises(ValidationError):  # both
        BatchScanIn.model_validate(
            {
                **SCAN,
                "tracking_number": "RR473124829GB",
                "package_id": "7d7f2f0e-4b0a-4a43-9d6e-1f8f3f1f2f3f",
            }
        )
    assert BatchScanIn.model_validate({**SCAN, "tracking_number": "rr473124829gb"}).tracking_number
    with pytest.raises(ValidationError):
        ScanBatchIn.model_validate({"scans": [{**SCAN, "tracking_number": "RR473124829GB"}] * 1001})
    with pytest.raises(ValidationError):
        _ScanBatchEnvelope.model_validate({"scans": [{}] * 1001})
    with pytest.raises(ValidationError):
        _ScanBatchEnvelope.model_validate({"scans": []})


def test_list_and_stats_queries():
    q = PackageQuery.model_validate(
        {"status": "in_transit", "service_level": ["express", "overnight"], "late": "true"}
    )
    assert q.filters()["statuses"] == ["in_transit"] and q.filters()["late"] is True
    assert q.filters()["service_levels"] == ["express", "overnight"]
    with pytest.raises(ValidationError):
        PackageQuery.model_validate({"sort": "weight"})
    with pytest.raises(Unprocessable):
        StatsQuery.model_validate({"from": "2026-02-01", "to": "2026-01-01"}).days()
    with pytest.raises(Unprocessable):
        StatsQuery.model_validate({"from": "2025-01-01", "to": "2026-06-01"}).days()


# --- events ----------------------------------------------------------------------------------

LANE = {
    "package_id": "p",
    "tracking_number": "SY473124829SW",
    "origin_region": "DE-BE",
    "destination_region": "FR-IDF",
    "origin_lat": 52.5,
    "origin_lon": 13.4,
    "destination_lat": 48.9,
    "destination_lon": 2.35,
    "service_level": "express",
    "weight_kg": 1.5,
    "promised_by": "2026-11-04T18:00:00.000000Z",
    "status": "delivered",
    "version": 6,
}


def test_event_schemas_carry_the_lane_and_refuse_unknown_fields():
    delivered = PackageDelivered(
        **LANE,
        scan_id="s",
        location="Paris",
        lat=48.9,
        lon=2.35,
        delivered_at="2026-11-04T10:00:00.000000Z",
        picked_up_at="2026-11-02T08:00:00.000000Z",
        transit_seconds=180000.0,
        on_time=True,
    )
    assert delivered.model_dump()["transit_seconds"] == 180000.0
    assert PackageDelivered.event_type == "package.delivered"
    with pytest.raises(ValidationError):
        TrackingEventRecorded(**LANE, scan_id="s", colour="red")
