"""The response cache's storage: entries (bytes, as utils/cache_entry.py writes them) under request digests,
each kept CACHE_TTL seconds. One interface, two backends:

- `MemoryCache`, per process (the default): least recently used out first, bounded by entries and bytes;
- `RedisCache` (REDIS_URL), shared by every worker and machine: Redis expires each entry, and an index in
  Redis keeps the same bounds (oldest out first) and the count and bytes /metrics show.

An entry over `max_entry_bytes` is not stored. The cache only saves work, so it never fails a request:
Redis unreachable (or holding something unreadable) reads as a miss and a write is dropped, logged once.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger("gateway")


class MemoryCache:
    def __init__(self, ttl: float, max_entries: int, max_bytes: int, max_entry_bytes: int,
                 clock: Callable[[], float] = time.time):
        self.ttl, self.max_entries, self.max_bytes = ttl, max_entries, max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if self.clock() - found[0] >= self.ttl:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: str, value: bytes) -> bool:
        """Store `value` under `key`; False when it is over the entry bound."""
        if len(value) > self.max_entry_bytes:
            return False
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (self.clock(), value)
            self._bytes += len(value)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))
        return True

    def clear(self) -> int:
        """Empty the cache; how many entries it held."""
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            self._bytes = 0
        return count

    def stats(self) -> tuple[int, int]:
        """The entries held and their bytes (expired ones dropped first)."""
        with self._lock:
            cutoff = self.clock() - self.ttl
            for key in [key for key, (stored, _) in self._entries.items() if stored <= cutoff]:
                self._drop(key)
            return len(self._entries), self._bytes

    def _drop(self, key: str) -> None:
        self._bytes -= len(self._entries.pop(key)[1])


# Read an entry, unless it is bigger than any entry stored (something else wrote it): KEYS[1] the entry,
# ARGV[1] the bound. A key that is not a string fails with WRONGTYPE: a miss too.
_GET = """
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return false end
return redis.call('GET', KEYS[1])
"""
# Store an entry (none with an empty ARGV[2]: only prune) and keep the bounds; answers {entries, bytes}.
# KEYS: the index (sorted set: digest -> stored at, ms), the sizes (hash: digest -> bytes), the bytes total.
# ARGV: entry key prefix, digest, value, ttl (s), now (ms), max entries, max bytes.
_PUT = """
local index, sizes, total, prefix = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local ttl, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local function drop(digest)
  local size = tonumber(redis.call('HGET', sizes, digest)) or 0
  redis.call('HDEL', sizes, digest)
  redis.call('ZREM', index, digest)
  redis.call('DEL', prefix .. digest)
  redis.call('DECRBY', total, size)
end
for _, digest in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now - ttl * 1000, 'LIMIT', 0, 1000)) do
  drop(digest)
end
if ARGV[2] ~= '' then
  drop(ARGV[2])
  redis.call('SET', prefix .. ARGV[2], ARGV[3], 'EX', ttl)
  redis.call('ZADD', index, now, ARGV[2])
  redis.call('HSET', sizes, ARGV[2], #ARGV[3])
  redis.call('INCRBY', total, #ARGV[3])
end
while redis.call('ZCARD', index) > tonumber(ARGV[6]) or tonumber(redis.call('GET', total) or '0') > tonumber(ARGV[7]) do
  local oldest = redis.call('ZRANGE', index, 0, 0)[1]
  if not oldest then redis.call('SET', total, 0) break end
  drop(oldest)
end
return {redis.call('ZCARD', index), tonumber(redis.call('GET', total) or '0')}
"""


class RedisCache:
    def __init__(self, url: str, ttl: int, max_entries: int, max_bytes: int, max_entry_bytes: int,
                 prefix: str = "gateway:cache:", clock: Callable[[], float] = time.time):
        import redis  # only deployments with REDIS_URL need the package loaded

        self.ttl, self.max_entries, self.max_bytes = ttl, max_entries, max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self._errors = redis.exceptions.RedisError
        # A pool of its own with short timeouts: a slow Redis costs a request at most a second, then a miss.
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=16, timeout=1, socket_timeout=1,
                                                     socket_connect_timeout=1, health_check_interval=30)
        self._redis = redis.Redis(connection_pool=pool)
        self._get = self._redis.register_script(_GET)
        self._put = self._redis.register_script(_PUT)
        self._prefix, self._entry_prefix = prefix, prefix + "entry:"
        self._index_keys = [prefix + "index", prefix + "sizes", prefix + "bytes"]
        self.clock = clock
        self._down = False

    def get(self, key: str) -> bytes | None:
        return self._call(lambda: self._get(keys=[self._entry_prefix + key], args=[self.max_entry_bytes]), None)

    def put(self, key: str, value: bytes) -> bool:
        if len(value) > self.max_entry_bytes:
            return False
        return self._call(lambda: self._update(key, value), None) is not None

    def clear(self) -> int:
        """Delete every key under the prefix; how many entries there were."""
        def run() -> int:
            entries, batch = 0, []
            for name in self._redis.scan_iter(match=self._prefix + "*", count=500):
                entries += name.startswith(self._entry_prefix.encode())
                batch.append(name)
                if len(batch) == 500:
                    self._redis.unlink(*batch)
                    batch.clear()
            if batch:
                self._redis.unlink(*batch)
            return entries
        return self._call(run, 0)

    def stats(self) -> tuple[int, int]:
        return self._call(lambda: self._update("", b""), (0, 0))

    def _update(self, key: str, value: bytes) -> tuple[int, int]:
        entries, size = self._put(keys=self._index_keys, args=[
            self._entry_prefix, key, value, self.ttl, int(self.clock() * 1000), self.max_entries, self.max_bytes])
        return int(entries), int(size)

    def _call(self, run, fallback):
        try:
            result = run()
        except self._errors as exc:
            if not self._down:
                self._down = True
                log.error("the response cache cannot use redis; serving without it",
                          extra={"reason": type(exc).__name__})
            return fallback
        if self._down:
            self._down = False
            log.info("the response cache reaches redis again")
        return result


def build_cache(redis_url: str | None, ttl: int, max_entries: int, max_bytes: int,
                max_entry_bytes: int) -> MemoryCache | RedisCache:
    if redis_url:
        return RedisCache(redis_url, ttl, max_entries, max_bytes, max_entry_bytes)
    return MemoryCache(ttl, max_entries, max_bytes, max_entry_bytes)
