"""Per-caller rate limits through Flask-Limiter, with the contract's headers (reset as ISO 8601).

The limiter belongs to the app (`app.extensions["rate_limiter"]`), built by the factory: views only
declare that they draw on the chat budget (`chat_limit`), and `init_limits` applies it."""
from __future__ import annotations

import functools
import math
import time

from flask import Flask, Response, current_app, g, has_app_context, request
from flask_limiter import Limiter, RequestLimit
from limits.storage import RedisStorage

from utils.budgets import BudgetExhausted, handle_budget_exhausted
from utils.clock import iso
from utils.settings import Settings

EXTENSION = "rate_limiter"  # Flask-Limiter keeps its own "limiter" entry (a set of instances)
SCHEME = "gateway+"  # RATELIMIT_STORAGE_URI's prefix naming OneTripRedisStorage before a Redis URL


def storage_uri(redis_url: str) -> str:
    """REDIS_URL as `limits` names it: a Redis socket is redis+unix:// there, unix:// for redis-py."""
    return "redis+" + redis_url if redis_url.startswith("unix://") else redis_url


class OneTripRedisStorage(RedisStorage):
    """limits' Redis storage, in one round trip per request instead of three: the hit's script also returns
    the window's TTL, and the count and reset it saw answer the request's own `get_window_stats` (the limit
    headers) instead of a GET and a TTL. Another request's view of the window still asks Redis."""

    STORAGE_SCHEME = tuple(SCHEME + scheme for scheme in RedisStorage.STORAGE_SCHEME)  # limits registers it
    # limits' incr_expire.lua, returning the TTL with the count.
    SCRIPT = """
local current = redis.call('INCRBY', KEYS[1], ARGV[2])
if tonumber(current) == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {current, redis.call('TTL', KEYS[1])}
"""

    def __init__(self, uri: str, **options):
        super().__init__(uri.removeprefix(SCHEME), **options)

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self.lua_incr_window = self.get_connection().register_script(self.SCRIPT)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        count, ttl = self.lua_incr_window([self.prefixed_key(key)], [expiry, amount])
        if has_app_context():
            g.rate_windows = {**g.get("rate_windows", {}), key: (int(count), max(int(ttl), 0) + time.time())}
        return int(count)

    def get(self, key: str) -> int:
        seen = g.get("rate_windows", {}).get(key) if has_app_context() else None
        return seen[0] if seen else super().get(key)

    def get_expiry(self, key: str) -> float:
        seen = g.get("rate_windows", {}).get(key) if has_app_context() else None
        return seen[1] if seen else super().get_expiry(key)


def caller_key() -> str:
    # Set by the blueprint's auth step, which runs before any limited view.
    caller = g.get("caller")
    return caller.id if caller else f"ip:{request.remote_addr}"


def chat_limit(view):
    """Mark a view as drawing on the one chat budget per caller that /chat and /v1 share."""
    view.shares_chat_limit = True
    return view


def current_limit() -> RequestLimit | None:
    return current_app.extensions[EXTENSION].current_limit


def init_limits(app: Flask, settings: Settings) -> Limiter:
    """Build the app's limiter and apply the chat budget to every marked view (register blueprints first)."""
    app.config.update(
        RATELIMIT_ENABLED=settings.rate_limit_enabled,
        RATELIMIT_STORAGE_URI=SCHEME + storage_uri(settings.redis_url) if settings.redis_url else "memory://",
        RATELIMIT_STRATEGY="fixed-window",
        RATELIMIT_HEADERS_ENABLED=False,  # written below, with the reset as ISO 8601
        RATELIMIT_KEY_PREFIX="gateway",
        # Redis unreachable: count in this process until it is back. Whether requests are then served at
        # all is the state store's decision (REDIS_FAIL_OPEN), so it is made in one place.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
    )
    limiter = Limiter(key_func=caller_key)
    limiter.init_app(app)
    shared = limiter.shared_limit(functools.partial(chat_rate_limit, settings.rate_limit), scope="chat")
    for endpoint, view in app.view_functions.items():
        if getattr(view, "shares_chat_limit", False):
            app.view_functions[endpoint] = shared(_admitted(view))
    app.extensions[EXTENSION] = limiter
    app.after_request(add_rate_limit_headers)
    # A key's own budgets (utils/budgets.py) answer 429 with `resetAt`, as the rate limit does.
    app.register_error_handler(BudgetExhausted, handle_budget_exhausted)
    return limiter


def chat_rate_limit(default: str) -> str:
    """The caller's chat limit: its key's own `rateLimit` when it has one, else RATE_LIMIT_*."""
    caller = g.get("caller")
    rate = caller.policy.limits.get("rateLimit") if caller is not None and caller.policy is not None else None
    if not rate:
        return default
    return f"{rate['max']} per {max(1, math.ceil(rate['windowMs'] / 1000))} second"


def _admitted(view):
    """Read the caller's standing as the request is admitted: by the time a stream's response is
    built, concurrent requests have moved the window on."""
    @functools.wraps(view)
    def admitted(*args, **kwargs):
        current = current_limit()
        if current is not None:
            g.rate_limit = (current.limit.amount, current.remaining, current.reset_at)
        return view(*args, **kwargs)
    return admitted


def give_back() -> None:
    """Return the request this one drew from the chat limit (a cache hit, when CACHE_HITS_RATE_LIMITED is
    false). The limit was checked on the way in, before anyone knew it would be a hit: a caller over it is
    still refused."""
    current = current_limit()
    if current is None:
        return
    current_app.extensions[EXTENSION].limiter.hit(current.limit, *current.request_args, cost=-1)
    amount, remaining, reset_at = g.get("rate_limit") or (current.limit.amount, current.remaining, current.reset_at)
    g.rate_limit = (amount, remaining + 1, reset_at)


def add_rate_limit_headers(response: Response) -> Response:
    current = current_limit()
    if current is None:
        return response
    amount, remaining, reset_at = g.get("rate_limit") or (current.limit.amount, current.remaining,
                                                          current.reset_at)
    response.headers["X-RateLimit-Limit"] = str(amount)
    response.headers["X-RateLimit-Remaining"] = str(max(0, remaining))
    response.headers["X-RateLimit-Reset"] = iso(reset_at)
    if response.status_code == 429:
        response.headers["Retry-After"] = str(retry_after_seconds(reset_at))
    return response


def retry_after_seconds(reset_at: float) -> int:
    return max(1, math.ceil(reset_at - time.time()))
