"""The local push bridge: pulls each event subscription and pushes it as Cloud Pub/Sub would.

Measured (decision 0031): the Pub/Sub emulator's own push loop drops a message whose push
request dies with the receiving process (connection reset, no HTTP answer): it is neither
redelivered nor dead-lettered. Its pull/ack path loses nothing, and on pull it applies the
subscription's retry policy to nacks and its dead-letter policy (the message moves to
`<topic>.dead-letter` after `max_delivery_attempts`, with Cloud's `CloudPubSubDeadLetter*`
attributes). So locally the event subscriptions are pull subscriptions (`emulators._wiring`)
and this bridge, inside the stack's process, pulls them and POSTs each message to its
deployment with the body and headers of a Cloud Pub/Sub push (`message` with `data`,
`attributes`, `messageId`, `publishTime`; `subscription`; `deliveryAttempt`). A 102/200/201/
202/204 answer acks; any other answer, a reset connection or no answer within the ack deadline
nacks (the emulator retries with the backoff and dead-letters). A refused connection (nothing
listens: the deployment is not running, Cloud Run would start an instance) is not a delivery
attempt: the bridge keeps the message, extends its ack deadline and tries again, so a crashed
consumer never spends a message's attempts. It does not mint OIDC tokens (no IAM locally).
At most 8 deliveries are in flight per subscription, or the deployment's database pool for
one that uses SQL (`in_flight_for`, decision 0054). Limits: the emulator keeps messages in
memory (a restart of the emulator loses what it held, Cloud Pub/Sub does not; the stack
publishes it again from the outbox, decision 0049), and the bridge's pulls fail until the
restarted emulator is wired again (it retries every <= 2 s); `answers` keeps the last 100,000
deliveries' outcomes.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError

from emulators._wiring import Plan, PushSubscription, clients
from shared.keepalive import use_fresh_pools

ACK_STATUSES = frozenset({102, 200, 201, 202, 204})  # what Cloud Pub/Sub push takes as an ack
USER_AGENT = "CloudPubSub-Google"
PULL_WAIT_S = 5.0  # one pull waits this long for messages (the emulator holds it open)
IN_FLIGHT = 8  # deliveries in flight per subscription (a local process has 8 threads)


def in_flight_for(deployment: str, most: int = IN_FLIGHT) -> int:
    """Deliveries in flight for one subscription of `deployment`: `most`, or for a deployment
    that uses SQL, its database pool (`Deployment.db_pool`, what Cloud Run's instance holds).
    Pushing more at once than the pool holds makes the process open overflow connections and
    close them again, one TLS connect and one PostgreSQL backend per delivery (decision 0054:
    a third of auth-on-user-event's CPU per event); pushed at the pool's size, a delivery
    finds its connection open."""
    from shared.manifests import catalog

    dep = catalog().deployments.get(deployment)
    pool = dep.db_pool if dep is not None else 0
    return max(1, min(most, pool)) if pool else most


REFUSED_RETRY_S = (0.1, 2.0)  # first and longest wait between tries of a refused delivery
KEEP_ANSWERS = 100_000
KEEP_TIMINGS = 20_000  # per subscription
ACK_EVERY_S = 0.02  # acks are sent in batches, one request per subscription this often


def published_at(m: Any) -> datetime:
    """When Pub/Sub accepted message `m` (its `publish_time`), aware UTC."""
    published = m.publish_time
    if isinstance(published, datetime):
        return published.astimezone(UTC)
    return published.ToDatetime(tzinfo=UTC)  # a protobuf Timestamp


def push_body(p: PushSubscription, project: str, received: Any) -> dict[str, Any]:
    """The JSON body Cloud Pub/Sub POSTs for `received` (a pubsub_v1 ReceivedMessage)."""
    m = received.message
    when = published_at(m)
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message: dict[str, Any] = {
        "data": base64.b64encode(bytes(m.data)).decode(),
        "attributes": dict(m.attributes),
        "messageId": m.message_id,
        "message_id": m.message_id,
        "publishTime": stamp,
        "publish_time": stamp,
    }
    if m.ordering_key:
        message["orderingKey"] = m.ordering_key
    body: dict[str, Any] = {
        "message": message,
        "subscription": f"projects/{project}/subscriptions/{p.name}",
    }
    if received.delivery_attempt:  # set when the subscription has a dead-letter policy
        body["deliveryAttempt"] = int(received.delivery_attempt)
    return body


def _refused(exc: BaseException) -> bool:
    """True when nothing accepted the connection (so the request was never sent)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectTimeoutError | ConnectionRefusedError):
            return True  # NewConnectionError (refused) is a ConnectTimeoutError too
        seen = seen.__cause__ or seen.__context__
    return False


class PushBridge:
    """Pulls every subscription of `plan.push` and pushes it to its `push_endpoint`."""

    def __init__(
        self,
        plan: Plan,
        emulator_host: str,
        *,
        log: Callable[[str], None] | None = None,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self.plan = plan
        self.host = emulator_host
        self.log = log or (lambda text: None)
        self.in_flight = in_flight
        self._stopping = threading.Event()
        self._paused = threading.Event()
        self._busy = 0  # deliveries in flight
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None
        self._http: urllib3.PoolManager | None = None
        self._lock = threading.Lock()
        self._acks: dict[str, list[str]] = {}  # subscription path -> ack ids not sent yet
        self._acks_lock = threading.Lock()
        # (subscription, event_id) -> outcomes in order: HTTP status, "reset" or "refused"
        self._answers: collections.OrderedDict[tuple[str, str], list[int | str]] = (
            collections.OrderedDict()
        )
        self.counts: collections.Counter[str] = collections.Counter()
        # subscription -> (s in Pub/Sub before the pull, s pulled before the push started,
        # s of the push until its answer) of its last KEEP_TIMINGS acked deliveries
        self._timings: dict[str, collections.deque[tuple[float, float, float]]] = {}

    # -- what happened (tests and the fault bench read it) ---------------------------------
    def answers(self, subscription: str, event_id: str) -> list[int | str]:
        """Every outcome of pushing `event_id` on `subscription` so far, oldest first."""
        with self._lock:
            return list(self._answers.get((subscription, event_id), ()))

    @property
    def busy(self) -> int:
        """Deliveries in flight now."""
        with self._lock:
            return self._busy

    def timings(self, subscription: str) -> list[tuple[float, float, float]]:
        """(in Pub/Sub, waiting in the bridge, push) seconds of recent acked deliveries."""
        with self._lock:
            return list(self._timings.get(subscription, ()))

    def pause(self) -> None:
        """Stop pulling (deliveries in flight finish); `resume` starts again (fault tests)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def acked(self, subscription: str, event_id: str) -> int:
        return sum(1 for a in self.answers(subscription, event_id) if a in ACK_STATUSES)

    def _record(self, key: tuple[str, str], outcome: int | str) -> None:
        with self._lock:
            self._answers.setdefault(key, []).append(outcome)
            self._answers.move_to_end(key)
            while len(self._answers) > KEEP_ANSWERS:
                self._answers.popitem(last=False)
            self.counts["acked" if outcome in ACK_STATUSES else str(outcome)] += 1

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> PushBridge:
        self._stopping.clear()
        self._pub, self._sub = clients(self.host)
        self._pool = ThreadPoolExecutor(
            max_workers=max(4, self.in_flight * len(self.plan.push)), thread_name_prefix="push"
        )
        # keep-alive connections, one pool per deployment; urllib3 rather than requests: a
        # push is ~3x cheaper in CPU, which the bridge spends in the stack's one process. A
        # connection idle for 1 s is not reused: gunicorn closes it at 2 s, and a push racing
        # that close would die unanswered and spend one of the message's delivery attempts
        # (the tests' 1-2 s retry backoff puts redeliveries right at that edge).
        self._http = use_fresh_pools(
            urllib3.PoolManager(
                num_pools=max(10, len(self.plan.push)), maxsize=self.in_flight, retries=False
            )
        )
        acker = threading.Thread(target=self._ack_loop, name="push-acks", daemon=True)
        acker.start()
        self._threads.append(acker)
        for p in self.plan.push:
            th = threading.Thread(target=self._pull_loop, args=(p,), name=f"pull-{p.name}")
            th.daemon = True
            th.start()
            self._threads.append(th)
        return self

    def stop(self) -> None:
        """Stop pulling and pushing; what is not acked comes back after its ack deadline."""
        self._stopping.set()
        self._send_acks()  # what was answered is acked, not pushed again
        with contextlib.suppress(Exception):
            self._pub.transport.close()  # one channel: cancels the pulls waiting on it
        for th in self._threads:
            th.join(timeout=2)
        self._threads.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._http is not None:
            self._http.clear()
            self._http = None

    # -- pulling ---------------------------------------------------------------------------
    def _path(self, p: PushSubscription) -> str:
        return f"projects/{self.plan.project}/subscriptions/{p.name}"

    def _pull_loop(self, p: PushSubscription) -> None:
        most = in_flight_for(p.deployment, self.in_flight)
        slots = threading.BoundedSemaphore(most)
        pause = 0.2
        while not self._stopping.is_set():
            if self._paused.is_set():
                self._stopping.wait(0.1)
                continue
            if not slots.acquire(timeout=0.5):
                continue
            free = 1
            while free < most and slots.acquire(blocking=False):
                free += 1
            try:
                resp = self._sub.pull(
                    request={"subscription": self._path(p), "max_messages": free},
                    timeout=PULL_WAIT_S,
                    retry=None,
                )
                received = list(resp.received_messages)
                pulled = time.time()
                pause = 0.2
            except Exception as exc:  # noqa: BLE001 - DeadlineExceeded (idle), emulator down
                received, pulled = [], 0.0
                if type(exc).__name__ != "DeadlineExceeded" and not self._stopping.is_set():
                    self.counts["pull errors"] += 1
                    self._stopping.wait(pause)  # the emulator restarts, or is rewired
                    pause = min(pause * 2, 2.0)
            for _ in range(free - len(received)):
                slots.release()
            for rm in received:
                pool = self._pool
                if pool is None:
                    slots.release()
                    continue
                pool.submit(self._deliver_then_release, p, rm, slots, pulled)

    def _deliver_then_release(
        self, p: PushSubscription, rm: Any, slots: Any, pulled: float
    ) -> None:
        with self._lock:
            self._busy += 1
        try:
            self._deliver(p, rm, pulled)
        except Exception as exc:  # noqa: BLE001 - a bridge bug must not stop the bridge
            self.log(f"push bridge: delivery on {p.name} failed: {exc!r}")
        finally:
            with self._lock:
                self._busy -= 1
            slots.release()

    # -- pushing ---------------------------------------------------------------------------
    def _deliver(self, p: PushSubscription, rm: Any, pulled: float = 0.0) -> None:
        started = time.time()
        body = push_body(p, self.plan.project, rm)
        key = (p.name, str(body["message"]["attributes"].get("event_id", "")))
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = {
            "User-Agent": USER_AGENT,
            "From": "noreply@google.com",
            "Content-Type": "application/json",
        }
        timeout = urllib3.Timeout(connect=2.0, read=max(1.0, p.ack_deadline_s - 1.0))
        extended = time.monotonic()
        wait = REFUSED_RETRY_S[0]
        while True:
            http = self._http
            if http is None:  # stopped: not a delivery attempt, the message comes back
                self._modack(p, rm, 0)
                return
            try:
                r = http.request(
                    "POST", p.push_endpoint, body=data, headers=headers, timeout=timeout
                )
                outcome: int | str = r.status
                break
            except HTTPError as exc:
                if not _refused(exc):
                    outcome = "reset"  # sent; the receiver died or never answered
                    break
            # Refused: the deployment is not running. Not a delivery attempt: keep the message.
            with self._lock:
                self.counts["refused tries"] += 1
            if self._stopping.is_set():
                self._record(key, "refused")
                self._modack(p, rm, 0)
                return
            self._stopping.wait(wait)
            wait = min(wait * 2, REFUSED_RETRY_S[1])
            if time.monotonic() - extended > p.ack_deadline_s / 2:
                self._modack(p, rm, p.ack_deadline_s)
                extended = time.monotonic()
        self._record(key, outcome)
        if outcome in ACK_STATUSES:
            self._ack(p, rm)
            if pulled:
                sent = published_at(rm.message).timestamp()
                timing = (pulled - sent, started - pulled, time.time() - started)
                with self._lock:
                    q = self._timings.setdefault(p.name, collections.deque(maxlen=KEEP_TIMINGS))
                    q.append(timing)
        else:
            self._modack(p, rm, 0)  # a nack: the retry policy then the dead-letter policy

    def _ack(self, p: PushSubscription, rm: Any) -> None:
        """Queue the ack; `_ack_loop` sends each subscription's in one request."""
        with self._acks_lock:
            self._acks.setdefault(self._path(p), []).append(rm.ack_id)

    def _ack_loop(self) -> None:
        while not self._stopping.wait(ACK_EVERY_S):
            self._send_acks()

    def _send_acks(self) -> None:
        with self._acks_lock:
            pending, self._acks = self._acks, {}
        for path, ids in pending.items():
            for i in range(0, len(ids), 1000):
                try:
                    self._sub.acknowledge(
                        request={"subscription": path, "ack_ids": ids[i : i + 1000]}, timeout=10
                    )
                except Exception as exc:  # noqa: BLE001 - redelivered later; consumers dedupe
                    self.log(f"push bridge: ack on {path} failed: {exc!r}")

    def _modack(self, p: PushSubscription, rm: Any, seconds: int) -> None:
        try:
            self._sub.modify_ack_deadline(
                request={
                    "subscription": self._path(p),
                    "ack_ids": [rm.ack_id],
                    "ack_deadline_seconds": int(seconds),
                },
                timeout=10,
            )
        except Exception as exc:  # noqa: BLE001 - the ack deadline lapses: redelivered anyway
            self.log(f"push bridge: modifyAckDeadline on {p.name} failed: {exc!r}")
