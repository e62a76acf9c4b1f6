"""Request figures for /metrics and /metrics/prometheus, kept in the state store: per process by
default, in Redis (so every worker and machine reports the same totals) when REDIS_URL is set.

Each attempt on a provider is one `add` to that provider's hash: counters, duration, and one bucket of
each histogram (stored per bucket, made cumulative when rendered).
"""
from __future__ import annotations

import bisect
import time

from utils.clock import iso
from utils.state import LocalStore, RedisStore

# Per-provider counters besides requests and errors, as /metrics names them.
COUNTERS = ("failovers", "timeouts", "midstreamFailures", "promptTokens", "completionTokens")
# What is also counted per key of a provider's pool, as `key:<index>:<name>` fields of its hash.
KEY_COUNTERS = ("requests", "errors", "promptTokens", "completionTokens")
# Per-minute counts of each provider's calls for the admin panel's charts: one hash per minute (`series:<minute>`).
SERIES, SERIES_MINUTES, SERIES_TTL = "series:", 60, 3900
# Histogram bucket upper bounds, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf"))


def bucket(seconds: float) -> str:
    return str(BUCKETS[bisect.bisect_left(BUCKETS, seconds)])


class Metrics:
    def __init__(self, service_names: list[str], store: LocalStore | RedisStore):
        self.started = time.time()
        self.names = list(service_names)
        self.store = store

    def count_request(self) -> None:
        self.store.add("metrics", {"totalRequests": 1}, defer=True)

    def count_cache(self, hit: bool) -> None:
        """A cacheable request answered from the response cache (hit) or not (miss)."""
        self.store.add("metrics", {"cacheHits" if hit else "cacheMisses": 1}, defer=True)

    def cache_counts(self) -> dict[str, int]:
        total = self.store.read(["metrics"])[0]
        return {"hits": int(float(total.get("cacheHits", 0))), "misses": int(float(total.get("cacheMisses", 0)))}

    def record_attempt(self, service: str, *, ok: bool, duration_ms: float, failure: str | None = None,
                       midstream: bool = False, failed_over: bool = False, ttft_ms: float | None = None,
                       prompt_tokens: int = 0, completion_tokens: int = 0, key: int = 1) -> None:
        """One call to one provider. `failure` is the error's kind ('timeout', 'broken'...) if it failed;
        `midstream` says it failed after its first chunk had been sent; `key` is the pool's key it used."""
        amounts = {
            "requests": 1, "errors": int(not ok), "failovers": int(failed_over),
            "timeouts": int(failure == "timeout"), "midstreamFailures": int(midstream),
            "promptTokens": prompt_tokens, "completionTokens": completion_tokens,
            "durationMs": float(round(duration_ms, 3)), f"latency:{bucket(duration_ms / 1000)}": 1,
        }
        if ttft_ms is not None:
            amounts.update({"ttftMs": float(round(ttft_ms, 3)), "ttftCount": 1, f"ttft:{bucket(ttft_ms / 1000)}": 1})
        amounts.update({f"key:{key}:{name}": amounts[name] for name in KEY_COUNTERS})
        now = time.time()
        minute = {f"requests:{service}": 1, **({f"errors:{service}": 1} if not ok else {})}
        # Zeros change nothing: leaving them out spares Redis a third of the commands. The minute's counts go in
        # the same round trip, in a hash that expires once it has left the last hour.
        self.store.add_many([(f"metrics:{service}", {k: v for k, v in amounts.items() if v}, {"lastUsed": now}, None),
                             (f"{SERIES}{int(now // 60)}", minute, None, SERIES_TTL)], defer=True)

    def raw(self) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        """The stored fields: the totals, and each service's."""
        total, *services = self.store.read(["metrics"] + [f"metrics:{name}" for name in self.names])
        return total, dict(zip(self.names, services))

    def uptime(self) -> float:
        return round(time.time() - self.started, 3)

    def series(self, now: float | None = None) -> tuple[float, dict[str, dict[str, list[int]]]]:
        """Requests and errors a minute over the last hour, oldest first, per service: the start of the first
        minute, and each service's two lists of SERIES_MINUTES counts."""
        last = int((now or time.time()) // 60)
        minutes = self.store.read([f"{SERIES}{m}" for m in range(last - SERIES_MINUTES + 1, last + 1)])
        return (last - SERIES_MINUTES + 1) * 60.0, {name: {
            kind: [int(float(fields.get(f"{kind}:{name}", 0))) for fields in minutes] for kind in ("requests", "errors")
        } for name in self.names}

    def snapshot(self) -> dict:
        total, services = self.raw()
        return {
            "uptime": self.uptime(),
            "totalRequests": int(float(total.get("totalRequests", 0))),
            "services": {name: service_summary(fields) for name, fields in services.items()},
        }


def service_summary(fields: dict[str, str]) -> dict:
    def number(name: str) -> int:
        return int(float(fields.get(name, 0)))

    requests, errors = number("requests"), number("errors")
    last = fields.get("lastUsed")
    return {
        "requests": requests,
        "errors": errors,
        "avgDuration": round(float(fields.get("durationMs", 0)) / requests, 2) if requests else 0,
        "avgTtft": round(float(fields.get("ttftMs", 0)) / ttfts, 2) if (ttfts := number("ttftCount")) else 0,
        "lastUsed": iso(float(last)) if last else None,
        "successRate": f"{(requests - errors) / requests * 100:.2f}%" if requests else "100.00%",
        **{name: number(name) for name in COUNTERS},
        "keys": key_figures(fields),
    }


def key_figures(fields: dict[str, str]) -> dict[str, dict[str, int]]:
    """Per key index of the provider's pool (`"1"`, `"2"`...): its requests, errors and tokens."""
    keys: dict[str, dict[str, int]] = {}
    for field_name, value in fields.items():
        if field_name.startswith("key:"):
            _, index, name = field_name.split(":", 2)
            keys.setdefault(index, dict.fromkeys(KEY_COUNTERS, 0))[name] = int(float(value))
    return dict(sorted(keys.items(), key=lambda item: int(item[0])))
