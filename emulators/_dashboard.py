"""The dev dashboard of `make dev`: http://localhost:8080/_dev/ (the gateway forwards it
locally; the supervisor serves it on 127.0.0.1 on a port of its own, shown in the table).

What it shows, all read from the running stack, no extra server or store:
- every deployment: health, port, pid, crash restarts, its recent requests and errors (read
  from the JSON log lines each process writes, `shared.logging`'s `httpRequest` and severity);
- a live feed of events: a `<topic>--dev-tap` pull subscription per topic sees every published
  event (type, source, event_id, request_id, publish time); the consumers' own log lines
  (`processed` / `consumer failed ... (attempt n)` / `skipped`) say which consumer processed it,
  after how many attempts and how long after it was published; searchable by event_id or
  request id;
- dead letters per topic with a redrive button, through ops-api (`/api/ops/dead-letters`, as
  the console does) signed in as the local bootstrap admin;
- the local scheduler's jobs: next fire time, last result, run now, pause, resume;
- traces: every deployment runs with `TRACE_EXPORTER=log` (set by the stack), so each finished
  OpenTelemetry span is one JSON line on its stdout, next to its logs (`shared.tracing`); the
  log hub hands those lines to `Traces` here (never to the terminal). Found by trace id,
  request id or event id, each trace is drawn as a waterfall of its spans across processes
  (gateway -> users-api -> SQL -> publish -> each consumer); the events feed and the requests
  lists link to it. The last `KEEP_TRACES` traces are kept, in memory only.

Local only: it exists only in the supervisor (never deployed), listens on 127.0.0.1, answers
only loopback clients whose Host is localhost/127.0.0.1, and a POST needs the page's per-run
token (`X-Dev-Token`) and a same-origin request. Strict CSP; the console's vendored Bootstrap.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flask
import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from emulators._logs import SPAN_LINE
from emulators._ports import HOST

if TYPE_CHECKING:
    from emulators._stack import Stack

ROOT = Path(__file__).resolve().parent.parent
STATIC = Path(__file__).resolve().parent / "dashboard"
CONSOLE_STATIC = ROOT / "functions" / "console" / "static"
VENDOR = CONSOLE_STATIC / "vendor" / "bootstrap"
TAP_SUFFIX = "--dev-tap"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
KEEP_REQUESTS = 30
KEEP_ERRORS = 20
KEEP_EVENTS = 500
KEEP_TRACES = 300
KEEP_SPANS = 500  # per trace
SPAN_KEY = "switchyard/span"  # shared.tracing.LOG_KEY (the supervisor never imports shared/)
_IDS = ("switchyard.request_id", "switchyard.event_id")
_CONSUMED = re.compile(r"^(processed|skipped) (\S+) ([0-9a-f-]{36})")
_FAILED = re.compile(r"^consumer failed on (\S+) ([0-9a-f-]{36}) \(attempt (\d+)\)")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Traces:
    """The spans the deployments exported (`log` exporter), grouped by trace, newest last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: collections.OrderedDict[str, dict[str, dict[str, Any]]] = (
            collections.OrderedDict()
        )

    def add(self, name: str, span: dict[str, Any]) -> None:
        trace_id = str(span.get("trace_id", ""))
        span_id = str(span.get("span_id", ""))
        if len(trace_id) != 32 or len(span_id) != 16:
            return
        span.setdefault("deployment", name)
        span["process"] = name
        with self._lock:
            spans = self._traces.get(trace_id)
            if spans is None:
                spans = self._traces[trace_id] = {}
                while len(self._traces) > KEEP_TRACES:
                    self._traces.popitem(last=False)
            else:
                self._traces.move_to_end(trace_id)
            if len(spans) < KEEP_SPANS:
                spans[span_id] = span

    def _spans(self, trace_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self._traces.get(trace_id, {}).values()]

    def find(self, query: str = "") -> list[dict[str, Any]]:
        """Summaries of the traces whose id is `query`, or with a span of that request id or
        event id; every trace (newest first) without a query."""
        q = query.strip()
        with self._lock:
            ids = list(reversed(self._traces))
            found = [
                t
                for t in ids
                if not q
                or t == q.lower()
                or any(
                    str(sp.get("attributes", {}).get(k, "")) == q
                    for sp in self._traces[t].values()
                    for k in _IDS
                )
            ]
        return [self.summary(t) for t in found[:100]]

    def summary(self, trace_id: str) -> dict[str, Any]:
        spans = self._spans(trace_id)
        tree = _tree(spans)
        root = tree[0] if tree else {}
        start = min((s["start"] for s in spans), default=0)
        end = max((s.get("end") or s["start"] for s in spans), default=0)
        request_id = next(
            (
                str(s["attributes"]["switchyard.request_id"])
                for s in tree
                if s.get("attributes", {}).get("switchyard.request_id")
            ),
            "",
        )
        return {
            "trace_id": trace_id,
            "root": root.get("name", ""),
            "root_deployment": root.get("deployment", ""),
            "started": _iso(start),
            "duration_ms": round((end - start) / 1e6, 2),
            "spans": len(spans),
            "deployments": sorted({str(s.get("deployment", "")) for s in spans}),
            "errors": sum(1 for s in spans if s.get("status") == "error"),
            "request_id": request_id,
        }

    def waterfall(self, trace_id: str) -> dict[str, Any] | None:
        """The trace's spans in tree order (a parent before its children, siblings by start),
        each with its depth and its offset and duration from the trace's start, in ms."""
        spans = self._spans(trace_id)
        if not spans:
            return None
        tree = _tree(spans)
        start = min(s["start"] for s in spans)
        end = max(s.get("end") or s["start"] for s in spans)
        return {
            **self.summary(trace_id),
            "total_ms": round((end - start) / 1e6, 3),
            "items": [
                {
                    "span_id": s["span_id"],
                    "parent_id": s.get("parent_id", ""),
                    "name": s.get("name", ""),
                    "kind": s.get("kind", ""),
                    "deployment": s.get("deployment", ""),
                    "status": s.get("status", ""),
                    "depth": s["depth"],
                    "offset_ms": round((s["start"] - start) / 1e6, 3),
                    "duration_ms": round(((s.get("end") or s["start"]) - s["start"]) / 1e6, 3),
                    "attributes": s.get("attributes", {}),
                }
                for s in tree
            ],
        }


def _tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Depth-first, children by start time; a span whose parent is not here (another
    process's span not exported yet, or the caller's) is a root."""
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for s in spans:
        parent = s.get("parent_id") or ""
        if parent and parent in ids and parent != s["span_id"]:
            children.setdefault(parent, []).append(s)
        else:
            roots.append(s)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(s: dict[str, Any], depth: int) -> None:
        if s["span_id"] in seen:
            return
        seen.add(s["span_id"])
        out.append({**s, "depth": depth})
        for c in sorted(children.get(s["span_id"], []), key=lambda x: x["start"]):
            visit(c, depth + 1)

    for r in sorted(roots, key=lambda x: x["start"]):
        visit(r, 0)
    return out


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


class Observer:
    """What the log lines of the deployments say: requests, errors, consumed events, spans."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.traces = Traces()
        self.requests: dict[str, collections.deque[dict[str, Any]]] = {}
        self.errors: dict[str, collections.deque[dict[str, Any]]] = {}
        self.events: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def event(self, event_id: str) -> dict[str, Any]:
        """The feed entry of an event (created on first sight; the oldest are dropped)."""
        entry = self.events.get(event_id)
        if entry is None:
            entry = {"event_id": event_id, "consumers": {}}
            self.events[event_id] = entry
            while len(self.events) > KEEP_EVENTS:
                self.events.popitem(last=False)
        return entry

    def line(self, name: str, text: str) -> None:
        if not text.startswith("{"):
            return
        try:
            entry = json.loads(text)
        except ValueError:
            return
        if not isinstance(entry, dict):
            return
        if text.startswith(SPAN_LINE):
            span = entry.get(SPAN_KEY)
            if isinstance(span, dict) and isinstance(span.get("start"), int):
                self.traces.add(name, span)
            return
        labels = entry.get("logging.googleapis.com/labels") or {}
        rid = labels.get("request_id", "") if isinstance(labels, dict) else ""
        message = str(entry.get("message", ""))
        at = str(entry.get("time") or _now())
        with self._lock:
            http = entry.get("httpRequest")
            if isinstance(http, dict) and not str(http.get("requestUrl", "")).startswith("/_dev"):
                self.requests.setdefault(name, collections.deque(maxlen=KEEP_REQUESTS)).append(
                    {
                        "time": at,
                        "method": http.get("requestMethod"),
                        "path": http.get("requestUrl"),
                        "status": http.get("status"),
                        "latency": http.get("latency"),
                        "request_id": rid,
                        "trace_id": str(entry.get("logging.googleapis.com/trace", "")).rsplit(
                            "/", 1
                        )[-1],
                    }
                )
            if entry.get("severity") in ("ERROR", "CRITICAL", "ALERT", "EMERGENCY"):
                self.errors.setdefault(name, collections.deque(maxlen=KEEP_ERRORS)).append(
                    {
                        "time": at,
                        "message": message,
                        "request_id": rid,
                        "stack_trace": str(entry.get("stack_trace", ""))[-4000:],
                    }
                )
            done = _CONSUMED.match(message)
            failed = _FAILED.match(message)
            if done:
                self._consumed(name, done.group(1), done.group(2), done.group(3), at, rid)
            elif failed:
                ev = self.event(failed.group(2))
                ev.setdefault("type", failed.group(1))
                c = ev["consumers"].setdefault(name, {"attempts": 0, "status": "pending"})
                c.update(attempts=max(c["attempts"], int(failed.group(3))), status="failed", at=at)

    def _consumed(
        self, name: str, kind: str, event_type: str, event_id: str, at: str, rid: str
    ) -> None:
        ev = self.event(event_id)
        ev.setdefault("type", event_type)
        if rid and not ev.get("request_id"):
            ev["request_id"] = rid
        c = ev["consumers"].setdefault(name, {"attempts": 0, "status": "pending"})
        if kind == "skipped":  # a duplicate delivery of what was processed
            if c["status"] != "processed":
                c["status"] = "skipped"
            return
        c.update(attempts=c["attempts"] + 1, status="processed", at=at)
        published = ev.get("published_at")
        if published:
            c["latency_ms"] = round((_parse(at) - _parse(published)).total_seconds() * 1000, 1)

    def published(self, attributes: dict[str, str], publish_time: str) -> None:
        event_id = attributes.get("event_id")
        if not event_id:
            return
        with self._lock:
            ev = self.event(event_id)
            ev.update(
                {
                    "type": attributes.get("event_type", ev.get("type")),
                    "source": attributes.get("source", ""),
                    "request_id": attributes.get("request_id", ev.get("request_id", "")),
                    "traceparent": attributes.get("traceparent", ""),
                    "occurred_at": attributes.get("occurred_at", ""),
                    "published_at": publish_time,
                }
            )
            for c in ev["consumers"].values():  # consumed before the tap saw it
                if c.get("at") and c["status"] == "processed" and "latency_ms" not in c:
                    c["latency_ms"] = round(
                        (_parse(c["at"]) - _parse(publish_time)).total_seconds() * 1000, 1
                    )

    def snapshot_events(self, query: str = "") -> list[dict[str, Any]]:
        q = query.strip().lower()
        with self._lock:
            items = [json.loads(json.dumps(e)) for e in reversed(self.events.values())]
        if q:
            items = [
                e
                for e in items
                if q in str(e.get("event_id", "")).lower()
                or q in str(e.get("request_id", "")).lower()
            ]
        return items[:200]

    def of(self, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with self._lock:
            return (
                list(reversed(self.requests.get(name, ()))),
                list(reversed(self.errors.get(name, ()))),
            )


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


class Tap:
    """One pull subscription per topic (`<topic>--dev-tap`) that sees every published event."""

    def __init__(self, stack: Stack, observer: Observer) -> None:
        self.stack = stack
        self.observer = observer
        self._stop = threading.Event()
        self._subs: list[str] = []
        self._threads: dict[str, threading.Thread] = {}

    def wire(self) -> None:
        """Create the tap subscriptions of every topic of the catalog (idempotent)."""
        from google.api_core import exceptions

        from emulators._wiring import clients

        pub, sub = clients(self.stack.pubsub.host)
        subs = []
        for topic in self.stack.catalog.topics:
            path = sub.subscription_path(self.stack.project, topic + TAP_SUFFIX)
            with contextlib.suppress(exceptions.AlreadyExists):
                sub.create_subscription(
                    request={
                        "name": path,
                        "topic": pub.topic_path(self.stack.project, topic),
                        "ack_deadline_seconds": 10,
                    }
                )
            subs.append(path)
        self._subs = subs
        self._sub = sub

    def start(self) -> Tap:
        self.wire()
        self._follow()
        return self

    def _follow(self) -> None:
        """One thread per tap subscription (a pull blocks until messages come)."""
        for path in self._subs:
            if path not in self._threads:
                th = threading.Thread(target=self._run, args=(path,), name="dev-tap", daemon=True)
                self._threads[path] = th
                th.start()

    def rewire(self) -> None:
        """After a manifest change: taps for new topics."""
        self.wire()
        self._follow()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, path: str) -> None:
        while not self._stop.is_set():
            try:
                resp = self._sub.pull(
                    request={"subscription": path, "max_messages": 100}, timeout=10
                )
            except Exception:  # noqa: BLE001 - a deadline, a topic re-wired: pull again
                self._stop.wait(0.5)
                continue
            if not resp.received_messages:
                continue
            for rm in resp.received_messages:
                published = rm.message.publish_time
                stamp = published.isoformat() if hasattr(published, "isoformat") else _now()
                self.observer.published(dict(rm.message.attributes), stamp)
            with contextlib.suppress(Exception):
                self._sub.acknowledge(
                    request={
                        "subscription": path,
                        "ack_ids": [rm.ack_id for rm in resp.received_messages],
                    }
                )


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:  # no access log on stderr
        pass


class Dashboard:
    """The dashboard's HTTP server (a thread of the supervisor) and what feeds it."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.observer = Observer()
        self.tap = Tap(stack, self.observer)
        self.token = secrets.token_urlsafe(24)
        self.app = self._app()
        self._server = make_server(HOST, 0, self.app, threaded=True, request_handler=_Quiet)
        self.port = self._server.server_port
        self._thread: threading.Thread | None = None
        self._admin_token: tuple[str, float] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/_dev/"

    def start_server(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dashboard", daemon=True
        )
        self._thread.start()

    def start_feeds(self) -> None:
        """Once the emulators are wired: the tap subscriptions."""
        try:
            self.tap.start()
        except Exception as exc:  # noqa: BLE001 - the dashboard is a help, never a blocker
            self.stack.hub.alert(f"!!! dev dashboard: no event feed ({exc})")

    def stop(self) -> None:
        self.tap.stop()
        self._server.shutdown()
        self._server.server_close()

    # -- data ------------------------------------------------------------------------------
    def deployments(self) -> list[dict[str, Any]]:
        st = self.stack
        rows = []
        for d in st.selected:
            reqs, errs = self.observer.of(d.name)
            rows.append(
                {
                    "name": d.name,
                    "context": d.context,
                    "trigger": d.trigger,
                    "port": st.port_of.get(d.name),
                    "url": st.url_of(d.name) if d.name in st.port_of else None,
                    "health": st.health.get(d.name),
                    "pid": st.pid_of(d.name),
                    "crashes": len(st.crashes.get(d.name, ())),
                    "gave_up": d.name in st.gave_up,
                    "requests": reqs,
                    "errors": errs,
                }
            )
        return rows

    def jobs(self) -> list[dict[str, Any]]:
        sched = self.stack.scheduler
        return [dict(j) for j in sched.describe()] if sched is not None else []

    def _admin(self) -> dict[str, str]:
        """A bearer token of the local bootstrap admin (cached until near its expiry)."""
        now = time.monotonic()
        if self._admin_token is None or self._admin_token[1] < now:
            st = self.stack
            resp = requests.post(
                st.gateway_url + "/api/auth/login",
                json={"email": st.admin_email, "password": st.admin_password},
                timeout=30,
            )
            resp.raise_for_status()
            body = resp.json()
            ttl = float(body.get("expires_in", 300))
            self._admin_token = (body["access_token"], now + max(30.0, ttl - 60))
        return {"Authorization": f"Bearer {self._admin_token[0]}"}

    def ops(self, method: str, path: str) -> tuple[int, Any]:
        resp = requests.request(
            method, self.stack.gateway_url + path, headers=self._admin(), timeout=60
        )
        try:
            body = resp.json()
        except ValueError:
            body = {"detail": resp.text[:500]}
        return resp.status_code, body

    # -- HTTP --------------------------------------------------------------------------------
    def _app(self) -> flask.Flask:
        app = flask.Flask("switchyard-dev-dashboard", static_folder=None)
        dash = self

        def problem(status: int, title: str, detail: str) -> flask.Response:
            resp = flask.jsonify({"type": "about:blank", "title": title, "status": status,
                                  "detail": detail})  # fmt: skip
            resp.status_code = status
            resp.mimetype = "application/problem+json"
            return resp

        @app.before_request
        def local_only() -> flask.Response | None:
            req = flask.request
            host = (req.host or "").rsplit(":", 1)[0]
            if req.remote_addr not in ("127.0.0.1", "::1") or host not in _LOCAL_HOSTS:
                return problem(403, "Forbidden", "The dev dashboard answers local clients only.")
            if req.method == "POST":
                origin = req.headers.get("Origin")
                site = req.headers.get("Sec-Fetch-Site", "same-origin")
                if req.headers.get("X-Dev-Token") != dash.token or site not in (
                    "same-origin",
                    "none",
                ):
                    return problem(403, "Forbidden", "Missing or wrong dashboard token.")
                if origin and (origin.split("://", 1)[-1].rsplit(":", 1)[0] not in _LOCAL_HOSTS):
                    return problem(403, "Forbidden", "Cross-origin request refused.")
            return None

        @app.after_request
        def headers(resp: flask.Response) -> flask.Response:
            resp.headers["Content-Security-Policy"] = CSP
            resp.headers["X-Content-Type-Options"] = "nosniff"
            resp.headers["Referrer-Policy"] = "no-referrer"
            resp.headers.setdefault("Cache-Control", "no-store")
            return resp

        @app.get("/_dev/")
        def index() -> flask.Response:
            html = (STATIC / "index.html").read_text().replace("{{token}}", dash.token)
            return flask.Response(html, mimetype="text/html")

        @app.get("/_dev")
        def bare() -> Any:
            return flask.redirect("/_dev/", 308)

        @app.get("/_dev/static/<path:name>")
        def static(name: str) -> flask.Response:
            return flask.send_from_directory(STATIC, name, max_age=0)

        @app.get("/_dev/favicon.svg")
        def favicon() -> flask.Response:
            return flask.send_from_directory(CONSOLE_STATIC, "favicon.svg", max_age=0)

        @app.get("/_dev/vendor/bootstrap/<path:name>")
        def vendor(name: str) -> flask.Response:
            return flask.send_from_directory(VENDOR, name, max_age=0)

        @app.get("/_dev/api/deployments")
        def deployments() -> flask.Response:
            st = dash.stack
            return flask.jsonify(
                {
                    "project": st.project,
                    "gateway": st.gateway_url,
                    "reloads": st.reloader.reloads if st.reloader else None,
                    "last_reload": st.reloader.last if st.reloader else None,
                    "deployments": dash.deployments(),
                }
            )

        @app.get("/_dev/api/events")
        def events() -> flask.Response:
            q = flask.request.args.get("q", "")
            if len(q) > 128:
                return problem(400, "Bad Request", "q is at most 128 characters.")
            return flask.jsonify({"items": dash.observer.snapshot_events(q)})

        @app.get("/_dev/api/traces")
        def traces() -> flask.Response:
            q = flask.request.args.get("q", "")
            if len(q) > 128:
                return problem(400, "Bad Request", "q is at most 128 characters.")
            return flask.jsonify({"items": dash.observer.traces.find(q)})

        @app.get("/_dev/api/traces/<trace_id>")
        def trace(trace_id: str) -> flask.Response:
            found = dash.observer.traces.waterfall(trace_id.lower())
            if found is None:
                return problem(404, "Not Found", f"No trace {trace_id!r} seen (yet).")
            return flask.jsonify(found)

        @app.get("/_dev/api/dead-letters")
        def dead_letters() -> flask.Response:
            status, body = dash.ops("GET", "/api/ops/dead-letters")
            resp = flask.jsonify(body)
            resp.status_code = status
            return resp

        @app.post("/_dev/api/dead-letters/<topic>/redrive")
        def redrive(topic: str) -> flask.Response:
            if topic not in dash.stack.catalog.topics:
                return problem(404, "Not Found", f"No topic {topic!r}.")
            status, body = dash.ops("POST", f"/api/ops/dead-letters/{topic}/redrive")
            resp = flask.jsonify(body)
            resp.status_code = status
            return resp

        @app.get("/_dev/api/jobs")
        def jobs() -> flask.Response:
            return flask.jsonify({"items": dash.jobs()})

        actions: dict[str, Callable[[Any, str], Any]] = {
            "run": lambda s, n: s.run(n, wait=False),
            "pause": lambda s, n: s.pause(n),
            "resume": lambda s, n: s.resume(n),
        }

        @app.post("/_dev/api/jobs/<name>/<action>")
        def job(name: str, action: str) -> flask.Response:
            sched = dash.stack.scheduler
            if action not in actions:
                return problem(404, "Not Found", f"No action {action!r}: run, pause or resume.")
            if sched is None or name not in sched.jobs:
                return problem(404, "Not Found", f"No scheduler job {name!r}.")
            actions[action](sched, name)
            return flask.jsonify({"items": dash.jobs()})

        @app.errorhandler(404)
        def not_found(_exc: Exception) -> flask.Response:
            return problem(404, "Not Found", "No such dashboard page.")

        @app.errorhandler(405)
        def not_allowed(_exc: Exception) -> flask.Response:
            return problem(405, "Method Not Allowed", "Not with this method.")

        @app.errorhandler(requests.RequestException)
        def upstream(exc: Exception) -> flask.Response:
            return problem(502, "Bad Gateway", f"ops-api could not be reached: {exc}")

        return app
