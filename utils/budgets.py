"""Per-key budgets and the concurrency cap, checked before any provider is called.

Calendar windows in UTC: requests and tokens per day, tokens per month. Requests count once per client
request (at admission, whatever failover follows); tokens are the provider's reported usage of the answer
that was relayed (`charge`, when it ends). The counters live in the state store (Redis when set: exact
across workers and machines, expiring with their window); the key database's daily usage table is the
durable record they are rebuilt from when the store has lost them (a restart without Redis)."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from flask import jsonify, request

from utils import counters, usage
from utils.clock import iso
from utils.errors import GatewayError
from utils.keyfields import Policy

now = time.time  # the clock the windows are read on (tests move it)
DAY_TTL = 2 * 86400
MONTH_TTL = 32 * 86400


class BudgetExhausted(GatewayError):
    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, reset_at: float):
        super().__init__(message, retry_after=max(1.0, reset_at - now()))
        self.reset_at = reset_at


def handle_budget_exhausted(error: BudgetExhausted):
    """The contract's 429 with `resetAt` (OpenAI's shape under /v1), and Retry-After."""
    if request.path.startswith("/v1/"):
        response = jsonify({"error": {"message": error.message, "type": "requests", "param": None,
                                      "code": error.code}})
    else:
        response = jsonify({"error": error.message, "status": 429, "resetAt": iso(error.reset_at)})
    response.status_code = 429
    response.headers["Retry-After"] = str(max(1, int(error.reset_at - now() + 0.999)))
    return response


def windows(at: float) -> tuple[str, str, float, float]:
    """The day and month `at` falls in, and when each ends."""
    moment = datetime.fromtimestamp(at, timezone.utc)
    day_start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    month_end = (day_start.replace(day=1) + timedelta(days=32)).replace(day=1)
    return (day_start.strftime("%Y-%m-%d"), day_start.strftime("%Y-%m"),
            (day_start + timedelta(days=1)).timestamp(), month_end.timestamp())


def admit(policy: Policy, store, keys, estimated_tokens: int, hold: float) -> Callable[[], None]:
    """Count one request against the key's budgets, or raise BudgetExhausted. Returns the release of its
    concurrency slot (call it once the answer ends, however it ends). A slot counts for at most `hold`
    seconds, longer than any answer lasts, so one a killed worker never released frees itself."""
    limits = policy.limits
    if not limits or not any(name in limits for name in ("requestsPerDay", "tokensPerDay", "tokensPerMonth",
                                                          "maxConcurrent")):
        return lambda: None
    day, month, day_end, month_end = windows(now())
    day_key, month_key = f"{policy.key_hash}:d:{day}", f"{policy.key_hash}:m:{month}"
    if any(name in limits for name in ("requestsPerDay", "tokensPerDay", "tokensPerMonth")):
        _rebuild(policy.key_hash, store, keys, day, month, day_key, month_key)
    if "tokensPerDay" in limits or "tokensPerMonth" in limits:
        used_day = counters.read(store, day_key).get("tokens", 0)
        used_month = counters.read(store, month_key).get("tokens", 0)
        if "tokensPerDay" in limits and _over(used_day, estimated_tokens, limits["tokensPerDay"]):
            raise BudgetExhausted("Daily token budget exhausted", day_end)
        if "tokensPerMonth" in limits and _over(used_month, estimated_tokens, limits["tokensPerMonth"]):
            raise BudgetExhausted("Monthly token budget exhausted", month_end)
    if "requestsPerDay" in limits and (
            counters.incr(store, day_key, {"requests": 1}, DAY_TTL)["requests"] > limits["requestsPerDay"]):
        counters.incr(store, day_key, {"requests": -1}, DAY_TTL)  # a refused request is not counted
        raise BudgetExhausted("Daily request budget exhausted", day_end)
    if "maxConcurrent" not in limits:
        return lambda: None
    slot_key, slot = f"{policy.key_hash}:running", uuid.uuid4().hex
    if not counters.claim(store, slot_key, slot, now(), hold, limits["maxConcurrent"]):
        raise GatewayError("Too many concurrent requests for this key", 429, code="rate_limit_exceeded",
                           retry_after=1)
    released = []

    def release() -> None:
        if not released:
            released.append(True)
            counters.release(store, slot_key, slot)
    return release


def _over(used: int, estimated: int, limit: int) -> bool:
    """No tokens left, or the request's estimated prompt alone is more than those left."""
    return used >= limit or estimated > limit - used


def charge(policy: Policy, store, prompt_tokens: int, completion_tokens: int) -> None:
    """Count the relayed answer's tokens in the day and month windows."""
    tokens = prompt_tokens + completion_tokens
    if not tokens or not ({"tokensPerDay", "tokensPerMonth"} & set(policy.limits)):
        return
    day, month, _, _ = windows(now())
    counters.incr(store, f"{policy.key_hash}:d:{day}", {"tokens": tokens}, DAY_TTL)
    counters.incr(store, f"{policy.key_hash}:m:{month}", {"tokens": tokens}, MONTH_TTL)


def _rebuild(key_hash: str, store, keys, day: str, month: str, day_key: str, month_key: str) -> None:
    """Seed the window counters from the durable record when the store does not have them."""
    if counters.seeded(store, day_key) and counters.seeded(store, month_key):
        return
    days = keys.days_of(key_hash, f"{month}-01")
    today = days.get(day, usage.Daily())
    counters.seed(store, day_key, {"requests": today.requests - today.errors,
                                   "tokens": today.prompt_tokens + today.completion_tokens}, DAY_TTL)
    counters.seed(store, month_key, {"tokens": sum(d.prompt_tokens + d.completion_tokens for d in days.values())},
                  MONTH_TTL)
