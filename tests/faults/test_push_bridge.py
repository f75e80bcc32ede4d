"""The local push bridge against the real Pub/Sub emulator and a receiver that dies mid-push.

The receiver is a separate process that SIGKILLs itself while a push of a message marked
`die` is in flight (request read, no answer), once. Through the bridge the message comes back
and is answered by the restarted receiver; a consumer that keeps answering 500 ends in the
dead-letter topic after exactly `max_delivery_attempts` pushes; a refused connection (nothing
listening) spends no attempt. Decision 0031 has the emulator's own push loop for comparison:
it drops the killed message.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from emulators._bridge import PushBridge
from emulators._wiring import Plan, PushSubscription, clients, wire
from tests.waiting import wait_for

RECEIVER = r"""
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, log, marker, status = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        attrs = body["message"]["attributes"]
        with open(log, "a") as f:
            seen = {"event_id": attrs["event_id"], "attempt": body.get("deliveryAttempt"),
                    "agent": self.headers.get("User-Agent"), "subscription": body["subscription"]}
            f.write(json.dumps(seen) + "\n")
        if attrs.get("die") == "1" and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)  # the push is in flight: no answer, ever
        self.send_response(status)
        self.end_headers()
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"""


class Receiver:
    def __init__(self, tmp: Path, port: int, status: int = 204) -> None:
        self.log = tmp / "received.jsonl"
        self.marker = tmp / "died"
        self.port, self.status = port, status
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-c", RECEIVER, str(self.port), str(self.log), str(self.marker)]
        self.proc = subprocess.Popen([*argv, str(self.status)])

    def died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def received(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@pytest.fixture
def setup(pubsub_emulator, tmp_path, free_port):
    project = f"bridge-{uuid.uuid4().hex[:8]}"
    port = free_port()
    p = PushSubscription(
        name="audit-ingest--user.created",
        topic="user.created",
        deployment="audit-ingest",
        push_endpoint=f"http://127.0.0.1:{port}/projects/{project}/topics/user.created",
        min_backoff_s=1.0,
        max_backoff_s=2.0,
        dead_letter_topic="user.created.dead-letter",
        max_delivery_attempts=5,
        ack_deadline_s=10,
    )
    plan = Plan(
        project=project,
        topics=("user.created", "user.created.dead-letter"),
        push=(p,),
        keep=(("user.created.dead-letter--keep", "user.created.dead-letter"),),
    )
    from emulators._wiring import _apply

    pub, sub = clients(pubsub_emulator.host)
    _apply(plan, project, pub, sub)
    bridge = PushBridge(plan, pubsub_emulator.host).start()
    receivers: list[Receiver] = []
    try:
        yield plan, bridge, pub, sub, port, receivers
    finally:
        bridge.stop()
        for r in receivers:
            r.stop()
        pub.transport.close()


def _publish(pub, project: str, **attrs: str) -> str:
    event_id = str(uuid.uuid4())
    pub.publish(
        request={
            "topic": f"projects/{project}/topics/user.created",
            "messages": [{"data": b"{}", "attributes": {"event_id": event_id, **attrs}}],
        }
    )
    return event_id


def test_a_push_killed_in_flight_is_pushed_again(setup, tmp_path):
    plan, bridge, pub, _sub, port, receivers = setup
    receiver = Receiver(tmp_path, port)
    receivers.append(receiver)
    receiver.start()
    victim = _publish(pub, plan.project, die="1")
    wait_for(receiver.died, timeout=30)  # it died holding the push
    receiver.start()  # restarted, as the stack's monitor restarts a crashed deployment
    name = plan.push[0].name
    wait_for(lambda: bridge.acked(name, victim), timeout=30)
    got = [r for r in receiver.received() if r["event_id"] == victim]
    assert len(got) == 2, got  # the killed push, then its redelivery
    assert [g["attempt"] for g in got] == [1, 2]  # the crash spent one delivery attempt
    assert bridge.answers(name, victim) == ["reset", 204]
    assert got[1]["agent"] == "CloudPubSub-Google"
    assert got[1]["subscription"] == f"projects/{plan.project}/subscriptions/{name}"


def test_refused_connections_spend_no_attempt_and_failures_dead_letter(setup, tmp_path):
    plan, bridge, pub, sub, port, receivers = setup
    name = plan.push[0].name
    event_id = _publish(pub, plan.project)
    # nothing listens: the bridge holds the message instead of spending its attempts
    wait_for(lambda: bridge.counts["refused tries"] >= 5, timeout=30)
    assert bridge.answers(name, event_id) == []
    receiver = Receiver(tmp_path, port, status=500)  # a consumer failing on its own merit
    receivers.append(receiver)
    receiver.start()
    path = f"projects/{plan.project}/subscriptions/{plan.keep[0][0]}"

    def dead_letters():
        resp = sub.pull(request={"subscription": path, "max_messages": 10}, timeout=5)
        return [m for m in resp.received_messages if m.message.attributes["event_id"] == event_id]

    (letter,) = wait_for(dead_letters, timeout=60, interval=0.5)
    assert letter.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    got = [r["attempt"] for r in receiver.received() if r["event_id"] == event_id]
    assert got == [1, 2, 3, 4, 5]  # exactly max_delivery_attempts pushes, none refused
    assert bridge.answers(name, event_id) == [500] * 5


def test_local_event_subscriptions_are_pulled_not_pushed_by_the_emulator(pubsub_emulator):
    """The wiring leaves pushing to the bridge (decision 0031) and keeps the cloud's policies."""
    from shared import manifests

    cat = manifests.catalog()
    project = f"wired-{uuid.uuid4().hex[:8]}"
    port_of = {d: 20000 + i for i, d in enumerate(cat.deployments)}
    plan = wire(cat, project, port_of, emulator_host=pubsub_emulator.host)
    _pub, sub = clients(pubsub_emulator.host)
    for p in plan.push:
        s = sub.get_subscription(
            request={"subscription": f"projects/{project}/subscriptions/{p.name}"}
        )
        dep = cat.deployments[p.deployment]
        assert not s.push_config.push_endpoint
        assert s.ack_deadline_seconds == max(10, min(600, dep.runtime.timeout_s))
        assert s.dead_letter_policy.max_delivery_attempts == p.max_delivery_attempts
        assert s.dead_letter_policy.dead_letter_topic.endswith("/" + p.dead_letter_topic)
