"""source-webhook's memory sizing (decision 0048): the in-flight body budget fits the
manifest's memory, and the budget admits, queues and refuses as it says. No I/O."""

from __future__ import annotations

import threading

import pytest

from functions.source import model, webhook
from shared.manifests import catalog

MIB = 1024 * 1024


def _mib(memory: str) -> float:
    number, unit = float(memory[:-2]), memory[-2:]
    return number * {"Mi": 1, "Gi": 1024}[unit]


def test_the_budget_fits_the_deployment_memory() -> None:
    runtime = catalog().deployments["source-webhook"].runtime
    usable = _mib(runtime.memory) * (1 - webhook.HEADROOM) - webhook.BASELINE_MIB
    peak = webhook.BODY_COST * webhook.IN_FLIGHT_BODY_BYTES / MIB
    assert peak <= usable, f"{peak:.0f} MiB of bodies at the peak, {usable:.0f} MiB usable"
    # at least one delivery at GitHub's cap is always admitted
    assert webhook.IN_FLIGHT_BODY_BYTES >= model.MAX_PAYLOAD_BYTES


def test_a_full_budget_refuses_with_retry_after() -> None:
    budget = webhook.BodyBudget(100)
    with budget.hold(80, 0):
        with pytest.raises(model.IntakeBusy) as refused, budget.hold(30, 0):
            pass
        with budget.hold(20, 0):  # what fits is admitted meanwhile
            assert budget.used == 100
    assert budget.used == 0
    assert refused.value.status == 503
    assert refused.value.headers == {"Retry-After": str(webhook.RETRY_AFTER_S)}


def test_a_body_larger_than_the_budget_waits_for_an_empty_budget() -> None:
    budget = webhook.BodyBudget(100)
    with budget.hold(500, 0):
        assert budget.used == 100  # clamped: it needs the whole budget, not more


def test_a_waiting_request_is_admitted_when_another_finishes() -> None:
    budget = webhook.BodyBudget(100)
    admitted = threading.Event()
    first = budget.hold(70, 0)
    first.__enter__()

    def second() -> None:
        with budget.hold(70, 60):
            admitted.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not admitted.is_set()
    first.__exit__(None, None, None)
    assert admitted.wait(60)
    thread.join(60)
    assert budget.used == 0
