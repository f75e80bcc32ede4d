"""HTTP routes of realtime-stream (/api/realtime): stream tickets and the SSE streams.

Streams: `GET /api/realtime/packages/{id}`, `/dashboard`, `/map`, `/agents` answer
`text/event-stream`. They are declared public in the manifest so the gateway's JWT check lets
a ticketed browser `EventSource` through, and every stream verifies its caller here instead:
either the bearer token (`Authorization`, verified and checked against revocation) or a
`?ticket=` from `POST /api/realtime/tickets` (valid 60 s, for one stream). Decision 0028.
A stream resumes after the sequence in `Last-Event-ID` or `?last_event_id=` (a new
EventSource with a new ticket resumes exactly where the old one ended; decision 0047).
Any authenticated user may read streams (the live documents carry no names or addresses).
"""

from __future__ import annotations

from typing import Literal

import flask
from pydantic import ConfigDict, Field, model_validator

from functions.realtime import model, service
from shared import asgi
from shared import auth as sauth
from shared.errors import Unauthorized
from shared.http import ApiModel, OutModel, body, create_app, describe, json_response

app = create_app("realtime")

_PATHS = {
    "dashboard": "/api/realtime/dashboard",
    "map": "/api/realtime/map",
    "agents": "/api/realtime/agents",
}


class TicketCreate(ApiModel):
    # `_package_needs_id`, said in the schema.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"stream": {"const": "package"}}, "required": ["stream"]},
            "then": {"required": ["package_id"], "properties": {"package_id": {"type": "string"}}},
            "else": {"properties": {"package_id": {"type": "null"}}},
        }
    )

    stream: Literal["package", "dashboard", "map", "agents"]
    package_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$"
    )

    @model_validator(mode="after")
    def _package_needs_id(self) -> TicketCreate:
        if (self.stream == "package") != (self.package_id is not None):
            raise ValueError("package_id is required for the package stream, and only for it")
        return self


class TicketOut(OutModel):
    ticket: str
    stream: str
    url: str = Field(description="The stream to open with ?ticket=<ticket>.")
    expires_at: int = Field(description="Epoch seconds; the ticket opens the stream until then.")


@app.post("/api/realtime/tickets")
# Not idempotent: a retry may as well get a new ticket, and a kept answer would keep the
# bearer ticket itself for 24 h (the store keeps only its hash).
@describe(request=TicketCreate, response=TicketOut, status=201, idempotent=False)
def create_ticket() -> flask.Response:
    """A short-lived ticket for one stream (EventSource cannot send Authorization)."""
    req = body(TicketCreate)
    claims = sauth.current_user()
    key = model.stream_key(req.stream, req.package_id)
    ticket, expires = service.issue_ticket(claims.sub, claims.exp, key)
    url = f"/api/realtime/packages/{req.package_id}" if req.package_id else _PATHS[req.stream]
    out = TicketOut(ticket=ticket, stream=key, url=url, expires_at=expires)
    return json_response(out.model_dump(), status=201, headers={"Cache-Control": "no-store"})


def _access(key: str) -> service.Access:
    ticket = flask.request.args.get("ticket")
    if ticket is not None:
        return service.check_ticket(ticket, key)
    token = sauth.bearer_token()
    if token is None:
        raise Unauthorized(
            "A bearer token or a stream ticket is required.",
            headers={"WWW-Authenticate": 'Bearer realm="switchyard", error="invalid_request"'},
        )
    claims = sauth.verify(token)
    if sauth.revoked_or_stale(claims):
        raise Unauthorized("The token has been revoked.")
    return service.Access(sub=claims.sub, stream=key, until=claims.exp)


def _stream(key: str) -> flask.Response:
    access = _access(key)
    # The header is what EventSource sends on its own reconnects (the newest id it saw); the
    # query parameter is how a new EventSource, opened with a new ticket, resumes where the
    # previous one ended (a page cannot set the header). The header wins when both are there.
    after = model.last_event_id(flask.request.headers.get("Last-Event-ID"))
    if after is None:
        after = model.last_event_id(flask.request.args.get("last_event_id"))
    # The body is a coroutine on the event loop (shared.asgi): an open stream holds no thread.
    resp = asgi.deferred(service.events_of(access, after), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache, no-store"
    resp.headers["X-Accel-Buffering"] = "no"  # proxies: do not buffer
    return resp


@app.get("/api/realtime/packages/<package_id>")
@describe()
def package_stream(package_id: str) -> flask.Response:
    """Server-Sent Events of one package: status moves, scans, exceptions, investigations."""
    return _stream(model.package_stream(package_id))


@app.get("/api/realtime/dashboard")
@describe()
def dashboard_stream() -> flask.Response:
    """Server-Sent Events of the dashboard counters (counts by status, scans, exceptions)."""
    return _stream(model.DASHBOARD)


@app.get("/api/realtime/map")
@describe()
def map_stream() -> flask.Response:
    """Server-Sent Events of package positions (last lat/lon per package)."""
    return _stream(model.MAP)


@app.get("/api/realtime/agents")
@describe()
def agents_stream() -> flask.Response:
    """Server-Sent Events of agent activity (investigations completed or failed)."""
    return _stream(model.AGENTS)
