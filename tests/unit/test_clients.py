"""shared.clients.call refuses a service call the caller's manifest does not declare (`calls`),
so a missing declaration fails locally and in tests, not first in the cloud. No I/O: with no
SERVICE_URLS every permitted call stops at the URL lookup, before any request is sent."""

from __future__ import annotations

import pytest

from shared.clients import ServiceCallError, call
from shared.config import settings


def _as(monkeypatch: pytest.MonkeyPatch, deployment: str | None) -> None:
    for name in ("SWITCHYARD_DEPLOYMENT", "K_SERVICE", "SERVICE_URLS"):
        monkeypatch.delenv(name, raising=False)
    if deployment is not None:
        monkeypatch.setenv("SWITCHYARD_DEPLOYMENT", deployment)
    settings.cache_clear()


def test_a_call_the_manifest_does_not_declare_is_refused(monkeypatch):
    _as(monkeypatch, "users-api")  # calls: [auth-api]
    with pytest.raises(ServiceCallError) as err:
        call("GET", "/api/audit/events")
    message = str(err.value)
    assert "users-api may not call audit-api" in message
    assert "deployments.users-api.calls of functions/users/function.yaml" in message


def test_a_deployment_without_calls_may_call_nobody(monkeypatch):
    _as(monkeypatch, "maintenance-api")
    with pytest.raises(ServiceCallError, match="maintenance-api may not call auth-api"):
        call("POST", "/api/auth/login", json={})


@pytest.mark.parametrize("deployment", ["users-api", "console-web"])
def test_a_declared_call_goes_ahead(monkeypatch, deployment):
    _as(monkeypatch, deployment)
    # Past the check: it fails only because this test gives no SERVICE_URLS.
    with pytest.raises(ServiceCallError, match="no URL for deployment 'auth-api'"):
        call("POST", "/api/auth/login", json={})


@pytest.mark.parametrize("deployment", [None, "some-tool"])
def test_tools_and_unknown_deployments_are_not_checked(monkeypatch, deployment):
    _as(monkeypatch, deployment)
    with pytest.raises(ServiceCallError, match="no URL for deployment 'audit-api'"):
        call("GET", "/api/audit/events")
