"""Groq: OpenAI-compatible. https://console.groq.com/docs/api-reference#chat-create"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from providers.openai_compat import OpenAICompatibleProvider
from utils.chat import JSON, TOOLS
from utils import wire
from utils.quota import Quota, header_int, parse_reset

# "... on tokens per minute (TPM): Limit 15000, Used 11972, Requested 4351. Please try again in 5.289s."
_LIMIT_WINDOW = re.compile(r"\bper (minute|min|day)\b")
_TRY_AGAIN = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)")


def read_quota(status: int, headers: Mapping[str, str], body, now: float) -> Quota | None:
    """Groq sends `x-ratelimit-*` on every answer: the `-requests` ones count per day, the `-tokens`
    ones per minute, resets are Go durations; a 429 adds `retry-after` (seconds) and its body's `type`
    names the budget that ran out (`tokens` or `requests`). https://console.groq.com/docs/rate-limits"""
    remaining_requests = header_int(headers, "x-ratelimit-remaining-requests")
    requests_reset = parse_reset(headers.get("x-ratelimit-reset-requests"), now)
    remaining_tokens = header_int(headers, "x-ratelimit-remaining-tokens")
    tokens_reset = parse_reset(headers.get("x-ratelimit-reset-tokens"), now)
    has_requests = remaining_requests is not None or requests_reset is not None
    has_tokens = remaining_tokens is not None or tokens_reset is not None
    quota = Quota(remaining_requests, requests_reset, "day" if has_requests else None,
                  remaining_tokens, tokens_reset, "minute" if has_tokens else None)
    retry_at = parse_reset(headers.get("retry-after"), now)
    if status != 429:
        if retry_at is None and not (has_requests or has_tokens):
            return None
        return replace(quota, retry_at=retry_at)
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    kind = error.get("type") if error.get("type") in ("requests", "tokens") else None
    message = wire.hint_text(error.get("message"))
    said = _LIMIT_WINDOW.search(message)
    if said:
        window = "day" if said.group(1) == "day" else "minute"
    else:  # the headers' own windows: requests per day, tokens per minute
        window = {"tokens": "minute", "requests": "day"}.get(kind)
    if retry_at is None:
        again = _TRY_AGAIN.search(message)
        retry_at = parse_reset(again.group(1), now) if again else {"tokens": tokens_reset,
                                                                   "requests": requests_reset}.get(kind)
    return replace(quota, retry_at=retry_at, window=window,
                   reason=f"{kind}_per_{window}" if kind and window else "rate_limited")


class GroqProvider(OpenAICompatibleProvider):
    id = "groq"
    name = "Groq"
    env_prefix, key_setting = "GROQ", "GROQ_API_KEY"
    default_base_url = "https://api.groq.com/openai/v1"
    default_model = "moonshotai/kimi-k2-instruct-0905"
    capabilities = frozenset({TOOLS, JSON})
    # Groq has refused `response_format` on a stream: https://console.groq.com/docs/structured-outputs
    json_needs_plain_call = True

    def read_quota(self, status, headers, body, now) -> Quota | None:
        return read_quota(status, headers, body, now)
