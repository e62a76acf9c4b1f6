"""Google Gemini, native API: `:streamGenerateContent?alt=sse` with the `x-goog-api-key` header.

System messages become `systemInstruction`, assistant turns role `model`; each SSE event is a whole
GenerateContentResponse whose part texts are deltas, parts marked `thought` are reasoning, and the
stream ends without `[DONE]`. https://ai.google.dev/api/generate-content
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from providers import gemini_tools
from providers.base import Provider
from providers.embeddings import Embeddings, vector
from providers.errors import read_error_body, status_error
from utils import wire
from utils.chat import JSON, TOOLS, VISION, ChatRequest, Chunk, Usage
from utils.errors import ProviderError
from utils.quota import Quota, parse_reset, seconds_until

# OpenAI option -> generationConfig field (`user` has none, and is not sent). A penalty of 0 (the
# default) is not sent: newer models refuse the field whatever its value (see gemini_tools.PENALTIES).
GENERATION_CONFIG = {"temperature": "temperature", "top_p": "topP", "max_tokens": "maxOutputTokens",
                     "stop": "stopSequences", "seed": "seed", "presence_penalty": "presencePenalty",
                     "frequency_penalty": "frequencyPenalty"}
# OpenAI's reasoning_effort as Gemini 3's thinkingLevel (Flash takes all four; Pro takes low and high, and
# answers another with a 400 that names it). Gemini 3 cannot stop thinking: `none` asks for the least.
THINKING_LEVELS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high",
                   "xhigh": "high"}
# The model's function call was unusable (https://ai.google.dev/api/generate-content#FinishReason): no call
# to hand the client, so a failure another provider may not repeat ("unsupported": the provider is sound).
BAD_CALL_FINISHES = ("MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL")

try:
    PACIFIC = ZoneInfo("America/Los_Angeles")
except ZoneInfoNotFoundError:  # no time zone database on this host: standard time is off by an hour in summer
    PACIFIC = timezone(timedelta(hours=-8), "PST")
# "Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0,
# model: gemini-3-pro": the free tier has no quota for this model.
_LIMIT_ZERO = re.compile(r"\blimit: ?0(?![\d.])")
_RETRY_IN = re.compile(r"Please retry in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)")


def to_upstream(request: ChatRequest, *, max_tokens_cap: int = 0) -> dict:
    system = [m.content for m in request.messages if m.role == "system"]
    body: dict = {"contents": gemini_tools.contents(request.messages), **gemini_tools.tool_fields(request.options)}
    if system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    config = {GENERATION_CONFIG[k]: v for k, v in request.options.items()
              if k in GENERATION_CONFIG and v is not None and not (k in gemini_tools.PENALTIES and v == 0)}
    config.update(gemini_tools.output_format(request.options))
    if isinstance(config.get("stopSequences"), str):
        config["stopSequences"] = [config["stopSequences"]]
    if max_tokens_cap and not 0 < config.get("maxOutputTokens", 0) <= max_tokens_cap:
        config["maxOutputTokens"] = max_tokens_cap
    if request.options.get("reasoning_effort"):
        config["thinkingConfig"] = {"thinkingLevel": THINKING_LEVELS[request.options["reasoning_effort"]]}
    if config:
        body["generationConfig"] = config
    return body


def parse_response(event: dict) -> Chunk | None:
    """One GenerateContentResponse -> Chunk. `usageMetadata` counts up in every event, so the last one
    seen is the total; the last event often has empty text plus a `thoughtSignature`, which is fine.
    Any other shape than the documented one raises ProviderError(kind="malformed")."""
    if event.get("error"):
        message, _ = wire.error_message(event)
        raise ProviderError(f"provider reported an error mid-stream: {message}"[:300], kind="error_event")
    candidates = wire.seq(event.get("candidates"), "candidates")  # none when the prompt itself is blocked
    candidate = wire.obj(candidates[0], "candidates[0]") if candidates else {}
    texts, thoughts, calls = [], [], []
    for part in wire.seq(wire.obj(candidate.get("content"), "content").get("parts"), "content.parts"):
        part = wire.obj(part, "a part")
        if part.get("functionCall") is not None:
            calls.append(part)
            continue
        (thoughts if part.get("thought") else texts).append(wire.text(part.get("text"), "a part's text"))
    text, reasoning, tool_calls = "".join(texts), "".join(thoughts), gemini_tools.function_calls(calls)
    finish = wire.optional_text(candidate.get("finishReason"), "finishReason")
    if finish in BAD_CALL_FINISHES:
        raise ProviderError(f"the model made an unusable function call ({finish})", kind="unsupported")
    # A function-call answer ends with STOP; the OpenAI layer reports it as `tool_calls`.
    finish_reason = None if finish is None else finish.lower()
    meta = event.get("usageMetadata")
    if meta is None:
        if text or reasoning or tool_calls or finish_reason is not None:
            return Chunk(text, reasoning, finish_reason, None, tool_calls)
        return None
    meta = wire.obj(meta, "usageMetadata")
    completion = (wire.token_count(meta.get("candidatesTokenCount"), "candidatesTokenCount")
                  + wire.token_count(meta.get("thoughtsTokenCount"), "thoughtsTokenCount"))
    return Chunk(text, reasoning, finish_reason,
                 Usage(wire.token_count(meta.get("promptTokenCount"), "promptTokenCount"),
                       min(completion, wire.MAX_REPORTED_TOKENS)), tool_calls)


def retry_delay(body, now: float | None = None) -> float | None:
    """Seconds from a 429's `RetryInfo` detail (`{"retryDelay": "34.4s"}`)."""
    now = time.time() if now is None else now
    return seconds_until(_retry_info_at(_details(body), now), now)


def read_quota(status: int, headers: Mapping[str, str], body, now: float) -> Quota | None:
    """Gemini sends no quota headers; a 429 `RESOURCE_EXHAUSTED` body names the violated quotas
    (`QuotaFailure`) and when to retry (`RetryInfo`). https://ai.google.dev/gemini-api/docs/rate-limits

    A per-day quota refills at midnight Pacific time, whatever `retryDelay` says; `limit: 0` means this
    tier does not offer the model at all, so no wait helps. A field of the wrong type is read as absent:
    it loses a hint, never the error."""
    error = body.get("error") if isinstance(body, dict) else None
    if status != 429 or not isinstance(error, dict):
        return None
    message = wire.hint_text(error.get("message"))
    details = _details(body)
    violations = [v for d in details if wire.hint_text(d.get("@type")).endswith("QuotaFailure")
                  for v in _objects(d.get("violations"))]
    if _LIMIT_ZERO.search(message) or any(_is_zero(v.get("quotaValue")) for v in violations):
        return Quota(out_until_restart=True, reason="model_not_in_tier")
    retry_at = _retry_info_at(details, now)
    if retry_at is None:
        said = _RETRY_IN.search(message)
        retry_at = parse_reset(said.group(1), now) if said else None
    quota_ids = [wire.hint_text(v.get("quotaId")) for v in violations]
    daily = [quota_id for quota_id in quota_ids if "PerDay" in quota_id]
    binding = daily[0] if daily else quota_ids[0] if quota_ids else ""
    window = "day" if daily else "minute" if "PerMinute" in binding else None
    kind = "tokens" if "Token" in binding else "requests" if "Request" in binding else None
    if window == "day":
        retry_at = max(next_pacific_midnight(now), retry_at or 0.0)
    quota = Quota(retry_at=retry_at, window=window,
                  reason=f"{kind}_per_{window}" if kind and window else "rate_limited")
    if kind == "requests":
        return replace(quota, remaining_requests=0, requests_reset=retry_at, requests_window=window)
    if kind == "tokens":
        return replace(quota, remaining_tokens=0, tokens_reset=retry_at, tokens_window=window)
    return quota


def next_pacific_midnight(now: float) -> float:
    """When Google's daily quotas refill: https://ai.google.dev/gemini-api/docs/rate-limits#current-rate-limits"""
    tomorrow = datetime.fromtimestamp(now, PACIFIC).date() + timedelta(days=1)
    return datetime.combine(tomorrow, datetime.min.time(), PACIFIC).timestamp()


def _details(body) -> list[dict]:
    error = body.get("error") if isinstance(body, dict) else None
    return _objects(error.get("details")) if isinstance(error, dict) else []


def _objects(value) -> list[dict]:
    """The objects in a list; nothing when it is not a list."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _is_zero(quota_value) -> bool:
    # An int64 in Google's JSON is a string ("0"); a plain 0 is accepted too, but not `false`.
    return quota_value == "0" or (type(quota_value) is int and quota_value == 0)


def _retry_info_at(details: list[dict], now: float) -> float | None:
    delay = next((d.get("retryDelay") for d in details if "retryDelay" in d), None)
    return parse_reset(delay, now)


class GeminiProvider(Provider):
    id = "gemini"
    name = "Gemini 3 Flash"
    env_prefix, key_setting = "GEMINI", "GEMINI_API_KEY"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"
    default_model = "gemini-3-flash-preview"
    capabilities = frozenset({TOOLS, JSON, VISION})

    def build_stream_request(self, request: ChatRequest, key: int = 1) -> tuple[str, dict, dict]:
        # The model id is one path segment, whoever chose it: `/`, `?` or `..` in it cannot reach another path.
        model = quote(request.model or self.model, safe="")
        url = f"{self.settings.base_url}/models/{model}:streamGenerateContent?alt=sse"
        return url, {"x-goog-api-key": self.settings.key(key)}, to_upstream(
            request, max_tokens_cap=self.settings.max_tokens)

    def stream(self, request: ChatRequest, observe=None, key: int = 1) -> Iterator[Chunk]:
        # Tool call indices run across the answer: see gemini_tools.number_calls.
        return gemini_tools.number_calls(super().stream(request, observe, key))

    def unsupported_option(self, request: ChatRequest) -> str | None:
        reason = gemini_tools.unsupported(request.options, request.model or self.model)
        return f"{self.name} ({self.id}) cannot honour {reason}" if reason else None

    def models_request(self) -> tuple[str, dict]:
        # One page holds every model the API offers (about fifty): https://ai.google.dev/api/models#method:-models.list
        return f"{self.settings.base_url}/models?pageSize=1000", {"x-goog-api-key": self.settings.api_key}

    def parse_models(self, body: dict) -> list[str]:
        # No `models`, or a model without a name, is malformed rather than a list lacking the configured
        # model, which would take the provider out of the rotation.
        models = wire.obj(body, "the model list").get("models")
        names = [wire.obj(model, "a model").get("name") for model in wire.seq(models, "the model list's models")]
        if models is None or not all(isinstance(name, str) for name in names):
            raise wire.malformed("the model list", "lacks models or a model name")
        return [name.removeprefix("models/") for name in names]

    def parse_event(self, event: dict) -> Chunk | None:
        return parse_response(event)

    def error_from_response(self, response: requests.Response) -> ProviderError:
        body = read_error_body(response)
        message, _ = wire.error_message(body)
        # Gemini answers a bad key (INVALID_ARGUMENT) and an unsupported server location
        # (FAILED_PRECONDITION) with 400: both are this deployment's problem, and another provider can answer.
        text = str(body)
        status = 401 if "API_KEY_INVALID" in text else 403 if "FAILED_PRECONDITION" in text else response.status_code
        now = time.time()
        return status_error(status, message, retry_after=retry_delay(body, now),
                            quota=self.read_quota(response.status_code, response.headers, body, now))

    def read_quota(self, status, headers, body, now) -> Quota | None:
        return read_quota(status, headers, body, now)

    def embeddings_request(self, texts: list[str], model: str, dimensions: int | None,
                           key: int = 1) -> tuple[str, dict, dict]:
        # One call for every text: https://ai.google.dev/api/embeddings#method:-models.batchembedcontents
        segment = quote(model, safe="")
        request = {"model": f"models/{model}", **({"outputDimensionality": dimensions} if dimensions else {})}
        body = {"requests": [{**request, "content": {"parts": [{"text": text}]}} for text in texts]}
        url = f"{self.settings.base_url}/models/{segment}:batchEmbedContents"
        return url, {"x-goog-api-key": self.settings.key(key)}, body

    def parse_embeddings(self, body) -> Embeddings:
        items = wire.seq(wire.obj(body, "embeddings").get("embeddings"), "embeddings")
        return Embeddings([vector(wire.obj(item, "embeddings[]").get("values"), "embeddings[].values")
                           for item in items])
