"""OpenRouter: OpenAI-compatible, with `: OPENROUTER PROCESSING` keep-alive comments and R1's reasoning
in `delta.reasoning`. https://openrouter.ai/docs/api-reference/streaming"""
from __future__ import annotations

import re
from collections.abc import Mapping

from requests.structures import CaseInsensitiveDict

from providers.openai_compat import OpenAICompatibleProvider
from utils import wire
from utils.quota import Quota, header_int, parse_reset

# "Rate limit exceeded: free-models-per-day. ..." / "... free-models-per-min ..."
_WINDOW = re.compile(r"per[- ](day|min)", re.IGNORECASE)


def read_quota(status: int, headers: Mapping[str, str], body, now: float) -> Quota | None:
    """No rate headers on success; a 429 copies them into `error.metadata.headers`, its reset in epoch
    milliseconds (https://openrouter.ai/docs/api-reference/limits); a 402 means the credits are gone."""
    if status == 402:
        return Quota(out_until_restart=True, reason="credits_exhausted")
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    copied = (error.get("metadata") or {}).get("headers") if isinstance(error.get("metadata"), dict) else None
    rates = CaseInsensitiveDict({**headers, **(copied if isinstance(copied, dict) else {})})
    remaining = header_int(rates, "x-ratelimit-remaining")
    reset = parse_reset(rates.get("x-ratelimit-reset"), now)
    retry_at = parse_reset(headers.get("retry-after"), now)
    said = _WINDOW.search(wire.hint_text(error.get("message")))
    window = {"day": "day", "min": "minute"}[said.group(1).lower()] if said else None
    if status != 429:
        if remaining is None and reset is None and retry_at is None:
            return None
        return Quota(remaining, reset, window, retry_at=retry_at)
    if retry_at is None and remaining == 0:
        retry_at = reset
    return Quota(remaining, reset, window, retry_at=retry_at, window=window,
                 reason=f"requests_per_{window}" if window else "rate_limited")


class OpenRouterProvider(OpenAICompatibleProvider):
    id = "openrouter"
    name = "OpenRouter (DeepSeek)"
    env_prefix, key_setting = "OPENROUTER", "OPENROUTER_API_KEY"
    default_base_url = "https://openrouter.ai/api/v1"
    default_model = "deepseek/deepseek-r1-0528:free"
    # Usage accounting in the stream's last chunk: https://openrouter.ai/docs/use-cases/usage-accounting
    extra_body = {"usage": {"include": True}}

    def read_quota(self, status, headers, body, now) -> Quota | None:
        return read_quota(status, headers, body, now)
