"""What the router keeps per provider, as stored in the state store: its circuit (failures, back-off,
why it is out) and the last quota it reported."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from utils.clock import iso
from utils.quota import Quota

if TYPE_CHECKING:
    from providers.base import Provider


def pool_size(provider: Provider) -> int:
    """How many keys the provider has (one for a stand-in without settings, as tests use)."""
    settings = getattr(provider, "settings", None)
    return max(1, len(settings.keys)) if settings is not None else 1


def slots(provider: Provider) -> list[str]:
    """The state names of a provider's keys: its id for a single key, `groq#1`, `groq#2`... for a pool."""
    count = pool_size(provider)
    return [provider.id] if count == 1 else [f"{provider.id}#{i}" for i in range(1, count + 1)]


def key_label(provider: Provider, key: int) -> dict:
    """How logs name a pool's key (`GROQ_API_KEY #2`, never the key itself); nothing for a single key."""
    return {"key": f"{provider.key_setting} #{key}"} if pool_size(provider) > 1 else {}


@dataclass
class Circuit:
    failures: int = 0  # in a row
    openings: int = 0  # times the circuit opened since the last success
    until: float = 0.0  # no request before this time (math.inf: until restart)
    reason: str = ""
    detail: str = ""  # what an operator can do about it

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Circuit:
        return cls(int(fields.get("failures", 0)), int(fields.get("openings", 0)), float(fields.get("until", 0)),
                   fields.get("reason", ""), fields.get("detail", ""))

    def state(self, now: float) -> dict:
        if self.until > now:
            until = None if self.until == math.inf else iso(self.until)
            return {"state": "cooling_down", "until": until, "reason": self.reason,
                    **({"detail": self.detail} if self.detail else {})}
        if self.failures:
            return {"state": "failing", "failures": self.failures, "reason": self.reason}
        return {"state": "ok"}


@dataclass
class QuotaState:
    """The last quota a provider reported (see utils/quota.py), as stored."""
    remaining_requests: int | None = None
    requests_reset: float = 0.0
    remaining_tokens: int | None = None
    tokens_reset: float = 0.0

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> QuotaState:
        def number(name, kind):
            return kind(float(fields[name])) if fields.get(name) not in (None, "") else None
        return cls(number("remainingRequests", int), number("requestsReset", float) or 0.0,
                   number("remainingTokens", int), number("tokensReset", float) or 0.0)

    @classmethod
    def from_quota(cls, quota: Quota) -> QuotaState:
        return cls(quota.remaining_requests, quota.requests_reset or 0.0, quota.remaining_tokens,
                   quota.tokens_reset or 0.0)

    def fields(self) -> dict[str, str]:
        return {k: v for k, v in {"remainingRequests": self.remaining_requests, "requestsReset": self.requests_reset,
                                  "remainingTokens": self.remaining_tokens, "tokensReset": self.tokens_reset}.items()
                if v is not None}

    def exhausted_until(self, now: float, tokens: int) -> float:
        """When the provider can take a request of `tokens` again; `now` or earlier means it can now."""
        until = 0.0
        if self.remaining_requests is not None and self.remaining_requests <= 0 and self.requests_reset > now:
            until = self.requests_reset
        if (self.remaining_tokens is not None and self.remaining_tokens < max(tokens, 1)
                and self.tokens_reset > now):
            until = max(until, self.tokens_reset)
        return until

    def describe(self) -> dict:
        return {"remainingRequests": self.remaining_requests,
                "requestsReset": iso(self.requests_reset) if self.requests_reset else None,
                "remainingTokens": self.remaining_tokens,
                "tokensReset": iso(self.tokens_reset) if self.tokens_reset else None}


def slot_state(circuit: Circuit, quota: QuotaState, now: float) -> dict:
    """One key's (or a single-key provider's) state: its circuit, else its exhausted quota."""
    state = circuit.state(now)
    quota_until = quota.exhausted_until(now, 0)
    if state["state"] != "cooling_down" and quota_until > now:
        state = {"state": "cooling_down", "until": iso(quota_until), "reason": "quota_exhausted"}
    return state


def pool_state(provider: Circuit, keys: list[tuple[Circuit, QuotaState]], now: float) -> dict:
    """A provider's state for /health: its own rest (model gone) first, else the best of its keys
    (`cooling_down` only when all are, until the first comes back), with each key's under `keys`."""
    states = [slot_state(circuit, quota, now) for circuit, quota in keys]
    entries = [{"index": i, **state} for i, state in enumerate(states, 1)]
    quotas = [quota.describe() for _, quota in keys]
    best = next((i for i, s in enumerate(states) if s["state"] == "ok"), None)
    if best is None:
        best = next((i for i, s in enumerate(states) if s["state"] != "cooling_down"), None)
    if best is None:  # all resting: the one back soonest speaks for the provider
        best = min(range(len(keys)), key=lambda i: keys[i][0].until if keys[i][0].until > now
                   else max(keys[i][1].requests_reset, keys[i][1].tokens_reset))
    state = provider.state(now) if provider.until > now else states[best]
    return {**state, "quota": quotas[best], "keys": entries}
