"""Automation's run-length limit as the API states it: a job or step timeout above 540 s is
refused with a message that says why (one run executes inside one Pub/Sub push request,
docs/decisions/0022 and 0037), and the OpenAPI schema still shows the maximum."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from functions.automation import api, model

STEP = {"kind": "command", "name": "s", "command": "true"}


def job(**kw):
    return api.JobIn.model_validate({"name": "j", "steps": [STEP], **kw})


def test_the_limit_itself_is_accepted():
    j = job(timeout_s=model.MAX_RUN_TIMEOUT_S, steps=[{**STEP, "timeout_s": 540}])
    assert j.timeout_s == 540 and j.steps[0].timeout_s == 540


@pytest.mark.parametrize(
    "body",
    [
        {"timeout_s": 541},
        {"steps": [{**STEP, "timeout_s": 600}]},
        {"steps": [{"kind": "http", "name": "h", "url": "https://x.example/", "timeout_s": 9999}]},
    ],
)
def test_longer_runs_are_refused_with_the_reason(body):
    with pytest.raises(ValidationError) as err:
        job(**body)
    (e,) = err.value.errors()
    assert "one Pub/Sub push request" in e["msg"] and "540" in e["msg"]


def test_zero_is_still_refused():
    with pytest.raises(ValidationError):
        job(timeout_s=0)


def test_the_schema_shows_the_maximum():
    schema = api.JobIn.model_json_schema()
    prop = schema["properties"]["timeout_s"]
    assert prop["maximum"] == 540 and prop["minimum"] == 1
    assert "540" in prop["description"]
    step = schema["$defs"]["CommandStepIn"]["properties"]["timeout_s"]
    assert step["maximum"] == 540
