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
