"""functions.users.model and the users API models: normalisation, changes, self-lockout."""

import pytest
from pydantic import ValidationError

from functions.users import model
from functions.users.api import UserCreate, UserQuery, UserUpdate
from shared.http import BadRequest, encode_cursor


def test_changed_fields_lists_only_real_changes_in_order():
    current = {"email": "a@b.io", "name": "A", "roles": ["viewer"], "active": True}
    wanted = {"active": True, "roles": ["admin"], "name": "B", "email": "a@b.io"}
    assert model.changed_fields(current, wanted) == ["name", "roles"]
    assert model.changed_fields(current, {}) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"delete": True}, "delete"),
        ({"active": False}, "deactivate"),
        ({"roles": ["viewer"]}, "admin role"),
    ],
)
def test_admins_cannot_lock_themselves_out(kwargs, message):
    with pytest.raises(model.SelfLockout, match=message) as info:
        model.check_self_change("me", "me", **kwargs)
    assert info.value.status == 409


def test_admins_may_do_that_to_others_and_keep_admin_themselves():
    model.check_self_change("me", "other", delete=True)
    model.check_self_change("me", "other", active=False, roles=["viewer"])
    model.check_self_change("me", "me", active=True, roles=["admin", "viewer"])


def test_create_defaults_and_normalises():
    user = UserCreate.model_validate({"email": " Ann@Example.COM ", "name": "  Ann "})
    assert (user.email, user.name, user.roles, user.password) == (
        "ann@example.com",
        "Ann",
        ["viewer"],
        None,
    )


def test_passwords_are_not_stripped_and_need_12_characters():
    assert (
        UserCreate.model_validate(
            {"email": "a@b.io", "name": "A", "password": "  twelve chars "}
        ).password
        == "  twelve chars "
    )
    with pytest.raises(ValidationError):
        UserCreate.model_validate({"email": "a@b.io", "name": "A", "password": "short"})


@pytest.mark.parametrize(
    "data",
    [
        {"email": "a@b.io", "name": "A", "roles": ["root"]},
        {"email": "a@b.io", "name": "A", "roles": []},
        {"email": "nope", "name": "A"},
        {"email": "a@b.io", "name": ""},
        {"email": "a@b.io", "name": "A", "is_admin": True},
    ],
)
def test_create_refuses(data):
    with pytest.raises(ValidationError):
        UserCreate.model_validate(data)


def test_update_is_partial_and_refuses_nulls():
    assert UserUpdate.model_validate({"name": "B"}).model_dump(exclude_unset=True) == {"name": "B"}
    with pytest.raises(ValidationError, match="null is not allowed"):
        UserUpdate.model_validate({"name": None})


def test_cursor_must_match_the_sort_order():
    by_email = encode_cursor(["email", "a@b.io", "id-1"])
    assert UserQuery.model_validate({"sort": "email", "cursor": by_email}).sort_key() == (
        "a@b.io",
        "id-1",
    )
    with pytest.raises(BadRequest):
        UserQuery.model_validate({"cursor": by_email}).sort_key()
    with pytest.raises(ValidationError):
        UserQuery.model_validate({"sort": "name"})
    with pytest.raises(ValidationError):
        UserQuery.model_validate({"role": "root"})
