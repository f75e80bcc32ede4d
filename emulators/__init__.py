"""The local stack of Switchyard (`python -m emulators`, `make dev`), and its Python API for tests.

It starts the real Pub/Sub and Firestore emulators, wires topics and event subscriptions from the
manifests as in the cloud (dead-letter topics, retry and dead-letter policies; pulled and pushed
by the push bridge, decision 0031), runs the migrations, starts one functions-framework process
per deployment behind the gateway, fires the `schedule` deployments with Cloud Scheduler's
headers, and stops all of it cleanly. It does not emulate Cloud SQL (PostgreSQL via
DATABASE_URL, else SQLite), IAM, OIDC tokens on pushes, or Cloud Run's scaling: one process per
deployment, one instance each.

Public API:
    Stack(...)                     the whole stack (context manager); see emulators._stack
    Emulator(kind, port)           one emulator: start()/stop()/host
    Ports                          where things listen (PUBSUB_PORT, FIRESTORE_PORT, GATEWAY_PORT,
                                   FUNCTIONS_BASE_PORT)
    wire(catalog, project, port_of, *, backoff_override=None)   topics and subscriptions
    plan(...)                      what `wire` creates, without I/O
    LocalScheduler, Job, fire      the local Cloud Scheduler
    free_port(), free_port_block(n), is_listening(port)
    LocalStackError, ToolMissingError, PortBusyError, StartupError
"""

from emulators._emulator import Emulator
from emulators._errors import LocalStackError, PortBusyError, StartupError, ToolMissingError
from emulators._ports import Ports, free_port, free_port_block, is_listening, port_is_free
from emulators._scheduler import Job, LocalScheduler, fire, scheduler_headers
from emulators._stack import Stack, assign_ports
from emulators._wiring import Plan, PushSubscription, max_delivery_attempts, plan, wire

__all__ = [
    "Emulator",
    "Job",
    "LocalScheduler",
    "LocalStackError",
    "Plan",
    "PortBusyError",
    "Ports",
    "PushSubscription",
    "Stack",
    "StartupError",
    "ToolMissingError",
    "assign_ports",
    "fire",
    "free_port",
    "free_port_block",
    "is_listening",
    "max_delivery_attempts",
    "plan",
    "port_is_free",
    "scheduler_headers",
    "wire",
]
