"""Event and schedule deployments check who calls them and where an event comes from (issue 12,
item 4; docs/decisions/0032): in the cloud the push / scheduler OIDC token's email must be the
expected service account, and everywhere an event must match the topic it was pushed from; its
`source` must be a declared publisher. Refusals come before any Firestore or SQL work, so these
run against the real entry points with no emulator."""

from __future__ import annotations

import base64
import json
import uuid

import functions_framework
import pytest

from shared import identity
from shared.config import settings
from shared.errors import BadRequest, Forbidden
from tests.integration.support import configure, reset_platform
from tests.integration.test_auth_security import FakeGoogleCerts


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    configure(monkeypatch, SWITCHYARD_LOCAL_DIR=str(tmp_path))
    yield
    reset_platform()


@pytest.fixture()
def google():
    fake = FakeGoogleCerts()
    identity.forget_certs()
    yield fake
    identity.forget_certs()
    fake.close()


def _in_the_cloud(monkeypatch, google, deployment):
    for name in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SWITCHYARD_ENV", "prod")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "acme-prod")
    monkeypatch.setenv("GOOGLE_CERTS_URL", google.url)
    monkeypatch.setenv("SWITCHYARD_DEPLOYMENT", deployment)
    settings.cache_clear()


def _push(event_type="user.created", source="users-api"):
    attrs = {"event_type": event_type, "event_id": uuid.uuid4().hex, "source": source}
    data = base64.b64encode(json.dumps({"id": "x"}).encode()).decode()
    return {"message": {"attributes": attrs, "data": data, "messageId": "1"}, "subscription": "s"}


def _consumer():
    return functions_framework.create_app(
        target="on_user_event", source="functions/auth/main.py", signature_type="http"
    ).test_client()


def _scheduled():
    return functions_framework.create_app(
        target="cleanup", source="functions/auth/main.py", signature_type="http"
    ).test_client()


def _bearer(google, account):
    return {"Authorization": f"Bearer {google.token(identity.service_account(account))}"}


TOPIC = "/projects/acme-prod/topics/user.created"


def test_a_push_needs_the_push_invokers_identity_in_the_cloud(monkeypatch, google):
    _in_the_cloud(monkeypatch, google, "auth-on-user-event")
    ff = _consumer()
    assert ff.post(TOPIC, json=_push()).status_code == 401
    resp = ff.post(TOPIC, json=_push(), headers=_bearer(google, "gateway"))
    assert resp.status_code == 403, resp.get_data(as_text=True)
    resp = ff.post(TOPIC, json=_push(), headers=_bearer(google, identity.SCHEDULER_INVOKER))
    assert resp.status_code == 403
    # health stays open: it is how the platform's health view probes event deployments
    assert ff.get("/health").status_code in (200, 503)


def test_a_pushed_event_must_match_its_topic_and_publisher(monkeypatch, google):
    _in_the_cloud(monkeypatch, google, "auth-on-user-event")
    ff = _consumer()
    push = _bearer(google, identity.PUSH_INVOKER)
    other_topic = "/projects/acme-prod/topics/user.deleted"
    resp = ff.post(other_topic, json=_push("user.created"), headers=push)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    resp = ff.post(TOPIC, json=_push(source="gateway"), headers=push)
    assert resp.status_code == 403, resp.get_data(as_text=True)
    assert "publisher" in resp.get_json()["detail"]
    # a topic this deployment does not subscribe to
    wo = "/projects/acme-prod/topics/workorder.completed"
    resp = ff.post(wo, json=_push("workorder.completed", "maintenance-api"), headers=push)
    assert resp.status_code == 400


def test_a_scheduled_job_needs_the_schedulers_identity_in_the_cloud(monkeypatch, google):
    _in_the_cloud(monkeypatch, google, "auth-cleanup")
    ff = _scheduled()
    assert ff.post("/").status_code == 401
    assert ff.post("/", headers=_bearer(google, identity.PUSH_INVOKER)).status_code == 403
    assert ff.post("/", headers=_bearer(google, "auth-api")).status_code == 403


def test_origin_rules():
    identity.check_event_origin("user.created", "users-api", "user.created")
    identity.check_event_origin("user.created", "anything", None)  # locally: tests post to /
    with pytest.raises(BadRequest):  # everywhere: the push path names another topic
        identity.check_event_origin("user.created", "users-api", "user.deleted")
    assert identity.topic_of("/projects/p/topics/user.created") == "user.created"
    assert identity.topic_of("/", "//pubsub.googleapis.com/projects/p/topics/a.b") == "a.b"
    assert identity.topic_of("/") is None


def test_origin_rules_outside_local(monkeypatch, google):
    _in_the_cloud(monkeypatch, google, "auth-on-user-event")
    identity.check_event_origin("user.created", "users-api", "user.created")
    with pytest.raises(BadRequest):
        identity.check_event_origin("user.created", "users-api", None)
    with pytest.raises(Forbidden):
        identity.check_event_origin("user.created", "ops-api", "user.created")
    with pytest.raises(BadRequest):
        identity.check_event_origin("batch.created", "production-api", "batch.created")


def test_a_pushed_event_from_another_topic_is_refused_locally_too():
    ff = _consumer()
    resp = ff.post("/projects/p/topics/user.deleted", json=_push("user.created"))
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"


def test_account_names_are_the_ones_infra_creates():
    """shared.identity repeats the naming rule of Terraform's manifests module and
    infra/deploy (docs/decisions/0032): the three must agree for every deployment."""
    from infra.deploy import deploy
    from shared.manifests import catalog

    for name in catalog().deployments:
        assert identity.account_id(name) == deploy.account_id(name), name
    assert (identity.PUSH_INVOKER, identity.SCHEDULER_INVOKER) == (
        deploy.PUSH_INVOKER,
        deploy.SCHEDULER_INVOKER,
    )
