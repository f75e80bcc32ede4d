"""The gateway's HTTP surface: its guard on every request, its own routes, and the proxy.

Every request passes the guard, in this order: a CORS preflight is answered here (204 for a
configured origin, 403 otherwise); the client IP's rate limit; a 404 for the manifests'
`internal_routes` (service-to-service only, never forwarded); the body size limit on
`Content-Length`; the JWT (`shared.auth`) on every path the manifests do not declare public,
then its revocation or the user's "not before" (`revocation.py`, 2 s cache); the user's
rate limit. Then the gateway
serves `/health`, `/api/health`, `/api/openapi.json` and `/api/docs` itself and forwards
everything else (`proxy.py`). CORS and RateLimit headers are added to every answer.
"""

from __future__ import annotations

from pathlib import Path

import flask

from shared import auth, manifests
from shared import logging as slog
from shared.config import settings
from shared.errors import (
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from shared.http import create_app, describe, json_response, request_id
from shared.openapi import hidden, spec_for

from . import aggregate, cors, devdash, proxy, ratelimit
from .revocation import RevocationCache

app = create_app("gateway", authenticate=False)
devdash.install(app)  # local only: /_dev/ is make dev's dashboard (before the guard)
revocations = RevocationCache()
_log = slog.get_logger("switchyard.gateway")
_STATIC = Path(__file__).resolve().parent / "static"
_ASSETS = {
    "docs.js": "text/javascript",
    "docs.css": "text/css",
    # Swagger UI, vendored from npm's swagger-ui-dist by tools/vendor_console.py
    "swagger-ui/swagger-ui-bundle.js": "text/javascript",
    "swagger-ui/swagger-ui.css": "text/css",
}
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Client-supplied values of these would be trusted downstream (`shared.auth.bearer_token`
# prefers X-Forwarded-Authorization; `shared.http.client_ip` takes X-Client-IP): at the edge
# they are removed before anything reads them, and the gateway sets its own when forwarding.
_UNTRUSTED = ("HTTP_X_FORWARDED_AUTHORIZATION", "HTTP_X_CLIENT_IP")
_REVOKED_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="switchyard", error="invalid_token"'}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


# --- guard -----------------------------------------------------------------------------------


def _current_request() -> flask.Request:
    """The request object itself: `flask.request` is a proxy that looks the request up again
    on every attribute read (dozens per proxied request in the guard and the proxy)."""
    return flask.request._get_current_object()  # type: ignore[attr-defined]


def _limit(kind: str, per_minute: int, key: str) -> None:
    decision = ratelimit.buckets(kind, per_minute).take(key)
    current = getattr(flask.g, "ratelimit", None)
    if current is None or decision.remaining <= current.remaining:
        flask.g.ratelimit = decision
    if not decision.allowed:
        raise TooManyRequests(
            f"Too many requests; retry in {decision.retry_after_s} s.",
            headers=decision.headers(),
        )


def _ip_limited(req: flask.Request) -> bool:
    """The per-IP limit guards the API and every write; reading the web console's pages and
    assets (a first load is a dozen GETs, often many users behind one office address) is left
    to caching in front of the gateway."""
    if req.path == "/health":
        return False
    return req.path.startswith("/api/") or req.method not in ("GET", "HEAD")


@app.before_request
def _guard() -> flask.Response | None:
    req = _current_request()
    for key in _UNTRUSTED:
        req.environ.pop(key, None)
    s = settings()
    if cors.is_preflight(req.method, req.headers):
        origin = req.headers["Origin"]
        if cors.allowed(origin, s.cors_origins):
            return flask.Response(status=204, headers=cors.preflight_headers(origin))
        raise Forbidden("This origin is not allowed to call the API.")
    if _ip_limited(req):
        ip = proxy.client_ip(req.headers, req.remote_addr, s.in_cloud)
        _limit("ip", s.rate_limit_ip_per_min, ip)
    if manifests.catalog().is_internal(req.path):
        # service-to-service only (manifest `internal_routes`): as unknown as any other path
        raise NotFound("No API serves this path.")
    limit = proxy.body_limit(req.path)  # read at request time: settings may change
    req.max_content_length = limit
    if req.content_length is not None and req.content_length > limit:
        raise PayloadTooLarge(f"The body exceeds {limit} bytes.")
    auth.authenticate_request()
    claims = getattr(flask.g, "claims", None)
    if claims is not None:
        try:
            revoked = revocations.is_revoked(claims.jti, claims.exp, claims.sub, claims.issued_at)
        except Exception:
            raise revocation_unavailable() from None
        if revoked:
            raise revoked_token()
        _limit("user", s.rate_limit_user_per_min, claims.sub)
    return None


def revocation_unavailable() -> ServiceUnavailable:
    """The 503 of a revocation that cannot be checked, logged with the exception being handled
    (both guards: this one and `fast.py`'s)."""
    _log.exception("token revocation could not be checked")
    return ServiceUnavailable(
        "Token revocation cannot be checked right now.", headers={"Retry-After": "1"}
    )


def revoked_token() -> Unauthorized:
    return Unauthorized("The token has been revoked.", headers=_REVOKED_CHALLENGE)


@app.after_request
def _decorate(resp: flask.Response) -> flask.Response:
    origins = settings().cors_origins
    origin = flask.request.headers.get("Origin")
    if origin and origins:
        resp.vary.add("Origin")
        if cors.allowed(origin, origins):
            resp.headers.update(cors.response_headers(origin))
    decision = getattr(flask.g, "ratelimit", None)
    if decision is not None:
        for name, value in decision.headers().items():
            resp.headers.setdefault(name, value)
    return resp


# --- the gateway's own routes ----------------------------------------------------------------


def _trace() -> dict[str, str]:
    return {"X-Request-ID": request_id(), "traceparent": flask.g.traceparent}


def _admin_caller() -> bool:
    """The public health route's optional bearer token is a valid, unrevoked admin's. Any
    problem with it (bad, revoked, unverifiable) just means "not an admin" here."""
    token = auth.bearer_token()
    if token is None:
        return False
    try:
        claims = auth.verify(token)
        if not claims.has_role("admin"):
            return False
        return not revocations.is_revoked(claims.jti, claims.exp, claims.sub, claims.issued_at)
    except Exception:
        return False


@app.get("/api/health")
@describe(response=aggregate.PlatformHealth)
def platform_health() -> flask.Response:
    """Health of the platform: `ok` or `down`, and for an admin's bearer token each deployment.

    200 when every deployment (HTTP, event and schedule) answered its health check with 200
    within the health timeout, else 503. Without an admin token the answer is only the
    status, from a check shared for 3 s; an admin gets a fresh check and `deployments`, each
    `ok`, `down` (it answered, not 200) or `unreachable` (no answer, or no URL configured).
    """
    if _admin_caller():
        status, body = aggregate.health(_trace())
        return json_response(body, status)
    status, body = aggregate.health(_trace(), fresh=False)
    return json_response({"status": body["status"]}, status)


def own_spec() -> dict:
    spec = app.extensions.get("gateway.openapi")
    if spec is None:
        spec = app.extensions["gateway.openapi"] = spec_for(app, "gateway")
    return spec


@app.get("/api/openapi.json")
def openapi_document() -> flask.Response:
    """The OpenAPI 3.1 document of every API behind the gateway, merged.

    Fetched from each HTTP deployment's `<route>/openapi.json` and cached for 60 s.
    """
    body = aggregate.openapi(own_spec(), _trace())
    resp = flask.Response(body, mimetype="application/json")
    resp.headers["Cache-Control"] = "public, max-age=60"
    return resp


_DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchyard API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/api/docs/swagger-ui/swagger-ui.css">
<link rel="stylesheet" href="/api/docs/docs.css">
</head>
<body>
<header class="docs-header">
<h1>Switchyard API</h1>
<p>Every operation served through this gateway, from
<a href="/api/openapi.json">/api/openapi.json</a>. To try one, sign in with
<code>POST /api/auth/login</code>, then <strong>Authorize</strong> with its access token.</p>
</header>
<main id="swagger-ui"></main>
<noscript>This page needs JavaScript; the document itself is at /api/openapi.json.</noscript>
<script src="/api/docs/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/api/docs/docs.js"></script>
</body>
</html>
"""


@app.get("/api/docs")
def docs() -> flask.Response:
    """A browsable list of every operation (reads /api/openapi.json).

    Swagger UI (vendored, served from /api/docs/swagger-ui/, started by /api/docs/docs.js:
    nothing inline), with schemas, examples and "try it out" with a bearer token.
    """
    resp = flask.Response(_DOCS_HTML, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = CSP
    return resp


@app.get("/api/docs/<path:name>")
@hidden
def docs_asset(name: str) -> flask.Response:
    mimetype = _ASSETS.get(name)
    if mimetype is None:
        raise NotFound("No such asset.")
    data = app.extensions.get(f"gateway.asset.{name}")
    if data is None:
        data = app.extensions[f"gateway.asset.{name}"] = (_STATIC / name).read_bytes()
    resp = flask.Response(data, mimetype=mimetype)
    resp.headers["Cache-Control"] = "public, max-age=300"
    resp.headers["Content-Security-Policy"] = CSP
    return resp


# --- everything else: forwarded ---------------------------------------------------------------


@app.route("/", defaults={"path": ""}, methods=_METHODS, endpoint="proxy")
@app.route("/<path:path>", methods=_METHODS, endpoint="proxy")
@hidden
def forward(path: str) -> flask.Response:
    return proxy.forward(
        _current_request(), request_id=request_id(), traceparent=flask.g.traceparent
    )
