"""Topics and subscriptions on the Pub/Sub emulator, derived from the manifests.

The same shape as in the cloud (design 6): one topic per published event type, a
`<topic>.dead-letter` topic with a `--keep` pull subscription for inspection and redrive, and
one subscription per (event deployment, subscribed topic) with the manifest's retry policy, a
dead-letter policy and the deployment's timeout as ack deadline. One difference, measured
(decision 0031): the emulator's push loop drops a message whose push dies with the receiving
process, so locally these subscriptions are pull subscriptions and `emulators._bridge` pushes
them to the deployment's port at `/projects/<project>/topics/<topic>` (the plan's
`push_endpoint`, where Cloud Pub/Sub pushes), with Cloud's push body. `wire` is idempotent: what
exists is updated in place (or recreated when its topic changed), what is missing is created.
It only ever talks to an emulator: without an emulator host it refuses to run.
A restarted emulator is empty (no topics, subscriptions or messages: it keeps nothing on disk).
After the stack wires it again, `replay` publishes again the outbox rows it lost: published
while the previous emulator lived, or while this one was being wired, and not processed by
every subscription of their topic (decision 0049; the stack runs `main` in a process of its
environment).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from emulators._errors import LocalStackError
from emulators._ports import HOST
from shared.manifests import (
    Catalog,
    Retry,
    dead_letter_subscription,
    dead_letter_topic,
    subscription_name,
)

ACK_DEADLINE_S = 60
WIRING_THREADS = 8  # topics wired at once (the emulator answers each call in ~10 ms)
MIN_BACKOFF_ENV = "LOCAL_RETRY_MIN_BACKOFF_S"
MAX_BACKOFF_ENV = "LOCAL_RETRY_MAX_BACKOFF_S"


def max_delivery_attempts(retry: Retry) -> int:
    """Pub/Sub accepts 5..100 delivery attempts before dead-lettering."""
    return max(5, min(100, retry.max_attempts))


def ack_deadline(timeout_s: float) -> int:
    """The deployment's timeout as ack deadline (Pub/Sub accepts 10..600 s), as in the cloud."""
    return int(max(10, min(600, timeout_s)))


def backoff_from_env(environ: Mapping[str, str] | None = None) -> tuple[float, float] | None:
    """(min, max) seconds from LOCAL_RETRY_MIN_BACKOFF_S / LOCAL_RETRY_MAX_BACKOFF_S, if set."""
    env = os.environ if environ is None else environ
    lo, hi = env.get(MIN_BACKOFF_ENV), env.get(MAX_BACKOFF_ENV)
    if not lo and not hi:
        return None
    try:
        low = float(lo) if lo else 1.0
        high = float(hi) if hi else max(low, 2.0)
    except ValueError:
        raise LocalStackError(f"{MIN_BACKOFF_ENV}/{MAX_BACKOFF_ENV} must be seconds") from None
    if not 0 <= low <= high <= 600:
        raise LocalStackError(f"need 0 <= {MIN_BACKOFF_ENV} <= {MAX_BACKOFF_ENV} <= 600")
    return low, high


@dataclass(frozen=True)
class PushSubscription:
    name: str
    topic: str
    deployment: str
    push_endpoint: str
    min_backoff_s: float
    max_backoff_s: float
    dead_letter_topic: str
    max_delivery_attempts: int
    ack_deadline_s: int = ACK_DEADLINE_S


@dataclass(frozen=True)
class Plan:
    """What `wire` creates: short names (not `projects/...` paths)."""

    project: str
    topics: tuple[str, ...]  # event topics and their dead-letter topics
    push: tuple[PushSubscription, ...]
    keep: tuple[tuple[str, str], ...]  # (pull subscription, dead-letter topic)
    changed: list[str] = field(default_factory=list, compare=False)  # filled by `wire`


def push_endpoint(port: int, project: str, topic: str) -> str:
    return f"http://{HOST}:{port}/projects/{project}/topics/{topic}"


def plan(
    catalog: Catalog,
    project: str,
    port_of: Mapping[str, int],
    *,
    backoff_override: tuple[float, float] | None = None,
) -> Plan:
    """The topics and subscriptions the manifests call for (no I/O)."""
    topics: list[str] = []
    keep: list[tuple[str, str]] = []
    for t in catalog.topics:
        topics += [t, dead_letter_topic(t)]
        keep.append((dead_letter_subscription(t), dead_letter_topic(t)))
    push = []
    for dep, topic in catalog.subscriptions():
        if dep.name not in port_of:
            raise LocalStackError(f"no port for event deployment {dep.name!r}")
        lo, hi = backoff_override or (dep.retry.min_backoff_s, dep.retry.max_backoff_s)
        push.append(
            PushSubscription(
                name=subscription_name(dep.name, topic),
                topic=topic,
                deployment=dep.name,
                push_endpoint=push_endpoint(port_of[dep.name], project, topic),
                min_backoff_s=lo,
                max_backoff_s=hi,
                dead_letter_topic=dead_letter_topic(topic),
                max_delivery_attempts=max_delivery_attempts(dep.retry),
                ack_deadline_s=ack_deadline(dep.runtime.timeout_s),
            )
        )
    return Plan(project=project, topics=tuple(topics), push=tuple(push), keep=tuple(keep))


def _duration(seconds: float) -> dict[str, int]:
    whole = int(seconds)
    return {"seconds": whole, "nanos": int(round((seconds - whole) * 1e9))}


def clients(emulator_host: str | None = None):  # noqa: ANN201 - GAPIC types are heavy
    """Publisher and subscriber admin clients bound to the emulator (never to Google)."""
    import grpc
    from google.pubsub_v1 import PublisherClient, SubscriberClient
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    host = emulator_host or os.environ.get("PUBSUB_EMULATOR_HOST")
    if not host:
        raise LocalStackError("wiring needs the Pub/Sub emulator: set PUBSUB_EMULATOR_HOST")
    channel = grpc.insecure_channel(host)
    return (
        PublisherClient(transport=PublisherGrpcTransport(channel=channel)),
        SubscriberClient(transport=SubscriberGrpcTransport(channel=channel)),
    )


def wire(
    catalog: Catalog,
    project: str,
    port_of: Mapping[str, int],
    *,
    backoff_override: tuple[float, float] | None = None,
    emulator_host: str | None = None,
) -> Plan:
    """Create or update every topic and subscription of `plan(...)` on the emulator.

    `backoff_override` (min, max seconds) replaces the manifests' retry backoff (tests want
    fast retries); when None, LOCAL_RETRY_MIN_BACKOFF_S / LOCAL_RETRY_MAX_BACKOFF_S apply if set.
    Returns the plan, with `changed` listing what was created, updated or recreated."""

    backoff = backoff_override or backoff_from_env()
    wanted = plan(catalog, project, port_of, backoff_override=backoff)
    pub, sub = clients(emulator_host)
    try:
        _apply(wanted, project, pub, sub)
    finally:
        pub.transport.close()  # both clients share one channel
    return wanted


def _apply(wanted: Plan, project: str, pub, sub) -> None:  # noqa: ANN001
    """Create what is missing, topic by topic: each new topic's subscriptions right after it,
    so that a publisher finding a freshly created topic (the relay after an emulator restart)
    leaves its message at most milliseconds without a subscription, not the whole wiring."""
    from google.api_core import exceptions as gexc

    tpath = f"projects/{project}/topics/"
    spath = f"projects/{project}/subscriptions/"

    def keep(name: str, topic: str) -> None:
        try:
            sub.create_subscription(
                request={
                    "name": spath + name,
                    "topic": tpath + topic,
                    "ack_deadline_seconds": ACK_DEADLINE_S,
                }
            )
            wanted.changed.append(f"subscription {name}")
        except gexc.AlreadyExists:
            pass

    def push(p: PushSubscription) -> None:
        body = {
            "name": spath + p.name,
            "topic": tpath + p.topic,
            "push_config": {},  # pull: the bridge pushes (module docstring)
            "ack_deadline_seconds": p.ack_deadline_s,
            "retry_policy": {
                "minimum_backoff": _duration(p.min_backoff_s),
                "maximum_backoff": _duration(p.max_backoff_s),
            },
            "dead_letter_policy": {
                "dead_letter_topic": tpath + p.dead_letter_topic,
                "max_delivery_attempts": p.max_delivery_attempts,
            },
        }
        try:
            current = sub.get_subscription(request={"subscription": spath + p.name})
        except gexc.NotFound:
            sub.create_subscription(request=body)
            wanted.changed.append(f"subscription {p.name}")
            return
        if current.topic != tpath + p.topic:  # a subscription's topic cannot change
            sub.delete_subscription(request={"subscription": spath + p.name})
            sub.create_subscription(request=body)
            wanted.changed.append(f"subscription {p.name} (recreated)")
        elif _differs(current, p, tpath):
            paths = ["push_config", "ack_deadline_seconds", "retry_policy", "dead_letter_policy"]
            sub.update_subscription(
                request={
                    "subscription": {k: v for k, v in body.items() if k != "topic"},
                    "update_mask": {"paths": paths},
                }
            )
            wanted.changed.append(f"subscription {p.name} (updated)")

    def wire_topic(t: str) -> None:
        try:
            pub.create_topic(request={"name": tpath + t})
            wanted.changed.append(f"topic {t}")
        except gexc.AlreadyExists:
            pass
        for name, topic in wanted.keep:
            if topic == t:
                keep(name, topic)
        for p in wanted.push:
            if p.topic == t:
                push(p)

    # Topic by topic in parallel (each a few round trips to the emulator, ~150 in all), the
    # dead-letter topics first: a push subscription names its dead-letter topic.
    dead = {p.dead_letter_topic for p in wanted.push}
    first = [t for t in wanted.topics if t in dead]
    then = [t for t in wanted.topics if t not in dead]
    with ThreadPoolExecutor(max_workers=WIRING_THREADS, thread_name_prefix="wire") as pool:
        for batch in (first, then):
            for f in [pool.submit(wire_topic, t) for t in batch]:
                f.result()  # the first error, as the serial loop raised it
    known = set(wanted.topics)
    for name, topic in wanted.keep:
        if topic not in known:
            keep(name, topic)
    for p in wanted.push:
        if p.topic not in known:
            push(p)


def _differs(current, p: PushSubscription, tpath: str) -> bool:  # noqa: ANN001
    rp, dl = current.retry_policy, current.dead_letter_policy

    def secs(d) -> float:  # noqa: ANN001
        return d.total_seconds() if hasattr(d, "total_seconds") else d.seconds + d.nanos / 1e9

    return (
        bool(current.push_config.push_endpoint)
        or current.ack_deadline_seconds != p.ack_deadline_s
        or abs(secs(rp.minimum_backoff) - p.min_backoff_s) > 1e-6
        or abs(secs(rp.maximum_backoff) - p.max_backoff_s) > 1e-6
        or dl.dead_letter_topic != tpath + p.dead_letter_topic
        or dl.max_delivery_attempts != p.max_delivery_attempts
    )


# -- after a restart of the emulator: what it lost, published again (decision 0049) --------
# Cloud Pub/Sub keeps an accepted message until every subscription acks it; the emulator keeps
# it in memory, so a restart loses (1) what it held: messages not yet acked by every
# subscription, and (2) what it accepts while being wired again: a topic exists a few
# milliseconds (more on a busy machine) before its last subscription does, and a message
# published meanwhile never reaches that subscription. The outbox knows what was published and
# the consumers' processed markers know what was done: rows published while the old emulator
# lived (at most REPLAY_WINDOW_S back) or until the wiring was done, that some subscription of
# their topic has not processed, are published again. Consumers are idempotent (decision 0001),
# so one published twice costs a "duplicate" answer, never a second effect.
REPLAY_WINDOW_S = 3600.0  # how far back before the stop (a long `make dev` session)
# A row's published_at is written after Pub/Sub accepted it (the sender marks in batches, the
# relay commits after its whole batch, each publish bounded by PUBLISH_TIMEOUT_S, 5 s): rows
# accepted before the wiring was done may show up as published this much later.
MARK_LAG_S = 15.0
_MARKERS_PER_READ = 300


@dataclass
class Replayed:
    checked: int = 0  # published rows examined
    published: int = 0  # published again (not processed by every subscription)
    failed: int = 0  # publishes that failed (the rows stay published: see the log)
    seen: set[str] = field(default_factory=set)  # event ids examined


def _published_rows(since: Any, until: Any) -> list[Any]:
    """(id, event_type, payload, attributes) of every context's outbox rows published in
    [since, until], oldest first."""
    from sqlalchemy import MetaData, select

    from shared import db
    from shared.events import outbox_table
    from shared.manifests import catalog

    rows: list[Any] = []
    for schema in catalog().schemas:
        t = outbox_table(MetaData(schema=schema))
        with db.transaction() as s:
            rows += s.execute(
                select(t.c.id, t.c.event_type, t.c.payload, t.c.attributes)
                .where(t.c.published_at.is_not(None))
                .where(t.c.published_at >= since, t.c.published_at <= until)
                .order_by(t.c.published_at)
            ).all()
    return rows


def _not_done(rows: list[Any], subscriptions: Mapping[str, list[str]]) -> list[Any]:
    """The rows some subscription of their topic has no `done` processed marker for."""
    from shared.clients import firestore
    from shared.events import PROCESSED

    fs = firestore()
    keys = [(r, f"{s}:{r.id}") for r in rows for s in subscriptions.get(r.event_type, ())]
    done: set[str] = set()
    for i in range(0, len(keys), _MARKERS_PER_READ):
        refs = [fs.collection(PROCESSED).document(k) for _, k in keys[i : i + _MARKERS_PER_READ]]
        for snap in fs.get_all(refs):
            if snap.exists and (snap.to_dict() or {}).get("state") == "done":
                done.add(snap.id)
    wanted: dict[str, Any] = {}
    for r, key in keys:
        if key not in done:
            wanted.setdefault(r.id, r)
    return list(wanted.values())


def _publish_again(rows: list[Any], result: Replayed, say: Any) -> None:
    from shared.clients import publish, topic_path

    by_type: dict[str, list[Any]] = {}
    for r in rows:
        by_type.setdefault(r.event_type, []).append(r)
    for event_type, batch in by_type.items():
        messages = [
            (r.payload.encode(), {k: v for k, v in json.loads(r.attributes).items() if v})
            for r in batch
        ]
        try:
            publish(topic_path(event_type), messages, 30.0)
            result.published += len(batch)
        except Exception as exc:  # noqa: BLE001 - reported; the next restart tries again
            result.failed += len(batch)
            say(f"publishing {len(batch)} {event_type} events again failed: {exc}")


def replay(
    since: datetime,
    up_at: datetime,
    wired_at: datetime,
    *,
    lag_s: float = MARK_LAG_S,
    say: Any = print,
) -> Replayed:
    """Publish again the outbox rows published in [since, wired_at + lag_s] that some
    subscription has not processed: once at once, then, `lag_s` after the wiring, the rows
    marked published since the emulator came back (`up_at`) that the first pass did not see.
    Runs in a process of the stack's environment (DATABASE_URL, the emulators)."""
    from shared.manifests import catalog

    subscriptions: dict[str, list[str]] = {}
    for dep, topic in catalog().subscriptions():
        subscriptions.setdefault(topic, []).append(subscription_name(dep.name, topic))
    result = Replayed()
    until = wired_at + timedelta(seconds=lag_s)
    for first in (True, False):
        if not first:
            time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()))
        rows = [
            r for r in _published_rows(since if first else up_at, until) if r.id not in result.seen
        ]
        result.seen |= {r.id for r in rows}
        result.checked += len(rows)
        lost = _not_done(rows, subscriptions)
        _publish_again(lost, result, say)
        say(
            f"{'first' if first else 'second'} pass: {len(rows)} rows published since "
            f"{(since if first else up_at).isoformat()}, {len(lost)} not processed by every "
            "subscription: published again"
        )
    return result


def main(argv: list[str]) -> int:
    """`python -m emulators._wiring replay SINCE UP_AT WIRED_AT` (RFC 3339): the stack runs
    it after wiring a restarted emulator; the last line is the result as JSON."""
    if len(argv) != 4 or argv[0] != "replay":
        print(main.__doc__, file=sys.stderr)
        return 2
    since, up_at, wired_at = (datetime.fromisoformat(a) for a in argv[1:])
    result = replay(since, up_at, wired_at)
    print(
        json.dumps(
            {"checked": result.checked, "published": result.published, "failed": result.failed}
        )
    )
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
