"""realtime end to end: a package is created and scanned through the gateway, and its live
stream (opened through the gateway with a ticket, as a browser's EventSource would) shows the
scan and the status move; the map stream (bearer) shows the new position. Reconnecting with
Last-Event-ID replays what was missed."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from tests.e2e.support import Api, assert_problem

pytestmark = pytest.mark.e2e


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def sse(resp: requests.Response) -> Iterator[dict[str, str]]:
    event: dict[str, str] = {}
    for line in resp.iter_lines(decode_unicode=True):
        if line == "":
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


def until(events: Iterator[dict[str, str]], match, timeout: float = 60.0) -> dict[str, str]:
    """The first event `match` accepts; the stream's heartbeats keep each read short."""
    deadline = time.monotonic() + timeout
    for e in events:
        if match(e):
            return e
        assert time.monotonic() < deadline, "the event did not arrive"
    raise AssertionError("the stream ended first")


def new_package(api: Api, token: str) -> dict:
    resp = api.req(
        "POST",
        "/api/packages",
        token,
        json={
            "sender": "Acme GmbH",
            "recipient": "Realtime E2E",
            "origin": {"address": "A 1", "lat": 52.52, "lon": 13.40, "region": "DE-BE"},
            "destination": {"address": "B 1", "lat": 48.86, "lon": 2.35, "region": "FR-IDF"},
            "service_level": "express",
            "weight_kg": 1.0,
        },
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_a_scan_reaches_the_package_and_map_streams_through_the_gateway(api, admin):
    pkg = new_package(api, admin)
    pid = pkg["id"]
    ticket = api.req(
        "POST", "/api/realtime/tickets", admin, json={"stream": "package", "package_id": pid}
    )
    assert ticket.status_code == 201, ticket.text
    t = ticket.json()
    assert t["url"] == f"/api/realtime/packages/{pid}"
    stream_url = f"{api.base}{t['url']}"
    map_url = f"{api.base}/api/realtime/map"
    with (
        requests.get(stream_url, params={"ticket": t["ticket"]}, stream=True, timeout=30) as resp,
        requests.get(
            map_url, headers={"Authorization": f"Bearer {admin}"}, stream=True, timeout=30
        ) as map_resp,
    ):
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events, map_events = sse(resp), sse(map_resp)
        until(events, lambda e: e.get("event") == "snapshot")
        until(map_events, lambda e: e.get("event") == "snapshot")
        scan = api.req(
            "POST",
            f"/api/packages/{pid}/events",
            admin,
            json={
                "kind": "pickup",
                "location": "Berlin hub",
                "lat": 52.5,
                "lon": 13.39,
                "occurred_at": iso(datetime.now(UTC)),
                "idempotency_key": f"rt-{uuid.uuid4().hex}",
            },
        )
        assert scan.status_code == 201, scan.text
        kinds: dict[str, dict[str, str]] = {}  # two topics: scan and status in either order
        until(
            events,
            lambda e: (
                bool(kinds.setdefault(e.get("event", ""), e))
                and len({"scan", "status"} & kinds.keys()) == 2
            ),
        )
        assert json.loads(kinds["scan"]["data"])["location"] == "Berlin hub"
        assert json.loads(kinds["status"]["data"])["new"] == "picked_up"
        first, second = sorted((kinds["scan"], kinds["status"]), key=lambda e: int(e["id"]))
        position = until(
            map_events,
            lambda e: e.get("event") == "position" and json.loads(e["data"])["package_id"] == pid,
        )
        assert json.loads(position["data"])["lat"] == 52.5
    # the browser reconnects after the first of them: what followed is replayed, in order
    with requests.get(
        stream_url,
        params={"ticket": t["ticket"]},
        headers={"Last-Event-ID": first["id"]},
        stream=True,
        timeout=30,
    ) as again:
        replayed = []
        until(sse(again), lambda e: bool(replayed.append(e)) or e.get("id") == second["id"])
        ids = [int(e["id"]) for e in replayed if "id" in e]
        assert ids == sorted(ids) and ids[0] > int(first["id"])  # only what came after
        assert replayed[-1]["event"] == second["event"]


def test_streams_refuse_a_missing_or_forged_ticket_through_the_gateway(api):
    r = api.http.get(f"{api.base}/api/realtime/dashboard", timeout=10)
    assert_problem(r, 401)
    r = api.http.get(f"{api.base}/api/realtime/dashboard", params={"ticket": "forged"}, timeout=10)
    assert_problem(r, 401)
    r = api.http.post(f"{api.base}/api/realtime/tickets", json={"stream": "map"}, timeout=10)
    assert_problem(r, 401)  # the ticket route itself needs the JWT (the gateway checks it)
