"""/health and /health/ready tell the truth about whether requests can be served, a 503 of cooling providers says
when to come back, Prometheus labels name the provider by id and model, and TRUSTED_PROXIES lets the limiter see
the client behind a proxy. In process, on a fake clock: no waiting."""
import math

import pytest

from tests.conftest import MASTER
from utils.errors import ProviderError
from utils.quota import Quota
from utils.settings import SettingsError, load_settings

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
AUTH = {"Authorization": f"Bearer {MASTER}"}


@pytest.fixture
def gateway(make_app, clock):
    """An app with Groq and Gemini configured, its router on the fake clock; returns (client, router)."""
    def make(**overrides):
        app = make_app(**overrides)
        router = app.extensions["router"]
        router.clock = clock
        return app.test_client(), router
    return make


def rest(router, provider_id, seconds):
    """The provider answers 429 asking for `seconds` of rest (math.inf: its model is gone, until an operator acts)."""
    provider = router.by_id(provider_id)
    if seconds == math.inf:
        router.failed(provider, ProviderError("gone", upstream_status=404, kind="model_not_found", model_gone=True))
    else:
        router.failed(provider, ProviderError("busy", upstream_status=429, retry_after=seconds, kind="rate_limited"))


def test_health_is_ok_while_every_configured_provider_can_serve(gateway):
    client, router = gateway()
    router.failed(router.by_id("groq"), ProviderError("slow", kind="timeout"))  # failing, still in the rotation
    response = client.get("/health")
    assert (response.status_code, response.json["status"]) == (200, "ok")
    assert client.get("/health/ready").json == {"status": "ok", "checks": {"keyStore": True, "providers": True}}


@pytest.mark.parametrize("why", ["cooling_down", "model_gone", "out_of_quota"])
def test_health_is_degraded_but_200_while_some_provider_cannot_serve(gateway, clock, why):
    client, router = gateway()
    if why == "out_of_quota":
        router.observe(router.by_id("gemini"), Quota(remaining_requests=0, requests_reset=clock.now + 60))
    else:
        rest(router, "gemini", math.inf if why == "model_gone" else 30)
    response = client.get("/health")
    assert (response.status_code, response.json["status"]) == (200, "degraded")
    assert client.get("/health/ready").status_code == 200


def test_health_is_down_and_503_when_no_provider_can_serve(gateway):
    client, router = gateway()
    rest(router, "groq", 30)
    rest(router, "gemini", math.inf)
    response = client.get("/health")
    assert (response.status_code, response.json["status"]) == (503, "down")
    assert {p["id"]: p["state"] for p in response.json["providers"] if p["configured"]} == {
        "groq": "cooling_down", "gemini": "cooling_down"}
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json["checks"] == {"keyStore": True, "providers": False}
    assert ready.json["reason"].startswith("no provider can serve")


def test_health_is_down_when_no_provider_is_configured(gateway):
    client, _ = gateway(providers=())
    response = client.get("/health")
    assert (response.status_code, response.json["status"], response.json["services"]) == (503, "down", [])
    ready = client.get("/health/ready")
    assert (ready.status_code, ready.json["reason"]) == (503, "no provider is configured: set a provider key")


@pytest.mark.parametrize("path, body", [("/chat", CHAT), ("/v1/chat/completions", {**CHAT, "model": "auto"})])
def test_a_503_because_every_provider_rests_says_when_the_first_comes_back(gateway, clock, path, body):
    client, router = gateway()
    rest(router, "groq", 90)
    rest(router, "gemini", 30)
    clock.advance(10.5)
    response = client.post(path, json=body, headers=AUTH)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "20"  # Gemini's 30 s, 10.5 of them gone, rounded up


def test_no_retry_after_when_no_wait_would_help(gateway):
    client, router = gateway()
    rest(router, "groq", math.inf)
    rest(router, "gemini", math.inf)
    response = client.post("/chat", json=CHAT, headers=AUTH)
    assert response.status_code == 503 and "Retry-After" not in response.headers


def test_no_provider_configured_is_a_503_without_retry_after(gateway):
    client, _ = gateway(providers=())
    response = client.post("/chat", json=CHAT, headers=AUTH)
    assert response.status_code == 503 and "Retry-After" not in response.headers


def test_prometheus_labels_are_the_provider_id_and_its_configured_model(gateway):
    client, _ = gateway()
    assert client.post("/chat", json=CHAT, headers=AUTH).status_code == 200
    text = client.get("/metrics/prometheus").get_data(as_text=True)
    assert 'gateway_provider_requests_total{model="moonshotai/kimi-k2-instruct-0905",provider="groq"} 1.0' in text
    assert 'provider="gemini"' in text and 'provider="Groq"' not in text


@pytest.mark.parametrize("trusted, separate", [(1, True), (0, False)])
def test_trusted_proxies_decides_whose_address_the_limiter_counts(gateway, trusted, separate):
    client, _ = gateway(require_auth=False, rate_limit_max=1, trusted_proxies=trusted)

    def chat(client_address, forged=None):
        forwarded = ", ".join(filter(None, [forged, client_address]))  # what nginx sends: appended to the client's
        return client.post("/chat", json=CHAT, headers={"X-Forwarded-For": forwarded},
                           environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code
    assert chat("198.51.100.1") == 200
    assert chat("198.51.100.1", forged="203.0.113.9") == 429
    assert chat("198.51.100.2") == (200 if separate else 429)


@pytest.mark.parametrize("value", ["-1", "one", "1.5"])
def test_a_wrong_trusted_proxies_stops_start_up_naming_it(value):
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        load_settings({"TRUSTED_PROXIES": value})
