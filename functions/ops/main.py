"""Entry points of the ops context."""

import functions_framework

from shared.events import relay
from shared.http import Tick, scheduled


@functions_framework.http
@scheduled
def outbox_relay(tick: Tick) -> dict:
    return {"published": relay()}
