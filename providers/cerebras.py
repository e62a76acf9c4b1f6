"""Cerebras: OpenAI-compatible; GLM streams its thinking in `delta.reasoning` before the answer.
https://inference-docs.cerebras.ai/api-reference/chat-completions"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace

from providers.openai_compat import OpenAICompatibleProvider
from utils.chat import JSON, TOOLS
from utils.quota import Quota, header_int, parse_reset
from utils.wire import error_message

# `x-ratelimit-remaining-requests-day`, `x-ratelimit-reset-tokens-minute`, ...: the window is the suffix,
# resets are float seconds. https://inference-docs.cerebras.ai/support/rate-limits
_HEADER = re.compile(r"x-ratelimit-(remaining|reset)-(requests|tokens)-(minute|hour|day)")
# 429 bodies: "Requests per minute limit exceeded - ...", "Tokens per minute limit exceeded - ...",
# "We're experiencing high traffic right now! ..." (the queue is full, no budget of ours ran out).
_LIMIT = re.compile(r"\b(requests|tokens) per (minute|hour|day)\b", re.IGNORECASE)
_CODES = {"request_quota_exceeded": "requests", "token_quota_exceeded": "tokens"}


def read_quota(status: int, headers: Mapping[str, str], body, now: float) -> Quota | None:
    """Cerebras names each budget's window in its headers; a 429's sentence says which limit it hit."""
    budgets = _budgets(headers, now)
    quota = Quota(**_fields(budgets, "requests"), **_fields(budgets, "tokens"))
    retry_after = parse_reset(headers.get("retry-after"), now)
    if status != 429:
        return replace(quota, retry_at=retry_after) if budgets or retry_after is not None else None
    message, code = error_message(body)
    said = _LIMIT.search(message)
    named = (said.group(1).lower(), said.group(2).lower()) if said else None
    # The headers say which budget is empty and when it refills; the body's sentence may name a shorter
    # window than the one that binds (a minute limit hit while the day's requests are gone too).
    exhausted = [(reset, budget) for budget, (remaining, reset) in budgets.items() if remaining == 0 and reset]
    if named and budgets.get(named, (None, None))[1]:
        exhausted.append((budgets[named][1], named))
    if exhausted:
        refill, (kind, window) = max(exhausted)
        reason = f"{kind}_per_{window}"
    else:
        refill, (kind, window) = None, named or (_CODES.get(code or ""), None)
        reason = ("high_traffic" if "high traffic" in message.lower()
                  else f"{kind}_per_{window}" if kind and window else "rate_limited")
    retry_at = max((at for at in (refill, retry_after) if at is not None), default=None)
    return replace(quota, retry_at=retry_at, window=window, reason=reason)


def _budgets(headers: Mapping[str, str], now: float) -> dict[tuple[str, str], tuple[int | None, float | None]]:
    """(kind, window) -> (remaining, reset) for every window-suffixed header present."""
    budgets: dict[tuple[str, str], tuple[int | None, float | None]] = {}
    for name in headers:
        match = _HEADER.fullmatch(name.lower())
        if match:
            field, kind, window = match.groups()
            remaining, reset = budgets.get((kind, window), (None, None))
            if field == "remaining":
                remaining = header_int(headers, name)
            else:
                reset = parse_reset(headers[name], now)
            budgets[(kind, window)] = (remaining, reset)
    return budgets


def _fields(budgets: dict, kind: str) -> dict:
    """The Quota fields for one kind, from its window that runs out first (least remaining, then the
    later reset): Cerebras may send both a minute and a day window for requests or tokens."""
    windows = [budget for budget in budgets if budget[0] == kind]
    if not windows:
        return {}
    binding = min(windows, key=lambda b: (budgets[b][0] if budgets[b][0] is not None else math.inf,
                                          -(budgets[b][1] or 0)))
    remaining, reset = budgets[binding]
    return {f"remaining_{kind}": remaining, f"{kind}_reset": reset, f"{kind}_window": binding[1]}


class CerebrasProvider(OpenAICompatibleProvider):
    id = "cerebras"
    name = "Cerebras"
    env_prefix, key_setting = "CEREBRAS", "CEREBRAS_API_KEY"
    default_base_url = "https://api.cerebras.ai/v1"
    default_model = "zai-glm-4.7"
    capabilities = frozenset({TOOLS, JSON})

    def read_quota(self, status, headers, body, now) -> Quota | None:
        return read_quota(status, headers, body, now)
