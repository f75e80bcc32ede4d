"""OpenAPI 3.1 documents generated from a context's Flask app, and the path each is served at.

`spec_for(app, context)` walks the app's URL map and describes every route that lies under one
of the context's HTTP routes (its health checks and the document itself excluded): path
parameters from the rule's converters, each method except HEAD/OPTIONS, summary and description
from the view's docstring, and the request body, query parameters and success response from
the pydantic models given to `shared.http.describe` (JSON Schema by pydantic, `$defs` hoisted into
`components.schemas`). Errors are problem+json (`components.responses`): every operation
documents the statuses the platform itself can answer (429 and 503 from the gateway, 502/504 when
forwarded, 401/403 when authenticated, 404 with a path parameter, 400/413/415/422 with a JSON
body, 422 with a query, 400 with a cursor), plus what its view declares with `responds(...)`
(e.g. 409); a POST that takes `Idempotency-Key` documents the header, its 400/409/422 and the
`Idempotent-Replayed` header of a replay; every operation needs `bearerAuth` except the routes
the manifests declare public.
`spec_path(deployment)` is where a deployment serves its spec (`<first route>/openapi.json`,
only for `/api/...` routes); `shared.http.create_app` registers it and the gateway merges
them all at `/api/openapi.json`.
Limits: it documents what the code declares, nothing more: a view without `describe` gets a
generic response, and roles checked inside a view are not visible here.
"""

from __future__ import annotations

import copy
import inspect
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from shared.http._idempotency import covers, view_facts

if TYPE_CHECKING:
    import flask

    from shared.manifests import Deployment


class _Schemas(GenerateJsonSchema):
    """Component names OpenAPI accepts: a generic `Page[XOut]` is named `XOutPage`."""

    _GENERIC = re.compile(r"^(?P<base>\w+)\[(?P<args>[\w, ]+)\]$")

    def normalize_name(self, name: str) -> str:
        match = self._GENERIC.match(name)
        if match:
            args = "".join(a.strip() for a in match["args"].split(","))
            name = f"{args}{match['base']}"
        return super().normalize_name(name)


OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
SPEC_SUFFIX = "/openapi.json"
REF = "#/components/schemas/{model}"
_SKIPPED_METHODS = {"HEAD", "OPTIONS"}
_Mode = Literal["validation", "serialization"]
_MODEL_MODES: tuple[tuple[str, _Mode], ...] = (
    ("request", "validation"),
    ("response", "serialization"),
)
_CONVERTER = re.compile(r"<(?:(?P<conv>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_PARAM_SCHEMA: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
    "path": {"type": "string"},
    "string": {"type": "string"},
    "default": {"type": "string"},
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string", "default": "about:blank"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["field", "message"],
            },
        },
    },
    "required": ["type", "title", "status"],
}

ERROR_RESPONSES: dict[str, tuple[str, str]] = {
    "400": ("BadRequest", "The body is not JSON, or a value (a cursor) is not one this API made."),
    "401": ("Unauthorized", "A valid bearer token is required."),
    "403": ("Forbidden", "The caller lacks a required role."),
    "404": ("NotFound", "No such resource."),
    "409": ("Conflict", "The request conflicts with the resource's current state."),
    "413": ("PayloadTooLarge", "The body exceeds the size limit."),
    "415": ("UnsupportedMediaType", "The body must be sent as application/json."),
    "422": ("Unprocessable", "The request is not valid; see `errors`."),
    "429": ("TooManyRequests", "Rate limited; retry after `Retry-After` seconds."),
    "502": ("BadGateway", "The gateway got no valid answer from the deployment."),
    "503": ("ServiceUnavailable", "A dependency is unavailable right now; retry shortly."),
    "504": ("GatewayTimeout", "The deployment did not answer in time."),
}

# Statuses every operation may answer, whatever its view: the gateway's per-IP and per-user
# rate limits (429) and a dependency it cannot reach (the revocation store, 503).
EVERY_OPERATION = ("429", "503")
# ... and every operation the gateway forwards to a deployment (not the gateway's own).
FORWARDED = ("502", "504")
# ... and every operation with a JSON request body (`shared.http.body`, the size limit).
WITH_BODY = ("400", "413", "415", "422")

# ... and every POST that takes `Idempotency-Key` (shared/http/_idempotency.py): a key that is
# not one (400), one still in flight or whose answer was lost (409), one reused with another
# request (422).
WITH_IDEMPOTENCY_KEY = ("400", "409", "422")
REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes the request safe to retry: the same key with the same request (method, path, "
        "query, body) within 24 hours answers the first answer again, with "
        "`Idempotent-Replayed: true`, and does nothing twice. Scoped to the caller and this "
        "operation. 422 when the key was used with another request, 409 while the first is "
        "still being served (`Retry-After`) or when its answer was lost, 400 when it is not "
        "1-255 printable ASCII characters without spaces. Use a new random key (a UUID) per "
        "action, and the same key for its retries."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}
IDEMPOTENT_REPLAYED: dict[str, Any] = {
    "description": "`true` when this is the recorded answer of an earlier request with the "
    "same `Idempotency-Key` (nothing was done again).",
    "schema": {"type": "string", "enum": ["true"]},
}

BEARER_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "Access token from POST /api/auth/login (RS256, `typ: at+jwt`).",
}


def spec_path(deployment: Deployment) -> str | None:
    """Where `deployment` serves its OpenAPI document, or None (non-HTTP, `/`, `/health`)."""
    if deployment.trigger != "http" or not deployment.routes:
        return None
    first = deployment.routes[0]
    if not first.startswith("/api/"):
        return None
    return first.rstrip("/") + SPEC_SUFFIX


def components_base() -> dict[str, Any]:
    """The components every Switchyard document shares: Problem, error responses, bearer."""
    return {
        "schemas": {"Problem": PROBLEM_SCHEMA},
        "responses": {
            name: {
                "description": text,
                "content": {
                    "application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}
                },
            }
            for name, text in ERROR_RESPONSES.values()
        },
        "securitySchemes": {"bearerAuth": BEARER_SCHEME},
    }


def _openapi_path(rule: str) -> tuple[str, list[tuple[str, str]]]:
    """A werkzeug rule as an OpenAPI path and its (name, converter) parameters."""
    params: list[tuple[str, str]] = []

    def repl(m: re.Match[str]) -> str:
        params.append((m.group("name"), m.group("conv") or "default"))
        return "{" + m.group("name") + "}"

    return _CONVERTER.sub(repl, rule), params


def _under(path: str, prefixes: list[str]) -> bool:
    return any(
        p == "/" or path == p or path.startswith((p.rstrip("/") + "/", p.rstrip("/") + ":"))
        for p in prefixes
    )


def _doc(view: Any) -> tuple[str, str]:
    doc = inspect.getdoc(view) or ""
    first, _, rest = doc.partition("\n")
    return first.strip(), rest.strip()


def hidden(view: Any) -> Any:
    """Decorator: leave this view out of the generated document (static files, proxies)."""
    view.__openapi__ = {"hidden": True}
    return view


def responds(
    *statuses: int,
    params: dict[str, dict[str, Any]] | None = None,
    headers: dict[str, dict[str, Any]] | None = None,
) -> Any:
    """Decorator: statuses this view answers beyond the generic ones (`spec_for` documents
    401/403 for authenticated routes, 404 with a path parameter, 400/413/415/422 with a body,
    422 with a query, 400 with a cursor, 429/503 everywhere), JSON Schemas of path
    parameters stricter than their converter (`params={"sha": {"pattern": ...}}`), and the
    request headers the view reads, each an OpenAPI parameter without `name`/`in`
    (`headers={"X-GitHub-Event": {"required": True, "schema": {"type": "string"}}}`).

    Put it anywhere in the view's decorator stack (it is looked up through `functools.wraps`).
    """

    def wrap(view: Any) -> Any:
        view.__openapi_responds__ = {
            "statuses": tuple(str(s) for s in statuses),
            "params": dict(params or {}),
            "headers": dict(headers or {}),
        }
        return view

    return wrap


def _responds(view: Any) -> dict[str, Any]:
    return view_facts(view, "__openapi_responds__") or {"statuses": (), "params": {}, "headers": {}}


def _idempotent(app: flask.Flask, rule: Any, method: str) -> bool:
    return covers(app, rule, method)


def spec_for(app: flask.Flask, context: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `context`, generated from `app`'s routes (see module doc)."""
    from shared.manifests import catalog

    cat = catalog()
    ctx = cat.context(context)
    http = [d for d in ctx.deployments if d.trigger == "http"]
    prefixes = [r for d in http for r in d.routes]
    own = {d.health_path for d in http} | {p for p in map(spec_path, http) if p}
    operations: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    models: list[tuple[type[BaseModel], _Mode]] = []

    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        path, params = _openapi_path(rule.rule)
        if path in own or not _under(rule.rule, prefixes):
            continue  # health checks and the document itself are not API operations
        view = app.view_functions.get(rule.endpoint)
        facts = view_facts(view)
        if facts.get("hidden"):
            continue
        summary, description = _doc(view)
        for method in sorted((rule.methods or set()) - _SKIPPED_METHODS):
            op: dict[str, Any] = {
                "operationId": re.sub(r"[^A-Za-z0-9_]", "_", f"{rule.endpoint}_{method}").lower(),
                "tags": [context],
                "summary": facts.get("summary") or summary or f"{method} {path}",
            }
            if description:
                op["description"] = description
            extra = _responds(view)
            op["parameters"] = [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {
                        **_PARAM_SCHEMA.get(conv, _PARAM_SCHEMA["default"]),
                        **extra["params"].get(name, {}),
                    },
                }
                for name, conv in params
            ]
            op["parameters"].extend(
                {
                    "required": False,
                    "schema": {"type": "string"},
                    **spec,
                    "name": name,
                    "in": "header",
                }
                for name, spec in extra.get("headers", {}).items()
            )
            idempotent = _idempotent(app, rule, method)
            if idempotent:
                op["parameters"].append(copy.deepcopy(IDEMPOTENCY_PARAMETER))
            operations.append(
                (
                    path,
                    method.lower(),
                    op,
                    {**facts, "responds": extra["statuses"], "idempotent": idempotent},
                )
            )
            for key, mode in _MODEL_MODES:
                model = facts.get(key)
                if isinstance(model, type) and issubclass(model, BaseModel):
                    models.append((model, mode))

    refs: dict[tuple[type[BaseModel], str], dict[str, Any]] = {}
    defs: dict[str, Any] = {}
    if models:
        unique = list(dict.fromkeys(models))
        key_map, top = models_json_schema(unique, ref_template=REF, schema_generator=_Schemas)
        refs = dict(key_map)  # type: ignore[arg-type]
        defs = top.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for path, method, op, facts in operations:
        query_model = facts.get("query")
        if query_model is not None:
            op["parameters"].extend(_query_parameters(query_model, defs))
        if not op["parameters"]:
            del op["parameters"]
        request_model = facts.get("request")
        if request_model is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(request_model, "validation")]}},
            }
        status = str(facts.get("status") or 200)
        response_model = facts.get("response")
        ok: dict[str, Any] = {"description": "Success." if status != "204" else "No content."}
        if response_model is not None and status != "204":
            ok["content"] = {
                "application/json": {"schema": refs[(response_model, "serialization")]}
            }
        public = cat.is_public(path)
        errors: set[str] = set(EVERY_OPERATION) | set(facts["responds"])
        if context != "gateway":
            errors.update(FORWARDED)
        if not public:
            errors.update(("401", "403"))
        if "{" in path:
            errors.add("404")
        if request_model is not None:
            errors.update(WITH_BODY)
        if facts["idempotent"]:
            errors.update(WITH_IDEMPOTENCY_KEY)
            ok["headers"] = {REPLAYED_HEADER: copy.deepcopy(IDEMPOTENT_REPLAYED)}
        if query_model is not None:
            errors.add("422")
            if "cursor" in getattr(query_model, "model_fields", {}):
                errors.add("400")  # a cursor this API did not make (shared.http.PageQuery)
        responses: dict[str, Any] = {status: ok}
        for code in sorted(errors - {status}):
            responses[code] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[code][0]}"}
        op["responses"] = responses
        if public:
            op["security"] = []
        paths.setdefault(path, {})[method] = op

    components = components_base()
    components["schemas"].update(_closed_pattern_maps(defs))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"Switchyard {context}",
            "version": API_VERSION,
            "description": ctx.description,
        },
        "paths": paths,
        "components": components,
        "security": [{"bearerAuth": []}],
        "tags": [{"name": context, "description": ctx.description}],
    }


def _query_parameters(model: type[BaseModel], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """One `in: query` parameter per field of a query model."""
    schema = model.model_json_schema(ref_template=REF, mode="validation", schema_generator=_Schemas)
    defs.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            param["description"] = prop.pop("description")
        prop.pop("title", None)
        param["schema"] = prop
        out.append(param)
    return out


def _closed_pattern_maps(node: Any) -> Any:
    """`dict[Annotated[str, pattern], V]` validates every key, but pydantic's schema gives only
    `patternProperties`, which lets any other key through: close such maps."""
    if isinstance(node, dict):
        out = {k: _closed_pattern_maps(v) for k, v in node.items()}
        if isinstance(out.get("patternProperties"), dict) and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_closed_pattern_maps(v) for v in node]
    return node
