"""Bringing a provider back without a restart: Router.reset, POST /admin/providers/<id>/reset and
`flask --app app providers reset ID`. Whatever took the provider out (failures, a model it said is gone,
an exhausted quota) is forgotten, on every worker sharing the state store."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from tests.conftest import MASTER
from tests.databases import REDIS_URL, needs_redis
from tests.fakeprovider import Reply
from utils.errors import ProviderError
from utils.quota import Quota
from utils.state import LocalStore, RedisStore

ADMIN = {"X-API-Key": MASTER}
CHAT = {"messages": [{"role": "user", "content": "hi"}], "provider": "groq"}
MODEL_GONE = ProviderError("model not found", upstream_status=404, kind="http_404", model_gone=True)
BROKEN = ProviderError("connection reset", kind="broken")
NO_QUOTA = Quota(remaining_requests=0, requests_reset=1_700_003_600.0)


@dataclass(frozen=True)
class StandIn:
    """What the router reads of a provider; it never calls one."""
    id: str
    configured: bool = True
    name: str = "Stand-in"
    model: str = "stand-in-model"
    env_prefix: str = "STANDIN"


A, B = StandIn("a"), StandIn("b")


@pytest.mark.parametrize("take_out", [
    lambda router: router.failed(B, MODEL_GONE),
    lambda router: [router.failed(B, BROKEN) for _ in range(3)],
    lambda router: router.model_missing(B, ["b-model-2"]),
    lambda router: router.observe(B, NO_QUOTA),
], ids=["model-gone-answer", "failures", "model-list-check", "quota-exhausted"])
def test_a_reset_provider_is_ok_and_back_in_the_rotation(make_router, take_out):
    router = make_router([A, B])
    take_out(router)
    assert router.status()[B.id]["state"] == "cooling_down" and B not in router.plan()
    router.reset(B)
    assert router.status()[B.id] == {"state": "ok", "quota": {
        "remainingRequests": None, "requestsReset": None, "remainingTokens": None, "tokensReset": None},
        "keys": [{"index": 1, "state": "ok"}]}
    assert B in router.plan()


def test_a_reset_forgets_the_failures_so_the_next_one_does_not_open_the_circuit(make_router):
    router = make_router([A, B])
    for _ in range(3):
        router.failed(B, BROKEN)
    router.reset(B)
    router.failed(B, BROKEN)
    assert router.status()[B.id] == {"state": "failing", "failures": 1, "reason": "broken",
                                     "quota": router.status()[B.id]["quota"], "keys": router.status()[B.id]["keys"]}


@pytest.fixture(params=["local", pytest.param("redis", marks=needs_redis)])
def shared_store(request):
    """One store two routers share: two workers of one machine (per-process state cannot be shared, so
    `local` stands for it in one process), or every worker and machine on Redis."""
    if request.param == "local":
        yield LocalStore()
    else:
        yield RedisStore(REDIS_URL, fail_open=False, prefix=f"test-reset-{uuid.uuid4().hex[:8]}:")


def test_a_reset_on_one_worker_brings_the_provider_back_on_every_worker(make_router, shared_store):
    serving, operator = make_router([A, B], store=shared_store), make_router([A, B], store=shared_store)
    serving.failed(B, MODEL_GONE)
    serving.observe(B, NO_QUOTA)
    operator.reset(B)
    assert serving.status()[B.id]["state"] == "ok" and B in serving.plan()
    assert serving.status()[B.id]["quota"]["remainingRequests"] is None


def test_a_reset_logs_one_line_naming_the_provider_and_what_it_was(make_router, gateway_log):
    router = make_router([A, B])
    router.failed(B, MODEL_GONE)
    gateway_log.clear()
    router.reset(B)
    [record] = gateway_log.records
    assert (record.levelname, record.getMessage(), record.service, record.was, record.reason) == (
        "INFO", "provider reset by an operator", "Stand-in", "cooling_down", "model_not_found")


@pytest.fixture
def app(make_app):
    # No model check: its first round, in a thread, could bring the provider back before the reset does.
    return make_app(providers=("groq", "gemini"), model_check_interval=0)


def health_of(client, provider_id: str) -> dict:
    return next(p for p in client.get("/health").json["providers"] if p["id"] == provider_id)


@pytest.mark.parametrize("replies", [[Reply(status=404)], [Reply(status=500)] * 3],
                         ids=["model-gone-answer", "three-failures"])
def test_the_admin_endpoint_brings_a_provider_back_at_once(app, fake, replies):
    client = app.test_client()
    fake.enqueue("groq", *replies)
    for _ in replies:
        assert client.post("/chat", json=CHAT, headers=ADMIN).status_code == 502
    assert health_of(client, "groq")["state"] == "cooling_down"
    response = client.post("/admin/providers/groq/reset", headers=ADMIN)
    assert response.status_code == 200
    assert response.json == {"success": True, "provider": health_of(client, "groq")}
    assert response.json["provider"]["state"] == "ok"
    answer = client.post("/chat", json={**CHAT, "provider": None}, headers=ADMIN)
    assert (answer.status_code, answer.headers["X-Provider"]) == (200, "Groq")


def test_the_endpoint_matches_the_id_as_chat_does(app):
    response = app.test_client().post("/admin/providers/%20GROQ%20/reset", headers=ADMIN)
    assert (response.status_code, response.json["provider"]["id"]) == (200, "groq")


def test_resetting_a_provider_without_a_key_answers_its_health_entry(app):
    response = app.test_client().post("/admin/providers/cerebras/reset", headers=ADMIN)
    assert response.json["provider"] == {"id": "cerebras", "name": "Cerebras", "model": "zai-glm-4.7",
                                         "configured": False, "state": "not_configured"}


@pytest.mark.parametrize("headers, status, error", [
    (ADMIN, 404, "Unknown provider 'nope'"),
    ({}, 401, "API key required. Use Authorization: Bearer YOUR_KEY or X-API-Key header"),
    ({"X-API-Key": "public-key"}, 403, "Invalid or disabled API key"),
], ids=["unknown-id", "no-key", "not-the-master-key"])
def test_the_reset_endpoint_refuses_an_unknown_id_and_anyone_but_the_master(app, headers, status, error):
    path = "/admin/providers/nope/reset" if status == 404 else "/admin/providers/groq/reset"
    response = app.test_client().post(path, headers=headers)
    assert (response.status_code, response.json) == (status, {"error": error, "status": status})


def test_the_command_without_redis_says_to_use_the_endpoint(app):
    result = app.test_cli_runner().invoke(args=["providers", "reset", "groq"])
    assert result.exit_code == 1
    assert "use POST /admin/providers/groq/reset" in result.stderr


def test_the_command_refuses_an_unknown_provider_naming_the_valid_ones(app):
    result = app.test_cli_runner().invoke(args=["providers", "reset", "nope"])
    assert result.exit_code == 2
    assert "unknown provider; one of groq, cerebras, openrouter, gemini, huggingface" in result.stderr


@needs_redis
def test_the_command_brings_the_provider_back_in_the_running_gateway(make_app, fake, redis_db):
    gateway = make_app(providers=("groq", "gemini"), model_check_interval=0, redis_url=redis_db)
    operator = make_app(providers=("groq", "gemini"), model_check_interval=0, redis_url=redis_db)
    gateway.extensions["router"].failed(gateway.extensions["router"].by_id("groq"), MODEL_GONE)
    client = gateway.test_client()
    assert health_of(client, "groq")["until"] is None  # out until restart, as before resets existed
    result = operator.test_cli_runner().invoke(args=["providers", "reset", "groq"])
    assert result.exit_code == 0, result.output
    assert '"state": "ok"' in result.stdout
    assert health_of(client, "groq")["state"] == "ok"
    assert "groq" in [p.id for p in gateway.extensions["router"].plan()]
