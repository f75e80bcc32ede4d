"""The gateway streams an event stream through instead of buffering it (real HTTP servers),
and holds no thread while a stream is open (its ASGI mode, decision 0035).

The upstream is a small app on the realtime-stream route that sends one event, then holds the
stream open until the test has read that event through the gateway: a buffering gateway would
never hand it over. Served over HTTP/1.0 (body until close) and HTTP/1.1 (chunked).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import flask
import functions_framework
import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from shared import clients
from tests.asgi_server import AsgiServer
from tests.integration.support import configure, reset_platform

ROOT = Path(__file__).resolve().parents[2]
THREADS = 2


class _Http11(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"


class Upstream:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed = threading.Event()
        app = flask.Flask("fake-realtime")

        @app.get("/api/realtime/dashboard")
        def stream() -> flask.Response:
            quiet = float(flask.request.args.get("quiet", "0"))

            def body() -> Iterator[bytes]:
                try:
                    yield b'id: 1\nevent: counts\ndata: {"n": 1}\n\n'
                    self.release.wait(10)  # until the test saw event 1 through the gateway
                    if quiet:  # a quiet stream: no byte for longer than UPSTREAM_TIMEOUT_S
                        threading.Event().wait(quiet)
                    yield b'id: 2\nevent: counts\ndata: {"n": 2}\n\n'
                finally:
                    self.closed.set()

            resp = flask.Response(body(), mimetype="text/event-stream")
            resp.headers["Cache-Control"] = "no-cache"
            return resp

        @app.get("/api/realtime/plain")
        def plain() -> flask.Response:
            return flask.jsonify(ok=True)

        self.app = app


def serve(app, handler=None):
    srv = make_server("127.0.0.1", 0, app, threaded=True, request_handler=handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    return srv, th


@pytest.fixture(params=["http/1.0", "http/1.1"])
def gateway(request, monkeypatch, tmp_path) -> Iterator[tuple[str, Upstream]]:
    up = Upstream()
    usrv, uth = serve(up.app, _Http11 if request.param == "http/1.1" else None)
    configure(
        monkeypatch,
        SWITCHYARD_LOCAL_DIR=str(tmp_path),
        SWITCHYARD_DEPLOYMENT="gateway",
        SERVICE_URLS=json.dumps({"realtime-stream": f"http://127.0.0.1:{usrv.server_port}"}),
        UPSTREAM_TIMEOUT_S="0.5",
        STREAM_READ_TIMEOUT_S="10",
        THREADS=str(THREADS),  # the gateway's worker threads (shared.asgi)
    )
    clients.firestore.cache_clear()
    app = functions_framework.create_app(
        target="gateway", source=str(ROOT / "functions" / "gateway" / "main.py")
    )
    gw = AsgiServer(app)  # functions-framework's ASGI mode, as deployed
    try:
        yield gw.url, up
    finally:
        up.release.set()
        gw.stop()
        usrv.shutdown()
        usrv.server_close()
        uth.join(5)
        reset_platform()


def lines(resp: requests.Response) -> Iterator[str]:
    yield from resp.iter_lines(chunk_size=1, decode_unicode=True)


def test_event_stream_passes_through_chunk_by_chunk(gateway):
    url, up = gateway
    sse = {"Accept": "text/event-stream"}
    with requests.get(f"{url}/api/realtime/dashboard", headers=sse, stream=True, timeout=5) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert "Content-Length" not in r.headers
        got = lines(r)
        assert [next(got) for _ in range(3)] == ["id: 1", "event: counts", 'data: {"n": 1}']
        up.release.set()  # only now does the upstream send event 2
        assert [next(got) for _ in range(4)] == ["", "id: 2", "event: counts", 'data: {"n": 2}']


def test_a_quiet_stream_outlives_the_normal_upstream_timeout(gateway):
    url, up = gateway
    up.release.set()
    # 1.5 s without a byte, three times UPSTREAM_TIMEOUT_S: still under STREAM_READ_TIMEOUT_S
    with requests.get(
        f"{url}/api/realtime/dashboard?quiet=1.5",
        headers={"Accept": "text/event-stream"},
        stream=True,
        timeout=10,
    ) as r:
        body = r.text
    assert 'data: {"n": 2}' in body


def test_client_going_away_closes_the_upstream_stream(gateway):
    url, up = gateway
    r = requests.get(
        f"{url}/api/realtime/dashboard", headers={"Accept": "text/event-stream"}, stream=True
    )
    assert next(lines(r)) == "id: 1"
    r.close()  # the browser tab closes
    up.release.set()  # the upstream's next write fails once the gateway dropped its side
    assert up.closed.wait(10)


def test_open_streams_hold_no_gateway_thread(gateway):
    """Six times as many streams as the gateway has worker threads, all open at once and each
    past its first event: a thread per open stream would leave all but two waiting."""
    url, up = gateway
    sse = {"Accept": "text/event-stream"}
    streams = []
    try:
        for _ in range(6 * THREADS):
            r = requests.get(f"{url}/api/realtime/dashboard", headers=sse, stream=True, timeout=5)
            assert r.status_code == 200
            got = lines(r)
            assert next(got) == "id: 1"
            streams.append((r, got))
        # and the gateway still answers everything else meanwhile
        assert requests.get(f"{url}/api/realtime/plain", timeout=5).status_code == 401
        up.release.set()
        for _, got in streams:
            assert "id: 2" in [next(got) for _ in range(4)]
    finally:
        for r, _ in streams:
            r.close()


def test_a_stream_ticket_in_the_query_is_not_logged(gateway, caplog):
    caplog.set_level(logging.INFO)
    url, up = gateway
    up.release.set()
    secret = "tk-" + "s3cr3t" * 4
    with requests.get(
        f"{url}/api/realtime/dashboard?ticket={secret}",
        headers={"Accept": "text/event-stream"},
        stream=True,
        timeout=10,
    ) as r:
        assert 'data: {"n": 2}' in r.text
    assert secret not in caplog.text  # e.g. httpx's INFO line of each request's URL


def test_other_answers_are_still_read_whole(gateway):
    url, _ = gateway
    r = requests.get(f"{url}/api/realtime/plain", timeout=5)
    # not a stream route the gateway knows as public: it wants a JWT first
    assert r.status_code == 401
