"""What one event changes in the live documents and feeds, and the SSE wire format.

Plain Python: `plan(...)` turns an event (type + payload + its envelope facts) into a `Plan`:
the feed items to append (one per stream the event concerns), the package's live document,
its map position, the dashboard counter deltas and the agent activity entry. Applying a plan
(store.py) is what makes it idempotent; the plan itself is a pure function of the event.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from shared.errors import NotFound

StreamKind = Literal["package", "dashboard", "map", "agents"]
STREAM_KINDS: tuple[str, ...] = get_args(StreamKind)
DASHBOARD, MAP, AGENTS = "dashboard", "map", "agents"
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class UnknownStream(NotFound):
    """A stream that does not exist (bad kind or package id)."""


def package_stream(package_id: str) -> str:
    if not _ID.match(package_id):
        raise UnknownStream("No such package stream.")
    return f"package:{package_id}"


def stream_key(kind: str, package_id: str | None = None) -> str:
    """The feed key of a stream: `package:<id>`, `dashboard`, `map` or `agents`."""
    if kind == "package":
        return package_stream(package_id or "")
    if kind in (DASHBOARD, MAP, AGENTS):
        return kind
    raise UnknownStream("No such stream.")


@dataclass(frozen=True)
class FeedItem:
    stream: str
    type: str  # the SSE event name
    data: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    items: tuple[FeedItem, ...] = ()
    package: dict[str, Any] | None = None  # realtime_packages/{package_id}, newest version wins
    position: dict[str, Any] | None = None  # realtime_positions/{package_id}, newest scan wins
    counts: dict[str, int] = field(default_factory=dict)  # dashboard deltas
    agent: dict[str, Any] | None = None  # realtime_agents/{investigation_id}

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.stream for i in self.items))


def _package_doc(p: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "package_id",
        "tracking_number",
        "status",
        "version",
        "service_level",
        "origin_region",
        "destination_region",
        "promised_by",
    )
    return {k: p[k] for k in keys}


def plan(event_type: str, data: dict[str, Any], occurred_at: str) -> Plan:
    """The plan of one event; `data` is the consumer copies' fields merged (see service.py)."""
    if event_type == "investigation.completed":
        agent = {
            k: data.get(k)
            for k in (
                "investigation_id",
                "kind",
                "package_id",
                "status",
                "findings",
                "top_severity",
                "summary",
            )
        }
        agent["at"] = occurred_at
        items = [FeedItem(AGENTS, "investigation", agent)]
        if data.get("package_id"):
            items.append(FeedItem(package_stream(data["package_id"]), "investigation", agent))
        items.append(FeedItem(DASHBOARD, "counts", {}))  # the investigations_* counters moved
        counts = {"investigations_" + str(data.get("status")): 1}
        return Plan(items=tuple(items), agent=agent, counts=counts)

    pkg = _package_doc(data)
    pid = pkg["package_id"]
    stream = package_stream(pid)
    if event_type == "package.created":
        body = {**pkg, "at": occurred_at}
        return Plan(
            items=(FeedItem(stream, "package", body), FeedItem(DASHBOARD, "counts", {})),
            package=pkg,
            counts={f"status.{pkg['status']}": 1, "packages": 1},
        )
    if event_type == "package.status.changed":
        body = {**pkg, "old": data["old"], "new": data["new"], "at": data["occurred_at"]}
        return Plan(
            items=(FeedItem(stream, "status", body), FeedItem(DASHBOARD, "counts", {})),
            package=pkg,
            counts={f"status.{data['old']}": -1, f"status.{data['new']}": 1},
        )
    if event_type == "package.delivered":
        body = {**pkg, "at": data["delivered_at"], "on_time": data["on_time"]}
        late = 1 if data["on_time"] is False else 0
        return Plan(
            items=(FeedItem(stream, "delivered", body), FeedItem(DASHBOARD, "counts", {})),
            package=pkg,
            counts={"delivered": 1, "delivered_late": late},
        )
    if event_type == "package.exception.raised":
        body = {
            **pkg,
            "at": data["occurred_at"],
            "location": data["location"],
            "note": data["note"],
        }
        return Plan(
            items=(FeedItem(stream, "exception", body), FeedItem(DASHBOARD, "counts", {})),
            package=pkg,
            counts={"exceptions": 1},
        )
    if event_type == "tracking.event.recorded":
        scan = {
            "package_id": pid,
            "tracking_number": pkg["tracking_number"],
            "status": pkg["status"],
            "scan_id": data["scan_id"],
            "kind": data["kind"],
            "location": data["location"],
            "lat": data["lat"],
            "lon": data["lon"],
            "at": data["occurred_at"],
        }
        items = [FeedItem(stream, "scan", scan)]
        position = None
        if not data["out_of_order"]:
            position = {k: scan[k] for k in ("package_id", "tracking_number", "status", "lat")}
            position |= {"lon": scan["lon"], "at": scan["at"]}
            items.append(FeedItem(MAP, "position", position))
        items.append(FeedItem(DASHBOARD, "counts", {}))  # the scans counter moved
        return Plan(items=tuple(items), package=pkg, position=position, counts={"scans": 1})
    raise ValueError(f"realtime does not consume {event_type}")


def sse(data: Any, *, event: str | None = None, id: int | None = None) -> bytes:
    """One Server-Sent Event (HTML Living Standard, 9.2): id, event, data lines, blank line."""
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event:
        lines.append(f"event: {event}")
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), default=str)
    lines += [f"data: {line}" for line in text.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def heartbeat() -> bytes:
    """A comment line: keeps proxies and the client from timing out an idle stream."""
    return b": heartbeat\n\n"


def last_event_id(value: str | None) -> int | None:
    """The feed sequence a client resumes after (`Last-Event-ID`), or None when absent/garbled."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())
