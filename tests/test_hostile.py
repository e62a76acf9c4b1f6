"""A security review's findings, one or more integration tests each: the real gateway under gunicorn + gevent
against a hostile fake provider (tests/fakeprovider.py: floods, wrong shapes, redirects, leaky error bodies)
and hostile clients (trickled bodies, lone surrogates, look-alike origins)."""
import json
import os
import re
import select
import socket
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from providers import PROVIDER_CLASSES
from tests.fakeprovider import Reply
from tests.gateway import MASTER_KEY, PROVIDER_IDS, health_state, wait_until

NAMES = {cls.id: cls.name for cls in PROVIDER_CLASSES}
HI = [{"role": "user", "content": "hi"}]
MB = 1024 * 1024
# A flood the fake gives up on (it drops the connection) if the gateway never stops reading it.
FLOOD_LIMIT = 24 * MB
# The same when only a client leaving may stop the gateway: it reads about 150 MB/s and may take a few tenths of a
# second to notice (measured: up to 45 MB read), so the flood must be much longer than that.
LONG_FLOOD_LIMIT = 256 * MB
# What the fake may have handed to the socket before a gateway that stopped reading early closed it: what the
# gateway read (at most MAX_ANSWER_BYTES, or an error body's first bytes) plus the kernel's buffers.
EARLY_CLOSE = 16 * MB
# Peak memory of a gateway worker reading a flood (a worker at rest is about 60 MB).
RSS_BOUND_MB = 300


def completion(gateway, key=MASTER_KEY, timeout=30, **body) -> requests.Response:
    """POST /v1/chat/completions; a streamed answer is read whole."""
    body.setdefault("messages", HI)
    return requests.post(f"{gateway.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                         timeout=timeout)


def service(gateway, name: str) -> dict:
    return requests.get(f"{gateway.url}/metrics", timeout=5).json()["services"][name]


def data_events(response: requests.Response) -> list:
    """The SSE data payloads of a whole answer, JSON-decoded where they parse."""
    payloads = [line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: ")]
    decoded = []
    for payload in payloads:
        try:
            decoded.append(json.loads(payload))
        except ValueError:
            decoded.append(payload)
    return decoded


def worker_peak_rss_mb(gateway) -> float:
    """Peak resident memory (VmHWM) of the gateway's gunicorn worker, the master's child."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            if ppid != gateway.process.pid:
                continue
            with open(f"/proc/{entry}/status") as status:
                peak = next(line for line in status if line.startswith("VmHWM:"))
            return int(peak.split()[1]) / 1024
        except (OSError, StopIteration, ValueError, IndexError):
            continue
    raise AssertionError("no gunicorn worker found")


def live_status(gateway) -> int | str:
    """GET /health/live: its status, or what went wrong."""
    try:
        return requests.get(f"{gateway.url}/health/live", timeout=3).status_code
    except requests.RequestException as exc:
        return f"no answer: {type(exc).__name__}"


def raw_request(gateway, head: str) -> socket.socket:
    """A client socket that has sent `head` (request line and headers, CRLF-joined, no body)."""
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head.encode())
    return sock


# -- 1. a model the provider does not offer -------------------------------------------------------------------

@pytest.mark.parametrize("pid", PROVIDER_IDS)
def test_a_model_the_provider_lacks_is_a_404_and_the_provider_stays_in_the_rotation(start_gateway, fake, pid):
    gateway = start_gateway(providers=[pid], MODEL_CHECK_INTERVAL=0)
    fake.strict_models = True  # the fake answers each provider's real "no such model" error
    response = completion(gateway, model=f"{pid}/does-not-exist")
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "model_not_found"
    state = health_state(gateway, pid)
    assert state["state"] == "ok" and "detail" not in state, state
    answer = completion(gateway, model="auto")
    assert (answer.status_code, answer.headers.get("X-Provider")) == (200, NAMES[pid])


def test_asking_every_provider_for_a_model_it_lacks_does_not_empty_the_pool(start_gateway, fake):
    gateway = start_gateway(RATE_LIMIT_MAX=100, MODEL_CHECK_INTERVAL=0)
    fake.strict_models = True
    assert [completion(gateway, model=f"{pid}/does-not-exist").status_code for pid in PROVIDER_IDS] == [404] * len(PROVIDER_IDS)
    providers = requests.get(f"{gateway.url}/health", timeout=5).json()["providers"]
    assert {p["id"]: p["state"] for p in providers} == {pid: "ok" for pid in PROVIDER_IDS}
    answered = [completion(gateway, model="auto").headers.get("X-Provider") for _ in PROVIDER_IDS]
    assert sorted(answered) == sorted(NAMES.values())


# -- 2. a model id that walks out of Gemini's path ------------------------------------------------------------

def test_a_model_id_walking_out_of_the_gemini_path_is_a_400_and_calls_nothing(start_gateway, fake):
    gateway = start_gateway(providers=["gemini"], MODEL_CHECK_INTERVAL=0)
    response = completion(gateway, model="gemini/../../../admin/secret?x=")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "model"
    assert [(r.method, r.path) for r in fake.requests] == []


def test_a_gemini_model_id_that_needs_escaping_reaches_gemini_as_one_path_segment(start_gateway, fake):
    gateway = start_gateway(providers=["gemini"], MODEL_CHECK_INTERVAL=0)
    response = completion(gateway, model="gemini/tunedModels/my-model")
    sent = [(r.kind, r.path, r.model) for r in fake.requests]
    assert sent == [("chat", "/gemini/v1beta/models/tunedModels%2Fmy-model:streamGenerateContent",
                     "tunedModels/my-model")]
    assert response.status_code == 200, response.text


# -- 3. redirects ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [307, 302])
def test_a_provider_redirect_is_never_followed_and_the_next_provider_answers(start_gateway, fake, status):
    gateway = start_gateway(providers=["groq", "gemini"], MODEL_CHECK_INTERVAL=0)
    fake.enqueue("groq", Reply(status=status, redirect="/collect/groq"))
    by_rotation = gateway.post_chat()
    fake.enqueue("gemini", Reply(status=status, redirect="/collect/gemini"))
    gemini_first = gateway.post_chat(headers={"X-Provider": "gemini", "X-Fallback": "true"})
    followed = [(r.method, r.path, sorted(k for k in r.headers if k in ("authorization", "x-goog-api-key")))
                for r in fake.requests if r.path.startswith("/collect/")]
    assert followed == []
    assert (by_rotation.status_code, by_rotation.headers.get("X-Provider"), by_rotation.headers.get("X-Attempts")) \
        == (200, "Gemini 3 Flash", "2")
    assert (gemini_first.status_code, gemini_first.headers.get("X-Provider"),
            gemini_first.headers.get("X-Attempts")) == (200, "Groq", "2")
    assert (service(gateway, "Groq")["errors"], service(gateway, "Gemini 3 Flash")["errors"]) == (1, 1)


# -- 4. a request body trickled a byte a second ---------------------------------------------------------------

def test_a_request_body_trickled_a_byte_a_second_is_cut_with_a_json_408(start_gateway, fake):
    gateway = start_gateway(providers=["groq"], BODY_TIMEOUT=2, MODEL_CHECK_INTERVAL=0)
    sock = raw_request(gateway, f"POST /chat HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {MASTER_KEY}\r\n"
                                "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
    received, live = b"", None
    deadline = time.monotonic() + 8  # BODY_TIMEOUT is 2: generous
    with sock:
        while time.monotonic() < deadline and not _whole_http_response(received):
            if select.select([sock], [], [], 1.0)[0]:  # an answer, else one more byte a second later
                data = sock.recv(65536)
                if not data:
                    break
                received += data
                continue
            try:
                sock.sendall(b" ")
            except OSError:
                break
            if live is None:
                live = live_status(gateway)
    assert received, "no answer within 8 s to a body trickled a byte a second (BODY_TIMEOUT=2)"
    assert live == 200
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"408", head
    assert json.loads(body)["status"] == 408 and json.loads(body)["error"]
    assert fake.chat_requests() == []


def _whole_http_response(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(sep) and (length is None or len(body) >= int(length.group(1)))


# -- 5. floods: endless answers and huge error bodies ---------------------------------------------------------

@pytest.mark.parametrize("endless", ["events", "line"])
def test_an_endless_answer_is_cut_at_max_answer_bytes_and_fails_over(start_gateway, fake, endless):
    gateway = start_gateway(providers=["groq", "cerebras"], MAX_ANSWER_BYTES=1_000_000, MODEL_CHECK_INTERVAL=0)
    fake.enqueue("groq", Reply(endless=endless, flood_limit=FLOOD_LIMIT, times=2))
    pool = ThreadPoolExecutor(1)
    try:
        pending = pool.submit(completion, gateway)
        assert fake.wait_for(lambda f: f.chat_requests("groq"), timeout=10)
        live = live_status(gateway)  # while the flood runs: it must not starve the worker
        flood = fake.wait_flood("groq", timeout=10)
        assert flood is not None and flood.closed_by_peer, f"the gateway read the whole flood: {flood}"
        assert flood.bytes_sent < EARLY_CLOSE, flood
        assert live == 200
        failed_over = pending.result(timeout=10)
    finally:
        pool.shutdown(wait=False)  # a gateway still reading the flood is killed at teardown
    assert (failed_over.status_code, failed_over.headers.get("X-Provider"), failed_over.headers.get("X-Attempts")) \
        == (200, "Cerebras", "2"), failed_over.text[:300]
    named = completion(gateway, model="groq")  # no other provider may answer: a JSON 502
    assert named.status_code == 502 and named.json()["error"]["code"] == "provider_error", named.text[:300]
    assert worker_peak_rss_mb(gateway) < RSS_BOUND_MB
    assert service(gateway, "Groq")["errors"] == 2


@pytest.mark.parametrize("status", [500, 400])
def test_a_50_mb_error_body_is_not_read_whole(start_gateway, fake, status):
    gateway = start_gateway(providers=["groq", "cerebras"], MODEL_CHECK_INTERVAL=0)
    fake.enqueue("groq", Reply(status=status, body_bytes=50 * MB))
    response = gateway.post_chat()
    flood = fake.wait_flood("groq")
    assert flood is not None and flood.closed_by_peer, f"the gateway read the whole error body: {flood}"
    assert flood.bytes_sent < EARLY_CLOSE, flood
    if status == 500:
        assert (response.status_code, response.text) == (200, "Hello from cerebras")
    else:
        assert response.status_code == 400 and len(response.content) < 2000, response.text[:300]
    assert worker_peak_rss_mb(gateway) < RSS_BOUND_MB


@pytest.mark.parametrize("interval", [0.01, 0], ids=["paced", "flat-out"])
def test_a_client_leaving_a_non_streamed_request_frees_the_endless_upstream(start_gateway, fake, interval):
    # No byte limit here: only the client leaving may end the flood.
    gateway = start_gateway(providers=["groq"], MAX_ANSWER_BYTES=2 ** 40, MODEL_CHECK_INTERVAL=0)
    fake.enqueue("groq", Reply(endless="events", interval=interval, flood_limit=LONG_FLOOD_LIMIT))
    body = json.dumps({"model": "auto", "messages": HI})
    sock = raw_request(gateway, f"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
                                f"Authorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\n"
                                f"Content-Length: {len(body)}\r\n\r\n{body}")
    with sock:
        assert fake.wait_for(lambda f: f.chat_requests("groq"), timeout=10)
    flood = fake.wait_flood("groq", timeout=5)
    assert flood is not None, "the gateway still reads the provider 5 s after its client left"
    assert flood.closed_by_peer, f"the gateway read the whole flood after its client left: {flood}"


# -- 6. answers of the wrong shape ----------------------------------------------------------------------------

WRONG_SHAPES = [("groq", '{"choices": {}}'), ("groq", '{"choices": 5}'), ("groq", '{"choices":[{"delta":"x"}]}'),
                ("groq", '{"choices":[{"delta":{"content":5}}]}'), ("groq", '{"usage":{"prompt_tokens":"5"}}'),
                ("groq", b"\xff\xfe"), ("gemini", '{"candidates":[{"content":"abc"}]}')]
BACKUP = {"groq": "cerebras", "gemini": "huggingface"}


@pytest.mark.parametrize("pid, shape", WRONG_SHAPES, ids=[repr(shape) for _, shape in WRONG_SHAPES])
def test_an_event_of_the_wrong_shape_is_the_providers_failure(start_gateway, fake, pid, shape):
    backup = BACKUP[pid]
    gateway = start_gateway(providers=[pid, backup], RATE_LIMIT_MAX=100, MODEL_CHECK_INTERVAL=0)
    # Before any content: the next provider answers.
    fake.enqueue(pid, Reply(raw_events=[shape]))
    whole = completion(gateway)
    assert (whole.status_code, whole.headers.get("X-Provider"), whole.headers.get("X-Attempts")) == (
        200, NAMES[backup], "2"), whole.text[:300]
    assert whole.json()["choices"][0]["message"]["content"] == f"Hello from {backup}"
    # After a first good chunk: the stream ends with one error event, which the openai client raises.
    fake.enqueue(pid, Reply(raw_events=[shape], raw_after=1, times=2))
    streamed = completion(gateway, model=pid, stream=True)
    assert streamed.status_code == 200
    events = data_events(streamed)
    contents = [c["delta"]["content"] for e in events if isinstance(e, dict) for c in e.get("choices") or []
                if "content" in c.get("delta", {})]
    assert all(isinstance(content, str) for content in contents), contents
    assert events[-1] == {"error": {"message": f"{NAMES[pid]} failed mid-stream; the answer is incomplete",
                                    "type": "server_error", "param": None, "code": "provider_error"}}, events[-3:]
    api = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)
    with pytest.raises(openai.APIError) as caught:
        list(api.chat.completions.create(model=pid, messages=HI, stream=True))
    assert type(caught.value) is openai.APIError, caught.value  # the gateway's error event, not a cut connection
    assert service(gateway, NAMES[pid])["errors"] == 3


# -- 7. absurd token counts -----------------------------------------------------------------------------------

def stored_usage(tmp_path) -> tuple:
    """(request_count, prompt_tokens, completion_tokens) as written to the key database."""
    with sqlite3.connect(tmp_path / "keys.db") as db:
        return db.execute("SELECT request_count, prompt_tokens, completion_tokens FROM api_keys").fetchone()


def test_an_absurd_prompt_token_count_is_clamped_and_later_usage_is_still_written(start_gateway, fake, tmp_path):
    gateway = start_gateway(providers=["groq"], MODEL_CHECK_INTERVAL=0)
    key = gateway.admin("POST", json={"name": "hostile usage"}).json()["apiKey"]
    fake.enqueue("groq", Reply(usage={"prompt_tokens": 10 ** 30, "completion_tokens": 5}))
    assert completion(gateway, key=key).status_code == 200
    assert wait_until(lambda: stored_usage(tmp_path)[0] == 1, timeout=6), stored_usage(tmp_path)
    listed = gateway.admin("GET").json()["keys"][0]
    for field in ("promptTokens", "completionTokens"):
        assert isinstance(listed[field], int) and 0 <= listed[field] < 2 ** 63, listed
    assert completion(gateway, key=key).status_code == 200  # an ordinary answer: 10 + 5 tokens
    assert wait_until(lambda: stored_usage(tmp_path)[0] == 2, timeout=6), stored_usage(tmp_path)
    assert gateway.admin("GET").json()["keys"][0]["requestCount"] == 2


def test_infinite_token_counts_leave_the_metrics_answering(start_gateway, fake):
    gateway = start_gateway(providers=["groq"], MODEL_CHECK_INTERVAL=0)
    fake.enqueue("groq", Reply(usage={"prompt_tokens": 10, "completion_tokens": 1e308}, times=2))
    assert [completion(gateway).status_code for _ in range(2)] == [200, 200]
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5)
    assert metrics.status_code == 200, metrics.text[:300]
    assert isinstance(metrics.json()["services"]["Groq"]["completionTokens"], int)
    prometheus = requests.get(f"{gateway.url}/metrics/prometheus", timeout=5)
    assert prometheus.status_code == 200, prometheus.text[:300]


# -- 8. strings no provider or database can take ---------------------------------------------------------------

def test_a_lone_surrogate_in_a_message_is_a_400_and_reaches_no_provider(start_gateway, fake):
    gateway = start_gateway(providers=["groq"], MODEL_CHECK_INTERVAL=0)
    body = '{"messages":[{"role":"user","content":"\\ud800"}]}'  # JSON text: json= would refuse to encode it
    headers = {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"}
    statuses = {path: requests.post(f"{gateway.url}{path}", data=body, headers=headers, timeout=10).status_code
                for path in ("/chat", "/v1/chat/completions")}
    assert statuses == {"/chat": 400, "/v1/chat/completions": 400}
    assert fake.chat_requests() == []


@pytest.mark.parametrize("name", ["\\ud800", "a\\u0000b"], ids=["lone-surrogate", "nul-byte"])
def test_a_key_name_no_database_should_store_is_a_400(start_gateway, name):
    gateway = start_gateway(providers=["groq"])
    response = requests.post(f"{gateway.url}/admin/keys", data=f'{{"name":"{name}"}}', timeout=10,
                             headers={"X-API-Key": MASTER_KEY, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert gateway.admin("GET").json()["keys"] == []


# -- 9. leaks and look-alikes ---------------------------------------------------------------------------------

def test_a_provider_error_echoing_its_api_key_and_html_reaches_the_client_without_them(start_gateway, fake):
    gateway = start_gateway(RATE_LIMIT_MAX=100, MODEL_CHECK_INTERVAL=0)
    for pid in PROVIDER_IDS:
        fake.enqueue(pid, Reply(status=400, echo_key=True, times=2))
        for response in (gateway.post_chat(headers={"X-Provider": pid}), completion(gateway, model=pid)):
            assert response.status_code != 500
            assert f"{pid}-secret-key" not in response.text, response.text
            assert "<html" not in response.text.lower(), response.text
    assert "secret-key" not in gateway.log()


def test_a_200_with_an_html_page_instead_of_an_event_stream_fails_over(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras"], MODEL_CHECK_INTERVAL=0)
    fake.enqueue("groq", Reply(raw_body=b"<html><body><h1>Welcome to nginx!</h1></body></html>",
                               content_type="text/html", times=2))
    chat = gateway.post_chat()
    assert (chat.status_code, chat.text, chat.headers.get("X-Attempts")) == (200, "Hello from cerebras", "2")
    whole = completion(gateway)
    assert (whole.status_code, whole.headers.get("X-Provider"), whole.headers.get("X-Attempts")) == (
        200, "Cerebras", "2"), whole.text[:300]
    assert whole.json()["choices"][0]["message"]["content"] == "Hello from cerebras"


def test_a_key_is_revoked_only_by_its_whole_id(start_gateway):
    gateway = start_gateway(providers=["groq"], MODEL_CHECK_INTERVAL=0)
    key = gateway.admin("POST", json={"name": "victim"}).json()["apiKey"]
    key_id = gateway.admin("GET").json()["keys"][0]["id"]
    assert len(key_id) == 12
    for prefix in (key_id[0], key_id[:11]):
        assert gateway.admin("DELETE", json={"id": prefix}).status_code == 404
    assert gateway.post_chat(key=key).status_code == 200
    assert gateway.admin("DELETE", json={"id": key_id}).status_code == 200
    assert gateway.post_chat(key=key).status_code == 403


def test_a_wildcard_cors_origin_allows_its_subdomains_and_no_look_alike(start_gateway):
    gateway = start_gateway(providers=["groq"], CORS_ORIGINS="https://*.example.com")

    def allowed(origin):
        response = requests.get(f"{gateway.url}/health", headers={"Origin": origin}, timeout=5)
        return response.headers.get("Access-Control-Allow-Origin")

    assert allowed("https://app.example.com") == "https://app.example.com"
    refused = ["https://xexample.com.evil.net", "https://app.example.com.evil.net", "https://example.com",
               "http://app.example.com", "https://evilexample.com"]
    assert {origin: allowed(origin) for origin in refused} == dict.fromkeys(refused)


def test_only_the_models_the_list_offers_are_found_by_id(start_gateway):
    gateway = start_gateway(providers=["groq", "gemini"], MODEL_CHECK_INTERVAL=0)
    listed = [m["id"] for m in requests.get(f"{gateway.url}/v1/models", timeout=5,
                                            headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()["data"]]

    def status(model_id):
        return requests.get(f"{gateway.url}/v1/models/{model_id}", timeout=5,
                            headers={"Authorization": f"Bearer {MASTER_KEY}"}).status_code

    assert {model_id: status(model_id) for model_id in listed} == dict.fromkeys(listed, 200)
    not_offered = ["anything-not-offered", "groq/anything-not-offered", "gemini/gemini-0-nonexistent",
                   "openrouter/deepseek/deepseek-r1-0528:free"]
    assert {model_id: status(model_id) for model_id in not_offered} == dict.fromkeys(not_offered, 404)


# -- 10. response headers and who may read the metrics ------------------------------------------------------------

def test_every_answer_says_nosniff_and_no_server_version(start_gateway):
    gateway = start_gateway(providers=["groq"], RATE_LIMIT_MAX=100, MODEL_CHECK_INTERVAL=0)
    answers = {
        "json error": requests.post(f"{gateway.url}/chat", json={"messages": HI}, timeout=10),
        "unknown route": requests.get(f"{gateway.url}/nowhere", timeout=10),
        "health": requests.get(f"{gateway.url}/health", timeout=10),
        "chat stream": gateway.post_chat(),
        "v1 stream": completion(gateway, stream=True),
        "v1 error": completion(gateway, model="nope"),
        "prometheus": requests.get(f"{gateway.url}/metrics/prometheus", timeout=10),
    }
    assert {name: r.headers.get("X-Content-Type-Options") for name, r in answers.items()} == dict.fromkeys(
        answers, "nosniff")
    assert {name: r.headers.get("Server") for name, r in answers.items()
            if re.search(r"\d", r.headers.get("Server", ""))} == {}


def test_a_created_key_is_never_cached(start_gateway):
    gateway = start_gateway(providers=["groq"])
    created = gateway.admin("POST", json={"name": "cached?"})
    assert created.status_code == 200
    assert "no-store" in created.headers.get("Cache-Control", ""), created.headers


def test_metrics_can_require_the_master_key_while_health_stays_public(start_gateway):
    gateway = start_gateway(providers=["groq"], METRICS_REQUIRE_KEY="true", PUBLIC_API_KEYS="public-key")
    for path in ("/metrics", "/metrics/prometheus"):
        url = f"{gateway.url}{path}"
        assert requests.get(url, timeout=5).status_code == 401, path
        assert requests.get(url, headers={"X-API-Key": "wrong-key"}, timeout=5).status_code == 403, path
        assert requests.get(url, headers={"Authorization": "Bearer public-key"}, timeout=5).status_code == 403, path
        assert requests.get(url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=5).status_code == 200
    assert requests.get(f"{gateway.url}/health", timeout=5).status_code == 200
    assert requests.get(f"{gateway.url}/health/live", timeout=5).status_code == 200
