"""The gateway's upstream exchange: one request to a deployment and its answer (decision 0058).

Both forwarding paths use it: `fast.py` on the event loop and `proxy.forward` from Flask's
worker thread (through `shared.asgi.run`). The client is aiohttp, whose HTTP parser is C
(llhttp): one pooled `ClientSession` per event loop, keep-alive connections without a limit
(idle ones dropped after `shared.clients.KEEPALIVE_IDLE_S`, before a gunicorn upstream drops
its own at 2 s), no cookie jar, no proxies from the environment, no redirects followed, no
decompression (bodies pass through as sent, `Content-Encoding` included), and no header of its
own: the request carries the headers `proxy.request_headers` built, plus `Host` (the
upstream's) and `Content-Length`.
The path and query go out exactly as the client sent them (an encoded URL, never re-quoted).
An idempotent request is sent once more when its pooled keep-alive connection turns out to
have been closed by the upstream (aiohttp does that, RFC 9112 section 9.3.1).

Answers: an ordinary body is read whole; a `text/event-stream` body is not (`Answer.content`
is None) and is relayed chunk by chunk by `relay`, with `STREAM_READ_TIMEOUT_S` between two
chunks from its status line on. Failures are problems with the gateway's texts: nothing
answered (connection refused or reset, name not resolved): 502 "unreachable"; no status line in
time: 504; the body broke off: 502; the body not finished in time: 504; a URL or header that
cannot be sent: 400. The warnings logged name the method and path, never the query (a
stream's `?ticket=` must not reach the logs).

aiohttp is imported by the first exchange, not with the gateway's `main.py`: its import is
~100 ms here (most of it `aiohttp.connector` loading the system's CA certificates), which put
the gateway's import over its 300 ms budget (issue 14 item 5). An instance's first forwarded
request pays it once instead, on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from shared import logging as slog
from shared.clients import KEEPALIVE_IDLE_S
from shared.config import settings
from shared.errors import BadGateway, BadRequest, Problem

if TYPE_CHECKING:
    import aiohttp

EVENT_STREAM = "text/event-stream"
# headers aiohttp would add by itself; the upstream gets only what the client sent
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

_log = slog.get_logger("switchyard.gateway")


class GatewayTimeout(Problem):
    status, title = 504, "Gateway Timeout"


def is_event_stream(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == EVENT_STREAM


def stream_read_s() -> float:
    """The longest wait between two chunks of an event stream."""
    s = settings()
    return max(s.upstream_timeout_s, s.stream_read_timeout_s)


def read_timeout_for(accept: str) -> float:
    """The read timeout of a request whose `Accept` is `accept`: a client asking for an event
    stream gets the stream's from the start (the connect timeout stays the normal one)."""
    if EVENT_STREAM in accept.lower():
        return stream_read_s()
    return settings().upstream_timeout_s


class Answer:
    """The upstream's answer: status, headers as sent (repeats kept), and the whole body, or
    None for an event stream (then `relay` passes it on)."""

    __slots__ = ("content", "headers", "response", "status")

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        content: bytes | None,
        response: aiohttp.ClientResponse | None = None,
    ) -> None:
        self.status, self.headers, self.content, self.response = status, headers, content, response

    def header(self, name: str) -> str | None:
        low = name.lower()
        for n, v in self.headers:
            if n.lower() == low:
                return v
        return None


_sessions: dict[int, tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession]] = {}


def _session() -> aiohttp.ClientSession:
    """The pooled session of the running event loop (keep-alive connections are per loop)."""
    loop = asyncio.get_running_loop()
    held = _sessions.get(id(loop))
    if held is not None and held[0] is loop and not held[1].closed:
        return held[1]
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_IDLE_S),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=_NO_AUTO_HEADERS,
        trust_env=False,
        raise_for_status=False,
    )
    _sessions[id(loop)] = (loop, session)
    # closed with the loop: uvicorn runs it as asyncio.run does, which cancels the tasks left
    # (so its connections are closed, not reported unclosed at exit)
    keeper = loop.create_task(_close_at_the_end(session), name="gateway-upstream-session")
    _keepers.add(keeper)
    keeper.add_done_callback(_keepers.discard)
    return session


_keepers: set[asyncio.Task[None]] = set()  # the tasks holding the sessions (strong references)


async def _close_at_the_end(session: aiohttp.ClientSession) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await session.close()


async def exchange(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    name: str,
    path: str,
    read_s: float,
) -> Answer:
    """Send the request to deployment `name` at `url` (base URL + the raw path and query) and
    return its answer (module doc); `path` is what the warnings name."""
    import aiohttp
    import yarl

    try:
        target = yarl.URL(url, encoded=True)
    except (ValueError, TypeError):
        raise _unsendable() from None
    timeout = aiohttp.ClientTimeout(
        total=None, connect=settings().upstream_timeout_s, sock_read=read_s
    )
    try:
        resp = await _session().request(
            method,
            target,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            timeout=timeout,
        )
    except TimeoutError:  # aiohttp's connect and read timeouts are TimeoutErrors
        _log.warning("%s did not answer %s %s in time", name, method, path)
        raise GatewayTimeout(f"{name} did not answer in time.") from None
    except aiohttp.ClientError as exc:
        _log.warning("%s is unreachable: %s", name, type(exc).__name__)
        raise BadGateway(f"{name} is unreachable.") from None
    except ValueError:  # a header aiohttp refuses to write (a newline in it)
        raise _unsendable() from None
    raw = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in resp.raw_headers]
    if method == "HEAD" or not is_event_stream(resp.headers.get("Content-Type", "")):
        try:
            content = await resp.read()  # the connection goes back to the pool
        except TimeoutError:
            resp.close()
            _log.warning("%s did not finish its answer in time", name)
            raise GatewayTimeout(f"{name} did not finish its answer in time.") from None
        except aiohttp.ClientError as exc:
            resp.close()
            _log.warning("%s broke off its answer: %s", name, type(exc).__name__)
            raise BadGateway(f"{name} broke off its answer.") from None
        return Answer(resp.status, raw, content)
    protocol = resp.connection.protocol if resp.connection is not None else None
    if protocol is not None:  # from here the wait between two chunks is the stream's
        protocol.read_timeout = stream_read_s()
        protocol.start_timeout()
    return Answer(resp.status, raw, None, resp)


def _unsendable() -> BadRequest:
    return BadRequest("The request cannot be forwarded (malformed URL or header).")


async def relay(answer: Answer, name: str) -> AsyncIterator[bytes]:
    """An event stream's body as it arrives: each chunk is passed on at once (no buffering);
    the upstream connection is closed when it ends or the client goes away."""
    resp = answer.response
    if resp is None:
        return
    import aiohttp

    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    except (TimeoutError, aiohttp.ClientError) as exc:
        # The status line is gone already: all the client can see is the stream ending; it
        # reconnects (with Last-Event-ID for an event stream).
        _log.warning("%s broke off its stream: %s", name, type(exc).__name__)
    finally:
        resp.close()
