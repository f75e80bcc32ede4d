"""Entry point of the gateway deployment.

Served in functions-framework's ASGI mode (`aio.http`: uvicorn workers): a request the gateway
forwards is guarded and forwarded on the event loop without Flask or a thread (`fast.py`,
decision 0053); every other request (the gateway's own routes, preflights, refusals of
internal routes) goes through the gateway's Flask app in a worker thread (`shared.asgi`,
decision 0035). A proxied event stream is passed through from the loop either way.
"""

import functions_framework.aio
from starlette.requests import Request

from functions.gateway import fast
from functions.gateway.api import app


@functions_framework.aio.http
async def gateway(request: Request) -> fast.answer:
    return fast.answer(app)
