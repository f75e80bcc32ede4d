"""Who is calling a private deployment, and where an event comes from.

Cloud Run's invoker IAM lets a request in when its Google ID token's principal holds
`run.invoker`, but does not tell the function which principal it was; whoever holds the role
on a deployment (by mistake, or because a broader grant covers it) could call it.
`require_caller(*emails)` verifies the request's Google ID token again (RS256 signature
against Google's published certificates `GOOGLE_CERTS_URL`, cached; issuer; expiry; the
audience when the deployment knows its own URL; `email_verified`) and requires its `email` to
be one of the expected service accounts: Pub/Sub push (`PUSH_INVOKER`), Cloud Scheduler
(`SCHEDULER_INVOKER`) or a deployment's own account (`service_account(name)`, the naming rule
of Terraform's manifests module and infra/deploy). No token is 401, another identity 403.
Locally (`SWITCHYARD_ENV` local or test, `Settings.is_local`) there is no Google identity and
the check is skipped, like every other cloud-only check.

`check_event_origin` refuses an event whose `event_type` is not the topic it was pushed from
(the push path `/projects/<p>/topics/<topic>` or a CloudEvent's `ce-source`, everywhere: the
local wiring uses the same paths), and outside local also a delivery naming no topic, a topic
the deployment does not subscribe to, or a `source` that is not a deployment declaring
`publishes: [<event_type>]` in the manifests (the relay and redrive keep the original
attributes, so they pass). It reads no payload. Decision 0032.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from typing import Any

from shared.config import settings
from shared.errors import BadRequest, Forbidden, ServiceUnavailable, Unauthorized

__all__ = [
    "PUSH_INVOKER",
    "SCHEDULER_INVOKER",
    "check_event_origin",
    "require_caller",
    "service_account",
    "topic_of",
    "verify_delivery",
]

PUSH_INVOKER = "switchyard-push-invoker"  # the identity of every push subscription (Terraform)
SCHEDULER_INVOKER = "switchyard-scheduler"  # the identity of every Cloud Scheduler job
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
_CERTS_TTL_S = 3600.0
_CERTS_RETRY_S = 60.0  # an unknown kid re-reads the certificates at most this often
_SKEW_S = 30
_TOPIC_PATH = re.compile(r"/projects/[^/]+/topics/([^/?#]+)$")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="google", error="invalid_token"'}


def account_id(deployment: str) -> str:
    """Service account id of a deployment (6-30 characters), as Terraform names it."""
    if len(deployment) > 30:
        return f"{deployment[:25]}-{hashlib.sha256(deployment.encode()).hexdigest()[:4]}"
    return f"{deployment}-fn" if len(deployment) < 6 else deployment


def service_account(name: str) -> str:
    """The email of a service account id or deployment name in this project."""
    ident = name if name in (PUSH_INVOKER, SCHEDULER_INVOKER) else account_id(name)
    return f"{ident}@{settings().project_id}.iam.gserviceaccount.com"


# --- Google ID tokens ---------------------------------------------------------------------------

_certs: dict[str, Any] = {"at": 0.0, "url": "", "keys": {}}
_certs_lock = threading.Lock()


def _google_certs(refresh: bool = False) -> dict[str, str]:
    """kid -> PEM certificate of Google's OAuth2 signing keys (cached an hour)."""
    url = settings().google_certs_url
    now = time.monotonic()
    with _certs_lock:
        age = now - _certs["at"]
        fresh = _certs["url"] == url and _certs["keys"]
        if fresh and (age < _CERTS_TTL_S and not (refresh and age >= _CERTS_RETRY_S)):
            return dict(_certs["keys"])
    import requests

    from shared.clients import session

    try:
        resp = session().get(url, timeout=5.0, allow_redirects=False)
        keys = resp.json() if resp.status_code == 200 else None
    except (requests.RequestException, ValueError):
        keys = None
    if not isinstance(keys, dict) or not keys:
        with _certs_lock:
            if _certs["url"] == url and _certs["keys"]:
                return dict(_certs["keys"])  # keep the last good set through an outage
        raise ServiceUnavailable("Google's certificates cannot be read right now.")
    with _certs_lock:
        _certs.update(at=now, url=url, keys={str(k): str(v) for k, v in keys.items()})
        return dict(_certs["keys"])


def forget_certs() -> None:
    """Drop the cached certificates (tests)."""
    with _certs_lock:
        _certs.update(at=0.0, url="", keys={})


def _bearer(headers: Any) -> str | None:
    scheme, _, token = str(headers.get("Authorization", "")).partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def google_identity(token: str) -> dict[str, Any]:
    """The verified claims of a Google-signed ID token; `Unauthorized` when it is not one."""
    import google.auth.exceptions
    from google.auth import jwt as gjwt

    try:
        header = gjwt.decode_header(token)
    except (ValueError, google.auth.exceptions.GoogleAuthError):
        raise Unauthorized(
            "The caller's identity token is not valid.", headers=_CHALLENGE
        ) from None
    if header.get("alg") != "RS256":
        raise Unauthorized("The caller's identity token is not valid.", headers=_CHALLENGE)
    kid = str(header.get("kid") or "")
    certs = _google_certs()
    if kid not in certs:
        certs = _google_certs(refresh=True)
    if kid not in certs:
        raise Unauthorized("The caller's identity token is not valid.", headers=_CHALLENGE)
    s = settings()
    audience = s.service_urls.get(s.deployment) or None
    try:
        claims = gjwt.decode(
            token, certs={kid: certs[kid]}, audience=audience, clock_skew_in_seconds=_SKEW_S
        )
    except (ValueError, google.auth.exceptions.GoogleAuthError):
        raise Unauthorized(
            "The caller's identity token is not valid.", headers=_CHALLENGE
        ) from None
    if claims.get("iss") not in GOOGLE_ISSUERS or claims.get("email_verified") is not True:
        raise Unauthorized("The caller's identity token is not valid.", headers=_CHALLENGE)
    return dict(claims)


def require_caller(headers: Any, *accounts: str) -> None:
    """The request (its `headers`) must carry a Google ID token of one of `accounts` (service
    account ids or deployment names); skipped locally. See the module doc."""
    if settings().is_local:
        return
    token = _bearer(headers)
    if token is None:
        raise Unauthorized("A Google identity token is required.", headers=_CHALLENGE)
    email = str(google_identity(token).get("email", "")).lower()
    if email not in {service_account(a) for a in accounts}:
        raise Forbidden("This caller may not invoke this deployment.")


# --- events -------------------------------------------------------------------------------------


def topic_of(path: str, ce_source: str = "") -> str | None:
    """The topic a push came from: its path `/projects/<p>/topics/<topic>` (how Switchyard's
    push subscriptions are wired), else a CloudEvent's `source`."""
    for candidate in (path, ce_source):
        m = _TOPIC_PATH.search(candidate or "")
        if m:
            return m.group(1)
    return None


def check_event_origin(event_type: str, source: str, topic: str | None) -> None:
    """Refuse an event that does not belong where it arrived (see the module doc)."""
    from shared.manifests import catalog

    s = settings()
    cat = catalog()
    if topic is None:
        if not s.is_local:
            raise BadRequest("The delivery does not name the topic it comes from.")
    elif topic != event_type:
        raise BadRequest(f"An event of type {event_type!r} arrived from topic {topic!r}.")
    if s.is_local:
        return
    me = cat.deployments.get(s.deployment)
    if me is not None and me.trigger == "event" and event_type not in me.subscribes:
        raise BadRequest(f"{me.name} does not subscribe to {event_type!r}.")
    publishers = {d.name for d in cat.deployments.values() if event_type in d.publishes}
    if source not in publishers:
        raise Forbidden(f"{source!r} is not a publisher of {event_type!r}.")


def verify_delivery(request: Any, event: Any) -> Any:
    """None when a pushed `event` (a `shared.events.Received`) may be consumed, else the
    problem+json answer refusing it: the push identity (`PUSH_INVOKER`, cloud only) and the
    event's origin. A refusal is not retried into success: Pub/Sub dead-letters it."""
    from shared.errors import Problem
    from shared.http._problem import to_response

    try:
        require_caller(request.headers, PUSH_INVOKER)
        topic = topic_of(request.path, request.headers.get("ce-source", ""))
        check_event_origin(event.event_type, event.source, topic)
    except Problem as exc:
        _log().warning(
            "refused delivery of %s %s: %s", event.event_type, event.event_id, exc.detail
        )
        return to_response(exc)
    return None


def _log() -> Any:
    from shared import logging as slog

    return slog.get_logger("switchyard.identity")
