"""`make seed`: load demo data into a running `make dev` through the gateway.

Logs in as the bootstrap admin (BOOTSTRAP_ADMIN_EMAIL / BOOTSTRAP_ADMIN_PASSWORD, the local
defaults of `make dev` otherwise) and calls `run(session, base_url)` of every context that has
a `seed.py`: users first (other contexts' demo data refers to demo users), then the rest in
catalog order. Seeds use the public API only, so they double as a smoke test. Every POST
carries an `Idempotency-Key` derived from the request (method, URL, body): the same request sent
again, by a retry or by another `make seed` within 24 hours, is answered its first answer and
nothing is made twice (decision 0045). It refuses to run
outside local (`SWITCHYARD_ENV` other than local/test): the demo accounts' password is public,
and auth refuses it there anyway.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.config import LOCAL_ADMIN_PASSWORD, ConfigError, settings  # noqa: E402
from shared.manifests import catalog  # noqa: E402

LOCAL_ADMIN = ("admin@switchyard.local", LOCAL_ADMIN_PASSWORD)
IDEMPOTENCY_KEY = "Idempotency-Key"


def request_key(method: str, url: str, kwargs: dict[str, Any]) -> str:
    """The key of a seed request: the same request, the same key (1-255 printable ASCII)."""
    h = hashlib.sha256()
    for part in (
        method.upper(),
        url,
        json.dumps(kwargs.get("params"), sort_keys=True, default=str),
        json.dumps(kwargs.get("json"), sort_keys=True, default=str),
        repr(kwargs.get("data")),
    ):
        h.update(part.encode())
        h.update(b"\0")
    return f"seed-{h.hexdigest()[:48]}"


class IdempotentSession(requests.Session):
    """A session whose POSTs carry an Idempotency-Key derived from the request."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        m = method.decode() if isinstance(method, bytes) else method
        u = url.decode() if isinstance(url, bytes) else url
        if m.upper() == "POST" and not args:
            headers = dict(kwargs.get("headers") or {})
            if not any(name.lower() == IDEMPOTENCY_KEY.lower() for name in headers):
                headers[IDEMPOTENCY_KEY] = request_key(m, u, kwargs)
            kwargs["headers"] = headers
        return super().request(method, url, *args, **kwargs)


def main() -> int:
    try:
        local = settings().is_local
    except ConfigError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 2
    if not local:
        print(
            f"seed: SWITCHYARD_ENV={settings().env}: demo data is for local stacks only",
            file=sys.stderr,
        )
        return 2
    port = os.environ.get("GATEWAY_PORT", "8080")
    base = os.environ.get("GATEWAY_URL", f"http://127.0.0.1:{port}")
    email = os.environ.get("BOOTSTRAP_ADMIN_EMAIL", LOCAL_ADMIN[0])
    password = os.environ.get("BOOTSTRAP_ADMIN_PASSWORD", LOCAL_ADMIN[1])
    http = IdempotentSession()
    try:
        resp = http.post(
            f"{base}/api/auth/login", json={"email": email, "password": password}, timeout=10
        )
    except requests.ConnectionError:
        print(
            f"seed: nothing answers at {base}; start the stack with `make dev` first",
            file=sys.stderr,
        )
        return 1
    if resp.status_code != 200:
        print(f"seed: login as {email} failed ({resp.status_code}): {resp.text}", file=sys.stderr)
        return 1
    http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
    for ctx in sorted(catalog().contexts, key=lambda c: c.name != "users"):
        if (ctx.path / "seed.py").exists():
            importlib.import_module(f"functions.{ctx.name}.seed").run(http, base)
            print(f"seed: {ctx.name} done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
