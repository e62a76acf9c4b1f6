"""Round trips to Redis per chat request on the hot path: the state read (with the rotation's step) and the
request's writes at its end, and with rate limiting on one more for the limit, whose headers come from that
same trip. Counted where redis-py sends: one send per command or per pipeline."""
import shutil
import subprocess

import pytest
from redis.connection import AbstractConnection

from tests.conftest import PUBLIC
from tests.databases import needs_redis
from tests.gateway import wait_until

BODY = {"model": "groq", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def sends(monkeypatch):
    sent = []
    original = AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return sent


def chat(client, model="groq"):
    with client.post("/v1/chat/completions", json={**BODY, "model": model},
                     headers={"Authorization": f"Bearer {PUBLIC}"}) as response:
        return response, response.get_data()


@needs_redis
@pytest.mark.parametrize("model", ["groq", "auto"])
@pytest.mark.parametrize("limited, trips", [(False, 2), (True, 3)])
def test_a_chat_request_makes_two_round_trips_and_one_more_for_its_rate_limit(make_client, redis_db, sends,
                                                                               model, limited, trips):
    client = make_client(redis_url=redis_db, rate_limit_enabled=limited, rate_limit_max=5)
    chat(client, model)  # the first request loads the scripts and opens the connections
    sends.clear()
    response, _ = chat(client, model)
    assert response.status_code == 200
    assert len(sends) == trips
    if limited:  # the headers are those of this request's own hit, without a GET or a TTL of their own
        assert response.headers["X-RateLimit-Remaining"] == "3"
        assert response.headers["X-RateLimit-Limit"] == "5"


@needs_redis
def test_the_redis_limit_counts_down_to_a_429_with_its_reset(make_client, redis_db):
    client = make_client(redis_url=redis_db, rate_limit_enabled=True, rate_limit_max=2, rate_limit_window_ms=60_000)
    first, second = chat(client)[0], chat(client)[0]
    refused = chat(client)[0]
    assert (first.headers["X-RateLimit-Remaining"], second.headers["X-RateLimit-Remaining"]) == ("1", "0")
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 59 <= int(refused.headers["Retry-After"]) <= 61  # Flask-Limiter rounds the reset up a second
    assert first.headers["X-RateLimit-Reset"] == refused.headers["X-RateLimit-Reset"]


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
def test_a_redis_socket_url_serves_the_rate_limit_too(make_client, tmp_path):
    """REDIS_URL=unix://... is redis-py's name for a socket; `limits` calls it redis+unix:// (the app would not
    start with the one name given to the other)."""
    sock = tmp_path / "redis.sock"
    server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        assert wait_until(sock.exists)
        client = make_client(redis_url=f"unix://{sock}", rate_limit_enabled=True, rate_limit_max=5)
        assert [chat(client)[0].headers["X-RateLimit-Remaining"] for _ in range(2)] == ["4", "3"]
    finally:
        server.terminate()
        server.wait()
