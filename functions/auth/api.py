"""HTTP routes of auth-api (/api/auth): parse and validate, call the service, shape the answer.

Public (no bearer token): login, refresh, jwks.json. Everything else needs a verified token;
`PUT /api/auth/credentials/{user_id}` is service-to-service: users-api calls it with its
admin caller's token, never through the gateway, and in the cloud as its own Google identity.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import flask
from pydantic import AfterValidator, Field, StringConstraints

from functions.auth import model, service
from shared import auth as sauth
from shared import identity
from shared.http import (
    ApiModel,
    OutModel,
    body,
    client_ip,
    create_app,
    describe,
    json_response,
)
from shared.openapi import responds

app = create_app("auth")

# Passwords are taken exactly as typed: never stripped (ApiModel strips other strings).
Password = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=1024)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class LoginIn(ApiModel):
    email: str = Field(min_length=1, max_length=320)
    password: Password


class TokenOut(OutModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the OAuth token type
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshIn(ApiModel):
    refresh_token: Token


class LogoutIn(ApiModel):
    refresh_token: Token


class VerifyOut(OutModel):
    active: bool
    sub: str
    roles: list[str]
    exp: int
    jti: str


class PasswordIn(ApiModel):
    old_password: Password
    new_password: Password


class CredentialIn(ApiModel):
    email: Annotated[str, StringConstraints(max_length=320), AfterValidator(model.normalize_email)]
    roles: Annotated[list[str], AfterValidator(model.normalize_roles)]
    active: bool
    version: int = Field(
        ge=0, le=2**31 - 1, description="The users-context version of these facts."
    )
    password: Password | None = None


class CredentialOut(OutModel):
    user_id: str
    email: str | None
    roles: list[str]
    active: bool
    version: int
    has_password: bool
    password_changed_at: datetime | None
    updated_at: datetime


def _tokens(pair: model.TokenPair) -> flask.Response:
    return json_response(TokenOut.model_validate(pair).model_dump(mode="json"))


@app.post("/api/auth/login")
@responds(401)  # wrong email or password, inactive account (429: throttled)
@describe("Log in with email and password", request=LoginIn, response=TokenOut)
def login() -> flask.Response:
    """Exchange email and password for an access token and a refresh token.

    Wrong email, wrong password and inactive accounts get the same 401. Failed attempts are
    counted per (account, client IP), with delays that double past the limit, and per client
    IP across accounts; a throttled caller gets 429 with Retry-After. Failures from one IP
    never lock the account for other IPs (decision 0032).
    """
    data = body(LoginIn)
    return _tokens(service.login(data.email, data.password, client_ip()))


@app.post("/api/auth/refresh")
@responds(401)  # unknown, used or expired refresh token
@describe("Rotate a refresh token", request=RefreshIn, response=TokenOut)
def refresh() -> flask.Response:
    """Exchange a refresh token for a new pair; the old one is used up. Presenting a used
    token again revokes every token of its login (reuse detection)."""
    data = body(RefreshIn)
    return _tokens(service.refresh(data.refresh_token))


@app.post("/api/auth/logout")
@describe("Log out", request=LogoutIn, status=204)
def logout() -> flask.Response:
    """Revoke the refresh token's login (all its rotations) and the presented access token."""
    data = body(LogoutIn)
    service.logout(sauth.current_user(), data.refresh_token)
    return flask.Response(status=204)


@app.route("/api/auth/verify", methods=["GET", "POST"])
@describe("Introspect the bearer token", response=VerifyOut)
def verify() -> flask.Response:
    """The bearer token's claims when it is valid and not revoked (else 401)."""
    claims = service.verify(sauth.current_user())
    return json_response(VerifyOut.model_validate(claims).model_dump(mode="json"))


@app.post("/api/auth/password")
@responds(409)  # the password changed meanwhile
@describe("Change the caller's password", request=PasswordIn, status=204)
def change_password() -> flask.Response:
    """Change the caller's password. A wrong current password is 403 (the token is fine);
    every refresh token of the user is revoked."""
    data = body(PasswordIn)
    service.change_password(sauth.current_user(), data.old_password, data.new_password, client_ip())
    return flask.Response(status=204)


@app.put("/api/auth/credentials/<uuid:user_id>")
@describe(
    "Upsert a user's credential (users-api only)", request=CredentialIn, response=CredentialOut
)
@sauth.require_roles("admin")
def put_credential(user_id: UUID) -> flask.Response:
    """Set a user's login facts as users-api has them, and optionally the password.

    Service-to-service only: the gateway never forwards it (manifest `internal_routes`), and
    in the cloud the caller's Google identity must be users-api's service account, carrying
    the admin's token in X-Forwarded-Authorization (decision 0032). Called by users-api
    before it commits a user with a password; a weak password is 422 with field errors. 201
    when the credential is new.
    """
    identity.require_caller(flask.request.headers, "users-api")
    data = body(CredentialIn)
    cred, created = service.put_credential(
        str(user_id),
        email=data.email,
        roles=data.roles,
        active=data.active,
        version=data.version,
        password=data.password,
    )
    return json_response(
        CredentialOut.model_validate(cred).model_dump(mode="json"), 201 if created else 200
    )


@app.get("/api/auth/jwks.json")
@describe("Public keys that verify access tokens")
def jwks() -> flask.Response:
    """The JWKS of the keys that sign access tokens (two during a rotation)."""
    return json_response(sauth.jwks(), headers={"Cache-Control": "public, max-age=300"})
