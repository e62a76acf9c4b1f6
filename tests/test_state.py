"""The two state stores keep one contract: what the router and metrics write to the per-process LocalStore
reads back the same from RedisStore, so one worker and many behave alike. The Redis case runs against
the Redis on this machine and is skipped with a reason when it does not answer."""
from __future__ import annotations

import socket
import uuid

import pytest
import redis

from tests.databases import REDIS_URL, redis_answers
from utils import state
from utils.errors import StateUnavailable
from utils.state import LocalStore, RedisStore


@pytest.fixture(params=["LocalStore", "RedisStore"])
def store(request):
    if request.param == "LocalStore":
        yield LocalStore()
        return
    if not redis_answers():
        pytest.skip("Redis is not answering on 127.0.0.1:6379")
    prefix = f"test-state:{uuid.uuid4().hex}:"
    yield RedisStore(REDIS_URL, fail_open=False, prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def test_add_sums_whole_numbers(store):
    store.add("h", {"requests": 1})
    store.add("h", {"requests": 2})
    assert store.read(["h"]) == [{"requests": "3"}]


def test_add_sums_fractions(store):
    # Fractions exact in binary: Redis adds in long double and prints 17 digits, so 0.1 + 0.2 would read
    # back as "0.3" there and "0.30000000000000004" here; readers parse the number either way.
    store.add("h", {"durationMs": 1.5})
    store.add("h", {"durationMs": 2.25})
    assert store.read(["h"]) == [{"durationMs": "3.75"}]


def test_add_sets_values_in_the_same_step_and_keeps_the_sums(store):
    store.add("h", {"requests": 1}, {"lastUsed": 12.5, "who": "a"})
    store.add("h", {"requests": 1}, {"who": "b"})
    assert store.read(["h"]) == [{"requests": "2", "lastUsed": "12.5", "who": "b"}]


def test_put_replaces_the_whole_hash(store):
    store.put("h", {"failures": "2", "reason": "broken"})
    store.put("h", {"failures": "0"})
    assert store.read(["h"]) == [{"failures": "0"}]


def test_reading_keys_never_written_gives_empty_hashes_in_their_places(store):
    store.put("b", {"x": "1"})
    assert store.read(["a", "b", "c"]) == [{}, {"x": "1"}, {}]


def test_advance_moves_the_ring_cursor_to_the_next_index_and_wraps(store):
    assert [store.advance("ring", [0, 1, 2], 3) for _ in range(4)] == [0, 1, 2, 0]


def test_advance_goes_to_the_next_candidate_passing_over_the_others(store):
    assert store.advance("ring", [0, 1, 2], 3) == 0
    assert store.advance("ring", [0, 2], 3) == 2
    assert store.advance("ring", [0, 1], 3) == 0  # wrapped past the end of the ring
    assert store.advance("ring", [1, 2], 3) == 1


def test_each_ring_has_a_cursor_of_its_own(store):
    store.advance("one", [0, 1], 2)
    assert store.advance("two", [0, 1], 2) == 0


def test_set_cursor_decides_where_the_next_advance_starts(store):
    store.advance("ring", [0, 1, 2], 3)
    store.set_cursor("ring", 1)
    assert store.advance("ring", [0, 1, 2], 3) == 2


def test_add_many_adds_to_several_hashes_in_one_step(store):
    store.add_many([("a", {"requests": 1}, None, None), ("b", {"requests": 2}, {"who": "x"}, 60)])
    store.add_many([("a", {"requests": 1}, None, None)])
    assert store.read(["a", "b"]) == [{"requests": "2"}, {"requests": "2", "who": "x"}]


def test_a_pushed_list_keeps_its_newest_items_first_up_to_its_limit(store):
    for item in "abcde":
        store.push("list", item, 3)
    assert store.recent("list") == ["e", "d", "c"]
    assert store.recent("never") == []


def test_clear_removes_a_hash_and_gives_what_it_held(store):
    store.put("circuit:a", {"failures": "2", "reason": "http_500"})
    held = []
    store.clear("circuit:a", held.append)
    store.clear("circuit:a", held.append)
    assert held == [{"failures": "2", "reason": "http_500"}, {}]
    assert store.read(["circuit:a"]) == [{}]


def test_a_requests_deferred_writes_land_together_when_it_ends_and_the_others_at_once(store):
    state.defer_writes(store)
    held = []
    store.add("metrics", {"requests": 1}, defer=True)
    store.push("recent", "one", 5, defer=True)
    store.clear("circuit:a", held.append, defer=True)
    store.put("circuit:b", {"failures": "1"})  # a failure: other requests must see it now
    assert store.read(["circuit:b"]) == [{"failures": "1"}]
    if isinstance(store, RedisStore):  # in process nothing waits: there is no round trip to save
        assert (store.read(["metrics"]), store.recent("recent"), held) == ([{}], [], [])
    state.write_deferred()
    assert (store.read(["metrics"]), store.recent("recent"), held) == ([{"requests": "1"}], ["one"], [{}])
    state.write_deferred()  # nothing is written twice
    assert store.read(["metrics"]) == [{"requests": "1"}]


def test_a_local_hash_written_with_a_ttl_is_gone_once_it_expires(monkeypatch):
    store, now = LocalStore(), [1000.0]
    monkeypatch.setattr("utils.state.time.monotonic", lambda: now[0])
    store.add_many([("minute:1", {"requests": 1}, None, 60), ("kept", {"requests": 1}, None, None)])
    now[0] += 61
    store.add_many([("minute:2", {"requests": 1}, None, 60)])
    assert store.read(["minute:1", "minute:2", "kept"]) == [{}, {"requests": "1"}, {"requests": "1"}]


def test_a_redis_hash_written_with_a_ttl_expires_there():
    if not redis_answers():
        pytest.skip("Redis is not answering on 127.0.0.1:6379")
    prefix = f"test-state:{uuid.uuid4().hex}:"
    RedisStore(REDIS_URL, fail_open=False, prefix=prefix).add_many([("minute", {"requests": 1}, None, 60)])
    client = redis.Redis.from_url(REDIS_URL)
    assert 0 < client.ttl(f"{prefix}minute") <= 60
    client.delete(f"{prefix}minute")


def test_a_store_that_answers_says_so(store):
    assert store.ping() is True


@pytest.fixture
def unreachable_redis():
    """The URL of a port where nothing listens: bound but not listening, so connecting is refused at once,
    and nobody else can take the port while the test runs."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"redis://127.0.0.1:{bound.getsockname()[1]}/0"


def test_with_fail_open_an_unreachable_redis_gives_way_to_per_process_state(unreachable_redis):
    store = RedisStore(unreachable_redis, fail_open=True)
    store.add("h", {"requests": 1})
    store.add("h", {"requests": 1}, {"who": "a"})
    store.put("p", {"failures": "1"})
    assert store.read(["h", "p"]) == [{"requests": "2", "who": "a"}, {"failures": "1"}]
    store.set_cursor("ring", 0)
    assert store.advance("ring", [0, 1], 2) == 1
    assert store.ping() is False


@pytest.mark.parametrize("operation", [
    lambda store: store.add("h", {"requests": 1}),
    lambda store: store.put("h", {"failures": "1"}),
    lambda store: store.read(["h"]),
    lambda store: store.advance("ring", [0, 1], 2),
    lambda store: store.set_cursor("ring", 0),
    lambda store: store.add_many([("h", {"requests": 1}, None, 60)]),
    lambda store: store.push("list", "item", 10),
    lambda store: store.recent("list"),
], ids=["add", "put", "read", "advance", "set_cursor", "add_many", "push", "recent"])
def test_without_fail_open_an_unreachable_redis_is_a_503(unreachable_redis, operation):
    with pytest.raises(StateUnavailable):
        operation(RedisStore(unreachable_redis, fail_open=False))
