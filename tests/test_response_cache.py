"""The response cache through Flask's test client and the fake providers: what is cacheable (CACHE_MODE, X-Cache,
a key's own setting), hits that call no provider on /chat and /v1 (streamed or not), what is never stored (cut,
truncated, abandoned, no-store), scopes, budgets and rate limits, DELETE /admin/cache, metrics, and what Redis
or anyone else left in the cache being read as data."""
import json
from dataclasses import replace

import pytest

from app import create_app
from tests.conftest import MASTER, PUBLIC
from tests.databases import needs_redis
from tests.fakeprovider import Reply
from utils.cache import MemoryCache
from utils.cache_entry import MAX_TOOL_CALLS, request_key
from utils.chat import ChatRequest, Message
from utils.response_cache import EXTENSION
from utils.validation import MAX_DEPTH

HI = [{"role": "user", "content": "hi"}]
MASTER_HEADERS = {"Authorization": f"Bearer {MASTER}"}
PUBLIC_HEADERS = {"Authorization": f"Bearer {PUBLIC}"}
V1 = "/v1/chat/completions"


@pytest.fixture
def app(make_app):
    return make_app(providers=("groq",), cache_ttl=60, rate_limit_enabled=False)


@pytest.fixture
def client(app):
    return app.test_client()


def chat(client, headers=MASTER_HEADERS, **body):
    return client.post("/chat", json={"messages": HI, **body}, headers=headers)


def v1(client, headers=MASTER_HEADERS, **body):
    return client.post(V1, json={"messages": HI, **body}, headers=headers)


def streamed_text(response) -> str:
    events = [line[6:] for line in response.get_data(as_text=True).splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def new_key(client, **fields) -> dict:
    response = client.post("/admin/keys", json={"name": "k", **fields}, headers=MASTER_HEADERS)
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['apiKey']}"}


@pytest.mark.parametrize("send, read", [
    (lambda c: chat(c, temperature=0), lambda r: r.get_data(as_text=True)),
    (lambda c: v1(c, temperature=0), lambda r: r.json["choices"][0]["message"]["content"]),
    (lambda c: v1(c, temperature=0, stream=True), streamed_text),
], ids=["chat", "v1", "v1-stream"])
def test_a_repeated_temperature_zero_request_is_a_hit_that_calls_no_provider(client, fake, send, read):
    first = send(client)
    assert (first.status_code, first.headers["X-Cache"], read(first)) == (200, "MISS", "Hello from groq")
    assert "X-Cache-Age" not in first.headers
    second = send(client)
    assert (second.status_code, second.headers["X-Cache"], read(second)) == (200, "HIT", "Hello from groq")
    assert second.headers["X-Cache-Age"] == "0"
    assert (second.headers["X-Provider"], second.headers["X-Attempts"]) == ("Groq", "0")
    assert len(fake.chat_requests()) == 1


def test_a_hit_is_replayed_in_whichever_format_asks_for_it(client, fake):
    fake.enqueue("groq", Reply(chunks=["Bonjour", " ", "le monde"], usage={"prompt_tokens": 7, "completion_tokens": 3}))
    whole = v1(client, seed=42)
    assert whole.headers["X-Cache"] == "MISS"
    streamed = v1(client, seed=42, stream=True, stream_options={"include_usage": True})
    assert streamed.headers["X-Cache"] == "HIT" and streamed.mimetype == "text/event-stream"
    assert streamed_text(streamed) == "Bonjour le monde"
    events = [json.loads(line[6:]) for line in streamed.get_data(as_text=True).splitlines()
              if line.startswith("data: {")]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]][-1] == "stop"
    assert events[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    again = v1(client, seed=42)
    assert again.json["choices"][0]["message"]["content"] == "Bonjour le monde"
    assert again.json["usage"] == whole.json["usage"] and again.json["model"] == whole.json["model"]
    assert again.json["id"] != whole.json["id"]  # a completion of its own, as OpenAI's clients expect
    plain = chat(client, seed=42)  # /chat's form of the same request
    assert (plain.headers["X-Cache"], plain.get_data(as_text=True)) == ("HIT", "Bonjour le monde")
    assert len(fake.chat_requests()) == 1


@pytest.mark.parametrize("change", [
    {"temperature": 0, "max_tokens": 10}, {"temperature": 0, "top_p": 0.5}, {"temperature": 0, "stop": ["x"]},
    {"seed": 1}, {"temperature": 0, "messages": [{"role": "user", "content": "hello"}]},
    {"temperature": 0, "model": "groq/other-model"}, {"temperature": 0, "response_format": {"type": "json_object"}},
    {"temperature": 0, "tools": [{"type": "function", "function": {"name": "f"}}]},
    {"temperature": 0, "messages": [{"role": "system", "content": "be brief"}, *HI]},
])
def test_a_request_that_differs_in_any_parameter_misses(client, fake, change):
    assert v1(client, temperature=0).headers["X-Cache"] == "MISS"
    other = v1(client, **change)
    assert (other.status_code, other.headers["X-Cache"]) == (200, "MISS")
    assert len(fake.chat_requests()) == 2


def test_zero_and_zero_point_zero_are_one_temperature():
    one = ChatRequest((Message("user", "hi"),), {"temperature": 0})
    assert request_key("", None, False, one) == request_key("", None, False, ChatRequest(one.messages,
                                                                                         {"temperature": 0.0}))
    assert request_key("", None, False, one) != request_key("key:a", None, False, one)
    assert request_key("", None, False, one) != request_key("", "groq", False, one)
    assert request_key("", "groq", False, one) != request_key("", "groq", True, one)


def test_no_cache_skips_the_lookup_but_stores_and_no_store_never_stores(client, fake):
    assert v1(client, temperature=0, headers={**MASTER_HEADERS, "Cache-Control": "no-store"}).headers[
        "X-Cache"] == "MISS"
    assert v1(client, temperature=0).headers["X-Cache"] == "MISS"  # nothing was stored
    fake.enqueue("groq", Reply(chunks=["fresh"]))
    bypass = v1(client, temperature=0, headers={**MASTER_HEADERS, "Cache-Control": "No-Cache"})
    assert (bypass.headers["X-Cache"], bypass.json["choices"][0]["message"]["content"]) == ("MISS", "fresh")
    hit = v1(client, temperature=0)
    assert (hit.headers["X-Cache"], hit.json["choices"][0]["message"]["content"]) == ("HIT", "fresh")
    assert len(fake.chat_requests()) == 3


@pytest.mark.parametrize("reply", [
    Reply(chunks=["a", "b", "c"], drop_after=1),  # the connection drops mid-stream
    Reply(finish_reason="length"),  # truncated at max_tokens
    Reply(finish_reason="content_filter"),
    Reply(chunks=[""], finish_reason="stop"),  # nothing in it
], ids=["cut", "length", "filtered", "empty"])
@pytest.mark.parametrize("stream", [True, False])
def test_an_answer_that_did_not_end_whole_is_not_stored(client, fake, reply, stream):
    fake.enqueue("groq", reply)
    v1(client, temperature=0, stream=stream).get_data()
    again = v1(client, temperature=0, stream=stream)
    assert again.headers["X-Cache"] == "MISS" and again.status_code == 200
    assert len(fake.chat_requests()) == 2


def test_a_stream_the_client_abandons_is_not_stored(app, client, fake):
    fake.enqueue("groq", Reply(chunks=["a", "b", "c", "d"], interval=0.05))
    response = client.post(V1, json={"messages": HI, "temperature": 0, "stream": True}, headers=MASTER_HEADERS,
                           buffered=False)
    body = iter(response.response)
    next(body)
    response.close()  # the client goes away after the first write
    assert app.extensions[EXTENSION].stats() == (0, 0)
    assert v1(client, temperature=0).headers["X-Cache"] == "MISS"


def test_tool_calls_are_replayed_whole_and_streamed(client, fake):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    fake.enqueue("groq", Reply(tool_calls=[("get_weather", {"city": "Paris"})]))
    live = v1(client, temperature=0, tools=tools)
    hit = v1(client, temperature=0, tools=tools)
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.json["choices"][0] == live.json["choices"][0]
    assert hit.json["choices"][0]["finish_reason"] == "tool_calls"
    streamed = v1(client, temperature=0, tools=tools, stream=True).get_data(as_text=True)
    events = [json.loads(line[6:]) for line in streamed.splitlines() if line.startswith("data: {")]
    calls = [c for e in events for c in e["choices"][0]["delta"].get("tool_calls") or []]
    assert events[0]["choices"][0]["delta"]["content"] is None
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"})]
    assert calls[0]["id"] == live.json["choices"][0]["message"]["tool_calls"][0]["id"]
    assert len(fake.chat_requests()) == 1


def test_requests_without_temperature_zero_or_a_seed_are_not_cached_unless_opted_in(client, fake):
    for _ in range(2):
        response = v1(client, temperature=0.7)
        assert response.status_code == 200 and "X-Cache" not in response.headers
    assert v1(client, headers={**MASTER_HEADERS, "X-Cache": "use"}).headers["X-Cache"] == "MISS"
    assert chat(client, headers={**MASTER_HEADERS, "X-Cache": "USE"}).headers["X-Cache"] == "HIT"
    assert len(fake.chat_requests()) == 3


def test_a_wrong_x_cache_value_is_refused_by_name(client):
    response = v1(client, headers={**MASTER_HEADERS, "X-Cache": "yes"})
    assert response.status_code == 400 and response.json["error"]["param"] == "X-Cache"
    assert chat(client, headers={**MASTER_HEADERS, "X-Cache": "please"}).json["error"].startswith("X-Cache must be")


@pytest.mark.parametrize("mode, cached", [("opt-in", [False, True]), ("all", [True, True])])
def test_cache_mode_narrows_or_widens_what_is_cached(make_client, mode, cached):
    client = make_client(providers=("groq",), cache_ttl=60, cache_mode=mode)
    assert ("X-Cache" in v1(client, temperature=0).headers) is cached[0]
    assert ("X-Cache" in v1(client, headers={**MASTER_HEADERS, "X-Cache": "use"}).headers) is cached[1]


def test_a_keys_own_setting_overrides_the_mode_and_the_header(client, fake):
    always = new_key(client, cache=True)
    assert v1(client, headers=always).headers["X-Cache"] == "MISS"
    assert v1(client, headers=always).headers["X-Cache"] == "HIT"
    never = new_key(client, cache=False)
    for _ in range(2):
        assert "X-Cache" not in v1(client, temperature=0, headers={**never, "X-Cache": "use"}).headers
    keys = client.get("/admin/keys", headers=MASTER_HEADERS).json["keys"]
    assert sorted(str(k["cache"]) for k in keys) == ["False", "True"]
    assert client.post("/admin/keys", json={"name": "k", "cache": "yes"}, headers=MASTER_HEADERS).json == {
        "error": "cache must be true, false or null", "status": 400}
    assert len(fake.chat_requests()) == 3


def test_one_keys_answers_never_reach_another_by_default(client, fake):
    assert v1(client, temperature=0).headers["X-Cache"] == "MISS"
    other = v1(client, temperature=0, headers=PUBLIC_HEADERS)
    assert other.headers["X-Cache"] == "MISS"
    assert v1(client, temperature=0, headers=PUBLIC_HEADERS).headers["X-Cache"] == "HIT"
    assert len(fake.chat_requests()) == 2


def test_a_global_cache_is_shared_but_not_past_a_keys_scope(make_client, fake):
    client = make_client(providers=("groq", "gemini"), cache_ttl=60, cache_scope="global", rate_limit_enabled=False)
    assert v1(client, temperature=0).headers["X-Provider"] == "Groq"
    assert v1(client, temperature=0, headers=PUBLIC_HEADERS).headers["X-Cache"] == "HIT"
    gemini_only = new_key(client, allowedProviders=["gemini"])
    scoped = v1(client, temperature=0, headers=gemini_only)
    assert (scoped.headers["X-Cache"], scoped.headers["X-Provider"]) == ("MISS", "Gemini 3 Flash")
    assert len(fake.chat_requests()) == 2


def test_a_hit_spends_no_tokens_of_the_keys_budget(client, fake):
    key = new_key(client, limits={"tokensPerDay": 15})
    assert v1(client, temperature=0, headers=key).headers["X-Cache"] == "MISS"  # 15 tokens: the budget is spent
    hit = v1(client, temperature=0, headers=key)
    assert (hit.status_code, hit.headers["X-Cache"]) == (200, "HIT")
    assert v1(client, temperature=0.5, headers=key).status_code == 429
    assert len(fake.chat_requests()) == 1


def test_a_hit_counts_against_the_rate_limit(make_client, fake):
    client = make_client(providers=("groq",), cache_ttl=60, rate_limit_max=2)
    assert v1(client, temperature=0).headers["X-RateLimit-Remaining"] == "1"
    hit = v1(client, temperature=0)
    assert (hit.headers["X-Cache"], hit.headers["X-RateLimit-Remaining"]) == ("HIT", "0")
    assert v1(client, temperature=0).status_code == 429


def test_hits_can_be_exempted_from_the_rate_limit(make_client, fake):
    client = make_client(providers=("groq",), cache_ttl=60, rate_limit_max=2, cache_hits_rate_limited=False)
    assert v1(client, temperature=0).headers["X-RateLimit-Remaining"] == "1"
    for _ in range(5):
        hit = v1(client, temperature=0)
        assert (hit.status_code, hit.headers["X-Cache"], hit.headers["X-RateLimit-Remaining"]) == (200, "HIT", "1")
    assert v1(client, temperature=1).status_code == 200  # the one request left
    assert v1(client, temperature=1).status_code == 429


def test_the_master_key_empties_the_cache(client, fake):
    v1(client, temperature=0)
    chat(client, temperature=0)
    assert client.delete("/admin/cache", headers=PUBLIC_HEADERS).status_code == 403
    assert client.delete("/admin/cache").status_code == 401
    emptied = client.delete("/admin/cache", headers=MASTER_HEADERS)
    assert (emptied.status_code, emptied.json) == (200, {"success": True, "removed": 1})
    assert v1(client, temperature=0).headers["X-Cache"] == "MISS"


def test_emptying_a_cache_that_is_off_is_harmless(make_client):
    client = make_client()
    assert client.delete("/admin/cache", headers=MASTER_HEADERS).json == {"success": True, "removed": 0}
    assert "X-Cache" not in v1(client, temperature=0).headers
    assert client.get("/metrics").json["cache"] == {"enabled": False, "hits": 0, "misses": 0, "entries": 0,
                                                    "bytes": 0}


def test_metrics_count_hits_misses_entries_and_bytes(app, client, fake):
    for _ in range(3):
        v1(client, temperature=0)
    v1(client, seed=1)
    figures = client.get("/metrics").json["cache"]
    _, size = app.extensions[EXTENSION].stats()
    assert figures == {"enabled": True, "hits": 2, "misses": 2, "entries": 2, "bytes": size} and size > 100
    text = client.get("/metrics/prometheus").get_data(as_text=True)
    assert "gateway_cache_hits_total 2.0" in text and "gateway_cache_misses_total 2.0" in text
    assert "gateway_cache_entries 2.0" in text and f"gateway_cache_bytes {float(size)}" in text


def test_the_memory_bound_holds_across_many_distinct_requests(make_client, fake):
    app_client = make_client(providers=("groq",), cache_ttl=60, rate_limit_enabled=False, cache_max_entries=5)
    for n in range(30):
        assert v1(app_client, seed=n).headers["X-Cache"] == "MISS"
    assert app_client.get("/metrics").json["cache"]["entries"] == 5
    assert v1(app_client, seed=29).headers["X-Cache"] == "HIT"  # the most recent stay
    assert v1(app_client, seed=0).headers["X-Cache"] == "MISS"


@pytest.mark.parametrize("stored", [
    b"not json", b"[1, 2]", b"{}", b"[" * 100_000, json.dumps({"v": 1, "key": "someone else's"}).encode(),
])
def test_anything_but_an_entry_under_a_key_is_a_miss(app, client, fake, stored):
    v1(client, temperature=0)
    cache: MemoryCache = app.extensions[EXTENSION]
    (key,) = list(cache._entries)
    cache.put(key, stored)
    again = v1(client, temperature=0)
    assert (again.status_code, again.headers["X-Cache"]) == (200, "MISS")
    assert v1(client, temperature=0).headers["X-Cache"] == "HIT"  # the answer stored over it


def test_an_unreachable_redis_is_a_miss_not_an_error(make_client, fake):
    client = make_client(providers=("groq",), cache_ttl=60, rate_limit_enabled=False,
                         redis_url="redis://127.0.0.1:1/0", redis_fail_open=True)
    for _ in range(2):
        response = v1(client, temperature=0)
        assert (response.status_code, response.headers["X-Cache"]) == (200, "MISS")
    assert client.delete("/admin/cache", headers=MASTER_HEADERS).json == {"success": True, "removed": 0}
    assert client.get("/metrics").json["cache"]["entries"] == 0


def test_chat_carries_temperature_and_seed_to_the_provider_and_checks_them(client, fake):
    assert chat(client, temperature=0, seed=7).status_code == 200
    assert {k: fake.chat_requests()[0].json[k] for k in ("temperature", "seed")} == {"temperature": 0, "seed": 7}
    assert chat(client, temperature=3).json["error"] == "temperature must be a number between 0 and 2"
    assert chat(client, seed="x").json["error"] == "seed must be an integer"


@pytest.mark.parametrize("stream", [True, False])
def test_an_answer_over_the_entry_bound_is_relayed_but_not_stored(make_client, fake, stream):
    client = make_client(providers=("groq",), cache_ttl=60, cache_max_entry_bytes=1024, rate_limit_enabled=False)
    fake.set_default("groq", Reply(chunks=["x" * 600, "y" * 600]))
    for _ in range(2):
        response = v1(client, temperature=0, stream=stream)
        assert response.headers["X-Cache"] == "MISS" and len(response.get_data()) > 1200
    assert client.get("/metrics").json["cache"]["entries"] == 0


def test_an_answer_chat_stored_without_its_reasoning_is_not_replayed_where_reasoning_shows(client, fake):
    fake.set_default("groq", Reply(reasoning=["thinking"], chunks=["Hi"]))
    assert chat(client, temperature=0).headers["X-Cache"] == "MISS"
    whole = v1(client, temperature=0)  # /v1 shows reasoning: /chat's entry lacks what came before the text
    assert whole.headers["X-Cache"] == "MISS"
    assert whole.json["choices"][0]["message"]["reasoning_content"] == "thinking"
    again = v1(client, temperature=0)
    assert again.headers["X-Cache"] == "HIT" and again.json["choices"][0]["message"]["reasoning_content"] == "thinking"
    assert (chat(client, temperature=0).headers["X-Cache"], len(fake.chat_requests())) == ("HIT", 2)


@needs_redis
def test_a_provider_whose_model_changed_does_not_replay_the_old_models_answers(make_app, make_settings, fake,
                                                                                 redis_db):
    settings = {"providers": ("groq",), "cache_ttl": 60, "redis_url": redis_db, "rate_limit_enabled": False}
    before = make_app(**settings).test_client()
    assert v1(before, temperature=0).headers["X-Cache"] == "MISS"
    assert v1(make_app(**settings).test_client(), temperature=0).headers["X-Cache"] == "HIT"  # another worker
    moved = make_settings(**settings)
    groq = replace(moved.provider("groq"), model="another-model")
    after = create_app(replace(moved, providers=tuple(groq if p.id == "groq" else p for p in moved.providers)))
    try:
        assert v1(after.test_client(), temperature=0).headers["X-Cache"] == "MISS"
    finally:
        after.extensions["keys"].close()


def test_an_answer_with_more_tool_calls_than_an_entry_holds_is_not_stored(client, fake):
    tools = [{"type": "function", "function": {"name": "f"}}]
    fake.set_default("groq", Reply(tool_calls=[("f", {"n": n}) for n in range(MAX_TOOL_CALLS + 1)]))
    for _ in range(2):
        response = v1(client, temperature=0, tools=tools)
        assert response.headers["X-Cache"] == "MISS"
        assert len(response.json["choices"][0]["message"]["tool_calls"]) == MAX_TOOL_CALLS + 1


def nested_tools_body(depth: int) -> str:
    """A /v1 body whose one tool's parameters nest `depth` objects deep (sent as text: the test client's own
    encoder would give up first)."""
    schema = '{"a":' * depth + "{}" + "}" * depth
    return ('{"messages":[{"role":"user","content":"hi"}],"temperature":0,"tools":[{"type":"function","function":'
            '{"name":"f","parameters":{"type":"object","properties":' + schema + "}}}]}")


def test_tools_nested_as_deep_as_a_body_may_are_cached(client, fake):
    headers = {**MASTER_HEADERS, "Content-Type": "application/json"}
    for expected in ("MISS", "HIT"):  # 7 levels around the schema: the body, tools, tool, function, ...
        response = client.post(V1, data=nested_tools_body(MAX_DEPTH - 7), headers=headers)
        assert (response.status_code, response.headers["X-Cache"]) == (200, expected), response.get_data()[:200]
    assert len(fake.chat_requests()) == 1
