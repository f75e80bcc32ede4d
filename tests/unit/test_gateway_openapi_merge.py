"""Gateway: merging every context's OpenAPI document into one."""

from functions.gateway.aggregate import merge


def doc(paths, schemas=None):
    return {
        "openapi": "3.1.0",
        "info": {"title": "x", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas or {}},
        "tags": [{"name": "x"}],
    }


def op(ref=None, **extra):
    out = {"responses": {"200": {"description": "ok"}}, **extra}
    if ref:
        out["responses"]["200"]["content"] = {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}
        }
    return out


def test_paths_and_schemas_are_united():
    merged = merge(
        [
            (
                "users",
                doc(
                    {"/api/users": {"get": op("UserOut")}},
                    {"UserOut": {"type": "object", "title": "UserOut"}},
                ),
            ),
            (
                "audit",
                doc({"/api/audit/events": {"get": op("Page")}}, {"Page": {"type": "object"}}),
            ),
        ]
    )
    assert merged["openapi"] == "3.1.0"
    assert set(merged["paths"]) == {"/api/users", "/api/audit/events"}
    assert {"UserOut", "Page", "Problem"} <= set(merged["components"]["schemas"])
    assert merged["components"]["securitySchemes"]["bearerAuth"]["type"] == "http"
    assert merged["security"] == [{"bearerAuth": []}]


def test_a_schema_name_defined_differently_is_renamed_with_its_refs():
    merged = merge(
        [
            ("users", doc({"/api/users": {"get": op("Item")}}, {"Item": {"type": "object"}})),
            ("audit", doc({"/api/audit": {"get": op("Item")}}, {"Item": {"type": "string"}})),
        ]
    )
    schemas = merged["components"]["schemas"]
    assert schemas["Item"] == {"type": "object"}
    assert schemas["audit_Item"] == {"type": "string"}
    ref = merged["paths"]["/api/audit"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]["$ref"]
    assert ref == "#/components/schemas/audit_Item"


def test_identical_schemas_are_shared_not_renamed():
    problem = {"type": "object", "title": "Same"}
    merged = merge([("a", doc({}, {"Same": problem})), ("b", doc({}, {"Same": problem}))])
    assert [n for n in merged["components"]["schemas"] if n.endswith("Same")] == ["Same"]


def test_public_routes_have_no_security_requirement():
    merged = merge(
        [
            (
                "auth",
                doc(
                    {
                        "/api/auth/login": {"post": op()},
                        "/api/auth/logout": {"post": op()},
                    }
                ),
            )
        ]
    )
    assert merged["paths"]["/api/auth/login"]["post"]["security"] == []
    assert "security" not in merged["paths"]["/api/auth/logout"]["post"]


def test_a_schema_that_refers_to_a_renamed_one_is_renamed_too():
    # two identical lists over two different items: the second list must follow its item
    def listed(required):
        return {
            "ScheduleOut": {"type": "object", "required": required},
            "ScheduleList": {
                "type": "object",
                "properties": {
                    "items": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ScheduleOut"},
                    }
                },
            },
        }

    merged = merge(
        [
            (
                "automation",
                doc({"/api/schedules": {"get": op("ScheduleList")}}, listed(["job_id"])),
            ),
            (
                "maintenance",
                doc({"/api/pm-schedules": {"get": op("ScheduleList")}}, listed(["asset_id"])),
            ),
        ]
    )
    schemas = merged["components"]["schemas"]
    ref = merged["paths"]["/api/pm-schedules"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]["$ref"]
    assert ref == "#/components/schemas/maintenance_ScheduleList"
    item = schemas["maintenance_ScheduleList"]["properties"]["items"]["items"]["$ref"]
    assert schemas[item.rsplit("/", 1)[1]]["required"] == ["asset_id"]
    automation = merged["paths"]["/api/schedules"]["get"]["responses"]["200"]["content"]
    assert automation["application/json"]["schema"]["$ref"] == "#/components/schemas/ScheduleList"
