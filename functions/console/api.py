"""HTTP surface of console-web: the SPA shell, its static files and the session endpoints.

Served through the gateway at `/` (every non-API path, public). `GET /_app/<file>` serves the
bundled assets (immutable for a year when asked with the current `?v=`, 404 for a miss);
`POST /session/login|refresh|logout` keep the refresh token in an HttpOnly, SameSite=Strict
cookie scoped to `/session` and hand only the access token to the page
(docs/decisions/0012); every other GET answers the HTML shell (no-store), whose hash routes
are the console's pages. Every answer carries the console's Content-Security-Policy (no
inline script or style), `X-Frame-Options: DENY` and `Referrer-Policy: same-origin`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import flask
from pydantic import Field, StringConstraints

from functions.console import service, shell
from shared.auth import bearer_token
from shared.config import settings
from shared.errors import Forbidden, NotFound, Problem, Unauthorized
from shared.http import (
    ApiModel,
    OutModel,
    body,
    client_ip,
    create_app,
    describe,
    json_response,
    problem,
)

app = create_app("console")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
CSRF_HEADER = "X-Switchyard-CSRF"
COOKIE_PATH = "/session"
IMMUTABLE = "public, max-age=31536000, immutable"
# Not /static: functions-framework's own Flask app keeps Flask's default /static/<file> route
# (serving <cwd>/static) and answers it before our entry point is called.
ASSETS = "/_app"
# Paths the shell must never answer for: they have owners (or must fail loudly).
_NOT_SHELL = ("api", "_app", "static", "session")


def cookie_name() -> str:
    """The refresh cookie's name; `__Secure-` outside local, where the cookie is Secure."""
    return "sy_refresh" if settings().is_local else "__Secure-sy_refresh"


@app.after_request
def _headers(resp: flask.Response) -> flask.Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    return resp


# --- static files and the shell ------------------------------------------------------------


@app.get(f"{ASSETS}/<path:name>")
def static_file(name: str) -> flask.Response:
    """A bundled asset (JS modules, CSS, vendored Bootstrap and Chart.js)."""
    found = shell.find(name)
    if found is None:
        raise NotFound("No such static file.")
    resp = flask.Response(found.body, mimetype=found.mimetype)
    resp.set_etag(found.etag)
    current = flask.request.args.get("v") == shell.bundle().version
    resp.headers["Cache-Control"] = IMMUTABLE if current else "no-cache"
    resp.make_conditional(flask.request)  # in place: 304 when the ETag matches
    return resp


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def page(path: str) -> flask.Response:
    """The console's HTML shell; its pages are hash routes (`/#/work-orders`)."""
    if path.split("/", 1)[0] in _NOT_SHELL:
        raise NotFound("No such resource.")
    resp = flask.Response(shell.bundle().shell, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


# --- sessions ----------------------------------------------------------------------------

Password = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=1024)]


class LoginIn(ApiModel):
    email: str = Field(min_length=1, max_length=320)
    password: Password


class SessionOut(OutModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the OAuth token type
    expires_in: int = Field(description="Seconds until the access token expires.")


def _expected_origin() -> str:
    req = flask.request
    # Behind the gateway these name the public origin (the gateway sets both, overwriting any
    # client value); called directly, the request's own scheme and host.
    proto = req.headers.get("X-Forwarded-Proto") or req.scheme
    host = req.headers.get("X-Forwarded-Host") or req.host
    return f"{proto}://{host}"


def require_same_origin() -> None:
    """CSRF defence of the session endpoints (beyond SameSite=Strict): the custom header
    (a cross-site page cannot send it without a CORS preflight), and the browser's own word
    that the request comes from this origin (`Sec-Fetch-Site`, `Origin`)."""
    req = flask.request
    if req.headers.get(CSRF_HEADER) != "1":
        raise Forbidden(f"The {CSRF_HEADER} header is required.")
    site = req.headers.get("Sec-Fetch-Site")
    origin = req.headers.get("Origin")
    if site is None and origin is None:
        raise Forbidden("The request's origin cannot be established.")
    if site is not None and site != "same-origin":
        raise Forbidden("Session requests must come from the console's own pages.")
    if origin is not None and origin != _expected_origin():
        raise Forbidden("Session requests must come from the console's own origin.")


def _forwarded() -> dict[str, str]:
    """What auth-api must know of the browser: its IP (login throttling is per client)."""
    out = {"X-Client-IP": client_ip()}
    agent = flask.request.headers.get("User-Agent")
    if agent:
        out["User-Agent"] = agent[:512]
    return out


def _session(pair: service.TokenPair) -> flask.Response:
    resp = json_response(
        SessionOut(access_token=pair.access_token, expires_in=pair.expires_in).model_dump()
    )
    resp.set_cookie(
        cookie_name(),
        pair.refresh_token,
        max_age=settings().refresh_ttl_s,
        path=COOKIE_PATH,
        secure=not settings().is_local,
        httponly=True,
        samesite="Strict",
    )
    return resp


def _forget(resp: flask.Response) -> flask.Response:
    resp.delete_cookie(
        cookie_name(),
        path=COOKIE_PATH,
        secure=not settings().is_local,
        httponly=True,
        samesite="Strict",
    )
    return resp


@app.post("/session/login")
@describe("Sign in to the console", request=LoginIn, response=SessionOut)
def login() -> flask.Response:
    """Sign in with email and password: the access token in the answer, the refresh token
    in an HttpOnly cookie (auth-api's 401 and 429 are passed through)."""
    require_same_origin()
    data = body(LoginIn)
    return _session(service.login(data.email, data.password, _forwarded()))


def _ended(exc: Problem) -> flask.Response:
    """`exc` as problem+json, with the refresh cookie cleared."""
    return _forget(
        problem(
            exc.status, exc.title, exc.detail, errors=exc.errors, headers=exc.headers, **exc.extra
        )
    )


@app.post("/session/refresh")
@describe("Renew the console's access token", response=SessionOut)
def refresh() -> flask.Response:
    """Rotate the refresh cookie and return a fresh access token (401: signed out)."""
    require_same_origin()
    token = flask.request.cookies.get(cookie_name())
    if not token:
        raise Unauthorized("You are not signed in.")
    try:
        pair = service.refresh(token, _forwarded())
    except service.AuthRejected as exc:
        if exc.status != 401:
            raise
        return _ended(Unauthorized("Your session has ended; sign in again."))
    return _session(pair)


@app.post("/session/logout")
@describe("Sign out of the console", status=204)
def logout() -> flask.Response:
    """Revoke the session (refresh family and access token) and clear the cookie."""
    require_same_origin()
    token = flask.request.cookies.get(cookie_name())
    if token:
        try:
            service.logout(token, bearer_token(), _forwarded())
        except Problem as exc:
            # The browser forgets the session either way; the page still learns of the error.
            return _ended(exc)
    return _forget(flask.Response(status=204))
