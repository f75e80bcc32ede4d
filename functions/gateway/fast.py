"""Forwarded requests answered on the event loop, without Flask or a worker thread (decision 0053).

`answer(app)` is what the entry point returns. A request the gateway forwards (its path has a
deployment, `proxy.target`) is served here as plain ASGI: the same guard as `api._guard`, in
the same order and with the same answers (the client IP's rate limit, the body limit on
`Content-Length`, the JWT on every non-public path, its revocation or the user's "not
before", the user's rate limit), the same request context as `shared.http`'s hooks (request
id, the server span named by the matched route and its client span, the access log line, the
platform's response headers), CORS and RateLimit headers, and the same exchange as
`proxy.forward` (`upstream.exchange` on this loop, 502/504, streams passed through). Anything
else goes to the Flask app through `shared.asgi.answer` unchanged: the gateway's own routes,
`/_dev/`, CORS preflights, internal routes, paths with dot segments, unknown methods.

Blocking work goes to the worker pool: a token not verified in the last `CLAIMS_TTL_S`
(`shared.auth.verify`, which may read the public keys), a revocation answer the cache does not
hold (Firestore), a Google ID token in the cloud. Everything else is in memory.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import flask
from starlette.responses import Response

from shared import asgi, auth, clients, manifests, tracing
from shared import logging as slog
from shared.config import settings
from shared.errors import (
    BadRequest,
    PayloadTooLarge,
    Problem,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)

from . import api, cors, proxy, ratelimit, upstream

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_http_log = slog.get_logger("switchyard.http")
_METHODS = frozenset(api._METHODS)
_UNTRUSTED = frozenset({b"x-forwarded-authorization", b"x-client-ip"})
_CHALLENGE_REQUEST = 'Bearer realm="switchyard", error="invalid_request"'
_PROBLEM_JSON = "application/problem+json"

# --- verified tokens ---------------------------------------------------------------------------
# `shared.auth.verify` remembers verified tokens, but a hit may still re-read the public keys
# (every 60 s: Secret Manager), which must not happen on the loop. Here a token string verified
# by it (in a worker thread) is remembered for CLAIMS_TTL_S, never past its expiry (with the
# same leeway) and only while the public keys it was checked against are the ones `auth` holds
# and fresh (a re-read or `auth.reset_keys` ends every entry), for the same settings.
CLAIMS_TTL_S = 30.0
_CLAIMS_MAX = 4096
_LEEWAY_S = 30
_claims: dict[str, tuple[auth.Claims, float, Any, Any]] = {}  # token -> claims, until, keys, s
_claims_lock = threading.Lock()


def _known_claims(token: str, s: Any) -> auth.Claims | None:
    hit = _claims.get(token)
    if hit is None:
        return None
    claims, until, keys, was = hit
    current, fresh = auth.public_keys_state()
    if (
        was is s
        and keys is current
        and fresh
        and time.monotonic() < until
        and time.time() - _LEEWAY_S < claims.exp
    ):
        return claims
    with _claims_lock:
        _claims.pop(token, None)
    return None


def _verify(token: str, s: Any) -> auth.Claims:
    """`auth.verify` (in a worker thread), remembered as above."""
    claims = auth.verify(token)
    keys, fresh = auth.public_keys_state()
    if fresh:
        with _claims_lock:
            while len(_claims) >= _CLAIMS_MAX:
                _claims.pop(next(iter(_claims)))
            _claims[token] = (claims, time.monotonic() + CLAIMS_TTL_S, keys, s)
    return claims


def forget_claims() -> None:
    """Forget the remembered tokens (tests)."""
    with _claims_lock:
        _claims.clear()


# --- which requests are served here ------------------------------------------------------------


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for n, v in headers:
        if n == name:
            return v.decode("latin-1")
    return None


def forwarded_here(scope: Scope) -> bool:
    """The request is one this module serves (module doc); the rest goes to Flask."""
    if scope.get("type") != "http":
        return False
    method, path = scope["method"], scope["path"]
    if method not in _METHODS or path.startswith("/_dev") or proxy.has_dot_segment(path):
        return False
    if "\n" in path or "\r" in path:
        return False
    if method == "OPTIONS":
        headers = scope["headers"]
        if _header(headers, b"origin") and _header(headers, b"access-control-request-method"):
            return False  # a preflight: answered by the Flask app
    if proxy.target(path) is None:
        return False
    return not manifests.catalog().is_internal(path)


class answer(Response):  # noqa: N801 - used like a function: `return answer(app)`
    """The gateway's ASGI answer: forwarded requests here, the rest through the Flask app (a
    Starlette `Response` as functions-framework's ASGI mode expects, like `asgi.answer`)."""

    def __init__(self, app: flask.Flask) -> None:  # no super(): nothing of Response's is used
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if forwarded_here(scope):
            await _Exchange(scope, receive, send).run()
        else:
            await asgi.answer(self.app)(scope, receive, send)


# --- one forwarded request ---------------------------------------------------------------------


class _Exchange:
    __slots__ = (
        "decision",
        "headers",
        "method",
        "origin",
        "path",
        "receive",
        "request_id",
        "s",
        "scope",
        "send",
        "span",
        "started",
        "traceparent",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope, self.receive, self.send = scope, receive, send
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        # client-supplied values of these would be trusted downstream: gone before anything
        self.headers: list[tuple[bytes, bytes]] = [
            (n, v) for n, v in scope["headers"] if n not in _UNTRUSTED
        ]
        self.s = settings()
        self.decision: ratelimit.Decision | None = None
        self.origin = self.get(b"origin")
        self.span: tracing.Scope | None = None
        self.started = time.perf_counter()
        self.request_id = ""
        self.traceparent = ""

    def get(self, name: bytes, default: str | None = None) -> str | None:
        value = _header(self.headers, name)
        return default if value is None else value

    # the request context of shared.http's hooks (request id, span, log binding)

    def _begin(self) -> Any:
        rid = self.get(b"x-request-id", "") or ""
        self.request_id = rid if 0 < len(rid) <= 128 and rid.isprintable() else uuid.uuid4().hex
        tp = self.get(b"traceparent", "") or ""
        incoming = tp if tracing.valid(tp) else ""
        if tracing.enabled():
            token = slog.bind(request_id=self.request_id)
            rule = "/<path:path>" if self.path != "/" else "/"
            self.span = tracing.server(
                f"{self.method} {rule}",
                incoming,
                attributes={
                    "http.request.method": self.method,
                    "url.path": self.path,
                    "http.route": rule,
                    "switchyard.request_id": self.request_id,
                },
            )
            self.traceparent = self.span.traceparent
            return token
        self.traceparent = incoming or tracing.new_traceparent()
        return slog.bind(request_id=self.request_id, traceparent=self.traceparent)

    async def run(self) -> None:
        token = self._begin()
        try:
            try:
                await self._guard()
                status, headers, body = await self._forward()
            except Problem as exc:
                status, headers, body = self._problem(exc)
            except Exception as exc:
                _http_log.exception("unhandled error", exc_info=exc)
                status, headers, body = self._problem(
                    Problem("An unexpected error occurred.", status=500)
                )
            headers = self._decorate(status, headers)
            if self.span is not None:
                self.span.set("http.response.status_code", status)
                if status >= 500:
                    self.span.fail()
            self._access_log(status)
            if isinstance(body, bytes):
                await self.send(asgi.start_message(status, headers))
                await self.send({"type": "http.response.body", "body": body})
                return
            start = asgi.start_message(status, headers)
        finally:
            if self.span is not None:
                self.span.finish()
                self.span = None
            slog.reset(token)
        await asgi.stream(self.send, self.receive, start, body)

    # the guard (api._guard's order; preflights and internal routes never get here)

    def _limit(self, kind: str, per_minute: int, key: str) -> None:
        decision = ratelimit.buckets(kind, per_minute).take(key)
        if self.decision is None or decision.remaining <= self.decision.remaining:
            self.decision = decision
        if not decision.allowed:
            raise TooManyRequests(
                f"Too many requests; retry in {decision.retry_after_s} s.",
                headers=decision.headers(),
            )

    def _forwarding(self) -> dict[str, str]:
        """The client's X-Forwarded-For, as proxy's helpers read it."""
        xff = self.get(b"x-forwarded-for")
        return {} if xff is None else {"X-Forwarded-For": xff}

    def _peer(self) -> str:
        client = self.scope.get("client")
        return client[0] if client else ""

    async def _guard(self) -> None:
        s = self.s
        if self.path.startswith("/api/") or self.method not in ("GET", "HEAD"):
            ip = proxy.client_ip(self._forwarding(), self._peer(), s.in_cloud)
            self._limit("ip", s.rate_limit_ip_per_min, ip)
        limit = proxy.body_limit(self.path)
        length = self._content_length()
        if length is not None and length > limit:
            raise PayloadTooLarge(f"The body exceeds {limit} bytes.")
        if self.method == "OPTIONS" or manifests.catalog().is_public(self.path):
            return
        claims = await self._claims()
        revocations = api.revocations  # looked up per request (tests replace it)
        try:
            revoked = revocations.known(claims.jti)
            if revoked is None:
                revoked = await asgi.in_thread(
                    revocations.is_revoked, claims.jti, claims.exp, claims.sub, claims.issued_at
                )
        except Exception:
            raise api.revocation_unavailable() from None
        if revoked:
            raise api.revoked_token()
        self._limit("user", s.rate_limit_user_per_min, claims.sub)

    async def _claims(self) -> auth.Claims:
        value = self.get(b"authorization", "") or ""
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "A bearer token is required.", headers={"WWW-Authenticate": _CHALLENGE_REQUEST}
            )
        claims = _known_claims(token, self.s)
        if claims is None:
            claims = await asgi.in_thread(_verify, token, self.s)
        return claims

    def _content_length(self) -> int | None:
        value = self.get(b"content-length")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise BadRequest("The Content-Length header is not a number.") from None

    async def _body(self, limit: int) -> bytes:
        """The request body from the ASGI connection, at most `limit` bytes (413 beyond)."""
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("The client went away before its body was read.")
            chunk = message.get("body", b"")
            if chunk:
                total += len(chunk)
                if total > limit:
                    raise PayloadTooLarge(f"The body exceeds {limit} bytes.")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if len(chunks) == 1:
            return chunks[0]  # the usual case: one message, no copy
        return b"".join(chunks)

    # the exchange (proxy.forward's, on the loop)

    async def _forward(self) -> tuple[int, list[tuple[str, str]], Any]:
        dep = proxy.target(self.path)
        assert dep is not None  # noqa: S101 - forwarded_here checked it
        s = self.s
        base = s.service_urls.get(dep.name)
        if not base:
            raise ServiceUnavailable(f"The deployment {dep.name} is not configured.")
        body = await self._body(proxy.body_limit(self.path))
        with proxy.upstream_span(self.span, self.method, dep, self.path, self.traceparent) as up:
            out = await self._exchange(dep.name, base, body, up.traceparent)
            up.status = out[0]
        return out

    async def _exchange(
        self, name: str, base: str, body: bytes, traceparent: str
    ) -> tuple[int, list[tuple[str, str]], Any]:
        s = self.s
        lookup = self._forwarding()
        peer = self._peer()
        pairs = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.headers]
        service_token = None
        if s.in_cloud:
            service_token = await asgi.in_thread(clients.id_token, base)
        headers = proxy.request_headers(
            pairs,
            request_id=self.request_id,
            traceparent=traceparent,
            client_ip=proxy.client_ip(lookup, peer, s.in_cloud),
            forwarded_for=proxy.forwarded_for(lookup, peer, s.in_cloud),
            proto=(self.get(b"x-forwarded-proto") if s.in_cloud else None)
            or self.scope.get("scheme", "http"),
            host=self.get(b"host") or self._server(),
            service_token=service_token,
        )
        answer = await upstream.exchange(
            self.method,
            base + self._raw_target(),
            headers,
            body,
            name=name,
            path=self.path,
            read_s=upstream.read_timeout_for(self.get(b"accept", "") or ""),
        )
        out = proxy.passed_headers(answer)
        if answer.content is None:  # an event stream: passed through from the loop
            return answer.status, out, upstream.relay(answer, name)
        status = answer.status
        if not (100 <= status < 200 or status in (204, 304)):
            if self.method == "HEAD":
                out.append(("Content-Length", answer.header("Content-Length") or "0"))
            else:
                out.append(("Content-Length", str(len(answer.content))))
        return status, out, answer.content

    def _server(self) -> str:
        server = self.scope.get("server")
        if not server:
            return ""
        host, port = server
        return f"{host}:{port}" if port else str(host)

    def _raw_target(self) -> str:
        raw = self.scope.get("raw_path") or self.path.encode("utf-8")
        qs = self.scope.get("query_string") or b""
        target = raw.decode("latin-1")
        return f"{target}?{qs.decode('latin-1')}" if qs else target

    # the answer

    def _problem(self, exc: Problem) -> tuple[int, list[tuple[str, str]], bytes]:
        body: dict[str, Any] = {"type": exc.extra.pop("type", "about:blank"), "title": exc.title}
        body["status"] = exc.status
        if exc.detail:
            body["detail"] = exc.detail
        if exc.errors:
            body["errors"] = exc.errors
        body.update(exc.extra)
        if self.request_id:
            body["request_id"] = self.request_id
        data = json.dumps(body, default=str).encode()
        headers = [("Content-Type", _PROBLEM_JSON), ("Content-Length", str(len(data)))]
        headers += list(exc.headers.items())
        return exc.status, headers, data

    def _decorate(self, status: int, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """shared.http's platform headers, then api._decorate's CORS and RateLimit headers."""
        names = {n.lower() for n, _ in headers}
        for name, value in (
            ("X-Request-ID", self.request_id),
            ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "no-store"),
        ):
            if name.lower() not in names:
                headers.append((name, value))
                names.add(name.lower())
        origins = self.s.cors_origins
        if self.origin and origins:
            headers = _vary_origin(headers)
            if cors.allowed(self.origin, origins):
                extra = cors.response_headers(self.origin)
                low = {n.lower() for n in extra}
                headers = [(n, v) for n, v in headers if n.lower() not in low]
                headers += list(extra.items())
                names |= low
        if self.decision is not None:
            for name, value in self.decision.headers().items():
                if name.lower() not in names:
                    headers.append((name, value))
        return headers

    def _access_log(self, status: int) -> None:
        if not _http_log.isEnabledFor(logging.INFO):
            return
        _http_log.info(
            "%s %s %s",
            self.method,
            self.path,
            status,
            extra={
                "httpRequest": {
                    "requestMethod": self.method,
                    "requestUrl": self.path,
                    "status": status,
                    "latency": f"{time.perf_counter() - self.started:.6f}s",
                    "userAgent": self.get(b"user-agent", "") or "",
                }
            },
        )


def _vary_origin(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`Vary` with `Origin` in it (werkzeug's `vary.add`: one header, values kept)."""
    values: list[str] = []
    rest = []
    for n, v in headers:
        if n.lower() == "vary":
            values += [x.strip() for x in v.split(",") if x.strip()]
        else:
            rest.append((n, v))
    if "origin" not in {x.lower() for x in values}:
        values.append("Origin")
    return [*rest, ("Vary", ", ".join(values))]
