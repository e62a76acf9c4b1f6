"""Changes reported by the router and the key checks (utils/events.py), turned into webhook events queued in
the outbox (utils/webhooks.py): each one once per change, not once per request, whichever worker or machine
saw it first.

"Once" is a mark in the shared state store (Redis with REDIS_URL, so every worker and machine agrees) set
if absent by the one that saw the change first: `down:<slot>` while a provider key is down (cleared by the
one that sees it come back, which says provider.up), `quota:<slot>` until the quota's reset, a key's
budget window or expiry. A mark that is already set is remembered in the process, so a key refused on
every request does not ask Redis each time. Without Redis the marks are this process's (one worker), and
a restart forgets them: an expired key's next use after it is reported again.
"""
from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from providers.base import Provider
from utils.clock import iso
from utils.events import Events
from utils.keys import ID_CHARS, KeyStore, hash_key
from utils.state import LocalStore, RedisStore
from utils.webhooks import WebhookStore

if TYPE_CHECKING:
    from utils.circuits import Circuit

log = logging.getLogger("gateway")

PREFIX = "event:"
EXPIRY_MEMORY = 400 * 86400  # an expired key is reported once; the mark outlives any key's usual life
MAX_REMEMBERED = 10_000


def _quietly(report):
    """A report never fails the request that made it: what goes wrong is logged, and that event is lost."""
    @functools.wraps(report)
    def run(self, *args):
        try:
            report(self, *args)
        except Exception:
            log.exception("could not report a change for webhooks", extra={"change": report.__name__})
    return run


class Notifier(Events):
    def __init__(self, providers: tuple[Provider, ...], store: LocalStore | RedisStore, hooks: WebhookStore,
                 queued: Callable[[], None] = lambda: None, clock=time.time):
        self.providers = {p.id: p for p in providers}
        self.store = store
        self.hooks = hooks
        self.queued = queued  # called when deliveries were queued: the deliverer sends them now
        self.clock = clock
        self._lock = threading.Lock()
        self._marks: dict[str, float] = {}  # the marks themselves, without Redis: name -> until
        self._known: dict[str, float] = {}  # marks known to be set, so not asked for again: name -> until

    @_quietly
    def circuit(self, slot: str, circuit: Circuit) -> None:
        provider_id, _, index = slot.partition("#")
        provider = self.providers[provider_id]
        about = {"provider": provider.id, "name": provider.name, **({"key": f"{provider.key_setting} #{index}"}
                                                                     if index else {})}
        if circuit.until == math.inf or circuit.openings:  # taken out, or its circuit opened
            if circuit.reason == "model_not_found" and self._set(f"retired:{slot}"):
                self._emit("provider.model_retired", {**about, "model": provider.model,
                                                      "setting": f"{provider.env_prefix}_MODEL",
                                                      "detail": circuit.detail}, f"retired:{slot}")
            if self._set(f"down:{slot}"):
                until = None if circuit.until in (0, math.inf) else iso(circuit.until)
                self._emit("provider.down", {**about, "reason": circuit.reason, "until": until,
                                             **({"detail": circuit.detail} if circuit.detail else {})}, f"down:{slot}")
        elif not (circuit.failures or circuit.until):  # all clear: a success, a reset, its model back
            self._unset(f"retired:{slot}")
            if self._unset(f"down:{slot}"):
                self._emit("provider.up", about)
        elif circuit.until > self.clock():  # resting on a 429 until the time it named (or the cool-down)
            self.quota_exhausted(slot, circuit.until, circuit.reason)

    @_quietly
    def quota_exhausted(self, slot: str, reset_at: float, reason: str) -> None:
        provider_id, _, index = slot.partition("#")
        provider = self.providers[provider_id]
        if self._once(f"quota:{slot}", reset_at - self.clock()):
            self._emit("provider.quota_exhausted", {
                "provider": provider.id, "name": provider.name,
                **({"key": f"{provider.key_setting} #{index}"} if index else {}),
                "reason": reason or "quota_exhausted", "resetAt": iso(reset_at)}, f"quota:{slot}")

    @_quietly
    def key_created(self, key_hash: str, name: str) -> None:
        self._emit("key.created", {"keyId": key_hash[:ID_CHARS], "keyName": name})

    @_quietly
    def key_revoked(self, key_hash: str, name: str | None) -> None:
        self._emit("key.revoked", {"keyId": key_hash[:ID_CHARS], "keyName": name})

    @_quietly
    def key_expired(self, key_hash: str, expired_at: float) -> None:
        mark = f"expired:{key_hash}:{expired_at!r}"
        if self._once(mark, EXPIRY_MEMORY):
            self._emit("key.expired", {"keyId": key_hash[:ID_CHARS], "keyName": self.hooks.key_name(key_hash),
                                       "expiredAt": iso(expired_at)}, mark)

    @_quietly
    def budget_exhausted(self, key_hash: str, detail: str, reset_at: float) -> None:
        mark = f"budget:{key_hash}:{detail}:{reset_at!r}"  # the window's end names the window
        if self._once(mark, reset_at - self.clock() + 60):
            self._emit("key.budget_exhausted", {"keyId": key_hash[:ID_CHARS], "keyName": self.hooks.key_name(key_hash),
                                                "detail": detail, "resetAt": iso(reset_at)}, mark)

    def revoke_key(self, keys: KeyStore, *, key: str | None = None, key_id: str | None = None) -> bool:
        """KeyStore.revoke_key, then key.revoked with the key's name (read while the key is still there)."""
        key_hash = hash_key(key) if key else keys.find(key_id or "")
        name = self.hooks.key_name(key_hash) if key_hash else None
        if not (key_hash and keys.revoke(key_hash)):
            return False
        self.key_revoked(key_hash, name)
        return True

    def _emit(self, event: str, data: dict, mark: str | None = None) -> None:
        """Queue the event for its subscribers. Not queued (the database away), its mark is lifted so the
        next sight of the change tries again."""
        try:
            queued = self.hooks.enqueue(event, data, self.clock())
        except Exception:
            if mark:
                self._unset(mark)
            raise
        if queued:
            self.queued()

    def _once(self, name: str, ttl: float) -> bool:
        """True for the one caller (in the deployment) that sets the mark first; it lasts `ttl` seconds."""
        now = self.clock()
        if self._known.get(name, 0) > now:
            return False
        first = self._set(name, ttl)
        with self._lock:
            if len(self._known) >= MAX_REMEMBERED:
                self._known = {k: until for k, until in self._known.items() if until > now}
            if len(self._known) < MAX_REMEMBERED:
                self._known[name] = now + ttl
        return first

    def _set(self, name: str, ttl: float | None = None) -> bool:
        def local() -> bool:
            now = self.clock()
            with self._lock:
                if self._marks.get(name, 0) > now:
                    return False
                if len(self._marks) >= MAX_REMEMBERED:
                    self._marks = {k: until for k, until in self._marks.items() if until > now}
                self._marks[name] = now + ttl if ttl else math.inf
                return True
        if isinstance(self.store, RedisStore):
            redis, key = self.store._redis, self.store._prefix + PREFIX + name
            expiry = max(1, math.ceil(ttl)) if ttl else None
            return self.store._call(lambda: bool(redis.set(key, 1, nx=True, ex=expiry)), local)
        return local()

    def _unset(self, name: str) -> bool:
        """Clear the mark: True for the one caller that found it set."""
        self._known.pop(name, None)

        def local() -> bool:
            with self._lock:
                return self._marks.pop(name, 0) > self.clock()
        if isinstance(self.store, RedisStore):
            redis, key = self.store._redis, self.store._prefix + PREFIX + name
            return self.store._call(lambda: redis.delete(key) > 0, local)
        return local()
