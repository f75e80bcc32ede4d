"""The Flask app of a context, and how functions-framework entry points serve it.

`create_app(context)` builds the app with the platform hooks (`_context.install`), JWT
authentication of every route the manifests do not declare public (`shared.auth`),
`Idempotency-Key` on the POSTs that create something (`_idempotency`), a body size limit, and
per HTTP deployment its health route and OpenAPI document. `dispatch(app, request)`
serves the app from a functions-framework entry point. `health_response(deployment)` is the one
health answer that HTTP, event and schedule deployments all give.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import flask
from pydantic import BaseModel

from shared.config import settings
from shared.http import _idempotency as idempotency
from shared.http._context import install, teardown


def describe(
    summary: str | None = None,
    *,
    request: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    idempotent: bool | None = None,
) -> Callable[[Any], Any]:
    """Attach OpenAPI facts to a view (summary defaults to its docstring's first line).

    The context's spec at `<first route>/openapi.json` is generated from the Flask URL map and
    these facts; the gateway merges every context's spec at `/api/openapi.json`. A POST
    documented 201 or 202 takes `Idempotency-Key` (`_idempotency`); `idempotent` says
    otherwise for one view (False: never, e.g. an answer that is a secret; True: another POST
    that creates something).
    """

    def wrap(view: Any) -> Any:
        view.__openapi__ = {
            "summary": summary,
            "request": request,
            "query": query,
            "response": response,
            "status": status,
            "idempotent": idempotent,
        }
        return view

    return wrap


def health_response(deployment: str) -> flask.Response:
    """The health answer of `deployment` (checks from its manifest, `shared.health`)."""
    from shared import health

    status, body = health.report(deployment)
    return flask.Response(json.dumps(body), status=status, mimetype="application/json")


def create_app(context: str, *, authenticate: bool = True) -> flask.Flask:
    """The Flask app of a context, with the platform's hooks and health routes."""
    from shared import auth
    from shared.manifests import catalog
    from shared.openapi import spec_path

    # No static route: Flask's default would serve <cwd>/static/ and shadow /static/* paths.
    app = flask.Flask(f"switchyard.{context}", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings().max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False
    install(app)
    if authenticate:
        app.before_request(auth.authenticate_request)
        # after authentication: a key is scoped to the token's subject
        idempotency.install(app)

    for dep in catalog().context(context).deployments:
        if dep.trigger != "http":
            continue
        app.add_url_rule(
            dep.health_path,
            f"health:{dep.name}",
            functools.partial(health_response, dep.name),
            methods=["GET"],
        )
        spec = spec_path(dep)
        if spec:
            app.add_url_rule(
                spec,
                f"openapi:{dep.name}",
                functools.partial(_openapi_view, app, context),
                methods=["GET"],
            )
    return app


def _openapi_view(app: flask.Flask, context: str) -> flask.Response:
    """The context's OpenAPI document, generated once per instance (public)."""
    spec = app.extensions.get("switchyard.openapi")
    if spec is None:
        from shared.openapi import spec_for

        spec = app.extensions["switchyard.openapi"] = json.dumps(spec_for(app, context))
    resp = flask.Response(spec, mimetype="application/json")
    resp.headers["Cache-Control"] = "public, max-age=60"
    return resp


def dispatch(app: flask.Flask, request: flask.Request) -> flask.Response:
    """Serve `request` (from functions-framework) with the context's Flask app, and hand
    functions-framework's app over to it (`_hand_over`): only an instance's first request
    comes through here."""
    outer = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    # functions-framework drains the body through its own request object after responding
    # (its after_request `read_request`). Both request objects must read one stream, or that
    # drain waits for bytes this app already consumed (werkzeug's server, where wsgi.input is
    # the socket: the response hangs until the client gives up). Under gunicorn it is a no-op.
    request.environ["wsgi.input"] = request.stream
    with app.request_context(request.environ):
        try:
            return app.full_dispatch_request()
        finally:
            teardown(None)
            _hand_over(outer, app)


def _hand_over(outer: flask.Flask, app: flask.Flask) -> None:
    """Route `outer`'s later requests straight into `app` (decision 0060).

    functions-framework serves its own Flask app, whose catch-all view calls the entry point;
    the entry point's `dispatch` then runs a second request context, in `app`. That nesting
    cost ~35 us of CPU per request in a loop and more amid a request's other work. A Flask
    app's `wsgi_app` is its documented middleware hook: after the first request it is `app`'s,
    behind functions-framework's execution-id middleware (which keeps what it wraps as
    `.wsgi_app`), so functions-framework still starts the server and sets the execution id.
    What the outer app did besides is not lost: its 404s for /robots.txt and /favicon.ico are
    `app`'s 404s, its 500 handler is `app`'s error mapping, and its body drain is gunicorn's
    (the parser discards what a response left unread before the next request)."""
    from functions_framework.execution_id import WsgiMiddleware

    chain = outer.wsgi_app
    if isinstance(chain, WsgiMiddleware):
        chain.wsgi_app = app.wsgi_app
    elif outer is not app:
        outer.wsgi_app = app.wsgi_app  # type: ignore[method-assign]
