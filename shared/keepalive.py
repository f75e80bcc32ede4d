"""Keep-alive connections to plain-HTTP servers are not reused once idle for `IDLE_S`.

gunicorn (functions-framework's server) closes a keep-alive connection after 2 s idle. A request
sent on such a connection just as the server closes it dies unanswered (a reset, a "remote end
closed connection") although nothing ran; a client cannot tell that from a server that died
mid-request, so a POST cannot be resent. Not reusing a connection idle for 1 s or more (a
new one is opened instead) keeps clear of that close. A plain-HTTP server is a deployment's
gunicorn on this machine (`make dev`, the tests; Cloud Run URLs are HTTPS, where Google's front
end keeps connections far longer, so HTTPS pools are left as they are). Used by the
service-to-service session (`shared.clients.session`) and the local push bridge; the gateway's
upstream client keeps idle connections for the same 1 s (`functions/gateway/upstream.py`);
the figure is `shared.clients.KEEPALIVE_IDLE_S`.

Imported where used: it imports urllib3 and requests.
"""

from __future__ import annotations

import time
from typing import Any

import requests.adapters
import urllib3

from shared.clients import KEEPALIVE_IDLE_S as IDLE_S


class FreshPool(urllib3.HTTPConnectionPool):
    """An HTTP connection pool that does not reuse a connection idle for IDLE_S or longer."""

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn.switchyard_idle_since = time.monotonic()
        super()._put_conn(conn)

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        since = getattr(conn, "switchyard_idle_since", None)
        if since is not None and time.monotonic() - since >= IDLE_S:
            conn.close()  # reconnects on its next request
        return conn


def use_fresh_pools(manager: urllib3.PoolManager) -> urllib3.PoolManager:
    """Make `manager` pool plain-HTTP connections in `FreshPool`s (before its first request)."""
    manager.pool_classes_by_scheme = {**manager.pool_classes_by_scheme, "http": FreshPool}
    return manager


class Adapter(requests.adapters.HTTPAdapter):
    """A requests `HTTPAdapter` whose plain-HTTP pools are `FreshPool`s."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        use_fresh_pools(self.poolmanager)
