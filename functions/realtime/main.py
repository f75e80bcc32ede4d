"""Entry points of the realtime context.

`stream` (realtime-stream) is served in functions-framework's ASGI mode (`aio.http`: uvicorn
workers instead of gunicorn threads), so an open Server-Sent Events stream is a coroutine, not
a thread (decision 0035); the Flask app still handles every request first (`shared.asgi`).
`fanout` (realtime-fanout) is an ordinary event deployment.
"""

import functions_framework
import functions_framework.aio
from starlette.requests import Request

from shared import asgi
from shared.events import Received, handler


@functions_framework.aio.http
async def stream(request: Request) -> asgi.answer:
    from functions.realtime.api import app

    return asgi.answer(app)


@functions_framework.http
@handler
def fanout(event: Received) -> None:
    from functions.realtime import service

    service.fan_out(event)
