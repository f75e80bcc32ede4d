"""Plain-HTTP keep-alive connections idle for IDLE_S are not reused (gunicorn closes them at 2 s).

A request sent on a connection the server is closing dies unanswered: CI saw a push that spent a
delivery attempt (`[500, 500, 500, 500, 'reset']` for a consumer that always answers 500) and a
console sign-in answered 503 ("auth-api is unreachable") 3 s after the previous call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3

from emulators import _bridge
from shared import clients, keepalive


class _Counting(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0

    def process_request(self, request, client_address):  # noqa: ANN001 - one per connection
        self.connections += 1
        super().process_request(request, client_address)


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection open, as gunicorn does

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[_Counting]:
    srv = _Counting(("127.0.0.1", 0), _KeepAlive)
    srv.connections = 0
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _push(pool: keepalive.FreshPool) -> int:
    return pool.request("POST", "/", body=b"{}", retries=False).status


def test_a_connection_is_reused_while_fresh_and_replaced_once_idle(server, monkeypatch) -> None:
    monkeypatch.setattr(keepalive, "IDLE_S", 0.3)
    pool = keepalive.FreshPool("127.0.0.1", server.server_address[1], maxsize=1)
    try:
        assert [_push(pool), _push(pool)] == [204, 204]
        assert server.connections == 1  # back to back: the same keep-alive connection
        time.sleep(0.35)
        assert _push(pool) == 204
        assert server.connections == 2  # idle for IDLE_S: a new connection, not the old one
        assert _push(pool) == 204
        assert server.connections == 2
    finally:
        pool.close()


def test_the_push_bridge_and_the_service_session_use_it_for_plain_http() -> None:
    assert keepalive.IDLE_S < 2.0  # below gunicorn's default keepalive
    plan = _bridge.Plan(project="p", topics=(), push=(), keep=())
    bridge = _bridge.PushBridge(plan, "127.0.0.1:9").start()  # gRPC channels connect lazily
    try:
        assert bridge._http is not None
        pool = bridge._http.connection_from_url("http://127.0.0.1:9/")
        assert type(pool) is keepalive.FreshPool
    finally:
        bridge.stop()
    adapter = clients.session().get_adapter("http://127.0.0.1:9/")
    assert type(adapter.poolmanager.connection_from_url("http://127.0.0.1:9/")) is (
        keepalive.FreshPool
    )
    # HTTPS (Cloud Run, behind Google's front end) keeps urllib3's own pool
    https = adapter.poolmanager.connection_from_url("https://example.invalid/")
    assert type(https) is urllib3.HTTPSConnectionPool
