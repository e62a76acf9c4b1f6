"""Which provider answers: round-robin over the configured providers, skipping any that is cooling down,
and each provider's circuit. Cursor and circuits live in the state store, so with Redis every worker and
machine shares one rotation and one view of provider health.

Cool-downs: a 429 rests the provider until the time it named (Retry-After, RetryInfo), else for
`failure_cooldown`; `failure_threshold` failures in a row open the circuit for a back-off that doubles
on each opening, after which one probe request is let through (others skip the provider meanwhile); a
model the provider says does not exist takes it out until restart, since no retry can fix the
configuration (or until an operator's `reset`, which also lifts any other rest).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict

from providers.base import Provider
from utils.circuits import Circuit, QuotaState
from utils.clock import iso
from utils.errors import NoProviders, ProviderError, ValidationError
from utils.quota import Quota
from utils.state import LocalStore, RedisStore

log = logging.getLogger("gateway")

MAX_BACKOFF = 600.0
ROTATION = "rotation"


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
            return [provider]
        return self._after(self.configured.index(provider) - 1, self._available(tokens, among), max_attempts)

    def _available(self, tokens: int, among: list[Provider] | None = None) -> list[Provider]:
        """Configured providers (of `among`) neither cooling down nor out of quota for this request."""
        if not self.configured:
            raise NoProviders()
        now, circuits = self.clock(), self._read()
        available = [p for p in (self.configured if among is None else among)
                     if circuits[p.id].until <= now and self._quotas[p.id].exhausted_until(now, tokens) <= now]
        if not available:
            raise NoProviders("All providers are cooling down; try again later",
                              retry_after=self._back_in(now, tokens, among))
        return available

    def _back_in(self, now: float, tokens: int, among: list[Provider] | None) -> float | None:
        """Seconds until the first of the providers asked for can take this request again (the client's
        Retry-After); None when every one is out until an operator acts, since no wait would help."""
        soonest = min((max(self._seen[p.id].until, self._quotas[p.id].exhausted_until(now, tokens))
                       for p in (self.configured if among is None else among)), default=math.inf)
        return None if soonest == math.inf else soonest - now

    def _after(self, index: int, available: list[Provider], max_attempts: int) -> list[Provider]:
        count = len(self.configured)
        ring = [self.configured[(index + step) % count] for step in range(1, count + 1)]
        return [p for p in ring if p in available][:max_attempts or count]

    def attempting(self, provider: Provider) -> None:
        circuit, now = self._seen.get(provider.id), self.clock()
        # After a back-off has run out this request is the probe, and others wait for it. A provider
        # still resting (asked for by name) keeps its rest: naming it must not cut the back-off short.
        if circuit and circuit.openings and circuit.until <= now:
            circuit.until = now + self.probe_seconds
            self._probing.add(provider.id)
            self._write(provider, circuit)

    def succeeded(self, provider: Provider) -> None:
        self._probing.discard(provider.id)
        # Read afresh: another worker may have opened the circuit while this answer streamed.
        seen = self._read()[provider.id]
        if seen != Circuit():
            if seen.openings or seen.until:
                log.info("provider is back", extra={"service": provider.name})
            self._write(provider, Circuit())

    def failed(self, provider: Provider, error: ProviderError) -> None:
        quota = error.quota
        self.observe(provider, quota)
        # The request was at fault, or asked for what this provider's model lacks: its health is unchanged.
        if not error.retryable or error.kind == "unsupported":
            return self.released(provider)
        self._probing.discard(provider.id)
        circuit = self._read()[provider.id]
        now = self.clock()
        circuit.reason, circuit.detail = error.kind, ""
        if error.model_gone:
            return self._model_gone(provider, circuit)
        if quota and quota.out_until_restart:  # e.g. credits gone, or the tier has no such model
            circuit.until, circuit.reason = math.inf, quota.reason
            circuit.detail = (f"{provider.name} cannot serve until an operator acts ({quota.reason}); "
                              "reset or restart to retry")
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
        self._write(provider, circuit)
        if circuit.until > now:
            log.warning("provider is cooling down", extra={
                "service": provider.name, "reason": circuit.reason,
                "until": None if circuit.until == math.inf else iso(circuit.until)})

    def observe(self, provider: Provider, quota: Quota | None) -> None:
        """Keep what an answer said about the provider's quota, so the next requests can steer around
        an exhausted budget before wasting a request on it."""
        if quota is None:
            return
        state = QuotaState.from_quota(quota)
        if state.remaining_requests is None and state.remaining_tokens is None:
            return
        now = self.clock()
        was = self._quotas.get(provider.id, QuotaState()).exhausted_until(now, 0)
        self._quotas[provider.id] = state
        self.store.put(f"quota:{provider.id}", state.fields())
        until = state.exhausted_until(now, 0)
        if until > now >= was:
            log.warning("provider quota exhausted", extra={"service": provider.name, "until": iso(until)})

    def model_missing(self, provider: Provider, offered_like: list[str]) -> None:
        circuit = self._read()[provider.id]
        if circuit.reason == "model_not_found" and circuit.until == math.inf:
            return  # already out and said so
        self._model_gone(provider, circuit, offered_like)

    def model_offered(self, provider: Provider) -> None:
        circuit = self._read()[provider.id]
        if circuit.reason == "model_not_found":
            log.info("provider offers its model again", extra={"service": provider.name})
            self._write(provider, Circuit())

    def _model_gone(self, provider: Provider, circuit: Circuit, offered_like: list[str] | None = None) -> None:
        setting = f"{provider.env_prefix}_MODEL"
        hint = f"; closest offered: {', '.join(offered_like)}" if offered_like else ""
        circuit.until, circuit.reason = math.inf, "model_not_found"
        circuit.detail = f"{provider.name} does not offer model '{provider.model}': set {setting}{hint}"
        self._write(provider, circuit)
        log.error("configured model is not offered; provider taken out of the rotation",
                  extra={"service": provider.name, "setting": setting, "model": provider.model,
                         "closest": offered_like or []})

    def answered_instead(self, provider: Provider) -> None:
        """A failover answered: the rotation goes on after it, so the order over healthy providers stays
        exact while one of them is failing."""
        self.store.set_cursor(ROTATION, self.configured.index(provider))

    def released(self, provider: Provider) -> None:
        """A request ended without a verdict on the provider (the client left): lift the hold of a probe
        this process started, and nothing else."""
        circuit = self._seen.get(provider.id)
        if provider.id in self._probing and circuit:
            self._probing.discard(provider.id)
            circuit.until = 0.0
            self._write(provider, circuit)

    def reset(self, provider: Provider) -> None:
        """An operator's word that the provider is fine again (a key topped up, a model setting fixed at
        the provider's end): forget its failures, back-off, "model missing" and last quota, in the state
        store, so every worker and machine sharing it takes the provider back at once. Something still
        wrong is found again by the next request or model check."""
        was = self.status()[provider.id]
        self._probing.discard(provider.id)
        self._quotas[provider.id] = QuotaState()
        # The empty quota's fields (resets at 0), not an absent hash: a store can replace a hash but not delete it.
        self.store.put(f"quota:{provider.id}", QuotaState().fields())
        self._write(provider, Circuit())
        log.info("provider reset by an operator", extra={
            "service": provider.name, "was": was["state"], "reason": was.get("reason", "")})

    def status(self) -> dict[str, dict]:
        """Per provider id: its state for /health, with what its quota said last."""
        now, circuits = self.clock(), self._read()
        states = {}
        for pid, circuit in circuits.items():
            state = circuit.state(now)
            quota_until = self._quotas[pid].exhausted_until(now, 0)
            if state["state"] != "cooling_down" and quota_until > now:
                state = {"state": "cooling_down", "until": iso(quota_until), "reason": "quota_exhausted"}
            states[pid] = {**state, "quota": self._quotas[pid].describe()}
        return states

    def _read(self) -> dict[str, Circuit]:
        count = len(self.providers)
        fields = self.store.read([f"circuit:{p.id}" for p in self.providers] + [f"quota:{p.id}" for p in self.providers])
        self._seen = {p.id: Circuit.from_fields(f) for p, f in zip(self.providers, fields[:count])}
        self._quotas = {p.id: QuotaState.from_fields(f) for p, f in zip(self.providers, fields[count:])}
        return dict(self._seen)

    def _write(self, provider: Provider, circuit: Circuit) -> None:
        self._seen[provider.id] = circuit
        self.store.put(f"circuit:{provider.id}", {k: str(v) for k, v in asdict(circuit).items()})
