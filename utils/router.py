"""Which provider answers: round-robin over the configured providers, skipping any that is cooling down,
and each provider's circuit. Cursor and circuits live in the state store, so with Redis every worker and
machine shares one rotation and one view of provider health.

Cool-downs: a 429 rests the provider until the time it named (Retry-After, RetryInfo), else for
`failure_cooldown`; `failure_threshold` failures in a row open the circuit for a back-off that doubles
on each opening, after which one probe request is let through (others skip the provider meanwhile); a
model the provider says does not exist takes it out until restart, since no retry can fix the
configuration.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass

from providers.base import Provider
from utils.clock import iso
from utils.errors import NoProviders, ProviderError, ValidationError
from utils.state import LocalStore, RedisStore

log = logging.getLogger("gateway")

MAX_BACKOFF = 600.0
ROTATION = "rotation"


@dataclass
class Circuit:
    failures: int = 0  # in a row
    openings: int = 0  # times the circuit opened since the last success
    until: float = 0.0  # no request before this time (math.inf: until restart)
    reason: str = ""

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Circuit:
        return cls(int(fields.get("failures", 0)), int(fields.get("openings", 0)), float(fields.get("until", 0)),
                   fields.get("reason", ""))

    def state(self, now: float) -> dict:
        if self.until > now:
            until = None if self.until == math.inf else iso(self.until)
            return {"state": "cooling_down", "until": until, "reason": self.reason}
        if self.failures:
            return {"state": "failing", "failures": self.failures, "reason": self.reason}
        return {"state": "ok"}


class Router:
    def __init__(self, providers: tuple[Provider, ...], store: LocalStore | RedisStore, *, failure_threshold: int,
                 failure_cooldown: float, probe_seconds: float, clock=time.time):
        self.providers = providers
        self.configured = tuple(p for p in providers if p.configured)
        self.store = store
        self.threshold = failure_threshold
        self.cooldown = failure_cooldown
        self.probe_seconds = probe_seconds
        self.clock = clock
        # Circuits as last read by this process: lets a success skip a write when all was well.
        self._seen: dict[str, Circuit] = {}

    def by_id(self, provider_id: str) -> Provider | None:
        return next((p for p in self.providers if p.id == provider_id), None)

    def plan(self, max_attempts: int = 0) -> list[Provider]:
        """The providers to try for one request, in order: the next available one in the rotation first,
        then those after it. Advances the rotation by one available provider."""
        available = self._available()
        first = self.store.advance(ROTATION, [self.configured.index(p) for p in available], len(self.configured))
        return self._after(first - 1, available, max_attempts)

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
        return self._after(self.configured.index(provider) - 1, self._available(), max_attempts)

    def _available(self) -> list[Provider]:
        if not self.configured:
            raise NoProviders()
        now, circuits = self.clock(), self._read()
        available = [p for p in self.configured if circuits[p.id].until <= now]
        if not available:
            raise NoProviders("All providers are cooling down; try again later")
        return available

    def _after(self, index: int, available: list[Provider], max_attempts: int) -> list[Provider]:
        count = len(self.configured)
        ring = [self.configured[(index + step) % count] for step in range(1, count + 1)]
        return [p for p in ring if p in available][:max_attempts or count]

    def attempting(self, provider: Provider) -> None:
        circuit = self._seen.get(provider.id)
        if circuit and circuit.openings:  # after a back-off: this request is the probe; others wait for it
            circuit.until = self.clock() + self.probe_seconds
            self._write(provider, circuit)

    def succeeded(self, provider: Provider) -> None:
        seen = self._seen.get(provider.id)
        if seen is None or seen != Circuit():
            if seen and (seen.openings or seen.until):
                log.info("provider is back", extra={"service": provider.name})
            self._write(provider, Circuit())

    def failed(self, provider: Provider, error: ProviderError) -> None:
        circuit = self._read()[provider.id]
        now = self.clock()
        circuit.reason = error.kind
        if error.model_gone:
            circuit.until, circuit.reason = math.inf, "model_not_found"
        elif error.upstream_status == 429:  # busy, not broken: rest it without counting a failure
            circuit.until = now + (error.retry_after if error.retry_after is not None else self.cooldown)
        else:
            circuit.failures += 1
            if circuit.failures >= self.threshold:
                circuit.openings += 1
                circuit.until = now + min(MAX_BACKOFF, self.cooldown * 2 ** (circuit.openings - 1))
            else:
                circuit.until = 0.0  # a failed probe's hold is lifted
        self._write(provider, circuit)
        if circuit.until > now:
            log.warning("provider is cooling down", extra={
                "service": provider.name, "reason": circuit.reason,
                "until": None if circuit.until == math.inf else iso(circuit.until)})

    def answered_instead(self, provider: Provider) -> None:
        """A failover answered: the rotation goes on after it, so the order over healthy providers stays
        exact while one of them is failing."""
        self.store.set_cursor(ROTATION, self.configured.index(provider))

    def released(self, provider: Provider) -> None:
        """A request ended without a verdict on the provider (the client left): lift a probe's hold."""
        circuit = self._seen.get(provider.id)
        if circuit and circuit.openings:
            circuit.until = 0.0
            self._write(provider, circuit)

    def status(self) -> dict[str, dict]:
        now = self.clock()
        return {pid: circuit.state(now) for pid, circuit in self._read().items()}

    def _read(self) -> dict[str, Circuit]:
        fields = self.store.read([f"circuit:{p.id}" for p in self.providers])
        self._seen = {p.id: Circuit.from_fields(f) for p, f in zip(self.providers, fields)}
        return dict(self._seen)

    def _write(self, provider: Provider, circuit: Circuit) -> None:
        self._seen[provider.id] = circuit
        self.store.put(f"circuit:{provider.id}", {k: str(v) for k, v in asdict(circuit).items()})
