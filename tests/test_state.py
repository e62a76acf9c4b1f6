"""The two state stores keep one contract: what the router and metrics write to the per-process LocalStore
reads back the same from RedisStore, so one worker and many behave alike. The Redis case runs against
the Redis on this machine and is skipped with a reason when it does not answer."""
from __future__ import annotations

import socket
import uuid

import pytest
import redis

from utils.errors import StateUnavailable
from utils.state import LocalStore, RedisStore

# A database no other test uses, and a key prefix per test, so runs side by side cannot meet.
REDIS_URL = "redis://127.0.0.1:6379/13"


def redis_answers() -> bool:
    try:
        return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError:
        return False


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
], ids=["add", "put", "read", "advance", "set_cursor"])
def test_without_fail_open_an_unreachable_redis_is_a_503(unreachable_redis, operation):
    with pytest.raises(StateUnavailable):
        operation(RedisStore(unreachable_redis, fail_open=False))
