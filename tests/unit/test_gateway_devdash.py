"""The gateway's `/_dev/` forward to make dev's dashboard (functions/gateway/devdash.py): only
locally, only for loopback clients, only when the supervisor gave the dashboard's address."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from functions.gateway import devdash, ratelimit


class _Dashboard(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = f"dashboard {self.path} host={self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dashboard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def gateway(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("SWITCHYARD_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("RATE_LIMIT_IP_PER_MIN", "1000")
    monkeypatch.delenv(devdash.URL_ENV, raising=False)
    from shared.config import settings

    settings.cache_clear()
    ratelimit.reset()
    from functions.gateway.api import app

    yield app.test_client()
    settings.cache_clear()
    ratelimit.reset()


def test_forwarded_locally_when_the_supervisor_gave_its_address(
    gateway: Any, upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(devdash.URL_ENV, upstream)
    r = gateway.get("/_dev/api/jobs?x=1", headers={"Host": "localhost:8080"})
    assert r.status_code == 200
    assert r.get_data(as_text=True) == "dashboard /_dev/api/jobs?x=1 host=localhost:8080"


def test_unknown_without_the_address(gateway: Any) -> None:
    r = gateway.get("/_dev/")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"


def test_unknown_to_a_client_elsewhere(
    gateway: Any, upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(devdash.URL_ENV, upstream)
    r = gateway.get("/_dev/", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert r.status_code == 404 and r.mimetype == "application/problem+json"


def test_unknown_outside_local(
    gateway: Any, upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(devdash.URL_ENV, upstream)
    monkeypatch.setattr(devdash, "settings", lambda: SimpleNamespace(is_local=False, in_cloud=True))
    r = gateway.get("/_dev/")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
