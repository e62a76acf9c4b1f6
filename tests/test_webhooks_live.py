"""Webhooks as an operator runs them: real gunicorn + gevent, the fake providers, a local receiver. An event
survives a SIGKILL, a receiver that hangs never holds up a chat request, a provider's outage is one
provider.down and one provider.up however many requests see it, on one worker or on two instances of two."""
from __future__ import annotations

import signal
import threading

import pytest
import requests
import standardwebhooks

from tests.databases import needs_postgres, needs_redis
from tests.fakeprovider import Reply
from tests.gateway import MASTER_KEY, health_state, wait_until
from tests.webhook_receiver import Receiver, free_port

ADMIN = {"X-API-Key": MASTER_KEY}


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


def register(gateway, url: str, events: list[str]) -> tuple[str, str]:
    response = requests.post(f"{gateway.url}/admin/webhooks", json={"url": url, "events": events}, headers=ADMIN,
                             timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["webhook"]["id"], response.json()["secret"]


def deliveries(gateway, webhook_id: str) -> list[dict]:
    response = requests.get(f"{gateway.url}/admin/webhooks/{webhook_id}/deliveries", headers=ADMIN, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


def test_an_event_queued_while_the_gateway_is_killed_is_delivered_after_restart(start_gateway):
    port = free_port()  # nothing listens there yet: the receiver is down
    gateway = start_gateway(providers=["groq"], WEBHOOK_RETRY_DELAY=3)
    webhook_id, secret = register(gateway, f"http://127.0.0.1:{port}/hook", ["key.created"])
    created = gateway.admin("POST", json={"name": "before the crash"}).json()
    assert wait_until(lambda: deliveries(gateway, webhook_id)[0]["attempts"])  # in the outbox, tried once
    [delivery] = deliveries(gateway, webhook_id)
    assert delivery["status"] == "pending" and delivery["attempts"][0]["error"] == "could not connect"
    gateway.kill(signal.SIGKILL)
    receiver = Receiver(port)
    try:
        start_gateway(providers=["groq"], name="restarted", WEBHOOK_RETRY_DELAY=3)
        assert receiver.wait_for(lambda r: r.received, 30)  # (a claim the killed worker held lasts 20 s at most)
        [received] = receiver.received
        event = standardwebhooks.Webhook(secret).verify(received.body, received.headers)
        assert event["type"] == "key.created" and event["data"]["keyId"] == created["id"]
        assert received.headers["webhook-id"] == delivery["id"]
    finally:
        receiver.stop()


def test_a_receiver_that_hangs_does_not_delay_chat_requests(start_gateway, receiver, fake):
    gateway = start_gateway(providers=["groq"], WEBHOOK_TIMEOUT=30, RATE_LIMIT_ENABLED="false")
    receiver.hang.set()  # every delivery waits until the test releases it
    webhook_id, _ = register(gateway, receiver.url, ["*"])
    for name in ("a", "b", "c"):
        assert gateway.admin("POST", json={"name": name}).status_code == 200
    assert receiver.wait_for(lambda r: r.received)  # a delivery is now hanging
    for n in range(10):
        answer = gateway.post_chat(f"question {n}", stream=bool(n % 2))
        assert answer.status_code == 200 and answer.text == "Hello from groq"
    fake.set_default("groq", Reply(status=500))  # an outage, reported from the request path meanwhile
    statuses = [gateway.post_chat().status_code for _ in range(4)]
    assert statuses == [502, 502, 502, 503]
    assert not receiver.release.is_set()  # all of that while the receiver still hung
    assert deliveries(gateway, webhook_id)[0]["status"] == "pending"
    receiver.release.set()
    assert receiver.wait_for(lambda r: {"key.created", "provider.down"} <= {e["type"] for e in r.events()}, 30)


def test_a_provider_forced_to_fail_fires_provider_down_once_then_provider_up_once(start_gateway, receiver, fake):
    gateway = start_gateway(providers=["groq"], FAILURE_THRESHOLD=3, FAILURE_COOLDOWN=1, RATE_LIMIT_ENABLED="false")
    webhook_id, secret = register(gateway, receiver.url, ["provider.down", "provider.up"])
    fake.set_default("groq", Reply(status=500))
    statuses = [gateway.post_chat().status_code for _ in range(12)]
    # Three failures open the circuit; then it rests (a second apart, a probe may fail it again: the same outage).
    assert statuses[:4] == [502, 502, 502, 503] and set(statuses) == {502, 503}
    fake.set_default("groq", Reply())
    assert wait_until(lambda: health_state(gateway, "groq")["state"] != "cooling_down")  # its back-off is over
    assert gateway.post_chat().status_code == 200  # the probe: it is back
    assert gateway.post_chat().status_code == 200
    assert receiver.wait_for(lambda r: len(r.received) == 2)
    events = [standardwebhooks.Webhook(secret).verify(d.body, d.headers) for d in receiver.received]
    assert [e["type"] for e in events] == ["provider.down", "provider.up"]
    assert events[0]["data"] == {"provider": "groq", "name": "Groq", "reason": "http_500",
                                 "until": events[0]["data"]["until"]}
    assert [d["status"] for d in deliveries(gateway, webhook_id)] == ["delivered"] * 2  # nothing else to come


@needs_redis
@needs_postgres
def test_two_instances_of_two_workers_deliver_one_event_once(start_gateway, receiver, fake, redis_db, postgres_url):
    settings = {"providers": ["groq"], "workers": 2, "REDIS_URL": redis_db, "DATABASE_URL": postgres_url,
                "FAILURE_THRESHOLD": 3, "RATE_LIMIT_ENABLED": "false"}
    a, b = start_gateway(name="a", **settings), start_gateway(name="b", **settings)
    webhook_id, _ = register(a, receiver.url, ["provider.down", "key.created"])
    assert b.admin("POST", json={"name": "made on b"}).status_code == 200
    fake.set_default("groq", Reply(status=500))
    statuses = []

    def ask(gateway):
        statuses.append(gateway.post_chat().status_code)
    askers = [threading.Thread(target=ask, args=(a if n % 2 else b,)) for n in range(16)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert set(statuses) <= {502, 503}
    assert wait_until(lambda: a.post_chat().status_code == 503)  # the shared circuit is open
    assert receiver.wait_for(lambda r: len(r.received) == 2)
    assert sorted(e["type"] for e in receiver.events()) == ["key.created", "provider.down"]
    listed = deliveries(b, webhook_id)
    assert sorted(d["type"] for d in listed) == ["key.created", "provider.down"]  # one row each, all delivered
    assert wait_until(lambda: {d["status"] for d in deliveries(a, webhook_id)} == {"delivered"})
    assert len(receiver.received) == 2
