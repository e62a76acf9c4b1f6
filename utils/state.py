"""Where the gateway's shared figures live (the round-robin cursor, provider circuits, metrics, the admin
panel's recent requests): two stores with the same few primitives over named hashes and bounded lists.
- `LocalStore`, per process (the embedded default: one worker, exact);
- `RedisStore`, shared by every worker and machine (REDIS_URL). Redis unreachable: `StateUnavailable` (a 503),
  or with `fail_open` a per-process `LocalStore` until it answers again (redis-py reconnects by itself); the
  log says so once each way.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from contextlib import suppress
from contextvars import ContextVar

from utils.errors import StateUnavailable

log = logging.getLogger("gateway")

# A request's writes that can wait for its end (`defer=True`: its metrics, its quota readings, the circuit its
# success clears, its line in the recent list) go to Redis in one pipelined round trip when it ends. Failures
# are written at once: other requests must steer around them now. In process (LocalStore) nothing waits.
_deferred: ContextVar[tuple[RedisStore, list] | None] = ContextVar("deferred_writes", default=None)


def defer_writes(store: LocalStore | RedisStore) -> None:
    """From now until `write_deferred`, this request's deferred writes to `store` wait."""
    write_deferred()  # the last request on this connection ended without its close: its writes, now
    if isinstance(store, RedisStore):
        _deferred.set((store, []))


def write_deferred() -> None:
    """Send what this request deferred, in one round trip (Redis away: the store says so; these are lost)."""
    pending = _deferred.get()
    if pending is not None:
        _deferred.set(None)
        with suppress(StateUnavailable):
            pending[0].apply(pending[1])


class LocalStore:
    def __init__(self):
        self._hashes: dict[str, dict[str, float | str]] = defaultdict(dict)
        self._cursors: dict[str, int] = {}
        self._expires: dict[str, float] = {}
        self._lists: dict[str, deque[str]] = {}

    def add(self, key: str, amounts: dict[str, float], values: dict[str, str | float] | None = None, *,
            defer: bool = False) -> None:
        """Add `amounts` to the hash's fields and set `values`, in one step."""
        fields = self._hashes[key]
        for name, amount in amounts.items():
            fields[name] = fields.get(name, 0) + amount
        fields.update(values or {})

    def add_many(self, entries: list[tuple[str, dict[str, float], dict | None, int | None]], *,
                 defer: bool = False) -> None:
        """Several `add`s (key, amounts, values, ttl) in one step; a hash with a `ttl` (seconds) expires.
        `defer` is for Redis (a request's writes at its end, in one round trip): in process nothing waits."""
        now = time.monotonic()
        for key, amounts, values, ttl in entries:
            self.add(key, amounts, values)
            if ttl:
                self._expires[key] = now + ttl
        for key in [key for key, until in self._expires.items() if until < now]:
            self._hashes.pop(key, None)
            del self._expires[key]

    def put(self, key: str, values: dict[str, str | float], *, defer: bool = False) -> None:
        self._hashes[key] = dict(values)

    def clear(self, key: str, cleared: Callable[[dict[str, str]], None], *, defer: bool = False) -> None:
        """Remove hash `key`; `cleared` gets the fields it had ({} if none)."""
        cleared({k: str(v) for k, v in self._hashes.pop(key, {}).items()})

    def push(self, key: str, item: str, limit: int, *, defer: bool = False) -> None:
        """Put `item` at the head of list `key`, which keeps its newest `limit` items."""
        items = self._lists.get(key)
        if items is None or items.maxlen != limit:
            items = self._lists[key] = deque(items or (), maxlen=limit)
        items.appendleft(item)

    def recent(self, key: str) -> list[str]:
        """The items of list `key`, newest first."""
        return list(self._lists.get(key, ()))

    def read(self, keys: list[str]) -> list[dict[str, str]]:
        return self.read_stepping(keys, "", [], 0)[0]

    def read_stepping(self, keys: list[str], cursor: str, candidates: list[int], count: int
                      ) -> tuple[list[dict[str, str]], int | None]:
        """`read`, and with candidates `advance` the ring `cursor`, in one step (one round trip to Redis)."""
        hashes = [{k: str(v) for k, v in self._hashes.get(key, {}).items()} for key in keys]
        return hashes, self.advance(cursor, candidates, count) if candidates else None

    def advance(self, key: str, candidates: list[int], count: int) -> int:
        """Move the ring cursor `key` to the first of `candidates` (indexes into a ring of `count`) after it,
        atomically, and return it."""
        last = self._cursors.get(key, -1)
        self._cursors[key] = min(candidates, key=lambda index: (index - last - 1) % count)
        return self._cursors[key]

    def set_cursor(self, key: str, index: int) -> None:
        self._cursors[key] = index

    def ping(self) -> bool:
        return True


# Lua run with EVAL, not EVALSHA: redis-py checks a pipeline's scripts with SCRIPT EXISTS, a round trip of its
# own, and these are short. The atomic round-robin step: KEYS[1] the cursor, ARGV[1] the ring size, ARGV[2..]
# the candidates.
_ADVANCE = """
local last, count, best, distance = tonumber(redis.call('GET', KEYS[1]) or '-1'), tonumber(ARGV[1]), nil, nil
for i = 2, #ARGV do
  local d = (tonumber(ARGV[i]) - last - 1) % count
  if distance == nil or d < distance then best, distance = tonumber(ARGV[i]), d end
end
redis.call('SET', KEYS[1], best)
return best
"""
# Remove a hash, returning the fields it had (flat), in one step.
_CLEAR = "local f = redis.call('HGETALL', KEYS[1]) if #f > 0 then redis.call('DEL', KEYS[1]) end return f"


class RedisStore:
    def __init__(self, url: str, *, fail_open: bool, prefix: str = "gateway:"):
        import redis  # only deployments with REDIS_URL need the package loaded

        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        # A bounded pool: thousands of concurrent streams wait briefly for one of a few connections
        # instead of each opening its own (which floods Redis and times out under load).
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=32, timeout=5, socket_timeout=2,
                                                     socket_connect_timeout=2, health_check_interval=30,
                                                     decode_responses=True)
        self._redis = redis.Redis(connection_pool=pool)
        self._prefix = prefix
        self._fail_open = fail_open
        self._fallback = LocalStore()
        self._down = False

    def add(self, key: str, amounts: dict[str, float], values: dict[str, str | float] | None = None, *,
            defer: bool = False) -> None:
        self.add_many([(key, amounts, values, None)], defer=defer)

    def add_many(self, entries: list[tuple[str, dict[str, float], dict | None, int | None]], *,
                 defer: bool = False) -> None:
        self._write(("add", entries), defer)

    def put(self, key: str, values: dict[str, str | float], *, defer: bool = False) -> None:
        self._write(("put", key, values), defer)

    def clear(self, key: str, cleared: Callable[[dict[str, str]], None], *, defer: bool = False) -> None:
        self._write(("clear", key, cleared), defer)

    def push(self, key: str, item: str, limit: int, *, defer: bool = False) -> None:
        self._write(("push", key, item, limit), defer)

    def _write(self, op: tuple, defer: bool) -> None:
        pending = _deferred.get() if defer else None
        if pending is not None and pending[0] is self:
            return pending[1].append(op)
        self.apply([op])

    def apply(self, ops: list[tuple]) -> None:
        """Writes, in one pipelined round trip."""
        def run():
            pipe, cleared = self._redis.pipeline(), []  # MULTI/EXEC: no other client sees half of it
            for op in ops:
                self._queue(pipe, op, cleared)
            results = pipe.execute()
            for index, callback in cleared:
                callback(dict(zip(results[index][::2], results[index][1::2])))

        def fallback():
            for kind, *args in ops:
                getattr(self._fallback, "add_many" if kind == "add" else kind)(*args)
        self._call(run, fallback)

    def _queue(self, pipe, op: tuple, cleared: list) -> None:
        kind, key, *rest = op
        if kind == "add":
            for key, amounts, values, ttl in op[1]:
                for name, amount in amounts.items():  # by type: a float field refuses HINCRBY, even for 2.0
                    (pipe.hincrby if isinstance(amount, int) else pipe.hincrbyfloat)(self._prefix + key, name, amount)
                if values:
                    pipe.hset(self._prefix + key, mapping=values)
                if ttl:
                    pipe.expire(self._prefix + key, ttl)
        elif kind == "put":  # replaced whole: DEL then HSET, in the MULTI/EXEC
            pipe.delete(self._prefix + key)
            pipe.hset(self._prefix + key, mapping=rest[0])
        elif kind == "push":
            pipe.lpush(self._prefix + key, rest[0])
            pipe.ltrim(self._prefix + key, 0, rest[1] - 1)
        else:  # clear
            pipe.eval(_CLEAR, 1, self._prefix + key)
            cleared.append((len(pipe) - 1, rest[0]))

    def recent(self, key: str) -> list[str]:
        return self._call(lambda: self._redis.lrange(self._prefix + key, 0, -1), lambda: self._fallback.recent(key))

    def read(self, keys: list[str]) -> list[dict[str, str]]:
        return self.read_stepping(keys, "", [], 0)[0]

    def read_stepping(self, keys: list[str], cursor: str, candidates: list[int], count: int
                      ) -> tuple[list[dict[str, str]], int | None]:
        def run():
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(self._prefix + key)
            if candidates:
                pipe.eval(_ADVANCE, 1, self._prefix + cursor, count, *candidates)
            results = pipe.execute()
            return results[:len(keys)], int(results[-1]) if candidates else None
        return self._call(run, lambda: self._fallback.read_stepping(keys, cursor, candidates, count))

    def advance(self, key: str, candidates: list[int], count: int) -> int:
        return self.read_stepping([], key, candidates, count)[1]

    def set_cursor(self, key: str, index: int) -> None:
        self._call(lambda: self._redis.set(self._prefix + key, index),
                   lambda: self._fallback.set_cursor(key, index))

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except self._errors:
            return False

    def _call(self, run, fallback):
        try:
            result = run()
        except self._errors:
            if not self._down:
                self._down = True
                log.error("redis is unreachable", extra={"failOpen": self._fail_open})
            if self._fail_open:
                return fallback()
            raise StateUnavailable() from None
        if self._down:
            self._down = False
            log.info("redis is reachable again")
        return result


def build_store(redis_url: str | None, fail_open: bool) -> LocalStore | RedisStore:
    return RedisStore(redis_url, fail_open=fail_open) if redis_url else LocalStore()
