"""Entry point of the gateway deployment.

Served in functions-framework's ASGI mode (`aio.http`: uvicorn workers): every request goes
through the gateway's Flask app in a worker thread (guard, own routes, proxy), and a proxied
event stream is then passed through from the event loop, holding no thread while it is open
(`shared.asgi`, `proxy.py`; decision 0035).
"""

import functions_framework.aio
from starlette.requests import Request

from functions.gateway.api import app
from shared import asgi


@functions_framework.aio.http
async def gateway(request: Request) -> asgi.answer:
    return asgi.answer(app)
