"""Clients of other services: Google APIs (lazy, once per instance) and the platform's own APIs.

`firestore()`, `publisher()` and `subscriber()` create their Google client on first use (each
costs ~200-350 ms of import, so only deployments that use them pay it; with the emulator
variables set they talk to the emulators). `publish(topic, messages, timeout)` is the one way
the platform publishes: one synchronous `Publish` call per topic and batch (decision 0061).
`call(method, path, ...)` is the service-to-service HTTP client: a context calls another
context's API by path; the path is routed with the manifests (longest prefix, as the gateway
does) to the owning deployment's URL from `SERVICE_URLS`; in the cloud it attaches a Google ID
token for that URL (functions are private). The running deployment may only call the http
deployments its manifest declares in `calls` (the cloud grants run.invoker and SERVICE_URLS for
those alone), so `call` refuses any other wherever it runs, `make dev` and the tests included.
It forwards the request id and the trace context (each call is a client span of
`shared.tracing`, whose traceparent the callee continues), applies a timeout, and retries only
idempotent methods on connection errors and 502/503/504. It never follows redirects and never
calls user-supplied URLs.
"""

from __future__ import annotations

import functools
import http.cookiejar
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared import logging as slog
from shared import tracing
from shared.config import settings

if TYPE_CHECKING:  # imported where used: a Firestore-only deployment never loads requests
    import requests

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# A keep-alive connection idle this long is not reused: gunicorn, every deployment's server,
# closes one idle for 2 s, and a request racing that close dies unanswered (shared.keepalive;
# the gateway's upstream client keeps idle connections as long).
KEEPALIVE_IDLE_S = 1.0
_RETRY_STATUSES = frozenset({502, 503, 504})
_local = threading.local()


class ServiceCallError(RuntimeError):
    """A call to another deployment failed (unreachable or 5xx after retries), or the running
    deployment does not declare the callee in its manifest `calls`."""


@functools.cache
def firestore() -> Any:
    from google.cloud import firestore as fs

    return fs.Client(project=settings().project_id)


@functools.cache
def publisher() -> Any:
    """Pub/Sub's generated (GAPIC) publisher client, used through `publish()`: synchronous
    `Publish` calls, no batching threads (the outbox's sender batches, decision 0061)."""
    from google.pubsub_v1 import PublisherClient

    return PublisherClient()


# One Publish request holds at most 1,000 messages and 10 MB (Pub/Sub's quotas); a little
# under, for the request's own framing.
PUBLISH_MAX_MESSAGES = 1000
PUBLISH_MAX_BYTES = 9_000_000


def publish(
    topic: str, messages: Sequence[tuple[bytes, dict[str, str]]], timeout: float
) -> list[str]:
    """Publish `messages` (data, attributes) to `topic` (a full topic path) in as few
    `Publish` calls as Pub/Sub's request limits allow, in order; the message ids, in order.
    Each call retries transient errors for at most `timeout` seconds; an error raises (what an
    earlier call of the same `publish` accepted is published)."""
    from google.pubsub_v1.types import PubsubMessage

    ids: list[str] = []
    chunk: list[Any] = []
    size = 0
    for data, attributes in messages:
        cost = len(data) + sum(len(k) + len(v) for k, v in attributes.items())
        if chunk and (len(chunk) >= PUBLISH_MAX_MESSAGES or size + cost > PUBLISH_MAX_BYTES):
            ids += _publish_call(topic, chunk, timeout)
            chunk, size = [], 0
        chunk.append(PubsubMessage(data=data, attributes=attributes))
        size += cost
    if chunk:
        ids += _publish_call(topic, chunk, timeout)
    return ids


def _publish_call(topic: str, messages: list[Any], timeout: float) -> list[str]:
    from google.api_core.retry import Retry

    resp = publisher().publish(
        topic=topic, messages=messages, retry=Retry(deadline=timeout), timeout=timeout
    )
    return list(resp.message_ids)


@functools.cache
def subscriber() -> Any:
    """A Pub/Sub subscriber client for synchronous pulls (ops-api's dead-letter inspection)."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    return pubsub_v1.SubscriberClient()


def topic_path(topic: str) -> str:
    return f"projects/{settings().project_id}/topics/{topic}"


def subscription_path(subscription: str) -> str:
    return f"projects/{settings().project_id}/subscriptions/{subscription}"


def session() -> requests.Session:
    """A keep-alive HTTP session per thread (requests.Session is not thread-safe); plain-HTTP
    connections idle for 1 s are not reused (`shared.keepalive`)."""
    import requests

    from shared import keepalive

    sess = getattr(_local, "session", None)
    if sess is None:
        sess = requests.Session()
        # Never keep cookies: this session carries every user's calls made on this thread.
        sess.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        # a plain-HTTP callee is a local gunicorn: no reuse of a connection it may be closing
        adapter = keepalive.Adapter(pool_connections=16, pool_maxsize=32)
        sess.mount("http://", adapter)
        sess.mount("https://", adapter)
        _local.session = sess
    return sess


@functools.cache
def google_api(endpoint: str) -> Any:
    """An HTTP session for a Google REST API at `endpoint` (Secret Manager, Cloud SQL Admin,
    Cloud Run, Cloud Scheduler), authorised with the deployment's own identity (application
    default credentials, cloud-platform scope). A local fake of the API (an endpoint that is not
    googleapis.com, local/test only) gets no identity."""
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport.requests import AuthorizedSession

    if settings().is_local and not endpoint.endswith("googleapis.com"):
        return AuthorizedSession(AnonymousCredentials())
    import google.auth

    credentials, _project = google.auth.default(
        scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    return AuthorizedSession(credentials)


_tokens: dict[str, tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def id_token(audience: str) -> str | None:
    """A Google ID token for `audience` when running in the cloud, cached until near expiry."""
    if not settings().in_cloud:
        return None
    with _tokens_lock:
        cached = _tokens.get(audience)
        if cached and cached[1] > time.time() + 60:
            return cached[0]
    import google.auth.transport.requests
    import google.oauth2.id_token

    token = google.oauth2.id_token.fetch_id_token(
        google.auth.transport.requests.Request(), audience
    )
    with _tokens_lock:
        _tokens[audience] = (token, time.time() + 3300)
    return token


def url_of(deployment: str) -> str:
    url = settings().service_urls.get(deployment)
    if not url:
        raise ServiceCallError(f"no URL for deployment {deployment!r} in SERVICE_URLS")
    return url


def trace_headers() -> dict[str, str]:
    """Request id and traceparent of the current request/event, to propagate downstream."""
    out = {}
    if slog.current("request_id"):
        out["X-Request-ID"] = slog.current("request_id")
    if slog.current("traceparent"):
        out["traceparent"] = slog.current("traceparent")
    return out


def call(
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    attempts: int = 3,
) -> requests.Response:
    """Call another context's API by path; the response is returned whatever its status."""
    from shared.manifests import catalog

    cat = catalog()
    dep = cat.route(path.split("?")[0])
    if dep is None:
        raise ServiceCallError(f"no deployment serves {path}")
    caller = cat.deployments.get(settings().deployment)
    if caller is not None and dep.name not in caller.calls:
        # Refused here, not first in the cloud (where run.invoker would be missing).
        raise ServiceCallError(
            f"{caller.name} may not call {dep.name} ({path}): add {dep.name!r} to "
            f"deployments.{caller.name}.calls of functions/{caller.context}/function.yaml"
        )
    base = url_of(dep.name)
    method = method.upper()
    with tracing.child(
        f"{method} {dep.name}",
        kind="client",
        attributes={"http.request.method": method, "url.path": path.split("?")[0]},
    ) as span:
        hdrs = {**trace_headers(), **(headers or {})}
        if span is not None:
            hdrs["traceparent"] = tracing.format_traceparent(span)
        resp = _send(method, base, path, dep.name, hdrs, json, params, timeout, attempts)
        if span is not None:
            span.set_attribute("http.response.status_code", resp.status_code)
        return resp


def _send(
    method: str,
    base: str,
    path: str,
    name: str,
    hdrs: dict[str, str],
    json: Any,
    params: dict[str, Any] | None,
    timeout: float,
    attempts: int,
) -> requests.Response:
    """The exchange of `call`: the service identity attached, idempotent methods retried."""
    import requests

    token = id_token(base)
    if token:
        # The caller's end-user token travels in X-Forwarded-Authorization (as Google's own
        # proxies do); Authorization carries the service identity for Cloud Run's invoker IAM.
        if "Authorization" in hdrs:
            hdrs["X-Forwarded-Authorization"] = hdrs.pop("Authorization")
        hdrs["Authorization"] = f"Bearer {token}"
    tries = attempts if method in IDEMPOTENT else 1
    last: Exception | None = None
    for attempt in range(tries):
        try:
            resp = session().request(
                method,
                base + path,
                json=json,
                params=params,
                headers=hdrs,
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            last = exc
        else:
            if resp.status_code not in _RETRY_STATUSES or attempt == tries - 1:
                return resp
            last = ServiceCallError(f"{name} answered {resp.status_code}")
        time.sleep(min(0.1 * 2**attempt, 1.0))
    raise ServiceCallError(f"{method} {path} via {name} failed: {last}") from last
