"""What each provider's answers say about its quota, read into one `Quota`; and the one reset-time parser.

Header values and bodies are copied from PROVIDERS.md and from captures quoted in public bug reports.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
import responses
from requests.structures import CaseInsensitiveDict

from providers import cerebras, gemini, groq, huggingface, openrouter
from providers.cerebras import CerebrasProvider
from providers.gemini import GeminiProvider
from providers.groq import GroqProvider
from providers.huggingface import HuggingFaceProvider
from providers.openrouter import OpenRouterProvider
from utils import quota as quota_module
from utils.chat import ChatRequest, Message
from utils.errors import ProviderError
from utils.quota import Quota, parse_reset
from utils.settings import ProviderSettings
from utils.upstream import Upstream

NOW = datetime(2026, 7, 14, 15, 30, tzinfo=timezone.utc).timestamp()  # 08:30 in Los Angeles (PDT)


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def headers(**values) -> CaseInsensitiveDict:
    return CaseInsensitiveDict({name.replace("_", "-"): value for name, value in values.items()})


@pytest.fixture
def gateway_log(caplog):
    """The gateway logger's records (it may not propagate to the root once the app configured it)."""
    logger = logging.getLogger("gateway")
    detached = not logger.propagate
    if detached:
        logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="gateway")
    quota_module._warn_unknown_format.cache_clear()
    yield caplog
    if detached:
        logger.removeHandler(caplog.handler)
    quota_module._warn_unknown_format.cache_clear()


# ===================== parse_reset =====================

@pytest.mark.parametrize("value, expected", [
    ("2m59.56s", NOW + 179.56),  # Groq x-ratelimit-reset-requests
    ("7.66s", NOW + 7.66),  # Groq x-ratelimit-reset-tokens
    ("1h2m", NOW + 3720),
    ("1h2m3.5s", NOW + 3723.5),
    ("500ms", NOW + 0.5),
    ("0s", NOW),
    ("33011.382867097855", NOW + 33011.382867097855),  # Cerebras x-ratelimit-reset-requests-day
    ("11.382867097854614", NOW + 11.382867097854614),  # Cerebras x-ratelimit-reset-tokens-minute
    ("6", NOW + 6),  # Retry-After
    (6, NOW + 6),
    (5.289, NOW + 5.289),
    ("34.4s", NOW + 34.4),  # Gemini RetryInfo.retryDelay
    ("1741305600000", 1741305600.0),  # OpenRouter X-RateLimit-Reset, epoch milliseconds
    (1741305600000, 1741305600.0),
    ("1741305600", 1741305600.0),  # epoch seconds
    (1741305600, 1741305600.0),
    ("Wed, 21 Oct 2026 07:28:00 GMT", utc(2026, 10, 21, 7, 28)),  # Retry-After as an HTTP date
], ids=str)
def test_parse_reset_reads_every_providers_format(value, expected):
    assert parse_reset(value, NOW) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("value", ["soon", "", None, "-5", -5, "nan", float("nan"), float("inf"), "1h2x", {}, [],
                                   True, "2m59.56", "Wed, 99 Foo 2026"], ids=repr)
def test_parse_reset_answers_none_for_garbage_without_raising(value, gateway_log):
    assert parse_reset(value, NOW) is None


def test_garbage_is_logged_once_per_format(gateway_log):
    for value in ["soon", "soon", "1h2x", "3h4x", "1h2x"]:
        parse_reset(value, NOW)
    warnings = [r.getMessage() for r in gateway_log.records if r.name == "gateway"]
    # `1h2x` and `3h4x` are one format: digits are not part of it.
    assert warnings == ["unreadable or out-of-range rate-limit reset ignored: 'soon'",
                        "unreadable or out-of-range rate-limit reset ignored: '9h9x'"]


def test_an_absent_value_is_not_garbage(gateway_log):
    assert parse_reset(None, NOW) is None
    assert gateway_log.records == []


# ===================== Groq =====================

GROQ_SUCCESS = headers(x_ratelimit_limit_requests="14400", x_ratelimit_limit_tokens="18000",
                       x_ratelimit_remaining_requests="14370", x_ratelimit_remaining_tokens="17997",
                       x_ratelimit_reset_requests="2m59.56s", x_ratelimit_reset_tokens="7.66s",
                       x_request_id="req_01kh52m3qqem4sw141xf026ehx")


def test_groq_success_headers_count_requests_per_day_and_tokens_per_minute():
    quota = groq.read_quota(200, GROQ_SUCCESS, None, NOW)
    assert quota == Quota(remaining_requests=14370, requests_reset=pytest.approx(NOW + 179.56),
                          requests_window="day", remaining_tokens=17997, tokens_reset=pytest.approx(NOW + 7.66),
                          tokens_window="minute")


def test_groq_429_on_tokens_is_a_minute_exhaustion_until_retry_after():
    body = {"error": {"message": "Rate limit reached for model `gemma2-9b-it` in organization `org_01` service tier "
                                 "`on_demand` on tokens per minute (TPM): Limit 15000, Used 11972, Requested 4351. "
                                 "Please try again in 5.289s. Visit https://console.groq.com/docs/rate-limits for "
                                 "more information.", "type": "tokens", "code": "rate_limit_exceeded"}}
    quota = groq.read_quota(429, headers(**{**GROQ_SUCCESS, "x-ratelimit-remaining-tokens": "0",
                                            "x-ratelimit-reset-tokens": "5.289s", "retry-after": "6"}), body, NOW)
    assert (quota.window, quota.reason, quota.retry_at) == ("minute", "tokens_per_minute", NOW + 6)
    assert quota.remaining_tokens == 0 and not quota.out_until_restart


def test_groq_429_on_requests_per_day_is_a_daily_exhaustion():
    body = {"error": {"message": "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` "
                                 "service tier `on_demand` on requests per day (RPD): Limit 1000, Used 1000, "
                                 "Requested 1. Please try again in 1m26.4s. Visit "
                                 "https://console.groq.com/docs/rate-limits for more information.",
                      "type": "requests", "code": "rate_limit_exceeded"}}
    quota = groq.read_quota(429, headers(x_ratelimit_remaining_requests="0", x_ratelimit_reset_requests="1m26.4s"),
                            body, NOW)
    assert (quota.window, quota.reason, quota.remaining_requests) == ("day", "requests_per_day", 0)
    assert quota.retry_at == pytest.approx(NOW + 86.4)  # no retry-after: the body's "try again in"


def test_groq_429_without_a_body_still_says_rate_limited():
    quota = groq.read_quota(429, headers(retry_after="2"), "upstream said no", NOW)
    assert (quota.reason, quota.retry_at, quota.window) == ("rate_limited", NOW + 2, None)


# ===================== Cerebras =====================

CEREBRAS_HEADERS = dict(x_ratelimit_limit_requests_day="14400", x_ratelimit_limit_tokens_minute="60000",
                        x_ratelimit_remaining_requests_day="14100", x_ratelimit_remaining_tokens_minute="59000",
                        x_ratelimit_reset_requests_day="33011.382867097855",
                        x_ratelimit_reset_tokens_minute="11.382867097854614")


def test_cerebras_success_headers_carry_their_window_in_the_name():
    quota = cerebras.read_quota(200, headers(**CEREBRAS_HEADERS), None, NOW)
    assert quota == Quota(remaining_requests=14100, requests_reset=pytest.approx(NOW + 33011.382867097855),
                          requests_window="day", remaining_tokens=59000,
                          tokens_reset=pytest.approx(NOW + 11.382867097854614), tokens_window="minute")


def test_cerebras_daily_requests_gone_rest_until_the_daily_reset_whatever_the_sentence_says():
    body = {"message": "Requests per minute limit exceeded - too many requests sent.",
            "type": "too_many_requests_error", "param": "quota", "code": "request_quota_exceeded"}
    quota = cerebras.read_quota(429, headers(**{**CEREBRAS_HEADERS, "x_ratelimit_remaining_requests_day": "0"}),
                                body, NOW)
    assert (quota.window, quota.reason) == ("day", "requests_per_day")
    assert quota.retry_at == pytest.approx(NOW + 33011.382867097855)


def test_cerebras_tokens_per_minute_rest_until_the_minute_reset():
    body = {"message": "Tokens per minute limit exceeded - too many tokens processed.",
            "type": "too_many_requests_error", "param": "quota", "code": "token_quota_exceeded"}
    quota = cerebras.read_quota(429, headers(**{**CEREBRAS_HEADERS, "x_ratelimit_remaining_tokens_minute": "0"}),
                                body, NOW)
    assert (quota.window, quota.reason) == ("minute", "tokens_per_minute")
    assert quota.retry_at == pytest.approx(NOW + 11.382867097854614)


def test_cerebras_requests_per_minute_uses_its_own_window_header_when_sent():
    body = {"message": "Requests per minute limit exceeded - too many requests sent.",
            "type": "too_many_requests_error", "param": "quota", "code": "request_quota_exceeded"}
    quota = cerebras.read_quota(429, headers(**CEREBRAS_HEADERS, x_ratelimit_remaining_requests_minute="0",
                                             x_ratelimit_reset_requests_minute="41.5"), body, NOW)
    assert (quota.window, quota.reason, quota.retry_at) == ("minute", "requests_per_minute", NOW + 41.5)
    # The minute window binds now, so it is the one the quota reports for requests.
    assert (quota.remaining_requests, quota.requests_window) == (0, "minute")


def test_cerebras_high_traffic_is_the_queue_not_our_budget():
    body = {"message": "We're experiencing high traffic right now! Please try again soon.",
            "type": "too_many_requests_error", "param": "queue", "code": "queue_exceeded"}
    quota = cerebras.read_quota(429, headers(**CEREBRAS_HEADERS, retry_after="3"), body, NOW)
    assert (quota.reason, quota.window, quota.retry_at) == ("high_traffic", None, NOW + 3)


# ===================== OpenRouter =====================

FREE_MODELS_PER_DAY = {"error": {
    "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day",
    "code": 429, "metadata": {"headers": {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0",
                                          "X-RateLimit-Reset": "1784073600000"}}}}


def test_openrouter_free_models_per_day_rests_until_the_epoch_ms_reset():
    quota = openrouter.read_quota(429, headers(), FREE_MODELS_PER_DAY, NOW)
    assert quota == Quota(remaining_requests=0, requests_reset=utc(2026, 7, 15), requests_window="day",
                          retry_at=utc(2026, 7, 15), window="day", reason="requests_per_day")


def test_openrouter_upstream_429_waits_for_retry_after():
    body = {"error": {"message": "Provider returned error", "code": 429, "metadata": {
        "raw": "deepseek/deepseek-r1-0528:free is temporarily rate-limited upstream. Please retry shortly.",
        "provider_name": "DeepInfra", "is_byok": False, "provider_error_code": "engine_overloaded",
        "limit_source": "upstream_provider_shared_pool"}}, "user_id": "user_2x"}
    quota = openrouter.read_quota(429, headers(Retry_After="20"), body, NOW)
    assert (quota.reason, quota.retry_at, quota.window, quota.remaining_requests) == ("rate_limited", NOW + 20,
                                                                                     None, None)


def test_openrouter_rate_headers_on_the_response_itself_are_read_too():
    quota = openrouter.read_quota(200, headers(**{"X-RateLimit-Remaining": "12", "X-RateLimit-Reset": "1784073600000"}),
                                  None, NOW)
    assert (quota.remaining_requests, quota.requests_reset) == (12, utc(2026, 7, 15))


def test_openrouter_out_of_credits_is_out_until_restart():
    body = {"error": {"message": "Insufficient credits. Add more using https://openrouter.ai/credits", "code": 402}}
    assert openrouter.read_quota(402, headers(), body, NOW) == Quota(out_until_restart=True,
                                                                     reason="credits_exhausted")


# ===================== Gemini =====================

def gemini_429(*quota_ids, retry_delay="34.4s", value="15",
               message="You exceeded your current quota, please check your plan and billing details."):
    details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
        {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": quota_id,
         "quotaDimensions": {"location": "global", "model": "gemini-3-flash"}, "quotaValue": value}
        for quota_id in quota_ids]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [
            {"description": "Learn more about Gemini API quotas",
             "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}]
    if retry_delay:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    return {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}}


# Abridged from continuedev/continue#9570 (gemini-3-pro on a free key): no quotaValue in the violations,
# `limit: 0` only in the message.
LIMIT_ZERO = {"error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details. For more information on "
               "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current "
               "usage, head to: https://ai.dev/rate-limit. \n* Quota exceeded for metric: "
               "generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, model: gemini-3-pro\n"
               "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_input_token_"
               "count, limit: 0, model: gemini-3-pro\nPlease retry in 45.578569677s.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [
            {"description": "Learn more about Gemini API quotas",
             "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
             "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
             "quotaDimensions": {"location": "global", "model": "gemini-3-pro"}},
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
             "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
             "quotaDimensions": {"location": "global", "model": "gemini-3-pro"}},
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
             "quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier",
             "quotaDimensions": {"location": "global", "model": "gemini-3-pro"}}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "45s"}]}}


def test_gemini_per_minute_429_waits_for_the_retry_delay():
    quota = gemini.read_quota(429, headers(), gemini_429("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"), NOW)
    assert (quota.window, quota.reason, quota.out_until_restart) == ("minute", "requests_per_minute", False)
    assert quota.retry_at == pytest.approx(NOW + 34.4)
    assert (quota.remaining_requests, quota.requests_reset) == (0, quota.retry_at)


def test_gemini_input_tokens_per_minute_is_a_token_exhaustion():
    quota = gemini.read_quota(429, headers(), gemini_429("GenerateContentInputTokensPerModelPerMinute-FreeTier",
                                                         retry_delay="59s", value="250000"), NOW)
    assert (quota.reason, quota.remaining_tokens, quota.tokens_window) == ("tokens_per_minute", 0, "minute")
    assert quota.retry_at == NOW + 59


def test_gemini_per_day_429_rests_until_the_next_midnight_in_los_angeles():
    body = gemini_429("GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                      "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", retry_delay="20s", value="20")
    quota = gemini.read_quota(429, headers(), body, NOW)
    assert (quota.window, quota.reason) == ("day", "requests_per_day")
    assert quota.retry_at == utc(2026, 7, 15, 7)  # 00:00 PDT


@pytest.mark.parametrize("now, midnight", [
    (utc(2026, 1, 10, 6), utc(2026, 1, 10, 8)),  # 22:00 PST on the 9th -> 00:00 PST on the 10th
    (utc(2026, 7, 14, 6, 59), utc(2026, 7, 14, 7)),  # 23:59 PDT
    (utc(2026, 3, 8, 12), utc(2026, 3, 9, 7)),  # the day clocks go forward
    (utc(2026, 11, 1, 12), utc(2026, 11, 2, 8)),  # the day clocks go back
])
def test_next_pacific_midnight_follows_daylight_saving(now, midnight):
    assert gemini.next_pacific_midnight(now) == midnight


def test_gemini_per_day_retry_delay_later_than_midnight_wins():
    body = gemini_429("GenerateRequestsPerDayPerProjectPerModel-FreeTier", retry_delay="30h")
    assert gemini.read_quota(429, headers(), body, NOW).retry_at == NOW + 30 * 3600


def test_gemini_limit_zero_means_the_model_is_not_in_this_tier():
    quota = gemini.read_quota(429, headers(), LIMIT_ZERO, NOW)
    assert quota == Quota(out_until_restart=True, reason="model_not_in_tier")


def test_gemini_quota_value_zero_also_means_not_in_tier():
    body = gemini_429("GenerateRequestsPerDayPerProjectPerModel-FreeTier", value="0")
    assert gemini.read_quota(429, headers(), body, NOW) == Quota(out_until_restart=True, reason="model_not_in_tier")


def test_gemini_429_without_details_falls_back_to_the_messages_retry_hint():
    body = {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota). Please retry in 7.5s.",
                      "status": "RESOURCE_EXHAUSTED"}}
    quota = gemini.read_quota(429, headers(), body, NOW)
    assert (quota.reason, quota.retry_at, quota.out_until_restart) == ("rate_limited", NOW + 7.5, False)


# ===================== Hugging Face =====================

@pytest.mark.parametrize("body", [
    {"error": "You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO to get 20x "
              "more monthly included credits."},
    {"error": {"message": "You have exceeded your monthly included credits.", "type": "insufficient_quota"}},
], ids=["string-error", "object-error"])
def test_huggingface_402_is_out_of_credits_until_restart(body):
    assert huggingface.read_quota(402, headers(), body, NOW) == Quota(out_until_restart=True,
                                                                      reason="credits_exhausted")


def test_huggingface_429_waits_for_retry_after_when_given():
    assert huggingface.read_quota(429, headers(retry_after="15"), {"error": "Too many requests"}, NOW) == Quota(
        retry_at=NOW + 15, reason="rate_limited")


# ===================== success without quota headers =====================

@pytest.mark.parametrize("read", [groq.read_quota, cerebras.read_quota, openrouter.read_quota, gemini.read_quota,
                                  huggingface.read_quota], ids=["groq", "cerebras", "openrouter", "gemini", "hf"])
def test_a_success_without_quota_headers_says_nothing(read):
    assert read(200, headers(content_type="text/event-stream", x_request_id="req_1"), None, NOW) is None


@pytest.mark.parametrize("read", [groq.read_quota, cerebras.read_quota, openrouter.read_quota, gemini.read_quota,
                                  huggingface.read_quota], ids=["groq", "cerebras", "openrouter", "gemini", "hf"])
def test_a_server_error_without_quota_headers_says_nothing(read):
    assert read(500, headers(), {"error": {"message": "Internal Server Error"}}, NOW) is None


# ===================== the error carries its quota =====================

HI = ChatRequest(messages=(Message("user", "hi"),))
BASE = "https://quota.test/v1"


def provider(cls, model="m"):
    return cls(ProviderSettings(cls.id, "key-0123456789", BASE, model), Upstream(1, 1, 1))


def first_error(provider_, url, status, body, sent_headers) -> ProviderError:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.post(url, json=body, status=status, headers=sent_headers)
        with pytest.raises(ProviderError) as caught:
            list(provider_.stream(HI))
    return caught.value


CHAT = f"{BASE}/chat/completions"


@pytest.mark.parametrize("cls, url, status, body, sent_headers, reason", [
    (GroqProvider, CHAT, 429, {"error": {"message": "Rate limit reached ... on tokens per minute (TPM) ...",
                                         "type": "tokens", "code": "rate_limit_exceeded"}},
     {"retry-after": "6", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "5.289s"},
     "tokens_per_minute"),
    (CerebrasProvider, CHAT, 429, {"message": "Tokens per minute limit exceeded - too many tokens processed.",
                                   "type": "too_many_requests_error", "param": "quota", "code": "token_quota_exceeded"},
     {"x-ratelimit-remaining-tokens-minute": "0", "x-ratelimit-reset-tokens-minute": "11.38"}, "tokens_per_minute"),
    (OpenRouterProvider, CHAT, 429, FREE_MODELS_PER_DAY, {}, "requests_per_day"),
    (GeminiProvider, f"{BASE}/models/m:streamGenerateContent?alt=sse", 429, LIMIT_ZERO, {}, "model_not_in_tier"),
    (HuggingFaceProvider, CHAT, 402, {"error": "You have exceeded your monthly included credits for Inference "
                                               "Providers."}, {}, "credits_exhausted"),
], ids=["groq", "cerebras", "openrouter", "gemini", "huggingface"])
def test_the_provider_error_carries_what_the_answer_said_about_quota(cls, url, status, body, sent_headers, reason):
    error = first_error(provider(cls), url, status, body, sent_headers)
    assert error.upstream_status == status
    assert isinstance(error.quota, Quota) and error.quota.reason == reason


def test_an_error_that_says_nothing_about_quota_carries_none():
    error = first_error(provider(GroqProvider), CHAT, 500, {"error": {"message": "Internal Server Error"}}, {})
    assert error.quota is None


def test_retry_after_on_the_error_stays_seconds_from_now():
    error = first_error(provider(GroqProvider), CHAT, 429, {"error": {"message": "slow down", "type": "requests"}},
                        {"retry-after": "6"})
    assert error.retry_after == 6.0
    gemini_error = first_error(provider(GeminiProvider), f"{BASE}/models/m:streamGenerateContent?alt=sse", 429,
                               gemini_429("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"), {})
    assert gemini_error.retry_after == 34.4
