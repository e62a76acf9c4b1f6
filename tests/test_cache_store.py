"""The response cache's storage (utils/cache.py) and entries (utils/cache_entry.py): least recently used out first,
by entries and by bytes, under 10,000 distinct requests; expiry; Redis with the same bounds, shared, and read as
untrusted; an entry that reads back only as what was written under its key."""
import json
import uuid

import pytest

from tests.databases import REDIS_URL, needs_redis
from utils.cache import MemoryCache, RedisCache
from utils.cache_entry import MAX_TOOL_CALLS, Entry, Pieces, Source, request_key
from utils.chat import ChatRequest, Chunk, Message, ToolCallDelta, Usage


def memory(clock, **bounds) -> MemoryCache:
    return MemoryCache(**{"ttl": 60, "max_entries": 3, "max_bytes": 1000, "max_entry_bytes": 1000, **bounds},
                       clock=clock)


def test_the_least_recently_used_entry_goes_first_when_entries_run_out(clock):
    cache = memory(clock)
    for key in "abc":
        cache.put(key, key.encode())
    assert cache.get("a") == b"a"  # a is used: b is now the least recent
    cache.put("d", b"d")
    assert [cache.get(key) for key in "abcd"] == [b"a", None, b"c", b"d"]
    assert cache.stats() == (3, 3)


def test_entries_go_least_recent_first_when_bytes_run_out(clock):
    cache = memory(clock, max_entries=100, max_bytes=100)
    for key in "abc":
        cache.put(key, b"x" * 40)
    assert [cache.get(key) is not None for key in "abc"] == [False, True, True]
    assert cache.stats() == (2, 80)
    cache.put("b", b"y" * 10)  # replacing an entry counts its new size only
    assert cache.stats() == (2, 50)


def test_an_entry_over_the_entry_bound_is_not_stored(clock):
    cache = memory(clock, max_entry_bytes=10)
    assert cache.put("a", b"x" * 11) is False and cache.get("a") is None
    assert cache.put("a", b"x" * 10) is True and cache.stats() == (1, 10)
    assert memory(clock, max_bytes=5, max_entry_bytes=10).put("a", b"x" * 6) is False  # nor one over all bytes


def test_an_entry_expires_after_the_ttl(clock):
    cache = memory(clock)
    cache.put("a", b"a")
    clock.advance(59.9)
    assert cache.get("a") == b"a"
    clock.advance(0.1)
    assert cache.get("a") is None and cache.stats() == (0, 0)
    cache.put("b", b"b")
    clock.advance(60)
    assert cache.stats() == (0, 0)  # expired entries do not count


def test_the_memory_bound_holds_under_10000_distinct_requests(clock):
    cache = memory(clock, max_entries=500, max_bytes=64 * 1024, max_entry_bytes=4096)
    source = Source("groq", "Groq", "m")
    for n in range(10_000):
        chat_request = ChatRequest((Message("user", f"question {n}"),), {"temperature": 0})
        key = request_key("key:a", None, False, chat_request)
        entry = Entry.of(key, source, pieces_of([Chunk(text=f"answer {n} " * (n % 50))]), finish_reason="stop",
                         usage=Usage(1, 2), whole_reasoning=True, now=clock())
        cache.put(key, entry.encode())
        entries, size = cache.stats()
        assert entries <= 500 and size <= 64 * 1024
    assert len(cache._entries) == entries and size == sum(len(value) for _, value in cache._entries.values())
    assert Entry.decode(cache.get(key), key).text == "answer 9999 " * 49  # the newest is still there


def test_clear_empties_the_cache_and_says_how_many_there_were(clock):
    cache = memory(clock)
    cache.put("a", b"a")
    cache.put("b", b"b")
    assert cache.clear() == 2 and cache.stats() == (0, 0) and cache.get("a") is None


SOURCE = Source("groq", "Groq", "moonshotai/kimi-k2-instruct-0905")


def an_entry(key="k" * 64) -> Entry:
    chunks = [Chunk(reasoning="think"), Chunk(text="Hel"), Chunk(text="lo"),
              Chunk(tool_calls=(ToolCallDelta(0, "call_1", "f", '{"a"'),)),
              Chunk(tool_calls=(ToolCallDelta(0, None, None, ": 1}"), ToolCallDelta(1, "call_2", "g", "{}"))),
              Chunk(finish_reason="tool_calls", usage=Usage(3, 4))]
    return Entry.of(key, SOURCE, pieces_of(chunks), finish_reason="tool_calls", usage=Usage(3, 4),
                    whole_reasoning=True, now=1_700_000_000.5)


def pieces_of(chunks) -> Pieces:
    pieces = Pieces()
    for chunk in chunks:
        pieces.add(chunk)
    return pieces


def test_an_entry_puts_the_answer_together_and_reads_back_as_written():
    entry = an_entry()
    assert (entry.text, entry.reasoning) == ("Hello", "think")
    assert entry.tool_calls == (("call_1", "f", '{"a": 1}'), ("call_2", "g", "{}"))
    assert Entry.decode(entry.encode(), entry.key) == entry
    assert [c.text for c in entry.chunks()] == ["", "Hello", "", ""]
    assert entry.chunks()[-1] == Chunk(finish_reason="tool_calls", usage=Usage(3, 4))


def test_pieces_count_characters_and_refuse_endless_tool_calls():
    pieces = pieces_of([Chunk(text="ab"), Chunk(reasoning="c", tool_calls=(ToolCallDelta(0, "i", "f", "{}"),))])
    assert pieces.size == 5 and pieces.said_something
    assert not pieces_of([Chunk(reasoning="only thinking")]).said_something
    many = pieces_of([Chunk(tool_calls=(ToolCallDelta(n, f"c{n}", "f", ""),)) for n in range(MAX_TOOL_CALLS + 1)])
    assert many.size == float("inf") and len(many.calls) == MAX_TOOL_CALLS


def test_an_entry_under_another_key_is_not_used():
    assert Entry.decode(an_entry().encode(), "j" * 64) is None


@pytest.mark.parametrize("change", [
    {"v": 2}, {"source": ["groq", "Groq"]}, {"source": ["groq", "Groq", 1]}, {"text": None}, {"text": 5},
    {"reasoning": ["x"]}, {"wholeReasoning": "yes"}, {"toolCalls": {}}, {"toolCalls": [["id", "f"]]},
    {"toolCalls": [["id", "f", 1]]}, {"toolCalls": [[None, None, ""]] * 129}, {"finishReason": 1},
    {"usage": [1]}, {"usage": [-1, 0]}, {"usage": [True, 0]}, {"usage": [10**13, 0]}, {"usage": [1.5, 0]},
    {"storedAt": "now"}, {"storedAt": None},
])
def test_an_entry_that_is_not_exactly_what_was_written_is_none(change):
    entry = an_entry()
    data = {**json.loads(entry.encode()), **change}
    assert Entry.decode(json.dumps(data).encode(), entry.key) is None


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe", b"null", b"[]", b'"text"', b"[" * 50_000 + b"]" * 50_000,
                                 b'{"v": 1}', b"1e999"])
def test_bytes_that_are_no_entry_are_none(raw):
    assert Entry.decode(raw, "k" * 64) is None


@pytest.fixture
def redis_cache(clock):
    """A RedisCache under a prefix of this test's own, removed afterwards."""
    made = []

    def make(**bounds) -> RedisCache:
        made.append(RedisCache(REDIS_URL, **{"ttl": 60, "max_entries": 3, "max_bytes": 1000,
                                              "max_entry_bytes": 1000, **bounds},
                               prefix=f"test-cache-{uuid.uuid4().hex[:8]}:", clock=clock))
        return made[-1]
    yield make
    for cache in made:
        cache.clear()


@needs_redis
def test_redis_keeps_the_same_bounds_oldest_first(redis_cache):
    cache = redis_cache()
    for key in "abcd":
        assert cache.put(key, key.encode() * 10)
    assert [cache.get(key) for key in "abcd"] == [None, b"b" * 10, b"c" * 10, b"d" * 10]
    assert cache.stats() == (3, 30)
    cache.put("c", b"c")  # replaced: its new size counts
    assert cache.stats() == (3, 21)
    bytes_bound = redis_cache(max_entries=100, max_bytes=100)
    for key in "abc":
        bytes_bound.put(key, b"x" * 40)
    assert bytes_bound.stats() == (2, 80) and bytes_bound.get("a") is None


@needs_redis
def test_redis_expires_entries_and_counts_only_live_ones(redis_cache, clock):
    import redis
    cache = redis_cache(ttl=30)
    cache.put("a", b"a")
    client = redis.Redis.from_url(REDIS_URL)
    assert 0 < client.ttl(cache._entry_prefix + "a") <= 30
    clock.advance(30)
    assert cache.stats() == (0, 0)  # Redis drops the entry itself; the index forgets it at its expiry too


@needs_redis
def test_two_redis_caches_on_one_prefix_share_entries(redis_cache, clock):
    one = redis_cache()
    other = RedisCache(REDIS_URL, 60, 3, 1000, 1000, prefix=one._prefix, clock=clock)
    one.put("a", b"answer")
    assert other.get("a") == b"answer" and other.stats() == (1, 6)
    assert other.clear() == 1 and one.get("a") is None


@needs_redis
def test_what_someone_else_left_in_redis_is_a_miss(redis_cache):
    import redis
    cache = redis_cache(max_entry_bytes=100)
    client = redis.Redis.from_url(REDIS_URL)
    client.set(cache._entry_prefix + "big", b"x" * 101)
    client.lpush(cache._entry_prefix + "list", b"x")
    assert cache.get("big") is None and cache.get("list") is None
    assert cache.put("ok", b"x" * 101) is False and cache.get("ok") is None


def test_an_unreachable_redis_is_a_miss_and_a_dropped_write():
    cache = RedisCache("redis://127.0.0.1:1/0", 60, 3, 1000, 1000)
    assert cache.get("a") is None
    assert cache.put("a", b"a") is False
    assert cache.stats() == (0, 0) and cache.clear() == 0
