"""Per-caller rate limits through Flask-Limiter, with the contract's headers (reset as ISO 8601)."""
from __future__ import annotations

import functools
import math
import time

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter

from utils.clock import iso
from utils.settings import Settings


def caller_key() -> str:
    # Set by the blueprint's auth step, which runs before any limited view.
    caller = g.get("caller")
    return caller.id if caller else f"ip:{request.remote_addr}"


limiter = Limiter(key_func=caller_key)

# /chat and the OpenAI-compatible routes draw on one budget per caller.
_shared_chat_limit = limiter.shared_limit(lambda: current_app.config["CHAT_RATE_LIMIT"], scope="chat")


def chat_limit(view):
    """Limit a view on the shared chat budget, reading the caller's standing as the request is admitted:
    by the time a stream's response is built, concurrent requests have moved the window on."""
    @functools.wraps(view)
    def admitted(*args, **kwargs):
        current = limiter.current_limit
        if current is not None:
            g.rate_limit = (current.limit.amount, current.remaining, current.reset_at)
        return view(*args, **kwargs)
    return _shared_chat_limit(admitted)


def init_limits(app: Flask, settings: Settings) -> None:
    app.config.update(
        CHAT_RATE_LIMIT=settings.rate_limit,
        RATELIMIT_ENABLED=settings.rate_limit_enabled,
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        RATELIMIT_STRATEGY="fixed-window",
        RATELIMIT_HEADERS_ENABLED=False,  # written below, with the reset as ISO 8601
        RATELIMIT_KEY_PREFIX="gateway",
        # Redis unreachable: count in this process until it is back. Whether requests are then served at
        # all is the state store's decision (REDIS_FAIL_OPEN), so it is made in one place.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
    )
    limiter.init_app(app)
    app.after_request(add_rate_limit_headers)


def add_rate_limit_headers(response: Response) -> Response:
    current = limiter.current_limit
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
