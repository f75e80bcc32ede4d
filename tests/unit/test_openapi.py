"""shared.openapi: the document generated for a tiny context app, and where it is served."""

import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from shared import manifests
from shared.auth import require_roles
from shared.http import ApiModel, PageQuery, create_app, describe, json_response
from shared.openapi import spec_for, spec_path


class Part(BaseModel):
    sku: str


class WidgetCreate(ApiModel):
    name: str = Field(min_length=1)
    parts: list[Part] = []


class WidgetOut(BaseModel):
    id: int
    name: str
    parts: list[Part]


class WidgetQuery(PageQuery):
    colour: str | None = Field(None, description="Only widgets of this colour.")


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    folder = tmp_path / "widgets"
    folder.mkdir()
    (folder / "function.yaml").write_text(
        textwrap.dedent("""
        context: widgets
        description: Widgets for the test.
        deployments:
          widgets-api:
            entry_point: api
            trigger: http
            routes: [/api/widgets]
            public_routes: [/api/widgets/catalogue]
    """)
    )
    (folder / "main.py").write_text("def api(request):\n    pass\n")
    cat = manifests.load(Path(tmp_path))
    monkeypatch.setattr(manifests, "catalog", lambda: cat)
    monkeypatch.setenv("SWITCHYARD_LOCAL_DIR", str(tmp_path))
    from shared.config import settings

    settings.cache_clear()
    app = create_app("widgets")

    @app.post("/api/widgets")
    @describe(request=WidgetCreate, response=WidgetOut, status=201)
    @require_roles("operator")
    def create_widget():
        """Create a widget.

        Names need not be unique.
        """
        return json_response({}, 201)

    @app.get("/api/widgets")
    @describe(query=WidgetQuery)
    def list_widgets():
        """List widgets."""
        return json_response({})

    @app.route("/api/widgets/<int:widget_id>", methods=["GET", "DELETE"])
    def widget(widget_id):
        """One widget."""
        return json_response({})

    @app.get("/api/widgets/catalogue")
    @describe("The public catalogue")
    def catalogue():
        return json_response({})

    @app.get("/elsewhere")
    def not_ours():
        return json_response({})

    return app


def test_paths_methods_and_parameters(tiny):
    spec = spec_for(tiny, "widgets")
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {
        "/api/widgets",
        "/api/widgets/{widget_id}",
        "/api/widgets/catalogue",
    }
    assert set(spec["paths"]["/api/widgets"]) == {"get", "post"}
    assert set(spec["paths"]["/api/widgets/{widget_id}"]) == {"get", "delete"}
    param = spec["paths"]["/api/widgets/{widget_id}"]["get"]["parameters"][0]
    assert param == {
        "name": "widget_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer"},
    }


def test_summaries_from_docstrings_and_describe(tiny):
    paths = spec_for(tiny, "widgets")["paths"]
    post = paths["/api/widgets"]["post"]
    assert post["summary"] == "Create a widget."
    assert post["description"] == "Names need not be unique."
    assert paths["/api/widgets/catalogue"]["get"]["summary"] == "The public catalogue"


def test_models_become_component_schemas_with_refs(tiny):
    spec = spec_for(tiny, "widgets")
    post = spec["paths"]["/api/widgets"]["post"]
    body_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    out_ref = post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    schemas = spec["components"]["schemas"]
    for ref in (body_ref, out_ref):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas
    assert "Part" in schemas  # nested $defs hoisted
    assert "$defs" not in str(schemas)
    assert schemas["WidgetCreate"]["additionalProperties"] is False
    assert post["responses"]["422"] == {"$ref": "#/components/responses/Unprocessable"}


def test_query_models_become_parameters(tiny):
    params = spec_for(tiny, "widgets")["paths"]["/api/widgets"]["get"]["parameters"]
    by_name = {p["name"]: p for p in params}
    assert set(by_name) == {"limit", "cursor", "colour"}
    assert all(p["in"] == "query" and p["required"] is False for p in params)
    assert by_name["colour"]["description"] == "Only widgets of this colour."


def test_errors_are_problem_json_and_security_is_bearer_except_public(tiny):
    spec = spec_for(tiny, "widgets")
    responses = spec["components"]["responses"]
    assert set(responses) >= {"Unauthorized", "Forbidden", "NotFound", "Unprocessable"}
    problem = responses["Unauthorized"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]
    get_one = spec["paths"]["/api/widgets/{widget_id}"]["get"]
    assert get_one["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}
    assert get_one["responses"]["404"] == {"$ref": "#/components/responses/NotFound"}
    assert "security" not in get_one
    public = spec["paths"]["/api/widgets/catalogue"]["get"]
    assert public["security"] == []
    assert "401" not in public["responses"]


def test_the_app_serves_its_document_publicly(tiny):
    client = tiny.test_client()
    r = client.get("/api/widgets/openapi.json")  # no token
    assert r.status_code == 200
    assert "/api/widgets" in r.get_json()["paths"]
    assert client.get("/api/widgets").status_code == 401  # the rest still needs a token


def test_spec_path():
    cat = manifests.catalog()
    assert spec_path(cat.deployments["audit-api"]) == "/api/audit/openapi.json"
    assert spec_path(cat.deployments["gateway"]) is None  # first route /health
    assert spec_path(cat.deployments["audit-ingest"]) is None


def test_component_names_are_valid_openapi_keys_and_pages_are_named_xoutpage() -> None:
    import re as _re

    from functions.production.api import app as production_app
    from shared.openapi import spec_for

    names = set(spec_for(production_app, "production")["components"]["schemas"])
    assert {"BatchOutPage", "TransitionOutPage"} <= names
    assert all(_re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names), sorted(names)


def test_every_operation_documents_the_statuses_the_platform_answers(tiny):
    paths = spec_for(tiny, "widgets")["paths"]
    post = set(paths["/api/widgets"]["post"]["responses"])
    # a JSON body: not JSON (400), too large (413), not application/json (415), invalid (422);
    # the gateway: rate limits (429), upstream or revocation store unreachable (502/503/504)
    assert post == {"201", "400", "401", "403", "413", "415", "422", "429", "502", "503", "504"}
    listing = set(paths["/api/widgets"]["get"]["responses"])
    assert {"400", "422"} <= listing  # a cursor this API did not make; an invalid query
    assert "415" not in listing
    public = set(paths["/api/widgets/catalogue"]["get"]["responses"])
    assert public == {"200", "429", "502", "503", "504"}
    responses = spec_for(tiny, "widgets")["components"]["responses"]
    assert {"BadRequest", "Conflict", "TooManyRequests", "ServiceUnavailable"} <= set(responses)


def test_responds_adds_statuses_and_path_parameter_schemas(tiny):
    from shared.openapi import responds

    @tiny.post("/api/widgets/<code>/rename")
    @responds(409, params={"code": {"pattern": "^[a-z]+$"}})
    @describe(request=WidgetCreate, response=WidgetOut)
    @require_roles("operator")
    def rename(code):
        return json_response({})

    op = spec_for(tiny, "widgets")["paths"]["/api/widgets/{code}/rename"]["post"]
    assert op["responses"]["409"] == {"$ref": "#/components/responses/Conflict"}
    assert op["parameters"][0]["schema"] == {"type": "string", "pattern": "^[a-z]+$"}
    assert op["summary"] == "POST /api/widgets/{code}/rename"  # describe() still read


def test_responds_documents_the_request_headers_a_view_reads(tiny):
    from shared.openapi import responds

    @tiny.post("/api/widgets/hook")
    @responds(400, headers={"X-Event": {"required": True, "schema": {"enum": ["push"]}}})
    def hook():
        return json_response({})

    op = spec_for(tiny, "widgets")["paths"]["/api/widgets/hook"]["post"]
    assert op["parameters"] == [
        {"required": True, "schema": {"enum": ["push"]}, "name": "X-Event", "in": "header"}
    ]
    assert op["responses"]["400"] == {"$ref": "#/components/responses/BadRequest"}


def test_maps_with_constrained_keys_are_closed(tiny):
    from typing import Annotated

    from pydantic import StringConstraints

    class Labels(ApiModel):
        labels: dict[Annotated[str, StringConstraints(pattern=r"^[a-z]+$")], str] = {}

    @tiny.put("/api/widgets/<int:widget_id>/labels")
    @describe(request=Labels)
    def labels(widget_id):
        return json_response({})

    schema = spec_for(tiny, "widgets")["components"]["schemas"]["Labels"]["properties"]["labels"]
    # pydantic checks every key against the pattern: a key that does not match is refused
    assert schema["patternProperties"] == {"^[a-z]+$": {"type": "string"}}
    assert schema["additionalProperties"] is False
