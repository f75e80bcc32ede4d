"""Forwarding one request to the deployment that owns its path, and its answer back.

The target is the deployment whose manifest route is the longest prefix of the path
(`shared.manifests.Catalog.route`), at its URL from `SERVICE_URLS`. The request goes out with
its method, raw path and query, body and end-to-end headers; hop-by-hop headers, `Host` and
client-supplied forwarding headers are dropped, and the gateway sets `X-Request-ID`,
`traceparent`, `X-Client-IP` and `X-Forwarded-For/-Proto/-Host`. In the cloud `Authorization`
carries a Google ID token for the target (invoker IAM) and the user's token travels in
`X-Forwarded-Authorization`. Bodies pass through as bytes, never decoded or re-encoded (the
upstream's `Content-Encoding` included). Unreachable upstream: 502; timeout: 504.

Traces (`shared.tracing`): the request's server span is named by the manifest route it matched
(`POST /api/users`), and the upstream exchange is its child client span (`POST users-api`),
whose traceparent the upstream gets: it ends with the whole answer read, or for a stream with
its status line.

The gateway is served in functions-framework's ASGI mode: a forwarded request is normally
served on the event loop by `fast.py` (decision 0053), which uses this module's helpers; what
follows is `forward`, the Flask path (decision 0035): the guard and this module run in a worker
thread, and the upstream exchange (`upstream.exchange`, the one both paths use: decision 0058)
runs on the event loop. The thread waits for the upstream's status line (bounded by
`UPSTREAM_TIMEOUT_S`); an ordinary answer is then read whole (a timeout while reading it is
still a clean 504).

Streams: a `text/event-stream` answer is not buffered and holds no thread: once its status
line is in, the thread returns, and the body passes through from the event loop chunk by chunk
as the upstream flushes it (no Content-Length, each event sent on arrival); the read timeout
between two chunks becomes `STREAM_READ_TIMEOUT_S` (longer than the streams' heartbeat), so a
long stream is not cut at the normal upstream timeout. The upstream connection is closed when
the client goes away.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import quote

import flask
import werkzeug.datastructures

from shared import asgi, clients, manifests, tracing
from shared.config import settings
from shared.errors import BadRequest, NotFound, PayloadTooLarge, Problem, ServiceUnavailable
from shared.manifests import Deployment

from . import upstream

# Request headers as Flask gives them (case-insensitive) or as a plain mapping (tests).
Headers = Mapping[str, str] | werkzeug.datastructures.Headers

GATEWAY_CONTEXT = "gateway"

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by the gateway itself (a client's value is never trusted) or by the upstream client.
_NOT_FORWARDED = HOP_BY_HOP | {
    "host",
    "content-length",
    "expect",
    "x-client-ip",
    "x-forwarded-authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "traceparent",
}
# The WSGI server writes its own Date and Server; a copy would duplicate them.
_NOT_RETURNED = HOP_BY_HOP | {"date", "server"}
_SAFE_PATH = "/:@!$&'()*+,;=-._~"


class _Passthrough(flask.Response):
    default_mimetype = None  # keep the upstream's Content-Type, or none (204)


_TARGETS_MAX = 4096
_targets: dict[tuple[int, str], Deployment | None] = {}


def target(path: str) -> Deployment | None:
    """The deployment serving `path` (longest route prefix), never the gateway itself.
    Remembered per path (a request asks up to three times; the catalog's lookup scans every
    route), for the catalog of the process (a test that reloads it gets fresh answers)."""
    key = (id(manifests.catalog()), path)
    try:
        return _targets[key]
    except KeyError:
        pass
    dep = manifests.catalog().route(path)
    if dep is not None and dep.context == GATEWAY_CONTEXT:
        dep = None
    if len(_targets) >= _TARGETS_MAX:
        _targets.clear()
    _targets[key] = dep
    return dep


def body_limit(path: str) -> int:
    """The largest body the deployment serving `path` accepts (manifest `max_body_bytes`,
    else the platform's MAX_BODY_BYTES)."""
    dep = target(path)
    if dep is not None and dep.max_body_bytes:
        return dep.max_body_bytes
    return settings().max_body_bytes


def connection_tokens(value: str) -> set[str]:
    """Header names listed in a `Connection` header: hop-by-hop for this hop only."""
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def request_headers(
    incoming: Iterable[tuple[str, str]],
    *,
    request_id: str,
    traceparent: str,
    client_ip: str,
    forwarded_for: str,
    proto: str,
    host: str,
    service_token: str | None = None,
) -> dict[str, str]:
    """The headers sent upstream, from the client's (see module doc)."""
    pairs = list(incoming)
    extra_hop = set()
    for name, value in pairs:
        if name.lower() == "connection":
            extra_hop |= connection_tokens(value)
    out: dict[str, str] = {}
    user_authorization = None
    for name, value in pairs:
        low = name.lower()
        if low in _NOT_FORWARDED or low in extra_hop:
            continue
        if low == "authorization":
            user_authorization = value
            continue
        out[name] = value
    out["X-Request-ID"] = request_id
    out["traceparent"] = traceparent
    out["X-Client-IP"] = client_ip
    out["X-Forwarded-For"] = forwarded_for
    out["X-Forwarded-Proto"] = proto
    out["X-Forwarded-Host"] = host
    if service_token:
        if user_authorization:
            out["X-Forwarded-Authorization"] = user_authorization
        out["Authorization"] = f"Bearer {service_token}"
    elif user_authorization:
        out["Authorization"] = user_authorization
    return out


def response_headers(upstream: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's headers as returned to the client (repeated ones kept, e.g. Set-Cookie)."""
    pairs = list(upstream)
    extra_hop = set()
    for name, value in pairs:
        if name.lower() == "connection":
            extra_hop |= connection_tokens(value)
    return [
        (n, v) for n, v in pairs if n.lower() not in _NOT_RETURNED and n.lower() not in extra_hop
    ]


def client_ip(headers: Headers, remote_addr: str | None, in_cloud: bool) -> str:
    """The caller's address: in the cloud the right-most `X-Forwarded-For` entry (appended by
    Google's front end; entries to its left are client-supplied), else the peer address."""
    if in_cloud:
        xff = headers.get("X-Forwarded-For", "")
        last = xff.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return remote_addr or ""


def forwarded_for(headers: Headers, remote_addr: str | None, in_cloud: bool) -> str:
    """`X-Forwarded-For` for the upstream: the chain so far plus the peer (locally), or the chain
    as Google's front end completed it (cloud)."""
    xff = headers.get("X-Forwarded-For", "").strip()
    if in_cloud and xff:
        return xff
    peer = remote_addr or ""
    return f"{xff}, {peer}" if xff else peer


def raw_target(req: flask.Request) -> str:
    """Path and query exactly as the client sent them (no decoding round trip)."""
    scope = req.environ.get("asgi.scope") or {}
    if scope.get("raw_path"):
        qs = scope.get("query_string") or b""
        raw_path = scope["raw_path"].decode("latin-1")
        return f"{raw_path}?{qs.decode('latin-1')}" if qs else raw_path
    raw = req.environ.get("RAW_URI") or req.environ.get("REQUEST_URI") or ""
    if raw.startswith("/"):
        return raw
    qs = req.query_string.decode("latin-1")
    path = quote(req.path, safe=_SAFE_PATH)
    return f"{path}?{qs}" if qs else path


def has_dot_segment(path: str) -> bool:
    return any(seg in (".", "..") for seg in path.split("/"))


def read_body(req: flask.Request, limit: int) -> bytes:
    """The request body, at most `limit` bytes (413 beyond, without reading further)."""
    length = req.content_length
    if length is not None:
        if length > limit:
            raise PayloadTooLarge(f"The body exceeds {limit} bytes.")
        return req.stream.read() if length else b""
    if (
        not req.environ.get("wsgi.input_terminated")
        and "chunked" not in req.headers.get("Transfer-Encoding", "").lower()
    ):
        return b""
    req.max_content_length = limit
    chunks: list[bytes] = []
    total = 0
    from werkzeug.exceptions import RequestEntityTooLarge

    try:
        while True:
            chunk = req.stream.read(min(65536, limit + 1 - total))
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(f"The body exceeds {limit} bytes.")
            chunks.append(chunk)
    except RequestEntityTooLarge:
        raise PayloadTooLarge(f"The body exceeds {limit} bytes.") from None
    return b"".join(chunks)


def passed_headers(answer: upstream.Answer) -> list[tuple[str, str]]:
    """The answer's headers as the client gets them, without `Content-Length` (the server in
    front sets the length of what it sends); an event stream's say not to buffer or cache it."""
    out = [(n, v) for n, v in response_headers(answer.headers) if n.lower() != "content-length"]
    if answer.content is None:
        out.append(("X-Accel-Buffering", "no"))
        if not any(n.lower() == "cache-control" for n, _ in out):
            out.append(("Cache-Control", "no-cache"))
    return out


def _streamed(answer: upstream.Answer, name: str) -> flask.Response:
    """A deferred answer relaying the event stream `answer` from the event loop."""
    return asgi.deferred(
        upstream.relay(answer, name), status=answer.status, headers=passed_headers(answer)
    )


def matched_route(dep: Deployment, path: str) -> str:
    """The route of `dep` that `path` matched (the longest), as the span's name says it."""
    routes = [r for r in dep.routes if path == r or path.startswith(r.rstrip("/") + "/")]
    return max(routes, key=len) if routes else path


def forward(req: flask.Request, *, request_id: str, traceparent: str) -> flask.Response:
    """Forward the current request to its deployment and return the answer (module doc)."""
    if has_dot_segment(req.path):
        raise BadRequest("The path must not contain '.' or '..' segments.")
    dep = target(req.path)
    if dep is None:
        raise NotFound("No API serves this path.")
    s = settings()
    base = s.service_urls.get(dep.name)
    if not base:
        raise ServiceUnavailable(f"The deployment {dep.name} is not configured.")
    body = read_body(req, body_limit(req.path))
    scope = getattr(flask.g, "trace_scope", None)
    with upstream_span(scope, req.method, dep, req.path, traceparent) as up:
        resp = _forward(req, dep, base, body, request_id, up.traceparent)
        up.status = resp.status_code
    return resp


class Upstream:
    """What `upstream_span` yields: the traceparent to send upstream; the caller sets `status`."""

    __slots__ = ("status", "traceparent")

    def __init__(self, traceparent: str) -> None:
        self.traceparent = traceparent
        self.status = 0


@contextlib.contextmanager
def upstream_span(
    scope: tracing.Scope | None, method: str, dep: Deployment, path: str, traceparent: str
) -> Iterator[Upstream]:
    """The upstream exchange as a client span, child of the request's server span `scope`
    (renamed after the matched route), when tracing: both gateway paths (Flask's `forward`
    and the event loop's, `fast.py`) forward inside it. Without a scope, nothing is traced."""
    if scope is None:
        yield Upstream(traceparent)
        return
    route = matched_route(dep, path)
    scope.rename(f"{method} {route}")
    scope.set("http.route", route)
    span = tracing.start_child(
        f"{method} {dep.name}",
        kind="client",
        attributes={"http.request.method": method, "switchyard.deployment": dep.name},
    )
    up = Upstream(traceparent if span is None else tracing.format_traceparent(span))
    try:
        yield up
    except Problem as exc:
        tracing.end(span, f"{exc.status} {exc.title}")
        raise
    except BaseException as exc:
        tracing.end(span, type(exc).__name__)
        raise
    if span is not None:
        span.set_attribute("http.response.status_code", up.status)
    tracing.end(span, "upstream error" if up.status >= 500 else None)


def _forward(
    req: flask.Request,
    dep: Deployment,
    base: str,
    body: bytes,
    request_id: str,
    traceparent: str,
) -> flask.Response:
    """The exchange of `forward`: the request built and sent, the answer (or stream) back."""
    s = settings()
    headers = request_headers(
        req.headers.items(),
        request_id=request_id,
        traceparent=traceparent,
        client_ip=client_ip(req.headers, req.remote_addr, s.in_cloud),
        forwarded_for=forwarded_for(req.headers, req.remote_addr, s.in_cloud),
        proto=(req.headers.get("X-Forwarded-Proto") if s.in_cloud else None) or req.scheme,
        host=req.host,
        service_token=clients.id_token(base),
    )
    exchange = functools.partial(
        upstream.exchange,
        name=dep.name,
        path=req.path,
        read_s=upstream.read_timeout_for(req.headers.get("Accept", "")),
    )
    answer = asgi.run(exchange, req.method, base + raw_target(req), headers, body)
    if answer.content is None:
        return _streamed(answer, dep.name)
    resp = _Passthrough(
        answer.content, status=answer.status, headers=response_headers(answer.headers)
    )
    length = answer.header("Content-Length")
    if req.method == "HEAD" and length is not None:
        resp.headers["Content-Length"] = length
    return resp
