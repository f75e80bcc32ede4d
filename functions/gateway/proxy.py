"""Forwarding one request to the deployment that owns its path, and its answer back.

The target is the deployment whose manifest route is the longest prefix of the path
(`shared.manifests.Catalog.route`), at its URL from `SERVICE_URLS`. The request goes out with
its method, raw path and query, body and end-to-end headers; hop-by-hop headers, `Host` and
client-supplied forwarding headers are dropped, and the gateway sets `X-Request-ID`,
`traceparent`, `X-Client-IP` and `X-Forwarded-For/-Proto/-Host`. In the cloud `Authorization`
carries a Google ID token for the target (invoker IAM) and the user's token travels in
`X-Forwarded-Authorization`. Bodies pass through as bytes, never decoded or re-encoded (the
upstream's `Content-Encoding` included). One pooled keep-alive session per thread
(`shared.clients.session`). Unreachable upstream: 502; timeout: 504.

Streams: a `text/event-stream` answer is not buffered: its body passes through chunk by chunk
as the upstream flushes it (no Content-Length, each event sent on arrival), and the read
timeout between two chunks becomes `STREAM_READ_TIMEOUT_S` (longer than the streams'
heartbeat), so a long stream is not cut at the normal upstream timeout. The upstream connection
is closed when the client goes away. Other answers are read whole, as before (a timeout while
reading them is still a clean 504).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import quote

import flask
import requests
import urllib3
import werkzeug.datastructures

from shared import clients, manifests
from shared import logging as slog
from shared.config import settings
from shared.errors import (
    BadGateway,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    Problem,
    ServiceUnavailable,
)
from shared.manifests import Deployment

# Request headers as Flask gives them (case-insensitive) or as a plain mapping (tests).
Headers = Mapping[str, str] | werkzeug.datastructures.Headers

GATEWAY_CONTEXT = "gateway"
_log = slog.get_logger("switchyard.gateway")

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
# Set by the gateway itself (a client's value is never trusted) or recomputed by requests.
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
EVENT_STREAM = "text/event-stream"
_CHUNK = 65536


class GatewayTimeout(Problem):
    status, title = 504, "Gateway Timeout"


class _Passthrough(flask.Response):
    default_mimetype = None  # keep the upstream's Content-Type, or none (204)


def target(path: str) -> Deployment | None:
    """The deployment serving `path` (longest route prefix), never the gateway itself."""
    dep = manifests.catalog().route(path)
    if dep is None or dep.context == GATEWAY_CONTEXT:
        return None
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


def is_event_stream(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == EVENT_STREAM


def _timeout(req: flask.Request) -> float | tuple[float, float]:
    """Connect and read timeouts: a client asking for an event stream gets the stream read
    timeout between chunks (the connect timeout stays the normal one)."""
    s = settings()
    if EVENT_STREAM in req.headers.get("Accept", "").lower():
        return (s.upstream_timeout_s, max(s.upstream_timeout_s, s.stream_read_timeout_s))
    return s.upstream_timeout_s


def _set_read_timeout(upstream: requests.Response, seconds: float) -> None:
    """Lengthen the read timeout of an answer already under way (its socket's timeout)."""
    sock = getattr(getattr(upstream.raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _chunks(upstream: requests.Response, name: str) -> Iterator[bytes]:
    """The upstream body as it arrives: each chunk is passed on at once (no buffering)."""
    raw = upstream.raw
    try:
        if raw.chunked and raw.supports_chunked_reads():
            yield from raw.read_chunked(decode_content=False)
            return
        while True:
            chunk = raw.read1(_CHUNK, decode_content=False)
            if not chunk:
                return
            yield chunk
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        # The status line is gone already: all the client can see is the stream ending; it
        # reconnects (with Last-Event-ID for an event stream).
        _log.warning("%s broke off its stream: %s", name, type(exc).__name__)
    finally:
        upstream.close()


def _streamed(upstream: requests.Response, name: str) -> flask.Response:
    _set_read_timeout(
        upstream, max(settings().upstream_timeout_s, settings().stream_read_timeout_s)
    )
    headers = [
        (n, v)
        for n, v in response_headers(upstream.raw.headers.items())
        if n.lower() != "content-length"
    ]
    resp = _Passthrough(_chunks(upstream, name), status=upstream.status_code, headers=headers)
    resp.headers["X-Accel-Buffering"] = "no"
    resp.headers.setdefault("Cache-Control", "no-cache")
    return resp


def _send(
    adapter: requests.adapters.BaseAdapter,
    prepared: requests.PreparedRequest,
    timeout: float | tuple[float, float],
) -> requests.Response:
    """Send once; an idempotent request is sent once more when the pooled keep-alive
    connection turned out to be closed by the upstream (gunicorn drops idle ones after 2 s)."""
    try:
        return adapter.send(prepared, stream=True, timeout=timeout, proxies={})
    except requests.ConnectionError as exc:
        if prepared.method not in clients.IDEMPOTENT or isinstance(exc, requests.ConnectTimeout):
            raise
        return adapter.send(prepared, stream=True, timeout=timeout, proxies={})


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
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare(
            method=req.method, url=base + raw_target(req), headers=headers, data=body or None
        )
    except (requests.RequestException, ValueError):
        raise BadRequest("The request cannot be forwarded (malformed URL or header).") from None
    try:
        # The session's pooled adapter, not Session.request: no cookie jar shared between
        # users' requests, no proxy lookup in the environment, no redirects (and ~0.5 ms less).
        upstream = _send(clients.session().get_adapter(base), prepared, _timeout(req))
    except requests.Timeout:
        _log.warning("%s did not answer %s %s in time", dep.name, req.method, req.path)
        raise GatewayTimeout(f"{dep.name} did not answer in time.") from None
    except requests.RequestException as exc:
        _log.warning("%s is unreachable: %s", dep.name, type(exc).__name__)
        raise BadGateway(f"{dep.name} is unreachable.") from None
    if is_event_stream(upstream.raw.headers.get("Content-Type", "")) and req.method != "HEAD":
        return _streamed(upstream, dep.name)
    try:
        # Raw bytes: the body (compressed or not) goes back exactly as the upstream sent it;
        # reading it to the end returns the connection to the pool.
        content = upstream.raw.read(decode_content=False)
    except urllib3.exceptions.ReadTimeoutError:
        upstream.close()
        _log.warning("%s did not finish its answer in time", dep.name)
        raise GatewayTimeout(f"{dep.name} did not finish its answer in time.") from None
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        upstream.close()
        _log.warning("%s broke off its answer: %s", dep.name, type(exc).__name__)
        raise BadGateway(f"{dep.name} broke off its answer.") from None
    resp = _Passthrough(
        content, status=upstream.status_code, headers=response_headers(upstream.raw.headers.items())
    )
    if req.method == "HEAD" and "Content-Length" in upstream.raw.headers:
        resp.headers["Content-Length"] = upstream.raw.headers["Content-Length"]
    return resp
