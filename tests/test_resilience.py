"""Failover, cool-downs, timeouts and choosing a provider, under gunicorn + gevent against the fake."""
import subprocess
import time

import pytest
import requests

from tests.fakeprovider import Reply, stream_error_event
from tests.gateway import MASTER_KEY, PROVIDER_IDS, health_state, wait_until


def test_429_with_retry_after_rests_the_provider_until_then(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras", "openrouter"], RATE_LIMIT_MAX=100)
    # Retry-After is the only time this 429 names: the token budget its headers report is not spent.
    fake.enqueue("groq", Reply(status=429, headers={"retry-after": "1", "x-ratelimit-remaining-tokens": "299950",
                                                    "x-ratelimit-reset-tokens": "10ms"}))
    started = time.monotonic()
    first = gateway.post_chat()
    assert (first.status_code, first.text) == (200, "Hello from cerebras")
    assert (first.headers["X-Provider"], first.headers["X-Attempts"]) == ("Cerebras", "2")
    assert health_state(gateway, "groq")["state"] == "cooling_down"
    # While Groq rests, the rotation goes on over the others without calling it.
    assert [gateway.post_chat().headers["X-Provider"] for _ in range(4)] == [
        "OpenRouter (DeepSeek)", "Cerebras", "OpenRouter (DeepSeek)", "Cerebras"]
    assert len(fake.chat_requests("groq")) == 1
    assert wait_until(lambda: health_state(gateway, "groq")["state"] == "ok")
    assert time.monotonic() - started < 4  # a one-second rest: not the 30 s FAILURE_COOLDOWN, nor any other time
    # Back in the rotation at its place: after Cerebras, the last to answer, comes OpenRouter, then Groq.
    assert [gateway.post_chat().headers["X-Provider"] for _ in range(3)] == [
        "OpenRouter (DeepSeek)", "Groq", "Cerebras"]
    assert len(fake.chat_requests("groq")) == 2


def test_a_500_fails_over_and_the_client_sees_one_clean_answer(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras"])
    fake.enqueue("groq", Reply(status=500))
    response = gateway.post_chat()
    assert response.status_code == 200
    assert response.text == "Hello from cerebras"
    assert response.headers["X-Attempts"] == "2"
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).json()["services"]
    assert metrics["Groq"]["failovers"] == 1 and metrics["Groq"]["errors"] == 1


@pytest.mark.parametrize("reply", [Reply(status=503, body="upstream connect error or disconnect/reset before headers"),
                                   Reply(status=404), Reply(status=401), Reply(never_answer=True, stall_seconds=5)],
                         ids=["503-text", "404-model", "401-bad-key", "never-answers"])
def test_provider_side_failures_fail_over(start_gateway, fake, reply):
    gateway = start_gateway(providers=["groq", "cerebras"], FIRST_TOKEN_TIMEOUT=1)
    fake.enqueue("groq", reply)
    response = gateway.post_chat()
    assert (response.status_code, response.text) == (200, "Hello from cerebras")
    assert (response.headers["X-Provider"], response.headers["X-Attempts"]) == ("Cerebras", "2")


def test_a_request_the_provider_calls_invalid_is_not_retried(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras"])
    fake.enqueue("groq", Reply(status=400, body={"error": {"message": "max_tokens is too large",
                                                           "type": "invalid_request_error"}}))
    response = gateway.post_chat()
    assert response.status_code == 400
    assert response.json() == {"error": "upstream answered 400: max_tokens is too large", "status": 400}
    assert fake.chat_requests("cerebras") == []


def test_every_provider_failing_gives_one_json_502_within_the_timeouts(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras", "gemini"], FIRST_TOKEN_TIMEOUT=1)
    fake.enqueue("groq", Reply(status=500))
    fake.enqueue("cerebras", Reply(never_answer=True, stall_seconds=10))
    fake.enqueue("gemini", Reply(status=503))
    started = time.monotonic()
    response = gateway.post_chat()
    assert time.monotonic() - started < 5
    assert response.status_code == 502
    assert response.json() == {"error": "All providers failed (3 tried)", "status": 502}


def test_a_stall_before_the_first_token_fails_over_after_the_first_token_timeout(start_gateway, fake):
    gateway = start_gateway(providers=["openrouter", "gemini"], FIRST_TOKEN_TIMEOUT=1)
    # Keep-alive comments keep the socket busy, but they are not a first token.
    fake.enqueue("openrouter", Reply(first_delay=4, keepalive=8))
    response = gateway.post_chat()
    assert (response.status_code, response.text) == (200, "Hello from gemini")
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).json()["services"]
    assert metrics["OpenRouter (DeepSeek)"]["timeouts"] == 1


def test_a_stream_dropped_midway_ends_without_its_final_chunk(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras"])
    fake.enqueue("groq", Reply(chunks=["one", " two", " three"], drop_after=2))
    received = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        with gateway.post_chat(stream=True) as response:
            assert response.status_code == 200
            for chunk in response.iter_content(chunk_size=None):
                received += chunk
    assert received == b"one two"
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).json()["services"]
    assert metrics["Groq"]["midstreamFailures"] == 1


def test_curl_reports_a_mid_stream_failure(start_gateway, fake):
    gateway = start_gateway(providers=["groq"])
    fake.enqueue("groq", Reply(chunks=["one", " two", " three"], drop_after=1))
    result = subprocess.run(
        ["curl", "-sSN", "-X", "POST", f"{gateway.url}/chat", "-H", f"X-API-Key: {MASTER_KEY}",
         "-H", "Content-Type: application/json", "-d", '{"messages":[{"role":"user","content":"hi"}]}'],
        capture_output=True, timeout=30)
    assert result.stdout == b"one"
    assert result.returncode == 18  # CURLE_PARTIAL_FILE: transfer closed with outstanding read data


def test_a_stall_mid_stream_is_cut_and_the_upstream_closed(start_gateway, fake):
    gateway = start_gateway(providers=["groq"], IDLE_TIMEOUT=1)
    fake.enqueue("groq", Reply(chunks=["one", " two"], stall_after=1, stall_seconds=20))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        gateway.post_chat().content
    assert fake.wait_disconnect("groq", timeout=5)
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).json()["services"]["Groq"]
    assert (metrics["timeouts"], metrics["midstreamFailures"]) == (1, 1)


@pytest.mark.parametrize("reply, before", [
    (Reply(malformed=True), b"Hello"),  # broken JSON right after the first content chunk
    (Reply(error_event=stream_error_event("openrouter")), b"Hello from openrouter"),  # after all the content
], ids=["malformed", "error-event"])
def test_a_bad_event_after_the_first_chunk_cuts_the_stream(start_gateway, fake, reply, before):
    gateway = start_gateway(providers=["openrouter"])
    fake.enqueue("openrouter", reply)
    received = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        with gateway.post_chat(stream=True) as response:
            assert response.status_code == 200
            for chunk in response.iter_content(chunk_size=None):
                received += chunk
    assert received == before


def test_a_named_provider_is_used_by_body_or_header(start_gateway, fake):
    gateway = start_gateway(RATE_LIMIT_MAX=100)
    by_body = gateway.post_chat(json={"messages": [{"role": "user", "content": "hi"}], "provider": "gemini"})
    by_header = gateway.post_chat(headers={"X-Provider": "huggingface"})
    assert by_body.headers["X-Provider"] == "Gemini 3 Flash"
    assert by_header.headers["X-Provider"] == "Hugging Face Llama 3.1 8B"


def test_unknown_or_unconfigured_provider_names_get_a_400(start_gateway):
    gateway = start_gateway(providers=["groq"])
    unknown = gateway.post_chat(headers={"X-Provider": "openai"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "Unknown provider 'openai'. Valid providers: " + ", ".join(PROVIDER_IDS)
    unconfigured = gateway.post_chat(headers={"X-Provider": "gemini"})
    assert (unconfigured.status_code, unconfigured.json()) == (
        400, {"error": "Provider 'gemini' is not configured on this gateway", "status": 400})


def test_a_named_provider_is_tried_while_cooling_unless_fallback_is_asked(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras"])
    fake.enqueue("groq", Reply(status=429, headers={"retry-after": "60"}, times=2))
    assert gateway.post_chat().headers["X-Provider"] == "Cerebras"  # groq 429 -> failover
    named = gateway.post_chat(headers={"X-Provider": "groq"})
    # Asked for groq alone; groq answered 429 again.
    assert (named.status_code, named.json()) == (502, {"error": "All providers failed (1 tried)", "status": 502})
    fallback = gateway.post_chat(headers={"X-Provider": "groq", "X-Fallback": "true"})
    assert (fallback.status_code, fallback.headers["X-Provider"]) == (200, "Cerebras")
    assert len(fake.chat_requests("groq")) == 2


def test_round_robin_stays_exact_over_healthy_providers_while_one_cools_down(start_gateway, fake):
    gateway = start_gateway(RATE_LIMIT_MAX=100)
    fake.enqueue("cerebras", Reply(status=429, headers={"retry-after": "60"}))
    order = [gateway.post_chat().headers["X-Provider"] for _ in range(9)]
    assert order == ["Groq", "OpenRouter (DeepSeek)", "Gemini 3 Flash", "Hugging Face Llama 3.1 8B",
                     "Groq", "OpenRouter (DeepSeek)", "Gemini 3 Flash", "Hugging Face Llama 3.1 8B", "Groq"]
    state = health_state(gateway, "cerebras")
    assert state["state"] == "cooling_down" and state["until"].endswith("Z")


def test_repeated_failures_open_the_circuit_then_one_probe_closes_it(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras"], FAILURE_THRESHOLD=2, FAILURE_COOLDOWN=1,
                            RATE_LIMIT_MAX=100)
    fake.enqueue("groq", Reply(status=500, times=2))
    # groq fails (1) and cerebras answers; the rotation goes on after cerebras: groq fails (2), the circuit
    # opens, cerebras answers; groq is skipped while it cools down.
    answers = [gateway.post_chat() for _ in range(3)]
    assert [(r.headers["X-Provider"], r.headers["X-Attempts"]) for r in answers] == [
        ("Cerebras", "2"), ("Cerebras", "2"), ("Cerebras", "1")]
    assert len(fake.chat_requests("groq")) == 2
    assert health_state(gateway, "groq")["state"] == "cooling_down"
    assert wait_until(lambda: health_state(gateway, "groq")["state"] != "cooling_down")
    state = health_state(gateway, "groq")
    assert (state["state"], state["failures"]) == ("failing", 2)  # the back-off is over, the failures remembered
    # The next turn is groq's: one probe, which succeeds and closes the circuit.
    assert [gateway.post_chat().headers["X-Provider"] for _ in range(2)] == ["Groq", "Cerebras"]
    assert health_state(gateway, "groq")["state"] == "ok"


def test_requests_the_provider_rejects_as_invalid_do_not_count_against_its_health(start_gateway, fake):
    gateway = start_gateway(providers=["groq"], FAILURE_THRESHOLD=2)
    fake.enqueue("groq", Reply(status=400, body={"error": {"message": "bad temperature",
                                                           "type": "invalid_request_error"}}, times=3))
    assert [gateway.post_chat().status_code for _ in range(3)] == [400] * 3
    assert health_state(gateway, "groq")["state"] == "ok"
    assert gateway.post_chat().status_code == 200
