"""The whole gateway under gunicorn + gevent against the fake provider server, called as a user would."""
import json
import signal
import socket

import pytest
import requests

from providers import PROVIDER_CLASSES
from tests.fakeprovider import Reply
from tests.gateway import MASTER_KEY, PROVIDER_IDS, health_state, wait_until

# The seed contract's service names, in its round-robin order; providers added later follow them.
SEED_NAMES = ["Groq", "Cerebras", "OpenRouter (DeepSeek)", "Gemini 3 Flash", "Hugging Face Llama 3.1 8B"]
NAMES = [cls.name for cls in PROVIDER_CLASSES]


def test_round_robin_follows_the_seed_order_over_ten_requests(start_gateway, fake):
    assert NAMES[:len(SEED_NAMES)] == SEED_NAMES
    gateway = start_gateway(RATE_LIMIT_MAX=100)
    answered = []
    for _ in range(2 * len(NAMES)):
        response = gateway.post_chat()
        assert response.status_code == 200
        answered.append(response.headers["X-Provider"])
    assert answered == NAMES * 2
    assert [r.provider for r in fake.chat_requests()] == PROVIDER_IDS * 2


def test_each_provider_answer_arrives_as_plain_text(start_gateway):
    gateway = start_gateway(RATE_LIMIT_MAX=100)
    for pid in PROVIDER_IDS:
        response = gateway.post_chat()
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert response.text == f"Hello from {pid}"


def test_first_chunk_reaches_the_client_before_the_provider_has_finished(start_gateway, fake):
    gateway = start_gateway(providers=["groq"])
    fake.enqueue("groq", Reply(chunks=["first", " second", " third", " fourth"], interval=0.4))
    with gateway.post_chat(stream=True) as response:
        chunks = response.iter_content(chunk_size=None)
        assert next(chunks) == b"first"
        assert fake.outcomes == []  # the fake is still sending
        assert b"".join(chunks) == b" second third fourth"
    assert fake.wait_for(lambda f: f.outcomes == [("groq", "complete")])


def test_client_disconnect_closes_the_upstream_connection(start_gateway, fake):
    gateway = start_gateway(providers=["groq"])
    fake.enqueue("groq", Reply(chunks=[f"{i} " for i in range(400)], interval=0.05))
    response = gateway.post_chat(stream=True)
    assert next(response.iter_content(chunk_size=None)).startswith(b"0 ")  # later chunks may share its read
    response.close()
    assert fake.wait_disconnect("groq", timeout=5)


def test_key_created_through_admin_survives_sigkill_and_restart(start_gateway):
    gateway = start_gateway(providers=["groq"])
    key = gateway.admin("POST", json={"name": "alice"}).json()["apiKey"]
    assert gateway.post_chat(key=key).status_code == 200
    gateway.kill(signal.SIGKILL)
    gateway.start()
    assert gateway.post_chat(key=key).status_code == 200
    listed = gateway.admin("GET").json()["keys"]
    assert [k["name"] for k in listed] == ["alice"]
    assert key not in str(listed)
    assert gateway.post_chat(key=key + "x").status_code == 403


def test_eleventh_request_in_a_window_gets_the_seed_429(start_gateway):
    gateway = start_gateway(providers=["groq"])
    for remaining in range(9, -1, -1):
        response = gateway.post_chat()
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
    response = gateway.post_chat()
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "Rate limit exceeded" and body["status"] == 429
    assert body["resetAt"].endswith("Z")
    # The rest of the 60-second window that began with the first request (flask-limiter puts its reset up to a
    # second past the window's end).
    assert 50 <= int(response.headers["Retry-After"]) <= 61
    assert response.headers["X-RateLimit-Limit"] == "10"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["X-RateLimit-Reset"] == body["resetAt"]


def test_metrics_count_what_was_sent(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras"])
    fake.enqueue("cerebras", Reply(status=500), Reply(status=400))
    # groq; cerebras 500 then groq (the rotation goes on after groq); cerebras refuses the request itself; groq
    assert [gateway.post_chat().status_code for _ in range(4)] == [200, 200, 400, 200]
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).json()
    assert metrics["totalRequests"] == 4
    assert metrics["services"]["Groq"]["requests"] == 3
    assert metrics["services"]["Groq"]["successRate"] == "100.00%"
    # The 500 is Cerebras' failure; the 400 was the request's fault, a call but not an error.
    assert metrics["services"]["Cerebras"]["requests"] == 2
    assert metrics["services"]["Cerebras"]["errors"] == 1
    assert metrics["services"]["Cerebras"]["successRate"] == "50.00%"


def test_key_usage_counted_in_memory_is_written_on_a_clean_shutdown(start_gateway):
    gateway = start_gateway(providers=["groq"])
    key = gateway.admin("POST", json={"name": "bob"}).json()["apiKey"]
    for _ in range(3):
        assert gateway.post_chat(key=key).status_code == 200
    gateway.stop()  # SIGTERM well within the two-second flush interval
    gateway.start()
    [entry] = gateway.admin("GET").json()["keys"]
    assert entry["requestCount"] == 3
    assert entry["promptTokens"] == 30 and entry["completionTokens"] == 15


def run_gunicorn(tmp_path, **env):
    """Start gunicorn expecting it to refuse: its exit code and output."""
    import os
    import subprocess
    import sys

    from tests.gateway import ROOT, SETTINGS, free_port
    # gunicorn itself reads WEB_CONCURRENCY and cannot take it empty.
    environ = {**os.environ, **{name: "" for name in SETTINGS}, "WEB_CONCURRENCY": "1",
               "DATABASE_URL": f"sqlite:///{tmp_path}/k.db", **env}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app",
                             "--bind", f"127.0.0.1:{free_port()}"], cwd=ROOT, env=environ,
                            capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


def test_a_wrong_setting_stops_start_up_with_one_line_naming_it(tmp_path):
    code, output = run_gunicorn(tmp_path, RATE_LIMIT_MAX="ten", GROQ_API_KEY="gsk-secret")
    assert code == 3  # gunicorn's "worker failed to boot"
    assert "Configuration error: RATE_LIMIT_MAX must be a whole number, got 'ten'" in output.splitlines()
    assert "Traceback" not in output and "gsk-secret" not in output


def test_several_workers_without_redis_are_refused(tmp_path):
    code, output = run_gunicorn(tmp_path, WEB_CONCURRENCY="2")
    assert code == 1
    assert ("Refusing to start 2 workers without REDIS_URL: each worker would keep its own rate limits, rotation "
            "and metrics. Set REDIS_URL or use one worker.") in output.splitlines()


def test_client_leaving_while_the_provider_stalls_closes_the_upstream_at_once(start_gateway, fake):
    gateway = start_gateway(providers=["groq"], IDLE_TIMEOUT=60)
    fake.enqueue("groq", Reply(chunks=["first", " never"], stall_after=1, stall_seconds=30))
    response = gateway.post_chat(stream=True)
    assert next(response.iter_content(chunk_size=None)) == b"first"
    response.close()
    assert fake.wait_disconnect("groq", timeout=5)
    assert gateway.post_chat().status_code == 200  # the worker is free and well
    assert "Traceback" not in gateway.log()
    assert '"outcome": "client_closed"' in gateway.log()


@pytest.mark.parametrize("path", ["/chat", "/v1/chat/completions"])
def test_client_leaving_before_the_first_byte_frees_the_silent_provider_at_once(start_gateway, fake, path):
    """Nothing has been sent yet, so nothing announces the client's leaving: it is watched for all the same,
    or the provider would be held until FIRST_TOKEN_TIMEOUT and the next one tried for nobody."""
    gateway = start_gateway(providers=["groq", "cerebras"], FIRST_TOKEN_TIMEOUT=30)
    fake.enqueue("groq", Reply(never_answer=True, stall_seconds=30))
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {MASTER_KEY}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
        assert fake.wait_for(lambda f: f.chat_requests("groq"), timeout=10)
    assert fake.wait_disconnect("groq", timeout=5)
    assert fake.chat_requests("cerebras") == []  # no other provider is tried for a client that is gone
    assert wait_until(lambda: '"status": 499' in gateway.log(), timeout=5), gateway.log()[-2000:]
    assert gateway.post_chat().status_code == 200
    assert health_state(gateway, "groq")["state"] == "ok"
    assert "Traceback" not in gateway.log()


def test_remaining_counts_down_per_request_even_when_they_arrive_together(start_gateway, fake):
    from concurrent.futures import ThreadPoolExecutor
    gateway = start_gateway(providers=["groq"])
    fake.set_default("groq", Reply(first_delay=0.3))  # all ten are in flight at once
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: gateway.post_chat(), range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in responses) == list(range(10))
