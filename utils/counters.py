"""Atomic counters with an expiry in the shared state store (utils/state.py): what per-key budgets and the
concurrency cap count with. On Redis every worker and machine shares them (HINCRBY + EXPIRE in one
transaction); on the per-process store they are this process's. Redis unreachable follows the store's
own rule (503, or per-process counting with REDIS_FAIL_OPEN)."""
from __future__ import annotations

import threading

from utils.state import LocalStore, RedisStore

PREFIX = "keyuse:"
_local_lock = threading.Lock()


def incr(store: LocalStore | RedisStore, key: str, amounts: dict[str, int], ttl: int) -> dict[str, int]:
    """Add `amounts` to the fields of hash `key` (kept `ttl` seconds from now); the fields' new values."""
    names = list(amounts)
    if isinstance(store, RedisStore):
        def run():
            pipe = store._redis.pipeline(transaction=True)
            for name in names:
                pipe.hincrby(store._prefix + PREFIX + key, name, amounts[name])
            pipe.expire(store._prefix + PREFIX + key, ttl)
            return dict(zip(names, pipe.execute()[:len(names)]))
        return store._call(run, lambda: _local_incr(store._fallback, key, amounts))
    return _local_incr(store, key, amounts)


# Claim a slot atomically: drop slots older than ARGV[2] (their worker died), then add ARGV[1] (stamped
# ARGV[3]) if fewer than ARGV[4] remain. KEYS[1] the hash of running slots.
_CLAIM = """
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if tonumber(fields[i + 1]) < tonumber(ARGV[2]) then redis.call('HDEL', KEYS[1], fields[i]) end
end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def claim(store: LocalStore | RedisStore, key: str, slot: str, now: float, hold: float, limit: int) -> bool:
    """Take one of `limit` slots of `key` for `slot`; False when all are taken. A slot not released within
    `hold` seconds (its worker was killed mid-answer) no longer counts, so a crash cannot leak it."""
    if isinstance(store, RedisStore):
        full = store._prefix + PREFIX + key
        run = lambda: bool(store._redis.eval(_CLAIM, 1, full, slot, now - hold, now, limit, int(hold) + 60))  # noqa: E731
        return store._call(run, lambda: _local_claim(store._fallback, key, slot, now, hold, limit))
    return _local_claim(store, key, slot, now, hold, limit)


def release(store: LocalStore | RedisStore, key: str, slot: str) -> None:
    if isinstance(store, RedisStore):
        full = store._prefix + PREFIX + key
        return store._call(lambda: store._redis.hdel(full, slot), lambda: _local_release(store._fallback, key, slot))
    _local_release(store, key, slot)


def _local_claim(store: LocalStore, key: str, slot: str, now: float, hold: float, limit: int) -> bool:
    with _local_lock:
        running = {name: float(started) for name, started in store.read([PREFIX + key])[0].items()
                   if float(started) >= now - hold}
        if len(running) >= limit:
            return False
        store.put(PREFIX + key, {**running, slot: now})
        return True


def _local_release(store: LocalStore, key: str, slot: str) -> None:
    with _local_lock:
        running = store.read([PREFIX + key])[0]
        running.pop(slot, None)
        store.put(PREFIX + key, running)


def seed(store: LocalStore | RedisStore, key: str, amounts: dict[str, int], ttl: int) -> None:
    """Add `amounts` once: only the first caller for `key` does (the others find it seeded)."""
    if isinstance(store, RedisStore):
        def run():
            full = store._prefix + PREFIX + key
            if store._redis.hsetnx(full, "seeded", 1):
                pipe = store._redis.pipeline(transaction=True)
                for name, amount in amounts.items():
                    pipe.hincrby(full, name, amount)
                pipe.expire(full, ttl)
                pipe.execute()
        return store._call(run, lambda: _local_seed(store._fallback, key, amounts))
    _local_seed(store, key, amounts)


def seeded(store: LocalStore | RedisStore, key: str) -> bool:
    return "seeded" in read(store, key)


def read(store: LocalStore | RedisStore, key: str) -> dict[str, int]:
    return {name: int(float(value)) for name, value in store.read([PREFIX + key])[0].items()}


def _local_incr(store: LocalStore, key: str, amounts: dict[str, int]) -> dict[str, int]:
    with _local_lock:
        store.add(PREFIX + key, amounts)
        fields = store.read([PREFIX + key])[0]
    return {name: int(float(fields[name])) for name in amounts}


def _local_seed(store: LocalStore, key: str, amounts: dict[str, int]) -> None:
    with _local_lock:
        if "seeded" not in store.read([PREFIX + key])[0]:
            store.add(PREFIX + key, amounts, {"seeded": 1})
