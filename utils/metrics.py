"""Request figures for /metrics. Per process here; shared through Redis when REDIS_URL is set."""
from __future__ import annotations

import time
from collections import defaultdict

from utils.clock import iso

# Per-provider counters kept besides requests and errors.
COUNTERS = ("requests", "errors", "failovers", "timeouts", "midstreamFailures", "promptTokens",
            "completionTokens")


class Metrics:
    def __init__(self, service_names: list[str]):
        self.started = time.time()
        self.total_requests = 0
        self._names = list(service_names)
        self._counts: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        self._duration_ms: dict[str, float] = defaultdict(float)
        self._last_used: dict[str, float] = {}

    def count_request(self) -> None:
        self.total_requests += 1

    def record_attempt(self, service: str, *, ok: bool, duration_ms: float, failure: str | None = None,
                       failed_over: bool = False, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """One call to one provider. `failure` is None, 'timeout', 'midstream' or another error kind."""
        counts = self._counts[service]
        counts["requests"] += 1
        counts["errors"] += not ok
        counts["failovers"] += failed_over
        counts["timeouts"] += failure == "timeout"
        counts["midstreamFailures"] += failure == "midstream"
        counts["promptTokens"] += prompt_tokens
        counts["completionTokens"] += completion_tokens
        self._duration_ms[service] += duration_ms
        self._last_used[service] = time.time()

    def snapshot(self) -> dict:
        return {
            "uptime": round(time.time() - self.started, 3),
            "totalRequests": self.total_requests,
            "services": {name: self._service(name) for name in self._names},
        }

    def _service(self, name: str) -> dict:
        counts = self._counts[name]
        requests, errors = int(counts["requests"]), int(counts["errors"])
        last = self._last_used.get(name)
        return {
            "requests": requests,
            "errors": errors,
            "avgDuration": round(self._duration_ms[name] / requests, 2) if requests else 0,
            "lastUsed": iso(last) if last else None,
            "successRate": f"{(requests - errors) / requests * 100:.2f}%" if requests else "100.00%",
            **{k: int(counts[k]) for k in COUNTERS[2:]},
        }
