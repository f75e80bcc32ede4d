"""The OpenAPI document is the contract: a property-based conformance fuzzer over it.

Schemathesis reads the merged document exactly as the gateway serves it (`/api/openapi.json`)
and calls every operation through the gateway of the session's local stack with a real admin
bearer token. For each operation it generates schema-valid requests (positive) and
schema-invalid ones (negative) and checks every answer:

- `not_a_server_error`: no 5xx;
- `status_code_conformance`: the status is one the operation documents;
- `content_type_conformance`: the Content-Type is the one documented for that status;
- `response_schema_conformance`: the body matches the documented schema;
- `positive_data_acceptance`: a schema-valid request is not refused as invalid (400/422);
- `negative_data_rejection`: a schema-invalid request is refused (4xx).

Bounded: a few examples per operation and mode, derandomized (the same cases on every run),
no shrinking, no coverage or stateful phase (decision 0044). Three lists, each entry with its
reason: `NOT_FUZZED` (unsafe side effects, or not request/response), `SEMANTIC` (a rule JSON
Schema cannot state: only the positive-acceptance check is off) and `PENDING_FIXES` (a known
mismatch in code another change is editing right now).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.generation.feedback import NO_FEEDBACK
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.support import ADMIN, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# Examples per operation and phase. Small: this is a contract check in `make test`, not a
# fuzzing campaign (which would run the same test with a larger number and a random seed).
MAX_EXAMPLES = 6

# (method, path) -> why it is not fuzzed at all. As few as possible: a side effect the fuzzer's
# own admin session or the rest of the test session cannot survive, or an answer that is not
# request/response.
NOT_FUZZED: dict[tuple[str, str], str] = {
    ("POST", "/api/auth/logout"): "revokes the presented access token: the fuzzer's own",
    ("POST", "/api/auth/password"): (
        "the admin's own password; wrong guesses count against the admin's login from this IP"
    ),
    ("POST", "/api/ops/database/cleanup"): (
        "applies the retention rules to the whole session's data (`dry_run: false`)"
    ),
    ("POST", "/api/source/monitor/run-once"): (
        "polls GitHub's public API for every registered repository (the stack has no fake)"
    ),
    ("POST", "/api/source/monitor/start"): (
        "resumes the monitor's schedule: the local scheduler then polls GitHub's public API"
    ),
    **{
        ("GET", f"/api/realtime/{stream}"): (
            "an SSE stream, open until its maximum duration (tests/e2e/test_realtime.py)"
        )
        for stream in ("agents", "dashboard", "map", "packages/{package_id}")
    },
}

# (method, path) -> the rule a schema-valid request can still break: across fields, against
# stored state or the clock, which JSON Schema cannot state. Every check runs on these except
# `positive_data_acceptance` (their 422 names the rule).
SEMANTIC: dict[tuple[str, str], str] = {
    ("POST", "/api/agents/analyze/code"): "`diff` must parse as a unified diff (hunk counts)",
    ("POST", "/api/agents/analyze/commit"): (
        "`repository` + `sha` must name a recorded commit (422 names `sha`)"
    ),
    ("POST", "/api/agents/investigations"): (
        "each stop's window_start <= window_end; `package_id` must name a package the agents "
        "know (422 names it)"
    ),
    ("GET", "/api/agents/interactions"): "filter by repository or by package_id, not both",
    ("GET", "/api/audit/events"): "at most one of event_type, actor, source (Firestore indexes)",
    ("POST", "/api/jobs"): (
        "step timeout <= job timeout, unique parameter names, placeholders name parameters"
    ),
    ("PUT", "/api/jobs/{job_id}"): (
        "step timeout <= job timeout, unique parameter names, placeholders name parameters"
    ),
    ("GET", "/api/batches/metrics"): "`from` <= `to`, at most 366 days apart",
    ("GET", "/api/logistics/stats"): "`from` <= `to`, at most 366 days apart",
    ("GET", "/api/commits/statistics"): "`since` before `until`",
    ("GET", "/api/commits"): "`since` before `until`",
    ("GET", "/api/repositories/{owner}/{name}/commits"): "`since` before `until`",
    ("POST", "/api/packages/{package_id}/events"): (
        "`occurred_at` at most 10 minutes ahead of the server's clock"
    ),
    ("POST", "/api/assets"): "`parent_id` must name a live asset (422 names it)",
    ("POST", "/api/work-orders"): (
        "`asset_id` must name a live asset, `assignee_id` an active hands-on user (422)"
    ),
    ("POST", "/api/pm-schedules"): (
        "`asset_id` must name a live asset; `cron` must be one croniter takes (422)"
    ),
    ("POST", "/api/targets"): "`credential_id` must name a stored credential (422 names it)",
    ("POST", "/api/schedules"): "`job_id` must name a stored job (422 names it)",
}

# (method, path) -> the mismatch the fuzzer shows, in code another change owns right now (the
# fix is proposed to the lead). Remove an entry once its fix is in: the test then covers it.
PENDING_FIXES: dict[tuple[str, str], str] = {}

# schemathesis' default statuses of a refused invalid request.
REFUSED = [400, 401, 403, 404, 405, 406, 409, 415, 422, 428, 429, "5xx"]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]


def _login(base: str) -> str | None:
    resp = requests.post(
        base + "/api/auth/login",
        json={"email": ADMIN[0], "password": ADMIN[1]},
        timeout=30,
    )
    return resp.json()["access_token"] if resp.status_code == 200 else None


@pytest.fixture(scope="module")
def contract(stack) -> Any:
    base = stack.gateway_url
    token = wait_for(lambda: _login(base), timeout=30)

    def merged() -> dict[str, Any] | None:
        resp = requests.get(base + "/api/openapi.json", timeout=30)
        doc = resp.json() if resp.status_code == 200 else None
        # A deployment that did not answer is left out of the merge (and named): wait for all.
        return doc if doc and "x-switchyard-missing" not in doc else None

    doc = wait_for(merged, timeout=90)
    config = SchemathesisConfig.from_dict(
        {
            "base-url": base,
            "headers": {"Authorization": f"Bearer {token}"},
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "no-shrink": True,
                "allow-x00": False,
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": False},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "checks": {
                # A body over the size limit is refused as well (413, before any parsing).
                "negative_data_rejection": {"expected-statuses": [*REFUSED, 413]},
            },
            "request-timeout": 30,
        }
    )
    return schemathesis.openapi.from_dict(doc, config=config)


def _operations(schema: Any) -> list[Any]:
    ops = []
    for result in schema.get_all_operations():
        operation = result.ok()  # an operation the loader cannot read is itself a failure
        if (operation.method.upper(), operation.path) not in {**NOT_FUZZED, **PENDING_FIXES}:
            ops.append(operation)
    return ops


def _without_cursor(case: Any) -> Any:
    if isinstance(case.query, dict):
        case.query.pop("cursor", None)
    return case


def _fuzz(operation: Any, mode: GenerationMode, session: requests.Session) -> str | None:
    """The first failing case of `operation` in `mode` (its checks and a curl line), or None."""

    checks = CHECKS
    if (operation.method.upper(), operation.path) in SEMANTIC:
        checks = [c for c in CHECKS if c is not positive_data_acceptance]
    # Generated from the document alone (no values learnt from earlier answers): the same
    # cases on every run, whatever the session's data.
    strategy = operation.as_strategy(generation_mode=mode, feedback=NO_FEEDBACK)
    if mode is GenerationMode.POSITIVE:
        # A cursor is issued by the API (the last key of a page, encoded): one the fuzzer makes
        # up is as unknown as a made-up id, and answered 400 (documented). A valid request
        # carries no cursor or one from `next_cursor`, which only a stateful run could reuse.
        strategy = strategy.map(_without_cursor)

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    def run(case: Any) -> None:
        case.call_and_validate(session=session, checks=checks)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE:
            return None  # nothing to make invalid: no parameters, or unconstrained strings only
        return f"{operation.method.upper()} {operation.path} [{mode.value}]: no valid request"
    except (FailureGroup, Exception) as exc:  # the checks' failures, or a generation error
        return f"{operation.method.upper()} {operation.path} [{mode.value}]: {exc}"
    return None


def test_every_operation_keeps_its_contract(contract) -> None:
    session = requests.Session()
    failures = []
    documented = sum(len(item) for item in contract.raw_schema["paths"].values())
    assert documented > 100  # the whole merged document, not a partial one
    operations = _operations(contract)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = _fuzz(operation, mode, session)
            if failure:
                failures.append(failure)
    assert not failures, f"{len(failures)} contract mismatches:\n\n" + "\n\n".join(failures)


def test_the_skipped_operations_exist(contract) -> None:
    """An entry of NOT_FUZZED, SEMANTIC or PENDING_FIXES that names no operation is stale."""
    full = contract.raw_schema["paths"]
    documented = {(m.upper(), p) for p, item in full.items() for m in item}
    for listed in (NOT_FUZZED, SEMANTIC, PENDING_FIXES):
        assert set(listed) - documented == set()
