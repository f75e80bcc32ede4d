"""Entry points of the realtime context.

`stream` (realtime-stream) is served in functions-framework's ASGI mode (`aio.http`: uvicorn
workers instead of gunicorn threads), so an open Server-Sent Events stream is a coroutine, not
a thread (decision 0035); the Flask app still handles every request first (`shared.asgi`).
`fanout` (realtime-fanout) is an ordinary event deployment, and loads neither Starlette nor
`shared.asgi` (cold starts, decision 0040): see `_asgi_http`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import functions_framework
from functions_framework import _function_registry

from shared.events import Received, handler

if TYPE_CHECKING:
    from starlette.requests import Request

    from shared import asgi


def _asgi_http(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """What `functions_framework.aio.http` does to a coroutine function (register it as an
    http function that needs ASGI), without importing `functions_framework.aio` and Starlette
    into every deployment of this file: functions-framework imports them itself when the
    target is this function. tests/unit/test_import_budget.py checks the registration."""
    _function_registry.REGISTRY_MAP[fn.__name__] = _function_registry.HTTP_SIGNATURE_TYPE
    _function_registry.ASGI_FUNCTIONS.add(fn.__name__)
    return fn


@_asgi_http
async def stream(request: Request) -> asgi.answer:
    from functions.realtime.api import app
    from shared import asgi

    return asgi.answer(app)


@functions_framework.http
@handler
def fanout(event: Received) -> None:
    from functions.realtime import service

    service.fan_out(event)
