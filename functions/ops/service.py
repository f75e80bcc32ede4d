"""Ops use cases: dead letters (inspect, redrive), the state of every outbox, cleanup.

Dead letters are the messages kept by each topic's `<topic>.dead-letter--keep` pull
subscription. Listing pulls them and gives them back at once (ack deadline 0), so they stay for
the next look or a redrive. A redrive republishes each kept message to its ORIGINAL topic with
the same data and attributes (the same `event_id`): subscriptions that processed the event
already skip it (their processed marker), the one that failed gets it again. Only after the
publish is confirmed is the dead letter acked; a failed publish leaves it kept.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import clients
from shared import events as sevents
from shared import logging as slog
from shared.manifests import catalog, dead_letter_subscription

_log = slog.get_logger("switchyard.ops")

PULL_BATCH = 100  # messages per pull
MAX_PULLS = 10  # pulls per subscription per request (at most 1000 letters at a time)
PUBLISH_TIMEOUT_S = 30.0


class UnknownTopic(LookupError):
    """The topic is published by no deployment."""


@dataclass(frozen=True)
class Letter:
    topic: str
    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime | None
    delivery_attempt: int | None

    @property
    def event_id(self) -> str:
        return self.attributes.get("event_id", "")

    def view(self) -> dict[str, Any]:
        try:
            data: Any = json.loads(self.data or b"null")
        except (ValueError, UnicodeDecodeError):
            data = {"base64": base64.b64encode(self.data).decode()}
        out: dict[str, Any] = {
            "topic": self.topic,
            "message_id": self.message_id,
            "event_id": self.event_id,
            "event_type": self.attributes.get("event_type", self.topic),
            "attributes": dict(self.attributes),
            "data": data,
            "publish_time": self.publish_time,
        }
        if self.delivery_attempt:
            out["delivery_attempt"] = self.delivery_attempt
        return out


def _publish_time(msg: Any) -> datetime | None:
    value = getattr(msg, "publish_time", None)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    try:  # protobuf Timestamp
        return value.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]
    except (AttributeError, TypeError):
        return None


def _pull(topic: str) -> list[Letter]:
    """Every message kept for `topic` (up to MAX_PULLS x PULL_BATCH), held until acked/nacked.

    A subscription that does not exist (topic never wired in this project) holds nothing.
    """
    from google.api_core.exceptions import NotFound

    sub = clients.subscriber()
    path = clients.subscription_path(dead_letter_subscription(topic))
    seen: dict[str, Letter] = {}
    for _ in range(MAX_PULLS):
        try:
            resp = sub.pull(
                request={
                    "subscription": path,
                    "max_messages": PULL_BATCH,
                    "return_immediately": True,
                },
                timeout=10,
            )
        except NotFound:
            _log.warning("no dead-letter subscription %s", path)
            return []
        fresh = 0
        for rm in resp.received_messages:
            m = rm.message
            if m.message_id not in seen:
                fresh += 1
            seen[m.message_id] = Letter(  # a redelivery replaces the older ack id
                topic=topic,
                ack_id=rm.ack_id,
                message_id=m.message_id,
                data=bytes(m.data),
                attributes=dict(m.attributes),
                publish_time=_publish_time(m),
                delivery_attempt=rm.delivery_attempt or None,
            )
        if not fresh:
            break
    return sorted(seen.values(), key=lambda x: x.publish_time or datetime.min.replace(tzinfo=UTC))


def _release(topic: str, letters: list[Letter]) -> None:
    """Give held messages back at once (ack deadline 0): they stay kept."""
    if not letters:
        return
    try:
        clients.subscriber().modify_ack_deadline(
            request={
                "subscription": clients.subscription_path(dead_letter_subscription(topic)),
                "ack_ids": [x.ack_id for x in letters],
                "ack_deadline_seconds": 0,
            }
        )
    except Exception:  # they come back anyway when the ack deadline expires
        _log.warning("could not release %d dead letters of %s", len(letters), topic, exc_info=True)


def _check_topic(topic: str) -> None:
    if topic not in catalog().topics:
        raise UnknownTopic(topic)


def dead_letters(topic: str | None = None) -> dict[str, Any]:
    """The kept dead letters of every topic (or of `topic`) and the count per topic."""
    topics = [topic] if topic else list(catalog().topics)
    if topic:
        _check_topic(topic)
    items: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for t in topics:
        letters = _pull(t)
        _release(t, letters)
        counts[t] = len(letters)
        items += [x.view() for x in letters]
    return {"items": items, "counts": counts}


def redrive(topic: str, event_ids: list[str] | None = None) -> dict[str, Any]:
    """Republish the kept dead letters of `topic` (all, or those of `event_ids`) to `topic`
    with the same data and attributes, then ack them. Returns the count redriven."""
    _check_topic(topic)
    letters = _pull(topic)
    wanted = set(event_ids) if event_ids is not None else None
    chosen = [x for x in letters if wanted is None or x.event_id in wanted]
    others = [x for x in letters if x not in chosen]
    _release(topic, others)
    pub = clients.publisher()
    futures = [(x, pub.publish(clients.topic_path(topic), x.data, **x.attributes)) for x in chosen]
    done: list[Letter] = []
    failed: list[Letter] = []
    for letter, fut in futures:
        try:
            fut.result(timeout=PUBLISH_TIMEOUT_S)
        except Exception:
            _log.warning("redrive of %s %s failed", topic, letter.event_id, exc_info=True)
            failed.append(letter)
        else:
            done.append(letter)
    if done:
        clients.subscriber().acknowledge(
            request={
                "subscription": clients.subscription_path(dead_letter_subscription(topic)),
                "ack_ids": [x.ack_id for x in done],
            }
        )
    _release(topic, failed)
    _log.info("redrove %d dead letters of %s (%d failed)", len(done), topic, len(failed))
    out: dict[str, Any] = {"redriven": len(done), "event_ids": [x.event_id for x in done]}
    if failed:
        out["failed"] = [x.event_id for x in failed]
    if wanted is not None:
        out["not_found"] = sorted(wanted - {x.event_id for x in chosen})
    return out


def outbox() -> dict[str, Any]:
    """Pending (and oldest pending) and published counts of every context's outbox."""
    return {
        "items": [
            {
                "schema": st.schema,
                "pending": st.pending,
                "oldest_pending_at": st.oldest_pending_at,
                "failing": st.failing,
                "published": st.published,
            }
            for st in sevents.outbox_stats()
        ]
    }


OUTBOX_KEEP = timedelta(days=7)


def cleanup() -> dict[str, Any]:
    """Delete outbox rows published more than OUTBOX_KEEP ago, in every schema."""
    deleted = sevents.purge_published(older_than=OUTBOX_KEEP)
    return {"deleted": deleted, "total": sum(deleted.values())}
