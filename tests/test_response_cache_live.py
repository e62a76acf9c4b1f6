"""The response cache in the gateway as users run it (gunicorn + gevent, the fake providers, real clients): a hit
across two instances sharing Redis, in every format; and a stream its client walks away from, which is never
stored."""
import openai
import requests

from tests.databases import needs_redis
from tests.fakeprovider import Reply
from tests.gateway import MASTER_KEY

HI = [{"role": "user", "content": "hi"}]
HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}


def api(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


@needs_redis
def test_an_answer_stored_by_one_instance_is_a_hit_on_another(start_gateway, fake, redis_db):
    settings = {"REDIS_URL": redis_db, "CACHE_TTL": 300, "RATE_LIMIT_MAX": 100}
    one = start_gateway(providers=["groq"], name="one", **settings)
    other = start_gateway(providers=["groq"], name="other", workers=2, **settings)
    fake.enqueue("groq", Reply(chunks=["Shared", " answer"]))

    first = api(one).chat.completions.with_raw_response.create(model="auto", messages=HI, temperature=0)
    assert first.headers["X-Cache"] == "MISS" and first.parse().choices[0].message.content == "Shared answer"
    streamed = api(other).chat.completions.with_raw_response.create(model="auto", messages=HI, temperature=0,
                                                                    stream=True)
    assert (streamed.headers["X-Cache"], streamed.headers["X-Attempts"]) == ("HIT", "0")
    assert "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices) == "Shared answer"
    plain = requests.post(f"{other.url}/chat", json={"messages": HI, "temperature": 0}, headers=HEADERS, timeout=10)
    assert (plain.headers["X-Cache"], plain.text) == ("HIT", "Shared answer")
    assert len(fake.chat_requests()) == 1

    figures = requests.get(f"{one.url}/metrics", timeout=5).json()["cache"]
    assert {k: figures[k] for k in ("hits", "misses", "entries")} == {"hits": 2, "misses": 1, "entries": 1}
    emptied = requests.delete(f"{other.url}/admin/cache", headers=HEADERS, timeout=5)
    assert emptied.json() == {"success": True, "removed": 1}
    again = requests.post(f"{one.url}/chat", json={"messages": HI, "temperature": 0}, headers=HEADERS, timeout=10)
    assert again.headers["X-Cache"] == "MISS" and len(fake.chat_requests()) == 2


def test_a_stream_whose_client_leaves_midway_is_not_stored(start_gateway, fake):
    gateway = start_gateway(providers=["groq"], CACHE_TTL=300, RATE_LIMIT_MAX=100)
    fake.enqueue("groq", Reply(chunks=["one", "two", "three", "four"], interval=0.3))
    body = {"messages": HI, "temperature": 0}
    with requests.post(f"{gateway.url}/chat", json=body, headers=HEADERS, stream=True, timeout=10) as left:
        assert left.headers["X-Cache"] == "MISS"
        next(left.iter_content(chunk_size=None))
    assert fake.wait_disconnect("groq")  # the gateway let go of the provider: the answer ended unfinished
    fresh = requests.post(f"{gateway.url}/chat", json=body, headers=HEADERS, timeout=10)
    assert (fresh.headers["X-Cache"], fresh.text) == ("MISS", "Hello from groq")
    hit = requests.post(f"{gateway.url}/chat", json=body, headers=HEADERS, timeout=10)
    assert (hit.headers["X-Cache"], hit.text) == ("HIT", "Hello from groq")
    assert len(fake.chat_requests()) == 2
