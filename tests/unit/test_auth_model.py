"""functions.auth.model: password policy, emails, roles, throttling and refresh verdicts."""

from datetime import UTC, datetime, timedelta

import pytest

from functions.auth import model
from functions.auth.model import RefreshState, RefreshVerdict

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "password, expected",
    [
        ("a" * 11, ["must be at least 12 characters"]),
        ("a" * 12, []),
        ("a" * 128, []),
        ("a" * 129, ["must be at most 128 characters"]),
        ("Ann@Example.com", ["must not be the email address"]),
        (" ann@example.com ", ["must not be the email address"]),
        ("correct horse battery", []),
    ],
)
def test_password_policy(password, expected):
    assert model.password_problems(password, "ann@example.com") == expected


def test_weak_password_is_a_422_with_field_errors():
    with pytest.raises(model.WeakPassword) as info:
        model.check_password("short", "a@b.io", field="new_password")
    assert info.value.status == 422
    assert info.value.errors == [
        {
            "field": "new_password",
            "type": "password_policy",
            "message": "must be at least 12 characters",
        }
    ]


@pytest.mark.parametrize(
    "raw, normal",
    [
        ("Ann@Example.COM", "ann@example.com"),
        ("  admin@switchyard.local ", "admin@switchyard.local"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
    ],
)
def test_emails_are_lower_cased(raw, normal):
    assert model.normalize_email(raw) == normal


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "no-at",
        "a@localhost",
        "a b@x.io",
        "a@x..io",
        "a@-x.io",
        "@x.io",
        "a@" + "x" * 250 + ".io",
    ],
)
def test_bad_emails_are_refused(raw):
    with pytest.raises(ValueError):
        model.normalize_email(raw)


def test_roles_are_sorted_unique_and_known():
    assert model.normalize_roles(["viewer", "admin", "viewer"]) == ["admin", "viewer"]
    with pytest.raises(ValueError, match="root"):
        model.normalize_roles(["root"])


def test_throttle_allows_up_to_the_limit_then_waits_for_the_window():
    start = NOW - timedelta(seconds=100)
    kw = {"max_failures": 5, "window_s": 900}
    assert model.throttle_wait(5, start, NOW, **kw) == 0
    assert model.throttle_wait(6, start, NOW, **kw) == 800
    # never "0 seconds" while refusing
    assert model.throttle_wait(6, NOW - timedelta(seconds=899.9), NOW, **kw) == 1


def test_pair_delays_grow_after_the_limit_and_end_with_the_window():
    kw = {"max_failures": 5, "window_s": 900, "delay_s": 2}
    assert model.pair_wait(5, NOW, NOW, **kw) == 0
    assert model.pair_wait(6, NOW, NOW, **kw) == 2  # 2 s after the first failure
    assert model.pair_wait(7, NOW, NOW, **kw) == 6  # then 2 x 2 more: 6 s after it
    assert model.pair_wait(8, NOW, NOW, **kw) == 14
    assert model.pair_wait(6, NOW - timedelta(seconds=2), NOW, **kw) == 0
    assert model.pair_wait(30, NOW, NOW, **kw) == 900  # never past the window's end
    assert model.pair_wait(30, NOW - timedelta(seconds=899.5), NOW, **kw) == 1


def test_throttled_error_carries_retry_after():
    exc = model.LoginThrottled(42)
    assert exc.status == 429 and exc.headers == {"Retry-After": "42"}


@pytest.mark.parametrize(
    "state, verdict",
    [
        (None, RefreshVerdict.UNKNOWN),
        (RefreshState(None, None, NOW + timedelta(days=1)), RefreshVerdict.OK),
        (RefreshState(NOW, None, NOW + timedelta(days=1)), RefreshVerdict.REUSED),
        (RefreshState(NOW, NOW, NOW + timedelta(days=1)), RefreshVerdict.REUSED),
        (RefreshState(None, NOW, NOW + timedelta(days=1)), RefreshVerdict.REVOKED),
        (RefreshState(None, None, NOW), RefreshVerdict.EXPIRED),
    ],
)
def test_refresh_verdicts(state, verdict):
    assert model.judge_refresh(state, NOW) is verdict


def test_version_guard():
    assert model.should_apply(3, None)
    assert model.should_apply(3, 3)  # the same event again: harmless re-apply
    assert model.should_apply(4, 3)
    assert not model.should_apply(2, 3)


def test_errors_share_one_base_and_map_to_statuses():
    statuses = {
        model.InvalidCredentials().status,
        model.InvalidRefreshToken().status,
        model.TokenRevoked().status,
        model.WrongPassword().status,
        model.AccountInactive().status,
    }
    assert statuses == {401, 403}
    assert all(
        issubclass(e, model.AuthError)
        for e in (
            model.InvalidCredentials,
            model.LoginThrottled,
            model.WeakPassword,
            model.WrongPassword,
        )
    )
    # one message whatever went wrong: no account enumeration
    assert str(model.InvalidCredentials()) == "The email or password is incorrect."
