"""Health of a deployment: the checks its manifest implies, answered as JSON.

`report(deployment)` checks what the deployment uses according to its manifest: the database
(`SELECT 1`) for `uses: [sql]`, Firestore (one document read) for `uses: [firestore]` and every
event deployment (processed-event markers), Pub/Sub (the first topic it publishes exists) for
publishers. It returns `(200, body)` when all pass and `(503, body)` otherwise, with each
check's status and latency and, on failure, the exception's class only (no internals leak to
callers). Checks run sequentially; each is bounded by the client's own timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shared import logging as slog

_log = slog.get_logger("switchyard.health")


def _database() -> None:
    from shared import db

    db.ping()


def _firestore() -> None:
    from shared.clients import firestore

    firestore().collection("health").document("ping").get(timeout=2.0)


def _pubsub(topic: str) -> Callable[[], None]:
    def check() -> None:
        from shared.clients import publisher, topic_path

        publisher().get_topic(request={"topic": topic_path(topic)}, timeout=2.0)

    return check


def checks_for(deployment: str) -> dict[str, Callable[[], None]]:
    from shared.manifests import catalog

    dep = catalog().deployments.get(deployment)
    if dep is None:
        return {}
    checks: dict[str, Callable[[], None]] = {}
    if dep.uses_sql:
        checks["database"] = _database
    if dep.uses_firestore or dep.trigger == "event":
        checks["firestore"] = _firestore
    if dep.publishes:
        checks["pubsub"] = _pubsub(dep.publishes[0])
    return checks


def report(deployment: str) -> tuple[int, dict[str, Any]]:
    results: dict[str, Any] = {}
    healthy = True
    for name, check in checks_for(deployment).items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:
            healthy = False
            results[name] = {"status": "down", "error": type(exc).__name__}
            _log.warning("health check %s failed for %s", name, deployment, exc_info=True)
        else:
            results[name] = {"status": "ok"}
        results[name]["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    body = {
        "status": "ok" if healthy else "down",
        "deployment": deployment or "unknown",
        "checks": results,
    }
    return (200 if healthy else 503), body
