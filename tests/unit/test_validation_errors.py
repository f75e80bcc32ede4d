"""Field errors of a 422: a field that may be absent or a value (never null) is named as the
field, not as the member of its union pydantic tried (`title.constrained-str`), and the
`none` member's error is not reported (the console marks the field by this name)."""

from typing import Annotated

import pytest
from pydantic import BaseModel, StringConstraints, ValidationError
from pydantic.json_schema import SkipJsonSchema

from shared.http._problem import validation_errors


class Update(BaseModel):
    title: Annotated[str, StringConstraints(min_length=1)] | SkipJsonSchema[None] = None
    tags: list[Annotated[str, StringConstraints(max_length=3)]] = []


def errors(body):
    with pytest.raises(ValidationError) as info:
        Update.model_validate(body)
    return [(e["field"], e["type"]) for e in validation_errors(info.value)]


def test_a_union_field_is_named_as_itself():
    assert errors({"title": ""}) == [("title", "string_too_short")]


def test_list_items_keep_their_index():
    assert errors({"tags": ["abcd"]}) == [("tags.0", "string_too_long")]
