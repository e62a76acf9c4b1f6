"""Prometheus exposition of the same figures /metrics shows, read from the state store at scrape time,
so any worker (and, with Redis, any machine) answers with the whole gateway's numbers.

Each provider's series carry `provider` (its id, as clients and settings name it) and `model` (its
configured model): a display name can change with the code, and a model change must start new series."""
from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from utils.metrics import BUCKETS, Metrics, key_figures

if TYPE_CHECKING:
    from providers.base import Provider

LABELS = ["provider", "model"]

# (metric name, help, stored field)
COUNTERS = (
    ("gateway_provider_requests", "Calls to a provider, failed ones included", "requests"),
    ("gateway_provider_errors", "Calls to a provider that failed", "errors"),
    ("gateway_provider_failovers", "Failures another provider took over", "failovers"),
    ("gateway_provider_timeouts", "Calls cut by a timeout", "timeouts"),
    ("gateway_provider_midstream_failures", "Streams that broke after the first chunk", "midstreamFailures"),
    ("gateway_prompt_tokens", "Prompt tokens reported by providers", "promptTokens"),
    ("gateway_completion_tokens", "Completion tokens reported by providers", "completionTokens"),
)
# The same per key of a provider's pool, labelled `key` (its index: 1, 2...).
KEY_COUNTERS = (
    ("gateway_provider_key_requests", "Calls to a provider with one key of its pool", "requests"),
    ("gateway_provider_key_errors", "Calls with one key of a provider's pool that failed", "errors"),
    ("gateway_key_prompt_tokens", "Prompt tokens reported per key of a provider's pool", "promptTokens"),
    ("gateway_key_completion_tokens", "Completion tokens reported per key of a provider's pool", "completionTokens"),
)


class GatewayCollector:
    def __init__(self, metrics: Metrics, providers: tuple[Provider, ...], cache: dict | None = None):
        self.metrics = metrics
        self.cache = cache  # the response cache's figures (utils/response_cache.py `figures`)
        # /metrics keys its figures by display name; the labels are the id and model of that provider.
        self.labels = {p.name: [p.id, p.model] for p in providers}

    def collect(self):
        total, stored = self.metrics.raw()
        services = {tuple(self.labels[name]): fields for name, fields in stored.items() if name in self.labels}
        requests = CounterMetricFamily("gateway_requests", "Chat requests dispatched to providers")
        requests.add_metric([], float(total.get("totalRequests", 0)))
        yield requests
        for name, help_text, field in COUNTERS:
            family = CounterMetricFamily(name, help_text, labels=LABELS)
            for labels, fields in services.items():
                family.add_metric(list(labels), float(fields.get(field, 0)))
            yield family
        for name, help_text, field in KEY_COUNTERS:
            family = CounterMetricFamily(name, help_text, labels=[*LABELS, "key"])
            for labels, fields in services.items():
                for index, figures in key_figures(fields).items():
                    family.add_metric([*labels, index], float(figures[field]))
            yield family
        yield self._histogram("gateway_provider_duration_seconds", "Whole call to a provider", "latency",
                              "durationMs", "requests", services)
        yield self._histogram("gateway_time_to_first_token_seconds", "Time to a provider's first chunk", "ttft",
                              "ttftMs", "ttftCount", services)
        if self.cache is not None:
            yield from cache_families(self.cache)
        uptime = GaugeMetricFamily("gateway_uptime_seconds", "Seconds since this process started")
        uptime.add_metric([], self.metrics.uptime())
        yield uptime

    @staticmethod
    def _histogram(name, help_text, prefix, sum_field, count_field, services):
        family = HistogramMetricFamily(name, help_text, labels=LABELS)
        for labels, fields in services.items():
            cumulative, buckets = 0.0, []
            for bound in BUCKETS:
                cumulative += float(fields.get(f"{prefix}:{bound}", 0))
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            family.add_metric(list(labels), buckets, float(fields.get(sum_field, 0)) / 1000)
        return family


# The response cache's figures: (metric name, help, kind, field of utils/response_cache.py `figures`).
CACHE_FIGURES = (
    ("gateway_cache_hits", "Cacheable requests answered from the response cache", CounterMetricFamily, "hits"),
    ("gateway_cache_misses", "Cacheable requests a provider answered", CounterMetricFamily, "misses"),
    ("gateway_cache_entries", "Answers held in the response cache", GaugeMetricFamily, "entries"),
    ("gateway_cache_bytes", "Bytes of the answers held in the response cache", GaugeMetricFamily, "bytes"),
)


def cache_families(cache: dict):
    for name, help_text, kind, field in CACHE_FIGURES:
        family = kind(name, help_text)
        family.add_metric([], float(cache[field]))
        yield family


def render(metrics: Metrics, providers: tuple[Provider, ...], cache: dict | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(metrics, providers, cache))
    return generate_latest(registry)
