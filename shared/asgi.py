"""A context's Flask app served in functions-framework's ASGI mode, with long answers that
hold no thread (decision 0035).

An entry point decorated with `functions_framework.aio.http` returns `answer(app)`: the
request goes through the Flask app as every request does (hooks, authentication, validation,
problem+json errors, OpenAPI), in a worker thread of the event loop's pool. A view whose answer
lasts (a Server-Sent Events stream, a stream the gateway passes through) returns
`deferred(body, ...)` with an async iterator of bytes: its status and headers still go
through Flask's after-request hooks, then the thread goes back to the pool and the body is
sent from the event loop, one chunk as soon as it is produced, until it ends or the client
goes away (the iterator is then closed, so its `finally` releases what it holds). An idle
stream is a suspended coroutine, not a parked thread. `run(fn, *args)` lets a view running in
its worker thread await a coroutine on the loop (the gateway's async upstream request), and
`in_thread(fn, *args)` lets a body on the loop run blocking code in the same pool.

Anything else is answered as Flask produced it: a body Flask holds whole (it set its
Content-Length) is joined in the worker thread and sent from the loop in one message; a body
Flask streams is iterated in the worker thread, each chunk sent as it comes.
The WSGI environ is a2wsgi's (`build_environ`); the body is read from the ASGI connection as
the view reads it.
Every path reaches the app: functions-framework routes an ASGI function through Starlette's
`/{path:path}`, whose `.*` stops at a newline, so a path with `%0A` in it got Starlette's
text/plain 404 instead of the app's problem+json one. Importing this module makes Starlette's
`path` convertor match newlines too (the routes are compiled after the entry module, which
imports this one, is loaded). functions-framework's own `/robots.txt` and `/favicon.ico` stay
its plain 404s.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
import flask
from a2wsgi.wsgi import Body, build_environ
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.responses import Response

T = TypeVar("T")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_KEY = "switchyard.asgi"
_limiter: dict[int, anyio.CapacityLimiter] = {}


class _AnyPath(PathConvertor):
    """Starlette's `path` convertor, newlines included (module doc)."""

    regex = "(?s:.*)"


register_url_convertor("path", _AnyPath())


class _Exchange:
    """What a view hands back to the event loop for its request."""

    def __init__(self) -> None:
        self.body: AsyncIterator[bytes] | None = None


def _threads() -> anyio.CapacityLimiter:
    """Worker threads for the Flask part of requests (per event loop; `THREADS`, default 128):
    they are busy only until a view returns, never while a stream is open."""
    loop = id(asyncio.get_running_loop())
    lim = _limiter.get(loop)
    if lim is None:
        lim = _limiter[loop] = anyio.CapacityLimiter(int(os.environ.get("THREADS", "128")))
    return lim


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """From the event loop: run blocking `fn(*args)` in the same worker pool and await it."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=_threads())


def served_by_asgi() -> bool:
    """True when the current Flask request came through `answer()`."""
    return _KEY in flask.request.environ


def deferred(
    body: AsyncIterator[bytes],
    *,
    status: int = 200,
    headers: list[tuple[str, str]] | None = None,
    mimetype: str | None = None,
) -> flask.Response:
    """The answer of a view whose body is produced on the event loop (module doc)."""
    exchange = flask.request.environ.get(_KEY)
    if exchange is None:
        raise RuntimeError("a deferred answer needs the ASGI entry point (shared.asgi.answer)")
    exchange.body = body
    return _Deferred(status=status, headers=headers, mimetype=mimetype)


class _Deferred(flask.Response):
    default_mimetype = None  # the given Content-Type, or none


def run(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """From a view's worker thread: run `fn(*args)` on the event loop and wait for its result."""
    return anyio.from_thread.run(fn, *args)


class answer(Response):  # noqa: N801 - used like a function: `return answer(app)`
    """The ASGI answer to the current request, produced by `app` (module doc). A Starlette
    `Response` as functions-framework's ASGI mode expects, sending whatever `app` answers."""

    def __init__(self, app: flask.Flask) -> None:  # no super(): nothing of Response's is used
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        loop = asyncio.get_running_loop()
        environ: dict[str, Any] = dict(build_environ(scope, Body(loop, receive)))  # type: ignore[arg-type]
        environ["wsgi.input_terminated"] = True  # the ASGI server delimits the body
        exchange = environ[_KEY] = _Exchange()
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            started[:] = [int(status.split(" ", 1)[0]), headers]
            return lambda chunk: None  # write() is not used by Flask

        async def put(message: dict[str, Any]) -> None:
            await send(message)

        def call() -> bytes | None:
            chunks = self.app.wsgi_app(environ, start_response)
            try:
                if exchange.body is None and _has_length(started[1]):
                    # A body already complete in memory (Flask set its Content-Length): joined
                    # here and sent from the loop, without a hop to the loop per message.
                    return b"".join(chunks)
                first = True
                for chunk in chunks:
                    if exchange.body is not None:
                        break  # a deferred answer: its body comes from the loop
                    if first:
                        run(put, _start(*started))
                        first = False
                    if chunk:
                        run(put, {"type": "http.response.body", "body": chunk, "more_body": True})
                if exchange.body is None:
                    if first:
                        run(put, _start(*started))
                    run(put, {"type": "http.response.body", "body": b""})
                return None
            finally:
                getattr(chunks, "close", lambda: None)()

        ctx = contextvars.copy_context()
        whole = await anyio.to_thread.run_sync(ctx.run, call, limiter=_threads())
        if whole is not None:
            await send(_start(*started))
            await send({"type": "http.response.body", "body": whole})
        elif exchange.body is not None:
            status, headers = started
            # Flask counted the placeholder's empty body: the real one is delimited by chunks
            headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
            await _stream(send, receive, _start(status, headers), exchange.body)


def _has_length(headers: list[tuple[str, str]]) -> bool:
    return any(n.lower() == "content-length" for n, _ in headers)


def _start(status: int, headers: list[tuple[str, str]]) -> dict[str, Any]:
    raw = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    return {"type": "http.response.start", "status": status, "headers": raw}


async def _stream(send: Send, receive: Receive, start: dict[str, Any], body: Any) -> None:
    """Send `body` chunk by chunk until it ends or the client disconnects; always close it."""

    async def produce() -> None:
        await send(start)
        async for chunk in body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        async with anyio.create_task_group() as tg:

            async def first(fn: Callable[[], Awaitable[None]]) -> None:
                try:
                    await fn()
                finally:
                    tg.cancel_scope.cancel()

            tg.start_soon(first, produce)
            tg.start_soon(first, watch)
    except OSError:
        pass  # the client went away while a chunk was being sent
    finally:
        with anyio.CancelScope(shield=True):
            await body.aclose()


# --- for pure-ASGI answers (the gateway's forwarded requests, decision 0053) ---------------


def start_message(status: int, headers: list[tuple[str, str]]) -> dict[str, Any]:
    """The `http.response.start` message of `status` and `headers` (names lower-cased)."""
    return _start(status, headers)


async def stream(send: Send, receive: Receive, start: dict[str, Any], body: Any) -> None:
    """Send `start`, then the async iterator `body` chunk by chunk until it ends or the client
    disconnects (then it is closed, so its `finally` runs), as a `deferred` answer's body is."""
    await _stream(send, receive, start, body)
