"""Several instances with several workers behave as one gateway: Redis for shared state, PostgreSQL for
keys. Run against the servers on this machine; skipped with a reason where they do not answer."""
import signal
import subprocess
import threading

import pytest
import redis
import requests
import sqlalchemy as sa

from tests.databases import POSTGRES, needs_postgres, needs_redis, redis_answers
from tests.gateway import MASTER_KEY, free_port, wait_until
from utils.schema import migrate


@pytest.fixture
def two_instances(start_gateway, redis_db, postgres_url):
    settings = dict(REDIS_URL=redis_db, DATABASE_URL=postgres_url, RATE_LIMIT_MAX=10, workers=2)
    return start_gateway(name="a", **settings), start_gateway(name="b", **settings)


@needs_redis
@needs_postgres
def test_two_instances_of_two_workers_share_one_limit(two_instances):
    a, b = two_instances
    statuses = [(a if i % 2 else b).post_chat().status_code for i in range(30)]
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 20, statuses


@needs_redis
@needs_postgres
def test_round_robin_is_one_global_order_over_both_instances(two_instances):
    a, b = two_instances
    answered = [(a if i % 2 else b).post_chat().headers["X-Provider"] for i in range(10)]
    assert answered == ["Groq", "Cerebras", "OpenRouter (DeepSeek)", "Gemini 3 Flash",
                        "Hugging Face Llama 3.1 8B"] * 2


@needs_redis
@needs_postgres
def test_a_key_created_on_one_instance_works_on_the_other_and_survives_sigkill(two_instances):
    a, b = two_instances
    key = a.admin("POST", json={"name": "shared"}).json()["apiKey"]
    assert b.post_chat(key=key).status_code == 200
    for gateway in (a, b):
        gateway.kill(signal.SIGKILL)
    a.start()
    b.start()
    assert a.post_chat(key=key).status_code == 200
    assert b.post_chat(key=key).status_code == 200


@needs_redis
@needs_postgres
def test_metrics_are_the_same_from_either_instance(two_instances):
    a, b = two_instances
    for i in range(6):
        assert (a if i % 2 else b).post_chat().status_code == 200
    from_a = requests.get(f"{a.url}/metrics", timeout=5).json()
    from_b = requests.get(f"{b.url}/metrics", timeout=5).json()
    assert from_a["totalRequests"] == from_b["totalRequests"] == 6
    assert from_a["services"] == from_b["services"]
    assert sum(s["requests"] for s in from_a["services"].values()) == 6
    text = requests.get(f"{b.url}/metrics/prometheus", timeout=5).text
    assert "gateway_requests_total 6.0" in text
    assert 'gateway_provider_requests_total{model="moonshotai/kimi-k2-instruct-0905",provider="groq"} 2.0' in text


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of our own, so stopping it disturbs nobody else."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(tmp_path)]
    servers = []

    def start():
        servers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        url = f"redis://127.0.0.1:{port}/0"
        assert wait_until(lambda: redis_answers(url))
        return url

    def stop():
        servers[-1].terminate()
        servers[-1].wait(10)

    yield start, stop
    for server in servers:
        server.kill()


@needs_redis
def test_redis_going_away_gives_clear_503s_and_recovery_needs_no_restart(start_gateway, private_redis):
    start, stop = private_redis
    gateway = start_gateway(REDIS_URL=start(), workers=2, RATE_LIMIT_MAX=100)
    assert gateway.post_chat().status_code == 200
    stop()
    down = gateway.post_chat()
    assert down.status_code == 503
    assert down.json() == {"error": "The gateway's shared state (Redis) is unavailable; try again shortly",
                           "status": 503}
    start()
    assert wait_until(lambda: gateway.post_chat().status_code == 200)
    assert "redis is unreachable" in gateway.log()


@needs_redis
def test_redis_fail_open_keeps_serving_on_per_process_state(start_gateway, private_redis):
    start, stop = private_redis
    gateway = start_gateway(REDIS_URL=start(), REDIS_FAIL_OPEN="true", RATE_LIMIT_MAX=100)
    stop()
    assert gateway.post_chat().status_code == 200


@needs_postgres
def test_the_schema_step_runs_twice_and_concurrently(postgres_url):
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    errors = []

    def run():
        try:
            migrate(engine)
        except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    migrate(engine)
    assert errors == []
    engine.dispose()


@needs_postgres
def test_postgres_going_away_gives_a_clear_503(start_gateway, postgres_url):
    gateway = start_gateway(DATABASE_URL=postgres_url)
    key = gateway.admin("POST", json={"name": "k"}).json()["apiKey"]
    admin = sa.create_engine(f"{POSTGRES}/test".replace("postgresql://", "postgresql+psycopg://"),
                          isolation_level="AUTOCOMMIT")
    name = postgres_url.rsplit("/", 1)[1]
    with admin.connect() as db:  # the database vanishes under the running gateway
        db.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        response = gateway.post_chat(key=key)
        assert response.status_code == 503
        assert response.json()["error"] == "The key database is unavailable; try again shortly"
        db.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


@needs_redis
def test_redis_metrics_accept_whole_and_fractional_durations_in_any_order(redis_db):
    from utils.metrics import Metrics
    from utils.state import RedisStore
    metrics = Metrics(["Groq"], RedisStore(redis_db, fail_open=False))
    for duration in (28.0, 12.5, 30.0):
        metrics.record_attempt("Groq", ok=True, duration_ms=duration, ttft_ms=duration)
    assert metrics.snapshot()["services"]["Groq"]["avgDuration"] == round(70.5 / 3, 2)


@needs_redis
@pytest.mark.parametrize("model", ["groq", "auto"])
def test_a_request_makes_two_redis_round_trips(start_gateway, private_redis, model):
    """One to read the providers' state (and with `auto` step the rotation), one pipelined write of everything
    the request recorded, at its end. Counted by the Redis server itself (`total_reads_processed`: a pipeline
    arrives in one read)."""
    start, _ = private_redis
    url = start()
    gateway = start_gateway(providers=["groq", "gemini"], REDIS_URL=url, RATE_LIMIT_ENABLED="false")
    server, polls = redis.Redis.from_url(url), []

    def reads() -> int:  # less this test's own INFO commands, each one read
        polls.append(1)
        return server.info("stats")["total_reads_processed"] - len(polls)

    def ask(stream: bool) -> None:
        body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
        response = requests.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=10,
                                 headers={"Authorization": f"Bearer {MASTER_KEY}"})
        assert response.status_code == 200 and response.content

    for _ in range(2):  # the worker's connections to Redis are open, and it has read the providers' state once
        ask(False)
    assert wait_until(lambda: server.hget("gateway:metrics", "totalRequests") == b"2")
    before = reads()
    for stream in (False, True) * 3:
        ask(stream)
    assert wait_until(lambda: reads() - before >= 12)  # the last write goes once the answer is sent
    assert reads() - before == 12
