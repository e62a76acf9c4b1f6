"""Which provider answers: round-robin over the configured providers, skipping any that is cooling down,
and each provider's circuit state (per process; shared through Redis when REDIS_URL is set).

Cool-downs: a 429 rests the provider until the time it named (Retry-After, RetryInfo), else for
`failure_cooldown`; `failure_threshold` failures in a row open the circuit for a back-off that doubles
on each opening, after which one probe request is let through; a model the provider says does not exist
takes it out until restart, since no retry can fix the configuration.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from providers.base import Provider
from utils.clock import iso
from utils.errors import NoProviders, ProviderError, ValidationError

log = logging.getLogger("gateway")

MAX_BACKOFF = 600.0


@dataclass
class Circuit:
    failures: int = 0  # in a row
    openings: int = 0  # times the circuit opened since the last success
    until: float = 0.0  # no request before this time (math.inf: until restart)
    reason: str = ""
    probing: bool = False  # a probe request is in flight after a back-off

    def state(self, now: float) -> dict:
        if self.until > now:
            until = None if self.until == math.inf else iso(self.until)
            return {"state": "cooling_down", "until": until, "reason": self.reason}
        if self.failures:
            return {"state": "failing", "failures": self.failures, "reason": self.reason}
        return {"state": "ok"}


class Router:
    def __init__(self, providers: tuple[Provider, ...], failure_threshold: int, failure_cooldown: float,
                 clock=time.time):
        self.providers = providers
        self.configured = tuple(p for p in providers if p.configured)
        self.threshold = failure_threshold
        self.cooldown = failure_cooldown
        self.clock = clock
        self._last = -1  # index in `configured` of the provider the last request started with
        self._circuits = {p.id: Circuit() for p in providers}

    def by_id(self, provider_id: str) -> Provider | None:
        return next((p for p in self.providers if p.id == provider_id), None)

    def plan(self, max_attempts: int = 0) -> list[Provider]:
        """The providers to try for one request, in order: the next available one in the rotation first,
        then those after it. Advances the rotation by one available provider."""
        available = self._available_after(self._last)
        self._last = self.configured.index(available[0])
        return available[:max_attempts or len(available)]

    def plan_named(self, provider_id: str, *, fallback: bool, max_attempts: int = 0) -> list[Provider]:
        """The plan when the caller named a provider: that one even while it cools down (it was asked
        for), or with `fallback` that one if available and then the rotation after it."""
        provider = self.by_id(provider_id)
        if provider is None:
            ids = ", ".join(p.id for p in self.providers)
            raise ValidationError(f"Unknown provider '{provider_id}'. Valid providers: {ids}")
        if not provider.configured:
            raise ValidationError(f"Provider '{provider_id}' is not configured on this gateway")
        if not fallback:
            return [provider]
        available = self._available_after(self.configured.index(provider) - 1)
        return available[:max_attempts or len(available)]

    def _available_after(self, index: int) -> list[Provider]:
        if not self.configured:
            raise NoProviders()
        now, count = self.clock(), len(self.configured)
        order = [self.configured[(index + step) % count] for step in range(1, count + 1)]
        available = [p for p in order if self._available(p, now)]
        if not available:
            raise NoProviders("All providers are cooling down; try again later")
        return available

    def is_available(self, provider: Provider) -> bool:
        return self._available(provider, self.clock())

    def _available(self, provider: Provider, now: float) -> bool:
        circuit = self._circuits[provider.id]
        # After a back-off, only one probe at a time tests the provider.
        return circuit.until <= now and not circuit.probing

    def attempting(self, provider: Provider) -> None:
        circuit = self._circuits[provider.id]
        circuit.probing = circuit.openings > 0

    def succeeded(self, provider: Provider) -> None:
        circuit = self._circuits[provider.id]
        if circuit.openings or circuit.until:
            log.info("provider is back", extra={"service": provider.name})
        self._circuits[provider.id] = Circuit()

    def failed(self, provider: Provider, error: ProviderError) -> None:
        circuit = self._circuits[provider.id]
        now = self.clock()
        circuit.probing = False
        circuit.reason = error.kind
        if error.model_gone:
            circuit.until, circuit.reason = math.inf, "model_not_found"
        elif error.upstream_status == 429:  # busy, not broken: rest it without counting a failure
            circuit.until = now + (error.retry_after if error.retry_after is not None else self.cooldown)
        else:
            circuit.failures += 1
            if circuit.failures < self.threshold:
                return
            circuit.openings += 1
            circuit.until = now + min(MAX_BACKOFF, self.cooldown * 2 ** (circuit.openings - 1))
        log.warning("provider is cooling down", extra={
            "service": provider.name, "reason": circuit.reason,
            "until": None if circuit.until == math.inf else iso(circuit.until)})

    def answered_instead(self, provider: Provider) -> None:
        """A failover answered: the rotation goes on after it, so the order over healthy providers stays
        exact while one of them is failing."""
        self._last = self.configured.index(provider)

    def released(self, provider: Provider) -> None:
        """A request ended without a verdict on the provider (the client left): free the probe slot."""
        self._circuits[provider.id].probing = False

    def status(self, provider: Provider) -> dict:
        return self._circuits[provider.id].state(self.clock())
