"""Automation's OpenAPI states the bounds validation enforces, partial updates included.

A `Field(max_length=...)` on `X | SkipJsonSchema[None]` came out of pydantic as `maxLength: 50`
on an array (`TargetUpdate.tags`) and on an object (`ScheduleUpdate.parameters`): a keyword of
strings, which JSON Schema ignores there, so the document promised no bound at all. The bounds
now sit on the collection types (`api.Tags`, `api.Parameters`). Read from the generated
document itself (`shared.openapi.spec_for`), as the gateway serves it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from functions.automation import api
from shared.openapi import spec_for

# JSON Schema keywords that only apply to one type: on a node of another type they are ignored.
ONLY_FOR = {
    "string": {"maxLength", "minLength", "pattern"},
    "array": {"maxItems", "minItems", "uniqueItems", "items", "prefixItems"},
    "object": {"maxProperties", "minProperties", "properties", "patternProperties"},
}


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    return spec_for(api.app, "automation")["components"]["schemas"]


def misplaced(node: Any, path: str = "") -> list[str]:
    """Every keyword of one type on a schema node that declares another type."""
    found: list[str] = []
    if isinstance(node, dict):
        kind = node.get("type")
        if isinstance(kind, str):
            for owner, keywords in ONLY_FOR.items():
                if owner != kind:
                    found += [f"{path}: {k} on {kind}" for k in sorted(keywords & node.keys())]
        for key, value in node.items():
            found += misplaced(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += misplaced(value, f"{path}/{i}")
    return found


def test_no_bound_of_one_type_sits_on_another(schemas):
    assert misplaced(schemas) == []


@pytest.mark.parametrize("model", ["TargetCreate", "TargetUpdate"])
def test_tags_are_at_most_50_items(schemas, model):
    tags = schemas[model]["properties"]["tags"]
    assert tags["type"] == "array" and tags["maxItems"] == 50
    assert "maxLength" not in tags


@pytest.mark.parametrize("model", ["ScheduleIn", "ScheduleUpdate", "RunCreate"])
def test_parameters_are_at_most_50_named_values(schemas, model):
    params = schemas[model]["properties"]["parameters"]
    assert params["type"] == "object" and params["maxProperties"] == 50
    assert "maxLength" not in params
    # names other than the parameter pattern are refused, so the schema refuses them too
    assert params["additionalProperties"] is False
    (pattern,) = params["patternProperties"]
    assert pattern == api.model.PARAM.pattern


def test_the_update_models_still_leave_null_out(schemas):
    for model, field in (("TargetUpdate", "tags"), ("ScheduleUpdate", "parameters")):
        prop = schemas[model]["properties"][field]
        assert "anyOf" not in prop and prop["type"] != "null"


TARGET = {"name": "t", "kind": "http", "host": "h.example"}


@pytest.mark.parametrize(
    ("model", "base"),
    [(api.TargetCreate, TARGET), (api.TargetUpdate, {})],
)
def test_validation_takes_50_tags_and_refuses_51(model, base):
    tags = [f"t{i}" for i in range(51)]
    assert len(model.model_validate({**base, "tags": tags[:50]}).tags) == 50
    with pytest.raises(ValidationError) as err:
        model.model_validate({**base, "tags": tags})
    assert "too_long" in [e["type"] for e in err.value.errors()]  # (+ the null member's)


@pytest.mark.parametrize(
    ("model", "base"),
    [
        (api.ScheduleIn, {"job_id": "7b0d5b6e-7c1a-4a37-9d53-2c8f6f1f6d10", "cron": "* * * * *"}),
        (api.ScheduleUpdate, {}),
        (api.RunCreate, {}),
    ],
)
def test_validation_takes_50_parameters_and_refuses_51_or_a_bad_name(model, base):
    params = {f"P{i}": "v" for i in range(51)}
    ok = dict(list(params.items())[:50])
    assert len(model.model_validate({**base, "parameters": ok}).parameters) == 50
    for bad in (params, {"not a name": "v"}):
        with pytest.raises(ValidationError):
            model.model_validate({**base, "parameters": bad})
