"""Which provider answers: round-robin over the configured providers, skipping any that is cooling down, and
each provider's circuit. Cursor and circuits live in the state store, so with Redis every worker and machine
shares one rotation and one view of provider health. Changes go to `events` (webhooks).

Cool-downs: a 429 rests the provider until the time it named (Retry-After, RetryInfo), else for
`failure_cooldown`; `failure_threshold` failures in a row open the circuit for a back-off that doubles on each
opening, after which one probe request is let through (others skip the provider meanwhile); a model the
provider says does not exist takes it out until restart, since no retry can fix the configuration (or until
an operator's `reset`, which also lifts any other rest).

Key pools (`GROQ_API_KEY=k1,k2`): each key has its own circuit and quota (`circuit:groq#2`), used in turn; a
key refused (401/403/402) is out alone until reset; the provider rests when all its keys do. Its model gone
stays in `circuit:groq`, which is also the one key's circuit when there is no pool.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from functools import partial

from providers.base import Provider
from utils.circuits import Circuit, QuotaState, key_label, pool_state, slots
from utils.clock import iso
from utils.errors import NoProviders, ProviderError, ValidationError
from utils.events import Events
from utils.quota import Quota
from utils.state import LocalStore, RedisStore

log = logging.getLogger("gateway")

MAX_BACKOFF = 600.0
ROTATION = "rotation"


class Router:
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
        # Circuits as last read by this process: lets a success skip a write when all was well.
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
        available = self._available(tokens, among)
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
        return self._after(self.configured.index(provider) - 1, self._available(tokens, among), max_attempts)

    def _until(self, provider: Provider, now: float, tokens: int) -> float:
        return max(self._seen[provider.id].until, min(self._slot_until(s, now, tokens) for s in slots(provider)))

    def _slot_until(self, slot: str, now: float, tokens: int) -> float:
        return max(self._seen[slot].until, self._quotas[slot].exhausted_until(now, tokens))

    def _available(self, tokens: int, among: list[Provider] | None = None) -> list[Provider]:
        """Configured providers (of `among`) neither cooling down nor out of quota for this request."""
        if not self.configured:
            raise NoProviders()
        now, _ = self.clock(), self._read()
        available = [p for p in (self.configured if among is None else among) if self._until(p, now, tokens) <= now]
        if not available:
            raise NoProviders("All providers are cooling down; try again later",
                              retry_after=self._back_in(now, tokens, among))
        return available

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

    def succeeded(self, provider: Provider, key: int = 1) -> None:
        self._probing.discard(slot := slots(provider)[key - 1])
        # Cleared in the store itself, as another worker may have opened it while this answer streamed.
        self.store.clear(f"circuit:{slot}", partial(self._closed, provider, key, slot), defer=True)

    def _closed(self, provider: Provider, key: int, slot: str, fields: dict[str, str]) -> None:
        was, self._seen[slot] = Circuit.from_fields(fields), Circuit()
        if was.openings or was.until:
            log.info("provider is back", extra={"service": provider.name, **key_label(provider, key)})
        if was != Circuit():
            self.events.circuit(slot, Circuit())

    def failed(self, provider: Provider, error: ProviderError, key: int = 1) -> None:
        self.observe(provider, quota := error.quota, key)
        # The request was at fault, or asked for what this provider's model lacks: its health is unchanged.
        if not error.retryable or error.kind == "unsupported":
            return self.released(provider, key)
        names = slots(provider)
        self._probing.discard(slot := names[key - 1])
        circuit, now = self._read()[slot], self.clock()
        circuit.reason, circuit.detail = error.kind, ""
        if error.model_gone:
            return self._model_gone(provider, self._seen[provider.id])
        out = quota and quota.out_until_restart  # e.g. credits gone, or the tier has no such model
        if out or (len(names) > 1 and error.upstream_status in (401, 402, 403)):  # or a pool's key refused
            circuit.until, circuit.reason = math.inf, quota.reason if out else error.kind
            who = key_label(provider, key).get("key", provider.name)
            circuit.detail = f"{who} cannot serve until an operator acts ({circuit.reason}); reset or restart to retry"
        elif quota and quota.retry_at and quota.retry_at > now:  # the provider said when (a daily reset, say)
            circuit.until, circuit.reason = quota.retry_at, quota.reason or error.kind
        elif error.upstream_status == 429:  # busy, not broken: rest it without counting a failure
            circuit.until = now + (error.retry_after if error.retry_after is not None else self.cooldown)
        else:
            circuit.failures += 1
            if circuit.failures >= self.threshold:
                circuit.openings += 1
                circuit.until = now + min(MAX_BACKOFF, self.cooldown * 2 ** (circuit.openings - 1))
            else:
                circuit.until = 0.0  # a failed probe's hold is lifted
        self._write(slot, circuit)
        if circuit.until > now:
            log.warning("provider is cooling down", extra={
                "service": provider.name, "reason": circuit.reason, **key_label(provider, key),
                "until": None if circuit.until == math.inf else iso(circuit.until)})

    def observe(self, provider: Provider, quota: Quota | None, key: int = 1) -> None:
        """Keep what an answer said about a key's quota, so the next requests can steer around it."""
        state = QuotaState.from_quota(quota) if quota else QuotaState()
        if state.remaining_requests is None and state.remaining_tokens is None:
            return
        now, slot = self.clock(), slots(provider)[key - 1]
        was = self._quotas.get(slot, QuotaState()).exhausted_until(now, 0)
        self._quotas[slot], until = state, state.exhausted_until(now, 0)
        # With the request's other writes at its end, unless spent: other requests must steer around that now.
        self.store.put(f"quota:{slot}", state.fields(), defer=until <= now)
        if until > now >= was:
            self.events.quota_exhausted(slot, until, "")
            log.warning("provider quota exhausted", extra={"service": provider.name, "until": iso(until),
                                                           **key_label(provider, key)})

    def model_missing(self, provider: Provider, offered_like: list[str]) -> None:
        circuit = self._read()[provider.id]
        if circuit.reason == "model_not_found" and circuit.until == math.inf:
            return  # already out and said so
        self._model_gone(provider, circuit, offered_like)

    def model_offered(self, provider: Provider) -> None:
        circuit = self._read()[provider.id]
        if circuit.reason == "model_not_found":
            log.info("provider offers its model again", extra={"service": provider.name})
            self._write(provider.id, Circuit())

    def _model_gone(self, provider: Provider, circuit: Circuit, offered_like: list[str] | None = None) -> None:
        setting = f"{provider.env_prefix}_MODEL"
        hint = f"; closest offered: {', '.join(offered_like)}" if offered_like else ""
        circuit.until, circuit.reason = math.inf, "model_not_found"
        circuit.detail = f"{provider.name} does not offer model '{provider.model}': set {setting}{hint}"
        self._write(provider.id, circuit)
        log.error("configured model is not offered; provider taken out of the rotation", extra={
            "service": provider.name, "setting": setting, "model": provider.model, "closest": offered_like or []})

    def answered_instead(self, provider: Provider) -> None:
        """A failover answered: the rotation goes on after it (an exact order while one is failing)."""
        self.store.set_cursor(ROTATION, self.configured.index(provider))

    def released(self, provider: Provider, key: int = 1) -> None:
        """A request ended without a verdict (the client left): lift a hold of a probe this process started."""
        slot = slots(provider)[key - 1]
        if slot in self._probing and (circuit := self._seen.get(slot)):
            self._probing.discard(slot)
            circuit.until = 0.0
            self._write(slot, circuit)

    def reset(self, provider: Provider) -> None:
        """An operator's word that the provider is fine again: forget its and all its keys' failures, back-off,
        "model missing" and last quota, in the state store, so every worker and machine takes it back at once."""
        was = self.status()[provider.id]
        for slot in dict.fromkeys([provider.id, *slots(provider)]):  # the provider's and every key's
            self._probing.discard(slot)
            self._quotas[slot] = QuotaState()
            self.store.clear(f"quota:{slot}", lambda fields: None)
            self._write(slot, Circuit())
        log.info("provider reset by an operator", extra={
            "service": provider.name, "was": was["state"], "reason": was.get("reason", "")})

    def status(self) -> dict[str, dict]:
        """Per provider id: its state for /health, with what its quota said last."""
        now, _ = self.clock(), self._read()
        return {p.id: pool_state(self._seen[p.id], [(self._seen[s], self._quotas[s]) for s in slots(p)], now)
                for p in self.providers}

    def _read(self) -> dict[str, Circuit]:
        names = list(dict.fromkeys(name for p in self.providers for name in (p.id, *slots(p))))
        fields = self.store.read([f"circuit:{name}" for name in names] + [f"quota:{name}" for name in names])
        self._seen = {name: Circuit.from_fields(f) for name, f in zip(names, fields[:len(names)])}
        self._quotas = {name: QuotaState.from_fields(f) for name, f in zip(names, fields[len(names):])}
        return dict(self._seen)

    def _write(self, slot: str, circuit: Circuit) -> None:
        self._seen[slot] = circuit
        self.store.put(f"circuit:{slot}", {k: str(v) for k, v in asdict(circuit).items()})
        self.events.circuit(slot, circuit)
