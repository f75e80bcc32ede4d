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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

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

    # dead-letter topics first: a push subscription names its dead-letter topic
    topics = sorted(
        wanted.topics, key=lambda t: t not in {p.dead_letter_topic for p in wanted.push}
    )
    done: set[str] = set()
    for t in topics:
        try:
            pub.create_topic(request={"name": tpath + t})
            wanted.changed.append(f"topic {t}")
        except gexc.AlreadyExists:
            pass
        for name, topic in wanted.keep:
            if topic == t:
                keep(name, topic)
                done.add(name)
        for p in wanted.push:
            if p.topic == t:
                push(p)
                done.add(p.name)
    for name, topic in wanted.keep:
        if name not in done:
            keep(name, topic)
    for p in wanted.push:
        if p.name not in done:
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
