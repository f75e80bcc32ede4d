"""OUTBOX_WAIT_S: on Cloud Run a request waits for its own events' publish (CPU is throttled
once the response is sent); elsewhere it does not, unless set."""

from __future__ import annotations

import pytest

from shared.config import CLOUD_OUTBOX_WAIT_S, settings


@pytest.fixture()
def env(monkeypatch):
    for name in ("K_SERVICE", "OUTBOX_WAIT_S", "PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings.cache_clear()
    yield monkeypatch
    settings.cache_clear()


def test_outside_cloud_run_the_request_does_not_wait(env):
    env.setenv("SWITCHYARD_ENV", "local")
    env.setenv("K_SERVICE", "users-api")  # the local stack sets it too: still local
    assert settings().outbox_wait_s == 0


def test_on_cloud_run_the_request_waits_for_its_events(env):
    env.setenv("SWITCHYARD_ENV", "prod")
    env.setenv("K_SERVICE", "users-api")
    assert settings().in_cloud
    assert settings().outbox_wait_s == CLOUD_OUTBOX_WAIT_S > 0


def test_an_explicit_value_wins_in_the_cloud(env):
    env.setenv("SWITCHYARD_ENV", "prod")
    env.setenv("K_SERVICE", "users-api")
    env.setenv("OUTBOX_WAIT_S", "0")
    assert settings().outbox_wait_s == 0
