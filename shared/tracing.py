"""Traces: OpenTelemetry spans of every request and event hop, set up in one place.

Each process has one tracer provider, made on its first span (nothing of OpenTelemetry is
imported before: cold starts, decision 0046), sampling parent-based (a caller's decision is
kept; a new trace is sampled with `TRACE_SAMPLE_RATIO`). Context travels as W3C `traceparent`,
the names of today: the HTTP header and the event attribute. Spans: `server()` opens the span
of an incoming request or delivery (parent: the `traceparent` it came with) and makes it
current, for OpenTelemetry and for the logs (`shared.logging` writes its trace and span id);
`child()` is a span under the current one (none without one: background work starts no trace),
`producer()` a span that outlives its scope (the outbox's publish, ended by the sender).

Where spans go (`TRACE_EXPORTER`): Cloud Trace with Google's exporter on Cloud Run (batched in
a background thread; the exporter and its gRPC client are imported on the first export, in
that thread), or one JSON line per finished span on stdout (`log`) under `make dev`, which the
dev dashboard reads from the log stream it already follows, or nowhere (`none`, the tests'
default: the spans are still made). `TRACING=false` turns spans off: the traceparent is then
only passed on, as before. No span carries parameter values, bodies or headers (no secrets).
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from shared import logging as slog
from shared.config import settings

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
LOG_KEY = "switchyard/span"  # the one key of a span line on stdout (`log` exporter)
LOCAL_DELAY_MS = 200  # the `log` exporter's batch delay: the dashboard shows spans at once
Attributes = Mapping[str, str | int | float | bool]

__all__ = [
    "LOG_KEY",
    "TRACEPARENT",
    "Scope",
    "child",
    "enabled",
    "end",
    "flush",
    "format_traceparent",
    "new_traceparent",
    "producer",
    "reset",
    "server",
    "start_child",
    "valid",
]


def enabled() -> bool:
    """Spans are made (`TRACING`); when not, the traceparent is only passed on."""
    return settings().tracing


def valid(traceparent: str) -> bool:
    """A W3C traceparent this platform accepts (version 00-fe, non-zero ids)."""
    return (
        bool(TRACEPARENT.match(traceparent))
        and not traceparent.startswith("ff")
        and traceparent[3:35] != "0" * 32
        and traceparent[36:52] != "0" * 16
    )


def new_traceparent() -> str:
    """A new sampled trace context (for a request that came without one, tracing off)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def format_traceparent(span: Any) -> str:
    """The W3C traceparent naming `span` as the parent."""
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


# --- the provider -------------------------------------------------------------------------


_lock = threading.Lock()


@functools.cache
def _tracer() -> Any:
    """The process's tracer: its provider, sampler and exporter made on first use."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    s = settings()
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(min(1.0, max(0.0, s.trace_sample_ratio)))),
        resource=Resource.create(
            {"service.name": s.deployment or "local", "service.namespace": "switchyard"}
        ),
    )
    exporter = _exporter(_exporter_name())
    if exporter is not None:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        delay = LOCAL_DELAY_MS if s.is_local else None
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
    _providers.append(provider)
    return provider.get_tracer("switchyard")


_providers: list[Any] = []


def _exporter_name() -> str:
    s = settings()
    name = s.trace_exporter
    if name == "auto":
        return "cloudtrace" if s.in_cloud else "none"
    return name


def _exporter(name: str) -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    if name == "none":
        return None

    if name == "log":

        class LogLines(SpanExporter):
            """Each finished span as one JSON line on stdout, next to the process's logs."""

            def export(self, spans: Sequence[Any]) -> SpanExportResult:
                slog.write_lines([json.dumps({LOG_KEY: record(sp)}) for sp in spans])
                return SpanExportResult.SUCCESS

        return LogLines()

    class CloudTrace(SpanExporter):
        """Google's Cloud Trace exporter, imported and connected on the first export (in the
        batch processor's thread, never on a request's path)."""

        def __init__(self) -> None:
            self._real: Any = None

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            if self._real is None:
                from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

                self._real = CloudTraceSpanExporter(project_id=settings().project_id)
            result: SpanExportResult = self._real.export(spans)
            return result

        def shutdown(self) -> None:
            if self._real is not None:
                self._real.shutdown()

    return CloudTrace()


def flush(timeout_s: float = 5.0) -> None:
    """Export what is finished and not yet exported (tests; `shutdown` at exit does it too)."""
    for provider in list(_providers):
        provider.force_flush(int(timeout_s * 1000))


def reset() -> None:
    """Forget the provider (tests that change the tracing settings); the old one is flushed."""
    with _lock:
        for provider in _providers:
            provider.shutdown()
        _providers.clear()
        _tracer.cache_clear()


@functools.cache
def _kind(kind: str) -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind[kind.upper()]  # internal, server, client, producer, consumer


def _remote(traceparent: str) -> Any:
    """An OpenTelemetry context whose parent is the remote span `traceparent` names."""
    from opentelemetry import trace

    version, trace_id, span_id, flags = traceparent.split("-")
    parent = trace.SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=trace.TraceFlags(int(flags, 16) & 0x01),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


# --- spans ---------------------------------------------------------------------------------


class Scope:
    """An open span that is the current one (OpenTelemetry's context and the logs') until
    `finish`. `traceparent` names it as the parent of the next hop."""

    __slots__ = ("_log_token", "_otel_token", "span", "span_id", "traceparent")

    def __init__(self, span: Any) -> None:
        from opentelemetry import context, trace

        self.span = span
        self.traceparent = format_traceparent(span)
        self.span_id = self.traceparent[36:52]
        self._otel_token = context.attach(trace.set_span_in_context(span))
        self._log_token: Any = slog.bind(traceparent=self.traceparent, span_id=self.span_id)

    def set(self, key: str, value: str | int | float | bool) -> None:
        self.span.set_attribute(key, value)

    def rename(self, name: str) -> None:
        self.span.update_name(name)

    def fail(self, description: str = "") -> None:
        from opentelemetry.trace import Status, StatusCode

        self.span.set_status(Status(StatusCode.ERROR, description or None))

    def finish(self) -> None:
        """End the span and make the previous one current again (idempotent)."""
        if self._log_token is None:
            return
        from opentelemetry import context

        self.span.end()
        slog.reset(self._log_token)
        self._log_token = None
        context.detach(self._otel_token)


def server(
    name: str, traceparent: str = "", *, kind: str = "server", attributes: Attributes | None = None
) -> Scope:
    """Open the span of an incoming request (`kind` "server") or delivery ("consumer"),
    child of the remote span `traceparent` names (a root when it names none), and make it
    current until `Scope.finish`."""
    tracer = _tracer()
    parent = _remote(traceparent) if traceparent and valid(traceparent) else None
    span = tracer.start_span(
        name, context=parent, kind=_kind(kind), attributes=dict(attributes or {})
    )
    return Scope(span)


def _current() -> Any | None:
    """The current recording span of this context, if tracing made one."""
    if not enabled():
        return None
    from opentelemetry import trace

    span = trace.get_current_span()
    return span if span.get_span_context().is_valid else None


def start_child(name: str, *, kind: str = "internal", attributes: Attributes | None = None) -> Any:
    """A span under the current one, not made current, that the caller ends (`end`); None,
    and nothing made, when there is no current span (work outside a request or delivery
    starts no trace)."""
    parent = _current()
    if parent is None:
        return None
    from opentelemetry import trace

    return _tracer().start_span(
        name,
        context=trace.set_span_in_context(parent),
        kind=_kind(kind),
        attributes=dict(attributes or {}),
    )


@contextmanager
def child(
    name: str, *, kind: str = "internal", attributes: Attributes | None = None
) -> Iterator[Any | None]:
    """`start_child` for the `with` block: for leaves (an outbound call); the caller passes
    its traceparent on (`format_traceparent`). An exception marks it failed."""
    span = start_child(name, kind=kind, attributes=attributes)
    if span is None:
        yield None
        return
    try:
        yield span
    except BaseException as exc:
        end(span, type(exc).__name__)
        raise
    span.end()


def producer(
    name: str, *, attributes: Attributes | None = None, traceparent: str = ""
) -> Any | None:
    """A producer span under the current span (or under the remote `traceparent`), left open:
    whoever holds it ends it (`span.end()`), on any thread. None when tracing is off or there
    is no parent."""
    if not enabled():
        return None
    if traceparent and valid(traceparent):
        context = _remote(traceparent)
    else:
        parent = _current()
        if parent is None:
            return None
        from opentelemetry import trace

        context = trace.set_span_in_context(parent)
    return _tracer().start_span(
        name, context=context, kind=_kind("producer"), attributes=dict(attributes or {})
    )


def end(span: Any | None, error: str | None = None) -> None:
    """End a span made by `producer` (error: its status is ERROR with that description)."""
    if span is None:
        return
    if error:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, error[:200]))
    span.end()


# --- the `log` exporter's line ------------------------------------------------------------


def record(span: Any) -> dict[str, Any]:
    """A finished span as the dev dashboard reads it (times in Unix nanoseconds)."""
    ctx = span.get_span_context()
    parent = span.parent
    status = span.status.status_code.name.lower()  # unset | ok | error
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else "",
        "name": span.name,
        "kind": span.kind.name.lower(),
        "start": span.start_time,
        "end": span.end_time,
        "status": status,
        "deployment": span.resource.attributes.get("service.name", ""),
        "attributes": dict(span.attributes or {}),
    }
