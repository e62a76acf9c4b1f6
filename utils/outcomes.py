"""What an answer did to a provider's health: the half of `Router` (utils/router.py) that records outcomes. A
success closes the circuit; failures count towards opening it (for a back-off that doubles up to MAX_BACKOFF),
a 429 rests the provider until the time it named, a refused key or spent credits take a key out until an
operator's reset; what an answer says of its quota is kept, so the next requests can steer around it.

A mixin, not a class of its own: the outcomes and the planning share one view of the circuits (`_seen`,
`_quotas`, read and written through the router's `_read` and `_write`).
"""
from __future__ import annotations

import logging
import math
from functools import partial

from providers.base import Provider
from utils.circuits import Circuit, QuotaState, key_label, slots
from utils.clock import iso
from utils.errors import ProviderError
from utils.quota import Quota

log = logging.getLogger("gateway")

MAX_BACKOFF = 600.0


class Outcomes:
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
        self._read()
        circuit, now = self._seen[slot], self.clock()
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
        self._read()
        circuit = self._seen[provider.id]
        if circuit.reason == "model_not_found" and circuit.until == math.inf:
            return  # already out and said so
        self._model_gone(provider, circuit, offered_like)

    def model_offered(self, provider: Provider) -> None:
        self._read()
        circuit = self._seen[provider.id]
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

