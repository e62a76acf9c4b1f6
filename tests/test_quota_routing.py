"""Quota-aware routing end to end: the fake sends each provider's real rate-limit headers and error
bodies; the gateway must steer around exhausted providers before wasting a request on them."""
import time

import requests

from tests.fakeprovider import Reply
from tests.gateway import health_state, wait_until


def answered_by(gateway, count):
    return [gateway.post_chat().headers.get("X-Provider", "none") for _ in range(count)]


def test_zero_remaining_requests_skips_the_provider_until_its_reset(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras"], RATE_LIMIT_MAX=100)
    fake.enqueue("groq", Reply(headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}))
    assert gateway.post_chat().headers["X-Provider"] == "Groq"  # this answer spent the last request
    assert answered_by(gateway, 3) == ["Cerebras"] * 3
    assert len(fake.chat_requests("groq")) == 1  # skipped without being called
    state = health_state(gateway, "groq")
    assert state["state"] == "cooling_down" and state["quota"]["remainingRequests"] == 0
    assert wait_until(lambda: health_state(gateway, "groq")["state"] == "ok")
    assert answered_by(gateway, 2) == ["Groq", "Cerebras"]  # its turn comes round again after Cerebras


def ask(gateway, provider):
    """A request that goes to `provider` first and fails over if it must."""
    return gateway.post_chat(headers={"X-Provider": provider, "X-Fallback": "true"})


def until_seconds(state):
    from datetime import datetime
    return datetime.fromisoformat(state["until"].replace("Z", "+00:00")).timestamp() - time.time()


def test_cerebras_daily_exhaustion_rests_until_the_daily_reset(start_gateway, fake):
    gateway = start_gateway(providers=["cerebras", "groq"])
    fake.enqueue("cerebras", Reply(status=429, headers={
        "x-ratelimit-remaining-requests-day": "0", "x-ratelimit-reset-requests-day": "33011.38",
        "x-ratelimit-remaining-tokens-minute": "50000", "x-ratelimit-reset-tokens-minute": "11.38"}))
    assert ask(gateway, "cerebras").headers["X-Provider"] == "Groq"
    state = health_state(gateway, "cerebras")
    assert state["state"] == "cooling_down"
    assert 33000 < until_seconds(state) < 33020


def test_cerebras_minute_exhaustion_rests_for_the_minute_window(start_gateway, fake):
    gateway = start_gateway(providers=["cerebras", "groq"])
    fake.enqueue("cerebras", Reply(status=429, body={
        "message": "Tokens per minute limit exceeded - too many tokens processed.", "type": "too_many_requests_error",
        "param": "quota", "code": "token_quota_exceeded"}, headers={
        "x-ratelimit-remaining-requests-day": "14000", "x-ratelimit-reset-requests-day": "33011.38",
        "x-ratelimit-remaining-tokens-minute": "0", "x-ratelimit-reset-tokens-minute": "11.38"}))
    assert ask(gateway, "cerebras").headers["X-Provider"] == "Groq"
    state = health_state(gateway, "cerebras")
    assert (state["state"], state["reason"]) == ("cooling_down", "tokens_per_minute")
    assert 5 < until_seconds(state) < 15


def test_openrouter_daily_free_limit_rests_until_the_epoch_ms_reset(start_gateway, fake):
    gateway = start_gateway(providers=["openrouter", "groq"])
    reset_ms = int((time.time() + 5 * 3600) * 1000)
    fake.enqueue("openrouter", Reply(status=429, body={"error": {
        "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day",
        "code": 429, "metadata": {"headers": {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0",
                                               "X-RateLimit-Reset": str(reset_ms)}}}}))
    assert ask(gateway, "openrouter").headers["X-Provider"] == "Groq"
    assert abs(until_seconds(health_state(gateway, "openrouter")) - 5 * 3600) < 60


def gemini_429(quota_id, retry_delay, message="Resource has been exhausted (e.g. check quota).", value="15"):
    return {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
             "quotaId": quota_id, "quotaDimensions": {"location": "global", "model": "gemini-3-flash"},
             "quotaValue": value}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]}}


def test_gemini_retry_delay_sets_the_rest(start_gateway, fake):
    gateway = start_gateway(providers=["gemini", "groq"])
    fake.enqueue("gemini", Reply(status=429, body=gemini_429(
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "34.4s")))
    assert ask(gateway, "gemini").headers["X-Provider"] == "Groq"
    state = health_state(gateway, "gemini")
    assert (state["state"], state["reason"]) == ("cooling_down", "requests_per_minute")
    assert 30 < until_seconds(state) < 36


def test_gemini_limit_zero_takes_the_provider_out_until_restart(start_gateway, fake):
    gateway = start_gateway(providers=["gemini", "groq"], RATE_LIMIT_MAX=100)
    fake.enqueue("gemini", Reply(status=429, body=gemini_429(
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "20s", value="0",
        message="Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, "
                "limit: 0, model: gemini-3-flash")))
    assert ask(gateway, "gemini").headers["X-Provider"] == "Groq"
    state = health_state(gateway, "gemini")
    assert (state["state"], state["until"], state["reason"]) == ("cooling_down", None, "model_not_in_tier")
    assert answered_by(gateway, 3) == ["Groq"] * 3


def test_huggingface_out_of_credits_is_out_until_restart(start_gateway, fake):
    gateway = start_gateway(providers=["huggingface", "groq"])
    fake.enqueue("huggingface", Reply(status=402))
    assert ask(gateway, "huggingface").headers["X-Provider"] == "Groq"
    state = health_state(gateway, "huggingface")
    assert (state["state"], state["until"], state["reason"]) == ("cooling_down", None, "credits_exhausted")


def test_the_max_tokens_ceiling_is_what_the_provider_receives(start_gateway, fake):
    gateway = start_gateway(providers=["cerebras", "gemini"], CEREBRAS_MAX_TOKENS=256, GEMINI_MAX_TOKENS=128)
    assert answered_by(gateway, 2) == ["Cerebras", "Gemini 3 Flash"]
    [cerebras], [gemini] = fake.chat_requests("cerebras"), fake.chat_requests("gemini")
    assert cerebras.json["max_tokens"] == 256
    assert gemini.json["generationConfig"]["maxOutputTokens"] == 128


def test_a_model_missing_from_the_provider_list_takes_it_out_with_a_named_setting(start_gateway, fake):
    fake.models["groq"] = ["moonshotai/kimi-k2-instruct-0905-v2", "llama-3.3-70b-versatile"]
    gateway = start_gateway(providers=["groq", "cerebras"], RATE_LIMIT_MAX=100)
    assert wait_until(lambda: health_state(gateway, "groq")["state"] == "cooling_down")
    state = health_state(gateway, "groq")
    assert (state["reason"], state["until"]) == ("model_not_found", None)
    assert state["detail"] == ("Groq does not offer model 'moonshotai/kimi-k2-instruct-0905': set GROQ_MODEL; "
                               "closest offered: moonshotai/kimi-k2-instruct-0905-v2")
    assert answered_by(gateway, 2) == ["Cerebras"] * 2
    assert "GROQ_MODEL" in gateway.log()


def test_a_decommissioned_model_answer_takes_the_provider_out(start_gateway, fake):
    # No model check: the start-up one, should it finish after this answer, would see the model listed (the
    # fake lists it) and rightly bring Groq back.
    gateway = start_gateway(providers=["groq", "cerebras"], RATE_LIMIT_MAX=100, MODEL_CHECK_INTERVAL=0)
    fake.enqueue("groq", Reply(status=400, body={"error": {
        "message": "The model `moonshotai/kimi-k2-instruct-0905` has been decommissioned and is no longer supported.",
        "type": "invalid_request_error", "code": "model_decommissioned"}}))
    assert gateway.post_chat().headers["X-Provider"] == "Cerebras"
    state = health_state(gateway, "groq")
    assert (state["reason"], state["until"]) == ("model_not_found", None)
    assert state["detail"] == "Groq does not offer model 'moonshotai/kimi-k2-instruct-0905': set GROQ_MODEL"
    assert answered_by(gateway, 2) == ["Cerebras"] * 2


def test_health_live_and_ready(start_gateway):
    gateway = start_gateway(providers=["groq"])
    assert requests.get(f"{gateway.url}/health/live", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{gateway.url}/health/ready", timeout=5)
    assert ready.status_code == 200 and ready.json()["checks"] == {"keyStore": True, "providers": True}


def test_a_token_budget_too_small_for_the_prompt_skips_the_provider(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras"], RATE_LIMIT_MAX=100)
    fake.enqueue("groq", Reply(headers={"x-ratelimit-remaining-tokens": "20", "x-ratelimit-reset-tokens": "30s"}))
    assert gateway.post_chat().headers["X-Provider"] == "Groq"
    big = "word " * 200  # about 250 tokens: more than the 20 left this minute
    assert [gateway.post_chat(content=big).headers["X-Provider"] for _ in range(2)] == ["Cerebras", "Cerebras"]
    assert len(fake.chat_requests("groq")) == 1
    assert [gateway.post_chat(content="hi").headers["X-Provider"] for _ in range(2)] == ["Groq", "Cerebras"]
