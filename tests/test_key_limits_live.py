"""Per-key limits on the gateway under gunicorn + gevent: a daily request budget shared by two instances on
one Redis (and one key database), and the concurrency cap while streams run."""
import threading

from tests.databases import needs_redis
from tests.fakeprovider import Reply
from tests.gateway import MASTER_KEY


def create_key(gateway, **fields):
    response = gateway.admin("POST", json={"name": "limited", **fields})
    assert response.status_code == 200, response.text
    return response.json()["apiKey"]


@needs_redis
def test_a_three_a_day_key_is_refused_the_fourth_time_across_two_instances(start_gateway, redis_db):
    settings = {"REDIS_URL": redis_db, "RATE_LIMIT_MAX": 100}
    a, b = start_gateway(name="a", **settings), start_gateway(name="b", **settings)
    key = create_key(a, limits={"requestsPerDay": 3})
    answers = [gateway.post_chat(key=key) for gateway in (a, b, a)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    refused = b.post_chat(key=key)
    assert refused.status_code == 429
    assert refused.json()["error"] == "Daily request budget exhausted"
    assert "resetAt" in refused.json() and "Retry-After" in refused.headers
    assert a.post_chat(key=key).status_code == 429
    assert a.post_chat(key=MASTER_KEY).status_code == 200  # other callers are not touched


def test_the_third_of_three_streams_is_refused_while_two_run(start_gateway, fake):
    gateway = start_gateway(RATE_LIMIT_MAX=100)
    key = create_key(gateway, limits={"maxConcurrent": 2})
    fake.set_default("groq", Reply(chunks=["a"] * 20, interval=0.1))
    fake.set_default("cerebras", Reply(chunks=["a"] * 20, interval=0.1))
    fake.set_default("openrouter", Reply(chunks=["a"] * 20, interval=0.1))
    fake.set_default("gemini", Reply(chunks=["a"] * 20, interval=0.1))
    fake.set_default("huggingface", Reply(chunks=["a"] * 20, interval=0.1))
    open_streams = [gateway.post_chat(key=key, stream=True) for _ in range(2)]
    assert [r.status_code for r in open_streams] == [200, 200]
    third = gateway.post_chat(key=key)
    assert third.status_code == 429
    assert third.json()["error"] == "Too many concurrent requests for this key"
    done = []
    threads = [threading.Thread(target=lambda r=r: done.append(r.content)) for r in open_streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(done) == 2  # the two ran to their end
    assert gateway.post_chat(key=key).status_code == 200  # their slots were freed


def test_a_client_leaving_mid_stream_frees_its_slot(start_gateway, fake):
    from tests.gateway import wait_until
    gateway = start_gateway(RATE_LIMIT_MAX=100, providers=("groq",))
    key = create_key(gateway, limits={"maxConcurrent": 1})
    fake.set_default("groq", Reply(chunks=["a"] * 100, interval=0.05))
    leaving = gateway.post_chat(key=key, stream=True)
    assert leaving.status_code == 200
    reading = leaving.iter_content(1)  # kept: a dropped iterator would close the response
    next(reading)
    assert gateway.post_chat(key=key).status_code == 429
    leaving.close()  # the client goes away mid-answer
    fake.set_default("groq", Reply())
    assert wait_until(lambda: gateway.post_chat(key=key).status_code == 200, timeout=10)
