"""shared.tracing: spans of requests, service calls and SQL statements, W3C propagation through
`traceparent`, the logs' trace and span id, sampling, the off switch, and the `log` exporter's
lines as the dev dashboard reads them. Real Flask apps served over real HTTP, a real SQLite
engine, the SDK's own in-memory exporter next to the configured one."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

from emulators._dashboard import Observer
from emulators._logs import LogHub
from shared import clients, tracing
from shared import db as _db  # noqa: F401 - registers the statement spans on every Engine
from shared import logging as slog
from shared.config import settings
from shared.http._context import install

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Every span this process finishes, kept by the SDK's in-memory exporter."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    monkeypatch.setenv("TRACE_EXPORTER", "none")
    monkeypatch.setenv("SWITCHYARD_DEPLOYMENT", "users-api")
    settings.cache_clear()
    tracing.reset()
    memory = InMemorySpanExporter()
    tracing._tracer()
    tracing._providers[-1].add_span_processor(SimpleSpanProcessor(memory))
    yield memory
    tracing.reset()


def _log_entry(message: str) -> dict[str, Any]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, None, None)
    return json.loads(slog.CloudLoggingFormatter().format(record))


def _app() -> flask.Flask:
    app = flask.Flask("tracing-test")
    install(app)

    @app.get("/api/things/<name>")
    def thing(name: str) -> flask.Response:
        return flask.jsonify(traceparent=flask.g.traceparent, log=_log_entry(f"thing {name}"))

    @app.get("/api/broken")
    def broken() -> flask.Response:
        raise RuntimeError("boom")

    @app.get("/api/things/health")
    def health() -> flask.Response:
        return flask.jsonify(traceparent=flask.g.traceparent, log=_log_entry("health"))

    return app


def test_a_request_continues_its_callers_trace(spans: Any) -> None:
    incoming = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    body = _app().test_client().get("/api/things/a", headers={"traceparent": incoming}).json
    (server,) = spans.get_finished_spans()
    ctx = server.get_span_context()
    assert server.name == "GET /api/things/<name>"
    assert server.kind.name == "SERVER"
    assert f"{ctx.trace_id:032x}" == CALLER_TRACE
    assert f"{server.parent.span_id:016x}" == CALLER_SPAN and server.parent.is_remote
    assert server.attributes["http.response.status_code"] == 200
    # the next hop's parent is this span, and the logs name it
    assert body["traceparent"] == tracing.format_traceparent(server)
    assert body["traceparent"][:52] == f"00-{CALLER_TRACE}-{ctx.span_id:016x}"
    log = body["log"]
    assert log["logging.googleapis.com/trace"].endswith(f"/traces/{CALLER_TRACE}")
    assert log["logging.googleapis.com/spanId"] == f"{ctx.span_id:016x}"
    assert log["logging.googleapis.com/trace_sampled"] is True


def test_a_request_without_a_valid_traceparent_starts_a_trace(spans: Any) -> None:
    client = _app().test_client()
    for bad in ("", "00-" + "0" * 32 + "-" + CALLER_SPAN + "-01", "garbage"):
        body = client.get("/api/things/b", headers={"traceparent": bad} if bad else {}).json
        assert tracing.valid(body["traceparent"])
        assert body["traceparent"][3:35] != CALLER_TRACE
    assert [s.parent for s in spans.get_finished_spans()] == [None, None, None]


def test_a_server_error_marks_the_span_failed(spans: Any) -> None:
    assert _app().test_client().get("/api/broken").status_code == 500
    (server,) = spans.get_finished_spans()
    assert server.status.status_code.name == "ERROR"
    assert server.attributes["http.response.status_code"] == 500


def test_health_checks_make_no_span(spans: Any) -> None:
    body = _app().test_client().get("/api/things/health").json
    assert spans.get_finished_spans() == ()
    assert tracing.valid(body["traceparent"])
    assert "logging.googleapis.com/spanId" not in body["log"]


def test_tracing_off_passes_the_traceparent_on_as_before(
    spans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACING", "false")
    settings.cache_clear()
    incoming = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    body = _app().test_client().get("/api/things/c", headers={"traceparent": incoming}).json
    assert body["traceparent"] == incoming
    assert body["log"]["logging.googleapis.com/trace"].endswith(CALLER_TRACE)
    assert "logging.googleapis.com/spanId" not in body["log"]
    assert spans.get_finished_spans() == ()


def test_sampling_is_parent_based(spans: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACE_SAMPLE_RATIO", "0")
    settings.cache_clear()
    tracing.reset()
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()  # the fixture's was shut down with its provider
    tracing._tracer()
    tracing._providers[-1].add_span_processor(SimpleSpanProcessor(spans))
    client = _app().test_client()
    new = client.get("/api/things/d").json
    assert not int(new["traceparent"][-2:], 16) & 1  # not sampled: the next hops record nothing
    assert new["log"]["logging.googleapis.com/trace_sampled"] is False
    assert spans.get_finished_spans() == ()
    sampled = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    kept = client.get("/api/things/e", headers={"traceparent": sampled}).json
    assert int(kept["traceparent"][-2:], 16) & 1
    assert len(spans.get_finished_spans()) == 1


def test_sql_statements_are_spans_without_their_parameter_values(spans: Any) -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:  # no current span: no trace started by background work
        conn.execute(text("CREATE TABLE secrets (id INTEGER, value TEXT)"))
    assert spans.get_finished_spans() == ()
    scope = tracing.server("GET /api/secrets")
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO secrets VALUES (1, :v)"), {"v": "hunter2"})
            conn.execute(text("SELECT value FROM secrets WHERE value = :v"), {"v": "hunter2"})
    finally:
        scope.finish()
    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert {"INSERT secrets", "SELECT secrets", "GET /api/secrets"} <= set(by_name)
    server_id = by_name["GET /api/secrets"].get_span_context().span_id
    for name in ("INSERT secrets", "SELECT secrets"):
        span = by_name[name]
        assert span.parent.span_id == server_id and span.kind.name == "CLIENT"
        assert span.attributes["db.system.name"] == "sqlite"
        assert "hunter2" not in json.dumps(dict(span.attributes))
    assert "?" in by_name["INSERT secrets"].attributes["db.query.text"]


def test_a_failed_statement_ends_its_span_failed(spans: Any) -> None:
    engine = create_engine("sqlite://")
    scope = tracing.server("GET /api/nothing")
    try:
        with pytest.raises(Exception, match="no such table"), engine.connect() as conn:
            conn.execute(text("SELECT * FROM missing"))
    finally:
        scope.finish()
    failed = next(s for s in spans.get_finished_spans() if s.name == "SELECT missing")
    assert failed.status.status_code.name == "ERROR"


@pytest.fixture
def callee(free_port: Any) -> Iterator[str]:
    """auth-api's part for this test: an app with the platform's hooks, over real HTTP."""
    app = flask.Flask("callee")
    install(app)

    @app.post("/api/auth/login")
    def login() -> flask.Response:
        return flask.jsonify(received=flask.request.headers.get("traceparent"))

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()


def test_a_service_call_is_a_client_span_the_callee_continues(
    spans: Any, callee: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICE_URLS", json.dumps({"auth-api": callee}))
    settings.cache_clear()
    scope = tracing.server("POST /api/users")
    try:
        resp = clients.call("POST", "/api/auth/login", json={})
    finally:
        scope.finish()
    tracing.flush()
    by_name = {s.name: s for s in spans.get_finished_spans()}
    client, callee_span = by_name["POST auth-api"], by_name["POST /api/auth/login"]
    root = by_name["POST /api/users"]
    assert client.kind.name == "CLIENT" and client.parent.span_id == root.context.span_id
    assert callee_span.parent.span_id == client.context.span_id
    assert resp.json()["received"] == tracing.format_traceparent(client)
    assert client.attributes["http.response.status_code"] == 200


def test_the_log_exporter_writes_lines_the_dashboard_draws(spans: Any) -> None:
    scope = tracing.server("POST /api/users", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")
    with tracing.child("INSERT users.users", kind="client"):
        pass
    producer = tracing.producer("publish user.created")
    scope.finish()
    consumer = tracing.server(
        "process user.created", tracing.format_traceparent(producer), kind="consumer"
    )
    tracing.end(producer)
    consumer.finish()
    handler = slog._handler
    assert handler is not None
    out = io.StringIO()
    old = handler.setStream(out)  # type: ignore[attr-defined]
    try:
        exporter = tracing._exporter("log")
        exporter.export(list(spans.get_finished_spans()))
    finally:
        handler.setStream(old)  # type: ignore[attr-defined]
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and all(ln.startswith('{"switchyard/span":') for ln in lines)
    # the log hub hands span lines to the dashboard only: not the terminal, not the tails
    terminal = io.StringIO()
    hub = LogHub(stream=terminal, color=False)
    observer = Observer()
    hub.listeners.append(observer.line)
    for ln in lines:
        hub.line("users-api", ln)
    assert terminal.getvalue() == "" and hub.tail("users-api") == []
    (summary,) = observer.traces.find(CALLER_TRACE)
    assert summary["spans"] == 4 and summary["root"] == "POST /api/users"
    drawn = observer.traces.waterfall(CALLER_TRACE)
    assert drawn is not None
    order = [(i["name"], i["depth"]) for i in drawn["items"]]
    assert order == [
        ("POST /api/users", 0),
        ("INSERT users.users", 1),
        ("publish user.created", 1),
        ("process user.created", 2),
    ]
    assert all(0 <= i["offset_ms"] <= drawn["total_ms"] for i in drawn["items"])


def test_settings_refuse_an_unknown_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.config import ConfigError

    monkeypatch.setenv("TRACE_EXPORTER", "zipkin")
    settings.cache_clear()
    with pytest.raises(ConfigError, match="TRACE_EXPORTER must be auto, cloudtrace, log or none"):
        settings()
    monkeypatch.setenv("TRACE_EXPORTER", "")
    settings.cache_clear()
    assert settings().trace_exporter == "auto"
    assert tracing._exporter_name() == "none"  # auto outside Cloud Run: nowhere


def test_cloud_trace_is_batched_and_its_exporter_imported_on_first_export(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exporter module (and its gRPC client) is not imported when the provider is made:
    the first export, in the batch processor's thread, imports it (cold starts)."""
    probe = (
        "import sys; from shared import tracing; "
        "s = tracing.server('GET /x'); s.finish(); "
        "p = tracing._providers[-1]._active_span_processor._span_processors; "
        "print(type(p[0]).__name__, 'opentelemetry.exporter.cloud_trace' in sys.modules)"
    )
    env = {
        **os.environ,
        "TRACE_EXPORTER": "cloudtrace",
        "SWITCHYARD_DEPLOYMENT": "users-api",
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["BatchSpanProcessor", "False"]
