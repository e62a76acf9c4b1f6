"""What a provider's error answer means: each provider's real error bodies and statuses become a
ProviderError with the right failover policy, and the pure readers behind it (message, Retry-After,
Gemini's RetryInfo, the status policy)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from providers import gemini
from providers.errors import parse_retry_after, status_error
from tests.providers_helpers import (
    CEREBRAS_KEY,
    CEREBRAS_STREAM_URL,
    GEMINI_KEY,
    GEMINI_STREAM_URL,
    GROQ_KEY,
    GROQ_STREAM_URL,
    HF_KEY,
    HF_STREAM_URL,
    OPENROUTER_KEY,
    OPENROUTER_STREAM_URL,
    cerebras,
    gemini_provider,
    groq,
    huggingface,
    mocked,
    openrouter,
    stream_until_error,
)
from utils.wire import error_message


@pytest.mark.parametrize("body, expected", [
    ({"error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}},
     ("Invalid API Key", "invalid_api_key")),
    ({"message": "Wrong API Key", "type": "invalid_request_error", "param": "api_key", "code": "wrong_api_key"},
     ("Wrong API Key", "wrong_api_key")),
    ({"status_code": 500, "error": {"message": "Encountered a server error, please try again.", "type": "server_error",
                                    "param": "", "code": "", "id": ""}},
     ("Encountered a server error, please try again.", None)),
    ({"error": {"message": "No endpoints found for deepseek/deepseek-r1:free.", "code": 404}},
     ("No endpoints found for deepseek/deepseek-r1:free.", "404")),
    ({"error": "Invalid credentials in Authorization header"}, ("Invalid credentials in Authorization header", None)),
    ("upstream connect error or disconnect/reset before headers. reset reason: overflow",
     ("upstream connect error or disconnect/reset before headers. reset reason: overflow", None)),
    ("", ("no details", None)),
], ids=["groq", "cerebras-4xx", "cerebras-5xx", "openrouter", "hf-string", "plain-text", "empty"])
def test_error_message_reads_every_providers_body_shape(body, expected):
    assert error_message(body) == expected


@pytest.mark.parametrize("value, seconds", [("6", 6.0), ("5.289", 5.289), ("0", 0.0), (None, None), ("", None),
                                            ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("-3", None)])
def test_retry_after_header_is_read_in_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize("body, seconds", [
    ({"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"}]}}, 34.4),
    ({"error": {"details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]}}, 2.0),
    ({"error": {"details": []}}, None),
    ({"error": {"code": 429}}, None),
    ("plain text", None),
])
def test_gemini_retry_delay_is_read_from_retry_info(body, seconds):
    assert gemini.retry_delay(body) == seconds


@pytest.mark.parametrize("status, code, retryable, model_gone, kind", [
    (400, None, False, False, "http_400"),
    (413, None, False, False, "http_413"),
    (422, None, False, False, "http_422"),
    (400, "model_decommissioned", True, True, "http_400"),
    (400, "model_not_supported", True, True, "http_400"),
    (404, "model_not_found", True, True, "http_404"),
    (404, None, True, True, "http_404"),
    (401, "invalid_api_key", True, False, "http_401"),
    (402, None, True, False, "http_402"),
    (403, None, True, False, "http_403"),
    (429, "rate_limit_exceeded", True, False, "rate_limited"),
    (500, None, True, False, "http_500"),
    (503, None, True, False, "http_503"),
])
def test_status_error_policy(status, code, retryable, model_gone, kind):
    error = status_error(status, "message", code=code)
    assert (error.retryable, error.model_gone, error.kind, error.upstream_status) == (retryable, model_gone, kind, status)
    assert error.status == (400 if not retryable else 502)


@dataclass(frozen=True)
class UpstreamError:
    status: int
    body: object  # dict -> JSON, str -> plain text
    retryable: bool
    model_gone: bool = False
    retry_after: float | None = None
    headers: tuple = ()
    reads_as: int | None = None  # the status the provider's answer stands for, when not the HTTP status
    says: str = field(kw_only=True)  # how the provider's own message begins (the error message quotes it)

    @property
    def meaning(self) -> int:
        return self.reads_as or self.status


GROQ_ERRORS = {
    "401-invalid-key": UpstreamError(401, {"error": {"message": "Invalid API Key", "type": "invalid_request_error",
                                                     "code": "invalid_api_key"}}, True, says="Invalid API Key"),
    "404-model-not-found": UpstreamError(404, {"error": {
        "message": "The model `moonshotai/kimi-k2-instruct-0905` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "code": "model_not_found"}}, True, model_gone=True,
        says="The model `moonshotai/kimi-k2-instruct-0905` does not exist"),
    "400-model-decommissioned": UpstreamError(400, {"error": {
        "message": "The model `moonshotai/kimi-k2-instruct` has been decommissioned and is no longer supported.",
        "type": "invalid_request_error", "code": "model_decommissioned"}}, True, model_gone=True,
        says="The model `moonshotai/kimi-k2-instruct` has been decommissioned"),
    "400-invalid-request": UpstreamError(400, {"error": {
        "message": "'messages.1' : for 'role:user' the following must be satisfied[('messages.1.content' : "
                   "value must be a string)]", "type": "invalid_request_error"}}, False,
        says="'messages.1' : for 'role:user' the following must be satisfied"),
    "429-retry-after": UpstreamError(429, {"error": {
        "message": "Rate limit reached for model `moonshotai/kimi-k2-instruct-0905` in organization `org_01` service "
                   "tier `on_demand` on tokens per minute (TPM): Limit 15000, Used 11972, Requested 4351. Please try "
                   "again in 5.289s.", "type": "tokens", "code": "rate_limit_exceeded"}}, True, retry_after=6.0,
        headers=(("retry-after", "6"), ("x-ratelimit-reset-tokens", "5.289s")), says="Rate limit reached"),
    "403-access-denied": UpstreamError(403, {"error": {"message": "Access denied. Please check your network settings."}},
                                       True, says="Access denied."),
    "498-flex-capacity": UpstreamError(498, {"error": {"message": "Flex tier capacity exceeded.",
                                                       "type": "capacity_exceeded"}}, True,
                                       says="Flex tier capacity exceeded."),
    "500": UpstreamError(500, {"error": {"message": "Internal Server Error", "type": "internal_server_error"}}, True,
                         says="Internal Server Error"),
    "503-envoy-plain-text": UpstreamError(
        503, "upstream connect error or disconnect/reset before headers. reset reason: overflow", True,
        says="upstream connect error"),
}
CEREBRAS_ERRORS = {
    "401-unwrapped": UpstreamError(401, {"message": "Wrong API Key", "type": "invalid_request_error", "param": "api_key",
                                         "code": "wrong_api_key"}, True, says="Wrong API Key"),
    "404-unwrapped-model-not-found": UpstreamError(404, {
        "message": "Model zai-glm-4.6 does not exist or you do not have access to it.", "type": "not_found_error",
        "param": "model", "code": "model_not_found"}, True, model_gone=True,
        says="Model zai-glm-4.6 does not exist"),
    "429-unwrapped": UpstreamError(429, {"message": "Requests per minute limit exceeded - too many requests sent.",
                                         "type": "too_many_requests_error", "param": "quota",
                                         "code": "request_quota_exceeded"}, True, says="Requests per minute"),
    "500-wrapped": UpstreamError(500, {"status_code": 500, "error": {
        "message": "Encountered a server error, please try again.", "type": "server_error", "param": "", "code": "",
        "id": ""}}, True, says="Encountered a server error"),
}
OPENROUTER_ERRORS = {
    "401-no-credentials": UpstreamError(401, {"error": {"message": "No auth credentials found", "code": 401}}, True,
                                        says="No auth credentials found"),
    "401-user-not-found": UpstreamError(401, {"error": {"message": "User not found.", "code": 401}}, True,
                                        says="User not found."),
    "402-credits": UpstreamError(402, {"error": {"message": "Insufficient credits. Add more using "
                                                            "https://openrouter.ai/credits", "code": 402}}, True,
                                  says="Insufficient credits."),
    "404-no-endpoints": UpstreamError(404, {"error": {"message": "No endpoints found for deepseek/deepseek-r1:free.",
                                                      "code": 404}, "user_id": "user_2x"}, True, model_gone=True,
                                      says="No endpoints found"),
    "429-upstream": UpstreamError(429, {"error": {"message": "Provider returned error", "code": 429, "metadata": {
        "raw": "deepseek/deepseek-r1-0528:free is temporarily rate-limited upstream. Please retry shortly.",
        "provider_name": "DeepInfra", "is_byok": False, "provider_error_code": "engine_overloaded",
        "limit_source": "upstream_provider_shared_pool"}}, "user_id": "user_2x"}, True, retry_after=20.0,
        headers=(("Retry-After", "20"),), says="Provider returned error"),
    "429-free-models-per-day": UpstreamError(429, {"error": {
        "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day",
        "code": 429, "metadata": {"headers": {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0",
                                              "X-RateLimit-Reset": "1741305600000"}}}}, True,
        says="Rate limit exceeded: free-models-per-day."),
    "503": UpstreamError(503, {"error": {"message": "No instances available", "code": 503}}, True,
                         says="No instances available"),
}
GEMINI_ERRORS = {
    "400-api-key-invalid": UpstreamError(400, {"error": {
        "code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                     "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
                    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                     "message": "API key not valid. Please pass a valid API key."}]}}, True,
        reads_as=401, says="API key not valid."),
    "400-invalid-argument": UpstreamError(400, {"error": {
        "code": 400, "message": "Unable to submit request because thinking_budget and thinking_level are not "
                                "supported together.", "status": "INVALID_ARGUMENT"}}, False,
        says="Unable to submit request because thinking_budget and thinking_level are not supported together."),
    "403-permission-denied": UpstreamError(403, {"error": {
        "code": 403, "message": "Method doesn't allow unregistered callers (callers without established identity). "
                                "Please use API Key or other form of API consumer identity to call this API.",
        "status": "PERMISSION_DENIED"}}, True,
        says="Method doesn't allow unregistered callers"),
    "404-model-not-found": UpstreamError(404, {"error": {
        "code": 404, "message": "models/gemini-3-flash-preview is not found for API version v1beta, or is not "
                                "supported for generateContent. Call ListModels to see the list of available models "
                                "and their supported methods.", "status": "NOT_FOUND"}}, True, model_gone=True,
        says="models/gemini-3-flash-preview is not found for API version v1beta"),
    "429-retry-info": UpstreamError(429, {"error": {
        "code": 429, "message": "You exceeded your current quota, please check your plan and billing details.",
        "status": "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": "gemini-3-flash"}, "quotaValue": "10"}]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"}]}}, True, retry_after=34.4,
        says="You exceeded your current quota"),
    "500-internal": UpstreamError(500, {"error": {
        "code": 500, "message": "An internal error has occurred. Please retry or report in "
                                "https://developers.generativeai.google/guide/troubleshooting", "status": "INTERNAL"}},
        True, says="An internal error has occurred."),
    "503-unavailable": UpstreamError(503, {"error": {
        "code": 503, "message": "This model is currently experiencing high demand. Spikes in demand are usually "
                                "temporary. Please try again later.", "status": "UNAVAILABLE"}}, True,
        says="This model is currently experiencing high demand."),
    "504-deadline": UpstreamError(504, {"error": {"code": 504, "message": "Deadline expired before operation could "
                                                                          "complete.", "status": "DEADLINE_EXCEEDED"}},
                                  True, says="Deadline expired before operation could complete."),
}
HF_ERRORS = {
    "401-string-error": UpstreamError(401, {"error": "Invalid credentials in Authorization header"}, True,
                                      says="Invalid credentials in Authorization header"),
    "400-model-not-supported": UpstreamError(400, {"error": {
        "message": "The requested model 'meta-llama/Llama-3.1-8B-Instruct' is not supported by any provider you have "
                   "enabled.", "type": "invalid_request_error", "param": "model", "code": "model_not_supported"}},
        True, model_gone=True, says="The requested model 'meta-llama/Llama-3.1-8B-Instruct' is not supported"),
    "402-string-credits": UpstreamError(402, {"error": "You have exceeded your monthly included credits for Inference "
                                                       "Providers. Subscribe to PRO to get 20x more monthly included "
                                                       "credits."}, True,
                                      says="You have exceeded your monthly included credits for Inference Providers."),
    "402-object-credits": UpstreamError(402, {"error": {"message": "You have exceeded your monthly included credits.",
                                                        "type": "insufficient_quota"}}, True,
                                      says="You have exceeded your monthly included credits."),
    "403-gated": UpstreamError(403, {"error": "You cannot access this model unless the model owner gives you access."},
                               True, says="You cannot access this model"),
}

ERROR_CASES = [
    pytest.param(make, url, key, case, id=f"{name}-{case_id}")
    for name, make, url, key, table in [
        ("groq", groq, GROQ_STREAM_URL, GROQ_KEY, GROQ_ERRORS),
        ("cerebras", cerebras, CEREBRAS_STREAM_URL, CEREBRAS_KEY, CEREBRAS_ERRORS),
        ("openrouter", openrouter, OPENROUTER_STREAM_URL, OPENROUTER_KEY, OPENROUTER_ERRORS),
        ("gemini", gemini_provider, GEMINI_STREAM_URL, GEMINI_KEY, GEMINI_ERRORS),
        ("huggingface", huggingface, HF_STREAM_URL, HF_KEY, HF_ERRORS),
    ]
    for case_id, case in table.items()
]


@pytest.mark.parametrize("make, url, key, case", ERROR_CASES)
def test_upstream_error_status_becomes_a_provider_error_with_the_right_policy(make, url, key, case):
    body = json.dumps(case.body) if isinstance(case.body, dict) else case.body
    content_type = "application/json" if isinstance(case.body, dict) else "text/plain"
    with mocked() as rsps:
        rsps.post(url, body=body, status=case.status, content_type=content_type, headers=dict(case.headers))
        chunks, error = stream_until_error(make())
    assert chunks == []
    assert error.retryable is case.retryable
    assert error.model_gone is case.model_gone
    assert error.retry_after == case.retry_after
    assert error.upstream_status == case.meaning
    assert error.kind == ("rate_limited" if case.meaning == 429 else f"http_{case.meaning}")
    assert error.message.startswith(f"upstream answered {case.meaning}: {case.says}")
    assert key not in error.message and key not in str(error)
    # A retryable error is another provider's chance to answer, so the client never sees the 4xx.
    assert error.status == (502 if case.retryable else 400)


def test_groq_400_invalid_request_is_the_clients_fault_and_not_retried():
    case = GROQ_ERRORS["400-invalid-request"]
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, json=case.body, status=400)
        _, error = stream_until_error(groq())
    assert (error.retryable, error.status, error.upstream_status, error.kind) == (False, 400, 400, "http_400")
    assert error.message == ("upstream answered 400: 'messages.1' : for 'role:user' the following must be "
                             "satisfied[('messages.1.content' : value must be a string)]")


def test_gemini_invalid_key_400_is_the_providers_fault_not_the_clients():
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, json=GEMINI_ERRORS["400-api-key-invalid"].body, status=400)
        _, error = stream_until_error(gemini_provider())
    # Read as the 401 a bad key is everywhere else: this provider failed, and another may answer.
    assert (error.retryable, error.status, error.upstream_status, error.kind) == (True, 502, 401, "http_401")
    assert not error.model_gone


def test_openrouter_invalid_model_id_400_is_the_operators_model_not_the_clients_request():
    # The configured model is wrong: another provider could answer, and the operator must be told it is gone.
    body = {"error": {"message": "deepseek/deepseek-r1-0528:fre is not a valid model ID", "code": 400},
            "user_id": "user_2x"}
    with mocked() as rsps:
        rsps.post(OPENROUTER_STREAM_URL, json=body, status=400)
        _, error = stream_until_error(openrouter())
    assert (error.retryable, error.model_gone, error.status, error.upstream_status) == (True, True, 502, 400)


def test_gemini_unsupported_location_400_is_the_deployments_problem_not_the_clients():
    # 400 FAILED_PRECONDITION: every request from this server fails at Gemini; another provider would answer.
    body = {"error": {"code": 400, "message": "User location is not supported for the API use.",
                      "status": "FAILED_PRECONDITION"}}
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, json=body, status=400)
        _, error = stream_until_error(gemini_provider())
    # Read as a 403 (this deployment is refused): this provider failed, and another may answer.
    assert (error.retryable, error.status, error.upstream_status, error.kind) == (True, 502, 403, "http_403")
    assert not error.model_gone
