"""Which provider answers: round-robin over the configured providers, skipping any that is cooling down, and
each provider's circuit. Cursor and circuits live in the state store, so with Redis every worker and machine
shares one rotation and one view of provider health. Changes go to `events` (webhooks).

Cool-downs (what an answer does to them is in utils/outcomes.py): a provider resting after a 429, or whose
circuit is open, is skipped until its time; after a back-off has run out one probe request is let through
(others skip the provider meanwhile); a model the provider says does not exist takes it out until restart.

Key pools (`GROQ_API_KEY=k1,k2`): each key has its own circuit and quota (`circuit:groq#2`), used in turn; a
key refused (401/403/402) is out alone until reset; the provider rests when all its keys do. Its model gone
stays in `circuit:groq`, which is also the one key's circuit when there is no pool.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict

from providers.base import Provider
from utils.circuits import Circuit, QuotaState, pool_state, slots
from utils.errors import NoProviders, ValidationError
from utils.events import Events
from utils.outcomes import Outcomes
from utils.state import LocalStore, RedisStore

ROTATION = "rotation"


class Router(Outcomes):
    def __init__(self, providers: tuple[Provider, ...], store: LocalStore | RedisStore, *, failure_threshold: int,
                 failure_cooldown: float, probe_seconds: float, clock=time.time, events: Events | None = None):
        self.providers = providers
        self.configured = tuple(p for p in providers if p.configured)
        self.store = store
        self.threshold = failure_threshold
        self.cooldown = failure_cooldown
        self.probe_seconds = probe_seconds
        self.clock = clock
        self.events = events or Events()
        # Circuits and quotas as last read by this process: what planning and the outcomes (utils/outcomes.py) see.
        self._seen: dict[str, Circuit] = {}
        self._quotas: dict[str, QuotaState] = {}
        # Providers whose probe this process is running (so only it lifts the probe's hold).
        self._probing: set[str] = set()

    def by_id(self, provider_id: str) -> Provider | None:
        return next((p for p in self.providers if p.id == provider_id), None)

    def plan(self, max_attempts: int = 0, tokens: int = 0, among: list[Provider] | None = None) -> list[Provider]:
        """The providers to try for one request of about `tokens` prompt tokens, in order: the next
        available one in the rotation first, then those after it. Advances the rotation by one.
        `among` keeps only the providers able to serve the request."""
        # One round trip: the rotation steps over the providers this process last saw able to serve while the
        # state is read afresh; only where the fresh state disagrees does it step again, over those able now.
        guess = self._able(self.clock(), tokens, among) if self._seen else list(among or self.configured)
        available, first = self._available(tokens, among, step=[self.configured.index(p) for p in guess])
        if first is None or self.configured[first] not in available:
            first = self.store.advance(ROTATION, [self.configured.index(p) for p in available], len(self.configured))
        return self._after(first - 1, available, max_attempts)

    def plan_named(self, provider_id: str, *, fallback: bool, max_attempts: int = 0, tokens: int = 0,
                   among: list[Provider] | None = None) -> list[Provider]:
        """The plan when the caller named a provider: that one even while it cools down (it was asked
        for), or with `fallback` that one if available and then the rotation after it."""
        provider = self.by_id(provider_id)
        if provider is None:
            ids = ", ".join(p.id for p in self.providers)
            raise ValidationError(f"Unknown provider '{provider_id}'. Valid providers: {ids}")
        if not provider.configured:
            raise ValidationError(f"Provider '{provider_id}' is not configured on this gateway")
        if not fallback:
            self._read()  # what this process knows of its circuit stays current (a probe, a success)
            return [provider] * self._turns(provider, self.clock())
        return self._after(self.configured.index(provider) - 1, self._available(tokens, among)[0], max_attempts)

    def _until(self, provider: Provider, now: float, tokens: int) -> float:
        return max(self._seen[provider.id].until, min(self._slot_until(s, now, tokens) for s in slots(provider)))

    def _slot_until(self, slot: str, now: float, tokens: int) -> float:
        return max(self._seen[slot].until, self._quotas[slot].exhausted_until(now, tokens))

    def _able(self, now: float, tokens: int, among: list[Provider] | None) -> list[Provider]:
        """Configured providers (of `among`) neither cooling down nor out of quota for this request."""
        return [p for p in (self.configured if among is None else among) if self._until(p, now, tokens) <= now]

    def _available(self, tokens: int, among: list[Provider] | None = None, step: list[int] | None = None
                   ) -> tuple[list[Provider], int | None]:
        """`_able` on the state read afresh; with `step`, the rotation stepped over those in the same round trip."""
        if not self.configured:
            raise NoProviders()
        stepped = self._read(step)
        available = self._able(now := self.clock(), tokens, among)
        if not available:
            raise NoProviders("All providers are cooling down; try again later",
                              retry_after=self._back_in(now, tokens, among))
        return available, stepped

    def _back_in(self, now: float, tokens: int, among: list[Provider] | None) -> float | None:
        """Seconds until the first provider asked for can serve again (Retry-After); None: not by itself."""
        soonest = min((self._until(p, now, tokens) for p in (self.configured if among is None else among)),
                      default=math.inf)
        return None if soonest == math.inf else soonest - now

    def _after(self, index: int, available: list[Provider], max_attempts: int) -> list[Provider]:
        count, now = len(self.configured), self.clock()
        ring = [self.configured[(index + step) % count] for step in range(1, count + 1)]
        tries = [p for p in ring if p in available for _ in range(self._turns(p, now))]
        return tries[:max_attempts or len(tries)]

    def _turns(self, provider: Provider, now: float) -> int:
        """Tries a provider gets in one plan: one per key able to serve, so a request fails over across its pool."""
        return sum(self._slot_until(slot, now, 0) <= now for slot in slots(provider)) or 1

    def attempting(self, provider: Provider) -> int:
        """The key (1-based) this attempt uses."""
        names, now, key = slots(provider), self.clock(), 1
        if len(names) > 1:  # a pool: its next key in turn that is not resting (any, if all are)
            self._read()
            free = [i for i, name in enumerate(names) if self._slot_until(name, now, 0) <= now]
            key = self.store.advance(f"keys:{provider.id}", free or list(range(len(names))), len(names)) + 1
        circuit = self._seen.get(slot := names[key - 1])
        # After a back-off has run out this request is the probe, and others wait for it. A provider
        # still resting (asked for by name) keeps its rest: naming it must not cut the back-off short.
        if circuit and circuit.openings and circuit.until <= now:
            circuit.until = now + self.probe_seconds
            self._probing.add(slot)
            self._write(slot, circuit)
        return key

    def answered_instead(self, provider: Provider) -> None:
        """A failover answered: the rotation goes on after it (an exact order while one is failing)."""
        self.store.set_cursor(ROTATION, self.configured.index(provider))

    def status(self) -> dict[str, dict]:
        """Per provider id: its state for /health, with what its quota said last."""
        self._read()
        now = self.clock()
        return {p.id: pool_state(self._seen[p.id], [(self._seen[s], self._quotas[s]) for s in slots(p)], now)
                for p in self.providers}

    def _read(self, step: list[int] | None = None) -> int | None:
        """The circuits and quotas afresh, into `_seen` and `_quotas`; with `step`, the rotation stepped over
        those candidates in the same round trip (where it landed)."""
        names = list(dict.fromkeys(name for p in self.providers for name in (p.id, *slots(p))))
        fields, stepped = self.store.read_stepping([f"circuit:{name}" for name in names] +
                                                   [f"quota:{name}" for name in names], ROTATION, step or [],
                                                   len(self.configured))
        self._seen = {name: Circuit.from_fields(f) for name, f in zip(names, fields[:len(names)])}
        self._quotas = {name: QuotaState.from_fields(f) for name, f in zip(names, fields[len(names):])}
        return stepped

    def _write(self, slot: str, circuit: Circuit) -> None:
        self._seen[slot] = circuit
        self.store.put(f"circuit:{slot}", {k: str(v) for k, v in asdict(circuit).items()})
        self.events.circuit(slot, circuit)
