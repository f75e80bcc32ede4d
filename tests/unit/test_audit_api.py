"""Audit API checks that need no Firestore: roles, query validation, storable payloads."""

import pytest

from functions.audit.store import storable
from shared.auth import issue_access_token
from shared.http import encode_cursor


@pytest.fixture()
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_LOCAL_DIR", str(tmp_path))
    from shared import auth
    from shared.config import settings

    settings.cache_clear()
    auth.reset_keys()
    from functions.audit.api import app

    yield app.test_client()
    auth.reset_keys()


def bearer(*roles):
    token, _ = issue_access_token("u-1", list(roles))
    return {"Authorization": f"Bearer {token}"}


def test_viewers_and_operators_are_refused(client):
    for role in ("viewer", "operator"):
        r = client.get("/api/audit/events", headers=bearer(role))
        assert r.status_code == 403
        assert r.mimetype == "application/problem+json"
        assert client.get("/api/audit/events/abc", headers=bearer(role)).status_code == 403


def test_a_token_is_required(client):
    assert client.get("/api/audit/events").status_code == 401


@pytest.mark.parametrize(
    "qs, field",
    [
        ("event_type=a.b&actor=u1", "(body)"),
        ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "(body)"),
        ("since=yesterday", "since"),
        ("since=2026-01-01T00:00:00", "since"),  # no time zone: ambiguous
        ("colour=red", "colour"),
        ("limit=0", "limit"),
    ],
)
def test_invalid_queries_are_422_with_field_errors(client, qs, field):
    r = client.get(f"/api/audit/events?{qs}", headers=bearer("manager"))
    assert r.status_code == 422, r.get_json()
    assert any(e["field"] == field for e in r.get_json()["errors"])


def test_a_foreign_cursor_is_400(client):
    cursor = encode_cursor(["not-a-time", "id"])
    r = client.get(f"/api/audit/events?cursor={cursor}", headers=bearer("admin"))
    assert r.status_code == 400
    assert r.get_json()["errors"][0]["field"] == "cursor"


def test_storable_payloads():
    assert storable({"a": [1, 2, {"b": None}], "c": 1.5, "d": True})
    assert not storable({"a": [[1, 2]]})  # Firestore has no arrays of arrays
    assert not storable({"": 1})
    assert not storable({"big": 2**64})
    assert not storable({"x": object()})
