"""An ASGI app (functions-framework's ASGI mode: the gateway, realtime-stream) served by uvicorn
on a loopback port in a thread of the test process, as functions-framework serves it (uvicorn's
HTTP/1.1 server, one event loop)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

from tests.waiting import wait_for


class AsgiServer:
    """`AsgiServer(app)` serves at once; `.url`, `.stop()`, `.start()` (same port again)."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.app = app
        self.port = port
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            timeout_keep_alive=2,
            timeout_graceful_shutdown=1,  # open streams do not hold the test up
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=10, interval=0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self._sock.close()
