"""Structured logs: one JSON object per line in Cloud Logging's shape.

`get_logger(name)` returns a stdlib logger whose records are written as JSON with `severity`,
`message`, `logging.googleapis.com/trace` (from the W3C `traceparent` of the current request or
event), `logging.googleapis.com/spanId` and `logging.googleapis.com/trace_sampled` (of the
current span, when `shared.tracing` made one), `logging.googleapis.com/labels` (`deployment`,
`request_id`) and any `extra` fields (e.g. `httpRequest`). The request context lives in a
ContextVar, set by `shared.http` and `shared.events.handler`, so it follows the request across
threads started with `contextvars.copy_context`. Never print; never log secrets (the formatter
does not scrub).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "switchyard_log_context", default=None
)
_configured = False
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def bind(**fields: str) -> contextvars.Token:
    """Attach fields (request_id, traceparent, ...) to every log line of this context."""
    merged = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v}}
    return _context.set(merged)


def reset(token: contextvars.Token) -> None:
    _context.reset(token)


def current(key: str) -> str:
    """A field bound to the current request or event ("" when absent)."""
    return (_context.get() or {}).get(key, "")


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from shared.config import settings

        ctx = _context.get() or {}
        entry: dict[str, Any] = {
            "severity": record.levelname if record.levelname != "WARN" else "WARNING",
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        s = settings()
        labels = {"deployment": s.deployment or "local"}
        if ctx.get("request_id"):
            labels["request_id"] = ctx["request_id"]
        entry["logging.googleapis.com/labels"] = labels
        traceparent = ctx.get("traceparent", "")
        trace_id = _trace_id(traceparent)
        if trace_id:
            entry["logging.googleapis.com/trace"] = f"projects/{s.project_id}/traces/{trace_id}"
            if ctx.get("span_id"):  # this hop's own span (shared.tracing), not the caller's
                entry["logging.googleapis.com/spanId"] = ctx["span_id"]
                entry["logging.googleapis.com/trace_sampled"] = _sampled(traceparent)
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["stack_trace"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str)


def _sampled(traceparent: str) -> bool:
    try:
        return bool(int(traceparent[-2:], 16) & 0x01)
    except ValueError:
        return False


def _trace_id(traceparent: str) -> str:
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""


_handler: logging.Handler | None = None


def write_lines(lines: list[str]) -> None:
    """Write ready-made JSON lines to the log stream, never interleaved with a log record
    (the handler's lock): the `log` exporter of `shared.tracing`."""
    configure()
    handler = _handler
    if handler is None or not lines:
        return
    text = "\n".join(lines) + "\n"
    with handler.lock or contextlib.nullcontext():
        stream = getattr(handler, "stream", sys.stdout)
        stream.write(text)
        stream.flush()


def configure() -> None:
    """Route the root logger to stdout as JSON lines (idempotent)."""
    global _configured, _handler
    if _configured:
        return
    from shared.config import settings

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CloudLoggingFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    _handler = handler
    root.setLevel(settings().log_level)
    for noisy in ("urllib3", "google", "werkzeug", "grpc", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


def get_logger(name: str) -> logging.Logger:
    configure()
    return logging.getLogger(name)
