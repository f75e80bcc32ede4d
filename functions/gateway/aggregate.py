"""Views over every deployment at once: platform health and the merged OpenAPI document.

`health()` calls every deployment's health path (HTTP, event and schedule deployments alike:
each answers `GET <health_path>`) in parallel with `HEALTH_TIMEOUT_S`, and the gateway's own
checks in-process; it is 200 only when every one answered 200. In the cloud the gateway may
invoke only the HTTP deployments (decision 0033): the event and schedule ones are judged by
their Cloud Run service's Ready condition, read from the Cloud Run Admin API (roles/run.viewer).
Anonymous callers are answered from one check shared for HEALTH_CACHE_S (3 s), so the public
route cannot multiply load onto every deployment; admins asking for the details get a fresh
one (decision 0032).
`openapi()` fetches each HTTP deployment's `<first route>/openapi.json` in parallel and
merges them with the gateway's own paths into one OpenAPI 3.1 document (paths and component
schemas united; a schema name two contexts define differently is renamed `<context>_<Name>`
in the second; `internal_routes` left out), cached for 60 s
(5 s while some deployment did not answer, listed under `x-switchyard-missing`). In the cloud
each call carries a Google ID token for its target.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal

from pydantic import Field

from shared import clients, manifests
from shared import logging as slog
from shared.config import settings
from shared.http import OutModel
from shared.manifests import Deployment
from shared.openapi import API_VERSION, OPENAPI_VERSION, components_base, spec_path

from .proxy import GATEWAY_CONTEXT

SPEC_TTL_S = 60.0
INCOMPLETE_SPEC_TTL_S = 5.0
SPEC_TIMEOUT_S = 10.0
_SCHEMA_REF = "#/components/schemas/"
_log = slog.get_logger("switchyard.gateway")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


class DeploymentHealth(OutModel):
    status: Literal["ok", "down", "unreachable"]
    http_status: int | None
    latency_ms: float


class PlatformHealth(OutModel):
    status: Literal["ok", "down"]
    deployments: dict[str, DeploymentHealth] | None = Field(
        default=None, description="Each deployment's check: for admins only."
    )


HEALTH_CACHE_S = 3.0  # anonymous callers share one check per this many seconds
_health_cache: dict[str, Any] = {"until": 0.0, "result": None}
_health_lock = threading.Lock()


def _monotonic() -> float:
    return time.monotonic()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="gateway-fanout")
        return _pool


def _headers(base: str, trace: dict[str, str]) -> dict[str, str]:
    out = dict(trace)
    token = clients.id_token(base)
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _probe(dep: Deployment, base: str, trace: dict[str, str], timeout: float) -> dict[str, Any]:
    import requests  # the fan-out's only: not loaded at start (the probe path is /health)

    started = time.perf_counter()
    try:
        resp = clients.session().get(
            base + dep.health_path,
            headers=_headers(base, trace),
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException:
        return {"status": "unreachable", "http_status": None, "latency_ms": _ms(started)}
    return {
        "status": "ok" if resp.status_code == 200 else "down",
        "http_status": resp.status_code,
        "latency_ms": _ms(started),
    }


def _probe_state(dep: Deployment, timeout: float) -> dict[str, Any]:
    """The Ready condition of the deployment's Cloud Run service (Admin API v2): `ok` when it
    succeeded, `down` otherwise, `unreachable` when the API cannot be asked."""
    import requests

    s = settings()
    url = (
        f"{s.run_endpoint.rstrip('/')}/v2/projects/{s.project_id}/locations/{s.region}"
        f"/services/{dep.name}"
    )
    started = time.perf_counter()
    try:
        resp = clients.google_api(s.run_endpoint).get(url, timeout=timeout)
    except requests.RequestException:
        return {"status": "unreachable", "http_status": None, "latency_ms": _ms(started)}
    ready = False
    if resp.status_code == 200:
        condition = resp.json().get("terminalCondition") or {}
        ready = condition.get("type") == "Ready" and condition.get("state") == (
            "CONDITION_SUCCEEDED"
        )
    return {
        "status": "ok" if ready else "down",
        "http_status": resp.status_code,
        "latency_ms": _ms(started),
    }


def _probe_self(name: str) -> dict[str, Any]:
    from shared import health as local_health

    started = time.perf_counter()
    status, _body = local_health.report(name)
    return {
        "status": "ok" if status == 200 else "down",
        "http_status": status,
        "latency_ms": _ms(started),
    }


def health(trace: dict[str, str], *, fresh: bool = True) -> tuple[int, dict[str, Any]]:
    """(200 or 503, {"status", "deployments": {name: {status, http_status, latency_ms}}}).

    `fresh=False` answers from the last check when it is under HEALTH_CACHE_S old, and
    concurrent callers wait for one check rather than each starting their own: however often
    anonymous callers ask, the deployments are probed at most once per HEALTH_CACHE_S."""
    if fresh:
        return _remember(_check_all(trace))
    with _health_lock:  # held while checking: callers queue for the one check in flight
        cached = _health_cache["result"]
        if cached is not None and _health_cache["until"] > _monotonic():
            return cached
        return _remember(_check_all(trace), locked=True)


def _remember(
    result: tuple[int, dict[str, Any]], *, locked: bool = False
) -> tuple[int, dict[str, Any]]:
    if not locked:
        with _health_lock:
            _health_cache.update(until=_monotonic() + HEALTH_CACHE_S, result=result)
    else:
        _health_cache.update(until=_monotonic() + HEALTH_CACHE_S, result=result)
    return result


def forget_health() -> None:
    """Drop the cached health (tests)."""
    with _health_lock:
        _health_cache.update(until=0.0, result=None)


def _check_all(trace: dict[str, str]) -> tuple[int, dict[str, Any]]:
    s = settings()
    timeout = s.health_timeout_s
    pool = _executor()
    futures = {}
    results: dict[str, dict[str, Any]] = {}
    for dep in sorted(manifests.catalog().deployments.values(), key=lambda d: d.name):
        if dep.context == GATEWAY_CONTEXT:
            futures[dep.name] = pool.submit(_probe_self, dep.name)
            continue
        if s.in_cloud and dep.trigger != "http":
            futures[dep.name] = pool.submit(_probe_state, dep, timeout)
            continue
        base = s.service_urls.get(dep.name)
        if not base:
            results[dep.name] = {"status": "unreachable", "http_status": None, "latency_ms": 0}
            continue
        futures[dep.name] = pool.submit(_probe, dep, base, trace, timeout)
    deadline = time.monotonic() + timeout + 1.0  # the id token fetch may add a little
    for name, fut in futures.items():
        try:
            results[name] = fut.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            results[name] = {
                "status": "unreachable",
                "http_status": None,
                "latency_ms": round(timeout * 1000, 1),
            }
        except Exception:
            _log.warning("health probe of %s failed", name, exc_info=True)
            results[name] = {"status": "unreachable", "http_status": None, "latency_ms": 0}
    ok = all(r["status"] == "ok" for r in results.values())
    body = {"status": "ok" if ok else "down", "deployments": dict(sorted(results.items()))}
    return (200 if ok else 503), body


# --- OpenAPI ---------------------------------------------------------------------------------

_spec_cache: dict[str, Any] = {"until": 0.0, "body": None}
_spec_lock = threading.Lock()


def _fetch_spec(
    dep: Deployment, base: str, path: str, trace: dict[str, str]
) -> dict[str, Any] | None:
    import requests

    try:
        resp = clients.session().get(
            base + path,
            headers=_headers(base, trace),
            timeout=min(settings().upstream_timeout_s, SPEC_TIMEOUT_S),
            allow_redirects=False,
        )
        if resp.status_code != 200:
            _log.warning("openapi of %s answered %s", dep.name, resp.status_code)
            return None
        doc = resp.json()
    except (requests.RequestException, ValueError):
        _log.warning("openapi of %s could not be fetched", dep.name, exc_info=True)
        return None
    return doc if isinstance(doc, dict) else None


def openapi(own: dict[str, Any], trace: dict[str, str]) -> bytes:
    """The merged document as JSON bytes (cached; see module doc)."""
    now = time.monotonic()
    with _spec_lock:
        if _spec_cache["body"] is not None and _spec_cache["until"] > now:
            return _spec_cache["body"]
    s = settings()
    pool = _executor()
    futures = {}
    missing: list[str] = []
    for dep in sorted(manifests.catalog().deployments.values(), key=lambda d: d.name):
        path = spec_path(dep)
        if dep.context == GATEWAY_CONTEXT or path is None:
            continue
        base = s.service_urls.get(dep.name)
        if not base:
            missing.append(dep.name)
            continue
        futures[dep.name] = (dep, pool.submit(_fetch_spec, dep, base, path, trace))
    specs: list[tuple[str, dict[str, Any]]] = [(GATEWAY_CONTEXT, own)]
    for name, (dep, fut) in futures.items():
        try:
            doc = fut.result(timeout=SPEC_TIMEOUT_S + 1.0)
        except Exception:
            doc = None
        if doc is None:
            missing.append(name)
        else:
            specs.append((dep.context, doc))
    merged = merge(specs)
    if missing:
        merged["x-switchyard-missing"] = sorted(missing)
    body = json.dumps(merged).encode()
    with _spec_lock:
        _spec_cache["body"] = body
        _spec_cache["until"] = now + (INCOMPLETE_SPEC_TTL_S if missing else SPEC_TTL_S)
    return body


def forget_openapi() -> None:
    """Drop the cached document (tests)."""
    with _spec_lock:
        _spec_cache.update(until=0.0, body=None)


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(_SCHEMA_REF):
                name = v[len(_SCHEMA_REF) :]
                out[k] = _SCHEMA_REF + renames.get(name, name)
            else:
                out[k] = _rewrite_refs(v, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def merge(specs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One OpenAPI 3.1 document from (context, document) pairs (pure; see module doc)."""
    cat = manifests.catalog()
    components = components_base()
    schemas: dict[str, Any] = components["schemas"]
    responses: dict[str, Any] = components["responses"]
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, dict[str, Any]] = {}
    for context, spec in specs:
        spec_components = spec.get("components") or {}
        theirs: dict[str, Any] = spec_components.get("schemas") or {}
        # A name another context already uses for a different schema gets this context's
        # prefix. Renaming one can make a schema that refers to it differ too (two identical
        # `ScheduleList`s over two `ScheduleOut`s): repeat until no new name collides.
        renames: dict[str, str] = {}
        while True:
            rewritten = _rewrite_refs(theirs, renames)
            new = {
                name: f"{context}_{name}"
                for name, schema in rewritten.items()
                if name not in renames and name in schemas and schemas[name] != schema
            }
            if not new:
                break
            renames.update(new)
        if renames:
            spec = _rewrite_refs(spec, renames)
            theirs = (spec.get("components") or {}).get("schemas") or {}
        for name, schema in theirs.items():
            schemas.setdefault(renames.get(name, name), schema)
        for name, resp in (spec_components.get("responses") or {}).items():
            responses.setdefault(name, resp)
        for path, item in (spec.get("paths") or {}).items():
            if cat.is_internal(path):
                continue  # service-to-service only: not part of the API behind the gateway
            merged_item = paths.setdefault(path, {})
            for method, op in item.items():
                if method in merged_item:
                    _log.warning(
                        "openapi: %s %s is described twice; kept the first", method.upper(), path
                    )
                    continue
                op = copy.deepcopy(op)
                if isinstance(op, dict) and cat.is_public(path):
                    op["security"] = []
                merged_item[method] = op
        for tag in spec.get("tags") or []:
            if isinstance(tag, dict) and tag.get("name"):
                tags.setdefault(tag["name"], tag)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Switchyard API",
            "version": API_VERSION,
            "description": "Every HTTP API of the platform, as served through the gateway. "
            "Errors are RFC 9457 problem+json.",
        },
        "paths": dict(sorted(paths.items())),
        "components": components,
        "security": [{"bearerAuth": []}],
        "tags": sorted(tags.values(), key=lambda t: t["name"]),
    }
