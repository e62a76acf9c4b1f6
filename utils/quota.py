"""One model of what a provider said about its remaining quota, and the one parser for reset times.

Each provider reads its own dialect into a `Quota` (its module's `read_quota`); this module holds only
what every dialect shares: the value type, the reset-time parser, and small header helpers.
"""
from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

log = logging.getLogger("gateway")

# A number this large is an epoch, not a delay: 1e9 s is 2001; 1e12 ms is also 2001.
EPOCH_SECONDS = 1e9
EPOCH_MILLISECONDS = 1e12
# The furthest ahead a reset may be. Real ones are at most a day away (a month for credits); anything
# further is a misread or a hostile value, and trusting it would bench a provider for years, or make a
# time no date can show. It counts as absent, like garbage: the caller's own back-off applies instead.
MAX_RESET_SECONDS = 366 * 86400
# The largest remaining count kept: far above any real budget, and still exact as a float, which is
# how the shared store reads counts back.
MAX_COUNT = 2 ** 53

# Each digit can be matched one way only (`\d+(?:\.\d*)?`, not `\d+\.?\d*`): with two ways, a long run of
# digits ending in garbage backtracks quadratically, seconds of CPU for one 16 KB header.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# Go's time.Duration.String(): `2m59.56s`, `1h2m`, `500ms` (https://pkg.go.dev/time#ParseDuration).
_GO_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:h|ms|m|s|us|µs|ns))+")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_GO_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class Quota:
    """What one answer (success or error) told us about a provider's remaining quota. All times are epoch seconds."""
    remaining_requests: int | None = None
    requests_reset: float | None = None     # when the request budget refills
    requests_window: str | None = None      # "minute" | "day" | None if unknown
    remaining_tokens: int | None = None
    tokens_reset: float | None = None
    tokens_window: str | None = None
    retry_at: float | None = None           # a 429/503 said: not before this time (Retry-After, retryDelay, reset)
    window: str | None = None               # for an exhaustion: which window ran out ("minute" | "day"), when known
    # No retry can help: Gemini `limit: 0` (model not in this tier), HF/OpenRouter 402 credits exhausted.
    out_until_restart: bool = False
    # Short label for /health and logs, e.g. "requests_per_day", "tokens_per_minute", "credits_exhausted",
    # "model_not_in_tier", "rate_limited".
    reason: str = ""


def parse_reset(value, now: float) -> float | None:
    """A reset/retry value in any provider's format -> the epoch second it happens; None for absent or
    garbage (garbage is logged once per distinct format via logging.getLogger("gateway"), never raises).

    Numbers (or numeric strings) are seconds from now, unless large enough to be an epoch in seconds
    or milliseconds (OpenRouter's `X-RateLimit-Reset`); strings may also be Go durations (Groq), HTTP
    dates (`Retry-After`) or ISO 8601 times. A time before 1970 or more than MAX_RESET_SECONDS ahead
    counts as garbage."""
    if value is None:
        return None
    at = _parse(value, now)
    if at is None or not 0 <= at <= now + MAX_RESET_SECONDS:
        _warn_unknown_format(_shape(value))
        return None
    return at


def seconds_until(at: float | None, now: float) -> float | None:
    """`at - now` in whole milliseconds (so `"34.4s"` reads back as 34.4); None when absent or past."""
    if at is None or not now <= at < math.inf:
        return None
    return round(at - now, 3)


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    """A count header (`x-ratelimit-remaining-*`) as an int, at most MAX_COUNT; None when absent,
    negative or not a number. The value may be any JSON (OpenRouter copies its headers into a body)."""
    value = headers.get(name)
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an int too large for a float
        return None
    if not 0 <= number < math.inf:  # also refuses nan
        return None
    return int(min(number, MAX_COUNT))


def _parse(value, now: float) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _from_number(value, now)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return _from_number(float(text), now)
    if _GO_DURATION.fullmatch(text):
        return now + sum(float(n) * _GO_UNIT[unit] for n, unit in _GO_PART.findall(text))
    return _from_date(text)


def _from_number(number: float, now: float) -> float | None:
    # Bounded before dividing or adding, so that a huge int never has to become a float (OverflowError);
    # the caller refuses anything this far ahead anyway.
    if not 0 <= number <= EPOCH_MILLISECONDS * 1000:  # also refuses nan
        return None
    if number > EPOCH_MILLISECONDS:
        return number / 1000.0
    if number > EPOCH_SECONDS:
        return float(number)
    return now + number


def _from_date(text: str) -> float | None:
    try:
        moment = parsedate_to_datetime(text)  # RFC 9110 HTTP date, as `Retry-After` may carry
    except (TypeError, ValueError, IndexError):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _shape(value) -> str:
    """What kind of value it was, without its digits: `1h2x` and `3h4x` are one format. Only a value's
    start is read, however long it is; of a value that is not a string, only its type."""
    if not isinstance(value, str):
        return type(value).__name__
    return re.sub(r"\d+", "9", value[:80])[:40]


@functools.lru_cache(maxsize=256)  # per-process memory of formats already reported, bounded
def _warn_unknown_format(shape: str) -> None:
    log.warning("unreadable or out-of-range rate-limit reset ignored: %r", shape, extra={"format": shape})
