"""Webhooks in process: registration through /admin/webhooks (checked, master key only, the secret shown once),
signed deliveries a local receiver verifies with the `standardwebhooks` package, each event once per change
however many requests or workers see it, and the outbox's retries, back-off and give-up on a fake clock."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import sqlalchemy as sa
import standardwebhooks

from providers import build_providers
from tests.conftest import MASTER, PUBLIC, FakeClock
from tests.databases import fresh_postgres, needs_postgres, needs_redis
from tests.fakeprovider import Reply
from tests.gateway import ROOT, SETTINGS, wait_until
from tests.webhook_receiver import Receiver
from utils.errors import ProviderError
from utils.events import TYPES
from utils.keys import KeyStore
from utils.notifier import Notifier
from utils.quota import Quota
from utils.router import Router
from utils.state import LocalStore, RedisStore
from utils.tables import webhook_deliveries
from utils.webhook_delivery import MAX_RETRY_DELAY, RETRY_FOR, Deliverer, signed_headers
from utils.webhooks import KEEP_ATTEMPTS, WebhookStore

ADMIN = {"X-API-Key": MASTER}
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
BROKEN = ProviderError("server error", upstream_status=500, kind="server_error")


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def app(make_app):
    return make_app(rate_limit_enabled=False)


@pytest.fixture
def client(app):
    return app.test_client()


def register(client, url: str, events=("*",)) -> tuple[str, str]:
    response = client.post("/admin/webhooks", json={"url": url, "events": list(events)}, headers=ADMIN)
    assert response.status_code == 200, response.json
    return response.json["webhook"]["id"], response.json["secret"]


def queued(engine, event_type: str | None = None) -> list[dict]:
    """The outbox's rows (of one event type), oldest first."""
    query = sa.select(webhook_deliveries).order_by(webhook_deliveries.c.created_at)
    with engine.connect() as db:
        rows = [dict(row) for row in db.execute(query).mappings()]
    return [row for row in rows if event_type in (None, row["type"])]


def data_of(row: dict) -> dict:
    return json.loads(row["payload"])["data"]


# --- Registration ---

def test_registering_a_webhook_shows_its_secret_once(client, receiver):
    response = client.post("/admin/webhooks", json={"url": receiver.url, "events": ["key.created", "provider.down"]},
                           headers=ADMIN)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert set(body) == {"success", "webhook", "secret"} and body["success"] is True
    assert set(body["webhook"]) == {"id", "url", "events", "createdAt"}
    assert body["webhook"]["url"] == receiver.url and body["webhook"]["events"] == ["key.created", "provider.down"]
    assert body["secret"].startswith("whsec_") and len(base64.b64decode(body["secret"][6:])) == 32
    listed = client.get("/admin/webhooks", headers=ADMIN)
    assert listed.json == {"success": True, "webhooks": [body["webhook"]]}
    assert body["secret"] not in listed.get_data(as_text=True)
    assert client.delete(f"/admin/webhooks/{body['webhook']['id']}", headers=ADMIN).json == {"success": True}
    assert client.get("/admin/webhooks", headers=ADMIN).json["webhooks"] == []


@pytest.mark.parametrize("url, message", [
    ("ftp://example.com/hook", "url must start with http:// or https://"),
    ("javascript:alert(1)", "url must start with http:// or https://"),
    ("file:///etc/passwd", "url must start with http:// or https://"),
    ("https://user:pass@example.com/hook", "url must not contain credentials"),
    ("https://token@example.com/hook", "url must not contain credentials"),
    ("https:///hook", "url must name a host"),
    ("https://example.com:99999/", "url has a malformed port"),
    (" HTTP://YLeR]_.A", "url is not a valid URL"),  # found by tests/test_schema_fuzz.py: was a 500
    ("http://[::1/hook", "url is not a valid URL"),
    ("https://example.com/a b", "url must not contain spaces"),
    ("https://example.com/" + "a" * 2100, "url must be at most 2048 characters"),
    ("", "url must be a non-empty string"),
    (5, "url must be a non-empty string"),
    (None, "url must be a non-empty string"),
])
def test_a_webhook_url_must_be_http_or_https_without_credentials(client, url, message):
    response = client.post("/admin/webhooks", json={"url": url, "events": ["key.created"]}, headers=ADMIN)
    assert response.status_code == 400 and message in response.json["error"]
    assert client.get("/admin/webhooks", headers=ADMIN).json["webhooks"] == []


@pytest.mark.parametrize("events, message", [
    ([], "events must be a non-empty array"),
    ("key.created", "events must be a non-empty array"),
    (None, "events must be a non-empty array"),
    (["key.created", 5], "events must hold strings"),
    (["key.created", "key.deleted"], "Unknown event 'key.deleted'. Valid events: provider.down"),
    (["webhook.test"], "Unknown event 'webhook.test'"),
])
def test_events_must_be_a_non_empty_list_of_known_types(client, events, message):
    response = client.post("/admin/webhooks", json={"url": "https://example.com/hook", "events": events},
                           headers=ADMIN)
    assert response.status_code == 400 and message in response.json["error"]


def test_a_field_a_webhook_does_not_have_is_refused_by_name(client):
    response = client.post("/admin/webhooks", json={"url": "https://example.com/h", "events": ["*"], "secret": "x"},
                           headers=ADMIN)
    assert response.status_code == 400 and "Unknown field 'secret'" in response.json["error"]


def test_each_event_is_named_once_and_star_means_all(client):
    response = client.post("/admin/webhooks", json={"url": "https://example.com/h",
                                                    "events": ["key.created", "key.created", "*"]}, headers=ADMIN)
    assert response.json["webhook"]["events"] == ["key.created", "*"]


@pytest.mark.parametrize("method, path", [
    ("POST", "/admin/webhooks"), ("GET", "/admin/webhooks"), ("DELETE", "/admin/webhooks/wh_1"),
    ("POST", "/admin/webhooks/wh_1/test"), ("GET", "/admin/webhooks/wh_1/deliveries"),
])
def test_webhooks_need_the_master_key(client, method, path):
    assert client.open(path, method=method, json={}).status_code == 401
    assert client.open(path, method=method, json={}, headers={"X-API-Key": PUBLIC}).status_code == 403


@pytest.mark.parametrize("method, path", [
    ("DELETE", "/admin/webhooks/wh_nope"), ("POST", "/admin/webhooks/wh_nope/test"),
    ("GET", "/admin/webhooks/wh_nope/deliveries"),
])
def test_an_unknown_webhook_is_a_404(client, method, path):
    response = client.open(path, method=method, headers=ADMIN)
    assert (response.status_code, response.json["error"]) == (404, "Webhook not found")


def test_the_number_of_webhooks_is_bounded(client):
    for _ in range(50):
        register(client, "https://example.com/hook")
    response = client.post("/admin/webhooks", json={"url": "https://example.com/h", "events": ["*"]}, headers=ADMIN)
    assert response.status_code == 400 and "At most 50 webhooks" in response.json["error"]


# --- Deliveries ---

def test_a_receiver_gets_key_created_signed_so_standardwebhooks_verifies_it(client, receiver):
    _, secret = register(client, receiver.url, ["key.created"])
    created = client.post("/admin/keys", json={"name": "alice"}, headers=ADMIN).json
    assert receiver.wait_for(lambda r: r.received)
    [delivery] = receiver.received
    event = standardwebhooks.Webhook(secret).verify(delivery.body, delivery.headers)
    assert event["type"] == "key.created" and event["data"] == {"keyId": created["id"], "keyName": "alice"}
    assert event["timestamp"].endswith("Z") and abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 60
    assert delivery.headers["webhook-id"].startswith("msg_")
    assert delivery.headers["Content-Type"] == "application/json"
    assert created["apiKey"] not in delivery.body.decode()
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(delivery.body.replace(b"alice", b"mallory"), delivery.headers)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9999997])
def test_the_signature_is_over_the_second_the_timestamp_header_names(fraction):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    delivery = {"id": "msg_1", "secret": secret, "payload": '{"type":"webhook.test"}'}
    headers = signed_headers(delivery, int(time.time()) + fraction)  # just short of a second rounds up in a datetime
    assert standardwebhooks.Webhook(secret).verify(delivery["payload"], headers) == {"type": "webhook.test"}


def test_key_revoked_names_the_key_from_the_api_and_the_command_line(make_app, client, receiver):
    register(client, receiver.url, ["key.revoked"])
    first = client.post("/admin/keys", json={"name": "by-api"}, headers=ADMIN).json
    second = client.post("/admin/keys", json={"name": "by-cli"}, headers=ADMIN).json
    assert client.delete("/admin/keys", json={"id": first["id"]}, headers=ADMIN).status_code == 200
    # The command line is another process on the same database: the server's deliverer sends what it queued.
    result = make_app().test_cli_runner().invoke(args=["keys", "revoke", second["apiKey"]])
    assert result.exit_code == 0, result.output
    assert client.delete("/admin/keys", json={"id": first["id"]}, headers=ADMIN).status_code == 404  # once
    assert receiver.wait_for(lambda r: len(r.received) == 2)
    assert [e["data"] for e in receiver.events()] == [{"keyId": first["id"], "keyName": "by-api"},
                                                      {"keyId": second["id"], "keyName": "by-cli"}]
    assert {e["type"] for e in receiver.events()} == {"key.revoked"}


def test_a_key_created_on_the_command_line_is_queued_for_the_server_to_send(app, make_app, client, receiver, tmp_path):
    register(client, receiver.url, ["key.created"])
    app.extensions["deliverer"].stop()  # the server is down for now
    env = {**os.environ, **dict.fromkeys(SETTINGS, ""), "FLASK_SKIP_DOTENV": "1",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}"}
    created = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "keys", "create", "from-cli"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60, check=False)
    assert created.returncode == 0, created.stderr
    [row] = queued(app.extensions["keys"].engine, "key.created")
    assert (row["status"], row["attempts"]) == ("pending", 0)  # the command sent nothing itself
    make_app()  # the server again: its deliverer sends what was queued
    assert receiver.wait_for(lambda r: r.received)
    assert receiver.events()[0]["data"]["keyName"] == "from-cli"


def test_a_webhook_gets_only_the_events_it_subscribed_to(app, client, receiver):
    _, _ = register(client, receiver.url, ["key.revoked"])
    created = client.post("/admin/keys", json={"name": "k"}, headers=ADMIN).json
    client.delete("/admin/keys", json={"id": created["id"]}, headers=ADMIN)
    assert [row["type"] for row in queued(app.extensions["keys"].engine)] == ["key.revoked"]


def test_the_test_endpoint_sends_webhook_test_to_that_webhook_alone(client, receiver):
    other = Receiver()
    try:
        webhook_id, secret = register(client, receiver.url, ["key.created"])
        register(client, other.url, ["*"])
        response = client.post(f"/admin/webhooks/{webhook_id}/test", headers=ADMIN)
        assert response.status_code == 200 and response.json["deliveryId"].startswith("msg_")
        assert receiver.wait_for(lambda r: r.received)
        event = standardwebhooks.Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)
        assert (event["type"], event["data"]) == ("webhook.test", {"webhookId": webhook_id})
        assert receiver.received[0].headers["webhook-id"] == response.json["deliveryId"]
        assert other.received == []
    finally:
        other.stop()


def test_deliveries_show_each_attempt_and_its_outcome(client, receiver):
    webhook_id, _ = register(client, receiver.url)
    client.post(f"/admin/webhooks/{webhook_id}/test", headers=ADMIN)

    def delivered():
        listed = client.get(f"/admin/webhooks/{webhook_id}/deliveries", headers=ADMIN).json["deliveries"]
        return listed if listed and listed[0]["status"] == "delivered" else None
    assert wait_until(delivered)
    [delivery] = delivered()
    assert delivery["type"] == "webhook.test" and delivery["attemptCount"] == 1 and delivery["nextAttemptAt"] is None
    [attempt] = delivery["attempts"]
    assert attempt["statusCode"] == 200 and attempt["error"] is None and attempt["durationMs"] >= 0


def test_redirects_are_not_followed(client, receiver):
    target = Receiver()
    try:
        receiver.redirect_to = target.url
        webhook_id, _ = register(client, receiver.url)
        client.post(f"/admin/webhooks/{webhook_id}/test", headers=ADMIN)

        def attempted():
            listed = client.get(f"/admin/webhooks/{webhook_id}/deliveries", headers=ADMIN).json["deliveries"]
            return listed[0]["attempts"] if listed and listed[0]["attempts"] else None
        assert wait_until(attempted)
        [attempt] = attempted()
        assert attempt["statusCode"] == 302 and attempt["error"] == "HTTP 302 (redirects are not followed)"
        listed = client.get(f"/admin/webhooks/{webhook_id}/deliveries", headers=ADMIN).json["deliveries"]
        assert listed[0]["status"] == "pending" and listed[0]["nextAttemptAt"] is not None  # tried again later
        assert len(receiver.received) == 1 and target.received == []
    finally:
        target.stop()


def test_deleting_a_webhook_drops_what_it_had_still_to_send(app, client):
    webhook_id, _ = register(client, "http://127.0.0.1:9/hook")
    client.post("/admin/keys", json={"name": "k"}, headers=ADMIN)
    assert queued(app.extensions["keys"].engine)
    client.delete(f"/admin/webhooks/{webhook_id}", headers=ADMIN)
    assert queued(app.extensions["keys"].engine) == []


def test_db_copy_takes_the_webhooks_and_what_they_have_still_to_send(app, client, tmp_path):
    webhook_id, secret = register(client, "http://127.0.0.1:9/hook", ["key.created"])
    app.extensions["deliverer"].stop()  # the gateway is stopped before a copy
    client.post("/admin/keys", json={"name": "k"}, headers=ADMIN)
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    result = app.test_cli_runner().invoke(args=["db", "copy", "--to", target])
    assert result.exit_code == 0, result.output
    copied = KeyStore(target)
    try:
        hooks = WebhookStore(copied.engine)
        assert [w["id"] for w in hooks.list()] == [webhook_id]
        [delivery] = hooks.deliveries(webhook_id)
        assert (delivery["type"], delivery["status"]) == ("key.created", "pending")
        assert hooks.claim(time.time(), hold=10, limit=8)[0]["secret"] == secret
    finally:
        copied.close()


# --- The outbox on a fake clock: retries, back-off, giving up, one sender at a time ---

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def outbox(request, tmp_path):
    """The outbox in a database of its own, on SQLite and (when it answers) PostgreSQL."""
    with contextlib.ExitStack() as stack:
        url = (f"sqlite:///{tmp_path / 'outbox.db'}" if request.param == "sqlite" else
               stack.enter_context(fresh_postgres()).replace("postgresql://", "postgresql+psycopg://", 1))
        keys = KeyStore(url)
        yield WebhookStore(keys.engine)
        keys.close()


def test_a_receiver_answering_500_twice_gets_the_event_on_the_third_try(outbox, receiver):
    clock = FakeClock(time.time())  # real time, so the signatures are fresh enough to verify
    webhook, secret = outbox.create(receiver.url, ["*"], clock())
    receiver.statuses.extend([500, 500])
    [delivery_id] = outbox.enqueue("key.created", {"keyId": "abc", "keyName": "k"}, clock())
    deliverer = Deliverer(outbox, timeout=2, retry_delay=10, clock=clock)
    assert deliverer.deliver_due() == 1  # 500
    assert deliverer.deliver_due() == 0  # not due again for 10 seconds
    clock.advance(9.9)
    assert deliverer.deliver_due() == 0
    clock.advance(0.1)
    assert deliverer.deliver_due() == 1  # 500 again; the wait doubles
    clock.advance(19.9)
    assert deliverer.deliver_due() == 0
    clock.advance(0.1)
    assert deliverer.deliver_due() == 1  # 200
    assert len(receiver.received) == 3
    assert {d.headers["webhook-id"] for d in receiver.received} == {delivery_id}  # the same message, retried
    assert len({d.body for d in receiver.received}) == 1
    for delivery in receiver.received:
        standardwebhooks.Webhook(secret).verify(delivery.body, delivery.headers)
    [shown] = outbox.deliveries(webhook["id"])
    assert (shown["status"], shown["attemptCount"]) == ("delivered", 3)
    assert [a["statusCode"] for a in shown["attempts"]] == [200, 500, 500]  # newest first
    clock.advance(3600)
    assert deliverer.deliver_due() == 0 and len(receiver.received) == 3


def test_a_delivery_is_retried_with_growing_back_off_for_a_day_then_marked_failed(outbox):
    clock = FakeClock()
    webhook, _ = outbox.create("http://127.0.0.1:9/hook", ["*"], clock())  # nothing listens on port 9
    outbox.enqueue("provider.down", {"provider": "groq"}, clock())
    deliverer = Deliverer(outbox, timeout=1, retry_delay=10, clock=clock)
    waits, attempts = [], deliverer.deliver_due()
    while (due := outbox.next_due()) is not None:
        waits.append(due - clock())
        clock.advance(due - clock())
        attempts += deliverer.deliver_due()
    assert waits[:4] == [10, 20, 40, 80] and max(waits) == MAX_RETRY_DELAY
    assert sorted(waits[:-1]) == waits[:-1]  # never shorter than the one before (the last is cut at the day)
    assert clock() == 1_700_000_000.0 + RETRY_FOR
    [shown] = outbox.deliveries(webhook["id"])
    assert shown["status"] == "failed" and shown["attemptCount"] == attempts and shown["nextAttemptAt"] is None
    assert len(shown["attempts"]) == min(attempts, KEEP_ATTEMPTS)
    assert {a["error"] for a in shown["attempts"]} == {"could not connect"}


def test_one_sender_at_a_time_holds_a_delivery(outbox):
    clock = FakeClock()
    outbox.create("http://127.0.0.1:9/hook", ["*"], clock())
    outbox.enqueue("key.created", {}, clock())
    [claimed] = outbox.claim(clock(), hold=40, limit=8)
    assert outbox.claim(clock(), hold=40, limit=8) == []  # another worker finds it taken
    clock.advance(40)  # the first sender died mid-attempt: its hold runs out and the row is tried again
    [again] = outbox.claim(clock(), hold=40, limit=8)
    assert again["id"] == claimed["id"] and again["attempts"] == 2


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(outbox, receiver):
    receiver.hang.set()
    webhook, _ = outbox.create(receiver.url, ["*"], time.time())
    outbox.enqueue("key.created", {}, time.time())
    Deliverer(outbox, timeout=0.5, retry_delay=10).deliver_due()
    [attempt] = outbox.deliveries(webhook["id"])[0]["attempts"]
    assert attempt["error"] == "no answer within 0.5 seconds" and attempt["statusCode"] is None


# --- Each change once: the router's and the key checks' reports ---

@pytest.fixture
def groq(make_settings):
    return build_providers(make_settings(providers=("groq",)))


def notified_router(providers, store, outbox, clock) -> Router:
    return Router(providers, store, failure_threshold=3, failure_cooldown=30.0, probe_seconds=35.0, clock=clock,
                  events=Notifier(providers, store, outbox, clock=clock))


def test_a_failing_provider_fires_provider_down_once_then_provider_up_once(groq, outbox, clock):
    outbox.create("http://127.0.0.1:9/hook", ["*"], clock())
    router = notified_router(groq, LocalStore(), outbox, clock)
    provider = router.by_id("groq")
    for _ in range(3):  # the circuit opens on the third failure in a row
        router.failed(provider, BROKEN)
    for _ in range(5):  # requests naming it, and failed probes: still the same outage
        router.failed(provider, BROKEN)
        clock.advance(600)
    [down] = queued(outbox.engine, "provider.down")
    assert data_of(down) == {"provider": "groq", "name": "Groq", "reason": "server_error",
                             "until": data_of(down)["until"]}
    router.succeeded(provider)
    router.succeeded(provider)
    [up] = queued(outbox.engine, "provider.up")
    assert data_of(up) == {"provider": "groq", "name": "Groq"}
    router.failed(provider, BROKEN)  # one failure is not an outage
    router.succeeded(provider)
    assert len(queued(outbox.engine)) == 2
    for _ in range(3):  # a second outage is a second change
        router.failed(provider, BROKEN)
    router.reset(provider)
    assert [row["type"] for row in queued(outbox.engine)] == ["provider.down", "provider.up"] * 2


def test_a_key_of_a_pool_refused_is_named_without_the_key_itself(make_settings, outbox, clock):
    settings = make_settings(providers=("groq",))
    pooled = replace(settings.provider("groq"), api_key="gsk-one", api_keys=("gsk-one", "gsk-two"))
    providers = build_providers(replace(settings, providers=tuple(
        pooled if p.id == "groq" else p for p in settings.providers)))
    outbox.create("http://127.0.0.1:9/hook", ["*"], clock())
    router = notified_router(providers, LocalStore(), outbox, clock)
    router.failed(router.by_id("groq"), ProviderError("refused", upstream_status=401, kind="http_401"), key=2)
    [down] = queued(outbox.engine, "provider.down")
    assert data_of(down)["key"] == "GROQ_API_KEY #2" and data_of(down)["until"] is None
    assert "gsk-" not in down["payload"]
    router.reset(router.by_id("groq"))
    [up] = queued(outbox.engine, "provider.up")
    assert data_of(up) == {"provider": "groq", "name": "Groq", "key": "GROQ_API_KEY #2"}


def test_a_retired_model_names_the_setting_to_change(groq, outbox, clock):
    outbox.create("http://127.0.0.1:9/hook", ["*"], clock())
    router = notified_router(groq, LocalStore(), outbox, clock)
    provider = router.by_id("groq")
    router.model_missing(provider, ["kimi-k3"])
    router.model_missing(provider, ["kimi-k3"])
    gone = ProviderError("model not found", upstream_status=404, kind="http_404", model_gone=True)
    router.failed(provider, gone)
    [retired] = queued(outbox.engine, "provider.model_retired")
    assert data_of(retired)["setting"] == "GROQ_MODEL" and data_of(retired)["model"] == provider.model
    assert "closest offered: kimi-k3" in data_of(retired)["detail"]
    [down] = queued(outbox.engine, "provider.down")
    assert data_of(down)["reason"] == "model_not_found" and data_of(down)["until"] is None
    router.model_offered(provider)
    assert [row["type"] for row in queued(outbox.engine)][-1] == "provider.up"


def test_an_exhausted_quota_fires_once_until_its_reset(groq, outbox, clock):
    outbox.create("http://127.0.0.1:9/hook", ["*"], clock())
    router = notified_router(groq, LocalStore(), outbox, clock)
    provider = router.by_id("groq")
    spent = Quota(remaining_requests=0, requests_reset=clock() + 3600)
    router.observe(provider, spent)
    router.failed(provider, ProviderError("rate limited", upstream_status=429, kind="rate_limited",
                                          quota=Quota(retry_at=clock() + 3600, reason="requests_per_day")))
    [event] = queued(outbox.engine, "provider.quota_exhausted")
    assert data_of(event) == {"provider": "groq", "name": "Groq", "reason": "quota_exhausted",
                              "resetAt": "2023-11-14T23:13:20.000Z"}
    clock.advance(3601)  # after the reset, running out again is a new change
    router.observe(provider, Quota(remaining_requests=5, requests_reset=clock() + 3600))
    router.observe(provider, Quota(remaining_requests=0, requests_reset=clock() + 3600))
    assert len(queued(outbox.engine, "provider.quota_exhausted")) == 2
    assert queued(outbox.engine, "provider.down") == []  # a rest on a quota is not an outage


def test_a_429_naming_its_reset_is_provider_quota_exhausted_once(groq, outbox, clock):
    outbox.create("http://127.0.0.1:9/hook", ["*"], clock())
    router = notified_router(groq, LocalStore(), outbox, clock)
    provider = router.by_id("groq")
    daily = ProviderError("rate limited", upstream_status=429, kind="rate_limited",
                          quota=Quota(retry_at=clock() + 7200, reason="requests_per_day"))
    for _ in range(3):  # requests naming the provider meet the same exhausted quota
        router.failed(provider, daily)
    [event] = queued(outbox.engine)
    assert event["type"] == "provider.quota_exhausted"
    assert data_of(event) == {"provider": "groq", "name": "Groq", "reason": "requests_per_day",
                              "resetAt": "2023-11-15T00:13:20.000Z"}


@needs_redis
def test_two_workers_on_one_redis_report_a_change_once(groq, outbox, clock, redis_db):
    outbox.create("http://127.0.0.1:9/hook", ["*"], clock())
    workers = [notified_router(groq, RedisStore(redis_db, fail_open=False), outbox, clock) for _ in range(2)]
    for _ in range(4):
        for worker in workers:  # both see the failures, and each opens (or keeps open) the shared circuit
            worker.failed(worker.by_id("groq"), BROKEN)
    for worker in workers:
        worker.succeeded(worker.by_id("groq"))
    assert [row["type"] for row in queued(outbox.engine)] == ["provider.down", "provider.up"]


def test_an_expired_key_fires_key_expired_once(app, client):
    register(client, "http://127.0.0.1:9/hook", ["key.expired"])
    created = client.post("/admin/keys", json={"name": "old", "expiresAt": "2000-01-01T00:00:00Z"},
                          headers=ADMIN).json
    for _ in range(3):
        assert client.post("/chat", json=CHAT, headers={"Authorization": f"Bearer {created['apiKey']}"}
                           ).status_code == 403
    [row] = queued(app.extensions["keys"].engine, "key.expired")
    assert data_of(row) == {"keyId": created["id"], "keyName": "old", "expiredAt": "2000-01-01T00:00:00.000Z"}


def test_a_spent_budget_fires_key_budget_exhausted_once_per_window(app, client):
    register(client, "http://127.0.0.1:9/hook", ["key.budget_exhausted"])
    created = client.post("/admin/keys", json={"name": "small", "limits": {"requestsPerDay": 1}}, headers=ADMIN).json
    auth = {"Authorization": f"Bearer {created['apiKey']}"}
    assert client.post("/chat", json=CHAT, headers=auth).status_code == 200
    refused = [client.post("/chat", json=CHAT, headers=auth) for _ in range(3)]
    assert {r.status_code for r in refused} == {429}
    [row] = queued(app.extensions["keys"].engine, "key.budget_exhausted")
    assert data_of(row) == {"keyId": created["id"], "keyName": "small", "detail": "Daily request budget exhausted",
                            "resetAt": refused[0].json["resetAt"]}


def test_a_provider_failing_under_load_is_one_provider_down_event(app, client, fake):
    register(client, "http://127.0.0.1:9/hook", ["provider.down", "provider.up"])
    fake.set_default("groq", Reply(status=500))
    fake.set_default("gemini", Reply(status=500))
    for _ in range(8):
        client.post("/chat", json=CHAT, headers=ADMIN)
    engine = app.extensions["keys"].engine
    assert sorted(data_of(row)["provider"] for row in queued(engine, "provider.down")) == ["gemini", "groq"]
    for row in queued(engine):
        assert "secret" not in row["payload"]  # the providers' keys are groq-secret, gemini-secret
    fake.set_default("groq", Reply())
    assert client.post("/admin/providers/groq/reset", headers=ADMIN).status_code == 200
    [up] = queued(engine, "provider.up")
    assert data_of(up)["provider"] == "groq"


def test_the_event_types_are_the_ones_the_api_description_lists():
    spec = json.loads((ROOT / "routes" / "openapi.json").read_text())
    assert spec["components"]["schemas"]["WebhookEventType"]["enum"] == list(TYPES)
