"""HTTP routes of users-api (/api/users): parse and validate, call the service, shape the answer.

Any authenticated user may read users; creating, changing and deleting them is for admins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast, get_args
from uuid import UUID

import flask
from pydantic import AfterValidator, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from functions.users import model, service
from shared import auth as sauth
from shared.http import (
    ApiModel,
    BadRequest,
    OutModel,
    Page,
    PageQuery,
    body,
    create_app,
    describe,
    json_response,
    page,
    query,
)
from shared.openapi import responds
from shared.roles import ROLES

app = create_app("users")

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# Passwords are passed on exactly as typed (never stripped); auth applies the full policy.
Password = Annotated[
    str,
    StringConstraints(
        strip_whitespace=False, min_length=model.MIN_PASSWORD, max_length=model.MAX_PASSWORD
    ),
]
# The schema states the syntax `model.normalize_email` checks (case-insensitively: the stored
# form is lower-cased); the validator still normalises.
Email = Annotated[
    str,
    StringConstraints(max_length=model.MAX_EMAIL, pattern=model.EMAIL_PATTERN),
    AfterValidator(model.normalize_email),
]
Role = Literal["admin", "manager", "operator", "viewer"]
assert set(get_args(Role)) == set(ROLES)  # one vocabulary: shared.roles
Roles = Annotated[
    list[Role],
    Field(min_length=1, description="Subset of " + ", ".join(ROLES)),
    AfterValidator(model.normalize_roles),
]


class UserCreate(ApiModel):
    email: Email
    name: Name
    roles: Roles = Field(default_factory=lambda: [cast(Role, r) for r in model.DEFAULT_ROLES])
    password: Password | None = None


class UserUpdate(ApiModel):
    """Partial update: only the fields present change (null is not a value for any)."""

    # Absent or a value, never null (refused by `_no_nulls`): the schema leaves null out.
    email: Email | SkipJsonSchema[None] = None
    name: Name | SkipJsonSchema[None] = None
    roles: Roles | SkipJsonSchema[None] = None
    active: bool | SkipJsonSchema[None] = None
    password: Password | SkipJsonSchema[None] = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: null is not allowed; omit the field")
        return data


class UserOut(OutModel):
    id: str
    email: str
    name: str
    roles: list[str]
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class UserQuery(PageQuery):
    q: str | None = Field(None, max_length=200, description="Search in name and email.")
    role: Role | None = None
    active: bool | None = None
    sort: str = Field("created_at", pattern="^(created_at|email)$")

    def sort_key(self) -> tuple[Any, str] | None:
        """The cursor as (sort value, id). Cursors carry their sort order, `(sort, value, id)`:
        a cursor of another sort order is refused (400)."""
        key = self.keyset(str, datetime if self.sort == "created_at" else str, str)
        if key is None:
            return None
        sort, value, last_id = key
        if sort != self.sort:
            raise BadRequest("The cursor is not valid for this sort order.")
        return value, last_id


def _out(user: model.User) -> dict[str, Any]:
    return UserOut.model_validate(user).model_dump(mode="json")


def _caller_authorization() -> str | None:
    token = sauth.bearer_token()
    return f"Bearer {token}" if token else None


@app.get("/api/users")
@describe("List and search users", query=UserQuery, response=Page[UserOut])
def list_users() -> flask.Response:
    """Users, filtered by `q` (name or email, case-insensitive), `role` and `active`, in
    `sort` order (created_at or email), a page at a time (`next_cursor`)."""
    params = query(UserQuery)
    users = service.list_users(
        q=params.q,
        role=params.role,
        active=params.active,
        sort=params.sort,
        after=params.sort_key(),
        limit=params.limit + 1,
    )
    return json_response(
        page(
            users,
            params.limit,
            key=lambda u: (params.sort, getattr(u, params.sort), u.id),
            shape=_out,
        )
    )


@app.post("/api/users")
@describe("Create a user (admin)", request=UserCreate, response=UserOut, status=201)
@responds(409)
@sauth.require_roles("admin")
def create_user() -> flask.Response:
    """Create a user; with `password`, auth stores it before the user is committed."""
    data = body(UserCreate)
    user = service.create_user(
        email=data.email,
        name=data.name,
        roles=list[str](data.roles),
        password=data.password,
        authorization=_caller_authorization(),
    )
    return json_response(_out(user), 201, headers={"Location": f"/api/users/{user.id}"})


@app.get("/api/users/me")
@describe("The calling user", response=UserOut)
def me() -> flask.Response:
    """The user the bearer token belongs to."""
    return json_response(_out(service.get_user(sauth.current_user().sub)))


@app.get("/api/users/<uuid:user_id>")
@describe("One user", response=UserOut)
def get_user(user_id: UUID) -> flask.Response:
    """One user by id (404 when unknown or deleted)."""
    return json_response(_out(service.get_user(str(user_id))))


@app.put("/api/users/<uuid:user_id>")
@describe("Change a user (admin)", request=UserUpdate, response=UserOut)
@responds(409)
@sauth.require_roles("admin")
def update_user(user_id: UUID) -> flask.Response:
    """Change the given fields; `password` is handed to auth. Admins cannot deactivate or
    demote themselves (409)."""
    data = body(UserUpdate)
    changes = data.model_dump(exclude_unset=True, exclude={"password"})
    user = service.update_user(
        str(user_id),
        changes,
        password=data.password,
        actor_id=sauth.current_user().sub,
        authorization=_caller_authorization(),
    )
    return json_response(_out(user))


@app.delete("/api/users/<uuid:user_id>")
@describe("Delete a user (admin)", status=204)
@responds(409)
@sauth.require_roles("admin")
def delete_user(user_id: UUID) -> flask.Response:
    """Soft-delete a user (afterwards 404). Admins cannot delete themselves (409)."""
    service.delete_user(str(user_id), actor_id=sauth.current_user().sub)
    return flask.Response(status=204)
