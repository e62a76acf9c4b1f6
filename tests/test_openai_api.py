"""The OpenAI-compatible API (/v1): the official `openai` package, curl and plain HTTP against the gateway
under gunicorn + gevent and the fake providers; request validation and error shapes through Flask's test
client."""
import json
import subprocess

import openai
import pytest
import requests

from providers import PROVIDER_CLASSES
from tests.conftest import MASTER
from tests.fakeprovider import Reply, stream_error_event
from tests.gateway import MASTER_KEY, PROVIDER_IDS

MODELS = {cls.id: cls.default_model for cls in PROVIDER_CLASSES}
NAMES = {cls.id: cls.name for cls in PROVIDER_CLASSES}
HI = [{"role": "user", "content": "hi"}]


def client(gateway, key=MASTER_KEY) -> openai.OpenAI:
    # No retries: a 429 or a 5xx must reach the test as the gateway sent it.
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30)


@pytest.mark.parametrize("model", PROVIDER_IDS + ["auto"])
def test_the_openai_client_gets_whole_and_streamed_answers(start_gateway, model):
    gateway = start_gateway(RATE_LIMIT_MAX=100)
    api = client(gateway)
    # `auto` follows the rotation: groq, then cerebras, then openrouter.
    answering = iter(["groq", "cerebras", "openrouter"] if model == "auto" else [model] * 3)

    pid = next(answering)
    completion = api.chat.completions.create(model=model, messages=HI)
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == MODELS[pid]
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == f"Hello from {pid}"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        10, 5, 15)

    pid = next(answering)
    raw = api.chat.completions.with_raw_response.create(model=model, messages=HI, stream=True,
                                                        stream_options={"include_usage": True})
    assert raw.headers["Content-Type"].startswith("text/event-stream")
    assert (raw.headers["Cache-Control"], raw.headers["X-Accel-Buffering"]) == ("no-cache", "no")
    assert (raw.headers["X-Provider"], raw.headers["X-Attempts"]) == (NAMES[pid], "1")
    chunks = list(raw.parse())
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and {c.model for c in chunks} == {MODELS[pid]}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == f"Hello from {pid}"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 15

    next(answering)
    chunks = list(api.chat.completions.create(model=model, messages=HI, stream=True))
    assert all(c.choices and c.usage is None for c in chunks)  # no usage chunk unless asked for


def test_models_list_offers_auto_and_each_configured_provider_and_every_id_works(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "gemini"])
    api = client(gateway)
    listed = api.models.list().data
    assert [(m.id, m.object, m.owned_by) for m in listed] == [
        ("auto", "model", "gateway"), (f"groq/{MODELS['groq']}", "model", "groq"),
        (f"gemini/{MODELS['gemini']}", "model", "gemini")]
    assert all(isinstance(m.created, int) for m in listed)
    for model in listed:
        assert api.chat.completions.create(model=model.id, messages=HI).choices[0].message.content
    assert [r.provider for r in fake.chat_requests()] == ["groq", "groq", "gemini"]
    assert api.models.retrieve(f"gemini/{MODELS['gemini']}").owned_by == "gemini"


def test_a_model_name_chooses_the_provider_and_the_upstream_model(start_gateway, fake):
    gateway = start_gateway(RATE_LIMIT_MAX=100)
    api = client(gateway)
    completion = api.chat.completions.create(model="groq/llama-3.3-70b-versatile", messages=HI)
    sent = fake.chat_requests()[-1]
    assert (sent.provider, sent.json["model"], completion.model) == ("groq", "llama-3.3-70b-versatile",
                                                                     "llama-3.3-70b-versatile")
    api.chat.completions.create(model="gemini/gemini-2.5-pro", messages=HI)
    assert (fake.chat_requests()[-1].provider, fake.chat_requests()[-1].model) == ("gemini", "gemini-2.5-pro")
    api.chat.completions.create(model=MODELS["cerebras"], messages=HI)  # a configured provider's own model id
    assert fake.chat_requests()[-1].provider == "cerebras"


def test_unknown_models_and_providers_without_a_key_raise_not_found(start_gateway, fake):
    gateway = start_gateway(providers=["groq"])
    api = client(gateway)
    with pytest.raises(openai.NotFoundError) as unknown:
        api.chat.completions.create(model="gpt-4o", messages=HI)
    assert (unknown.value.code, unknown.value.param, unknown.value.type) == (
        "model_not_found", "model", "invalid_request_error")
    with pytest.raises(openai.NotFoundError) as keyless:
        api.chat.completions.create(model="gemini", messages=HI)
    assert keyless.value.code == "model_not_found" and "no API key" in keyless.value.message
    with pytest.raises(openai.NotFoundError):
        api.models.retrieve("gpt-4o")
    assert fake.chat_requests() == []


def test_an_invalid_key_raises_authentication_error_while_chat_keeps_its_403(start_gateway):
    gateway = start_gateway(providers=["groq"])
    with pytest.raises(openai.AuthenticationError) as caught:
        client(gateway, key="sk_wrong").chat.completions.create(model="auto", messages=HI)
    assert caught.value.status_code == 401
    assert caught.value.body == {"message": "Invalid or disabled API key", "type": "invalid_request_error",
                                 "param": None, "code": "invalid_api_key"}
    with pytest.raises(openai.AuthenticationError):
        client(gateway, key="sk_wrong").models.list()
    missing = requests.post(f"{gateway.url}/v1/chat/completions", json={"messages": HI}, timeout=10)
    assert (missing.status_code, missing.json()["error"]["message"]) == (
        401, "API key required. Use Authorization: Bearer YOUR_KEY or X-API-Key header")
    assert gateway.post_chat(key="sk_wrong").status_code == 403


def test_the_eleventh_request_in_a_window_raises_rate_limit_error_on_the_budget_shared_with_chat(start_gateway):
    gateway = start_gateway(providers=["groq"])
    api = client(gateway)
    for _ in range(5):
        assert gateway.post_chat().status_code == 200
    for _ in range(5):
        api.chat.completions.create(model="auto", messages=HI)
    with pytest.raises(openai.RateLimitError) as caught:
        api.chat.completions.create(model="auto", messages=HI)
    assert (caught.value.code, caught.value.body["message"]) == ("rate_limit_exceeded", "Rate limit exceeded")
    headers = caught.value.response.headers
    assert int(headers["Retry-After"]) >= 1 and headers["X-RateLimit-Reset"].endswith("Z")
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("10", "0")
    assert gateway.post_chat().status_code == 429
    assert len(api.models.list().data) == 2  # listing models is not a chat request


def test_curl_shows_the_sse_events_arriving_one_by_one(start_gateway, fake):
    gateway = start_gateway(providers=["groq"])
    fake.enqueue("groq", Reply(chunks=["first", " second", " third", " fourth"], interval=0.4))
    command = ["curl", "-sSN", "--max-time", "30", f"{gateway.url}/v1/chat/completions",
               "-H", f"Authorization: Bearer {MASTER_KEY}", "-H", "Content-Type: application/json",
               "-d", json.dumps({"model": "groq", "stream": True, "messages": HI})]
    with subprocess.Popen(command, stdout=subprocess.PIPE) as curl:
        events = (line for line in curl.stdout if line.strip())
        assert event(next(events))["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert event(next(events))["choices"][0]["delta"] == {"content": "first"}
        assert fake.outcomes == []  # the fake is still sending
        rest = list(events)
    assert curl.returncode == 0
    assert [event(line)["choices"][0]["delta"] for line in rest[:3]] == [
        {"content": " second"}, {"content": " third"}, {"content": " fourth"}]
    assert event(rest[3])["choices"][0]["finish_reason"] == "stop"
    assert rest[4:] == [b"data: [DONE]\n"]


def event(line: bytes) -> dict:
    assert line.startswith(b"data: ")
    return json.loads(line[len(b"data: "):])


@pytest.mark.parametrize("provider", ["openrouter", "cerebras", "gemini"])
def test_reasoning_lands_in_reasoning_content_never_in_content(start_gateway, fake, provider):
    gateway = start_gateway(providers=[provider])
    fake.enqueue(provider, Reply(reasoning=["Let me", " think"], chunks=["4", "2"], times=2))
    api = client(gateway)
    deltas = [c.choices[0].delta for c in api.chat.completions.create(model=provider, messages=HI, stream=True)
              if c.choices]
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == "Let me think"
    assert "".join(d.content or "" for d in deltas) == "42"
    assert not any(d.content and getattr(d, "reasoning_content", None) for d in deltas)
    message = api.chat.completions.create(model=provider, messages=HI).choices[0].message
    assert (message.content, message.reasoning_content) == ("42", "Let me think")


def test_an_answer_without_reasoning_has_no_reasoning_content(start_gateway):
    gateway = start_gateway(providers=["groq"])
    message = client(gateway).chat.completions.create(model="groq", messages=HI).choices[0].message
    assert "reasoning_content" not in message.model_dump(exclude_unset=True)


def test_usage_is_reported_and_added_to_the_keys_totals_and_metrics(start_gateway):
    gateway = start_gateway(providers=["groq"])
    key = gateway.admin("POST", json={"name": "alice"}).json()["apiKey"]
    api = client(gateway, key)
    stream = api.chat.completions.create(model="groq", messages=HI, stream=True,
                                         stream_options={"include_usage": True})
    assert [(u.prompt_tokens, u.completion_tokens, u.total_tokens) for u in (c.usage for c in stream) if u] == [
        (10, 5, 15)]
    assert api.chat.completions.create(model="groq", messages=HI).usage.total_tokens == 15
    [entry] = gateway.admin("GET").json()["keys"]
    assert (entry["requestCount"], entry["promptTokens"], entry["completionTokens"]) == (2, 20, 10)
    groq = requests.get(f"{gateway.url}/metrics", timeout=5).json()["services"]["Groq"]
    assert (groq["promptTokens"], groq["completionTokens"]) == (20, 10)


def test_sampling_parameters_reach_an_openai_compatible_provider(start_gateway, fake):
    gateway = start_gateway(providers=["groq"])
    api = client(gateway)
    messages = [{"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}]
    api.chat.completions.create(model="groq", messages=messages, temperature=0.3, top_p=0.9, max_tokens=50,
                                stop=["END"], seed=7, user="user-1", presence_penalty=0.5)
    sent = fake.chat_requests()[-1].json
    assert {k: sent.get(k) for k in ("temperature", "top_p", "max_tokens", "stop", "seed", "user",
                                     "presence_penalty")} == {
        "temperature": 0.3, "top_p": 0.9, "max_tokens": 50, "stop": ["END"], "seed": 7, "user": "user-1",
        "presence_penalty": 0.5}
    assert sent["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one\ntwo"}]
    api.chat.completions.create(model="groq", messages=HI, max_completion_tokens=64)
    assert fake.chat_requests()[-1].json["max_tokens"] == 64


def test_sampling_parameters_are_mapped_into_gemini_generation_config(start_gateway, fake):
    gateway = start_gateway(providers=["gemini"])
    client(gateway).chat.completions.create(
        model="gemini", messages=[{"role": "developer", "content": "be brief"}] + HI, temperature=0.3, top_p=0.9,
        max_completion_tokens=50, stop="END", seed=7, user="user-1")
    sent = fake.chat_requests()[-1].json
    assert sent["generationConfig"] == {"temperature": 0.3, "topP": 0.9, "maxOutputTokens": 50,
                                        "stopSequences": ["END"], "seed": 7}
    assert sent["systemInstruction"] == {"parts": [{"text": "be brief"}]}


def test_invalid_parameters_raise_bad_request_error_naming_the_field(start_gateway, fake):
    gateway = start_gateway(providers=["groq"])
    api = client(gateway)
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="groq", messages=HI, temperature=5)
    assert (caught.value.param, caught.value.body["message"]) == (
        "temperature", "temperature must be a number between 0 and 2")
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="groq", messages=image)
    # Groq's default model cannot see: named, the request is refused with what to change.
    assert caught.value.param == "model"
    assert "Groq (groq) cannot do images (vision)" in caught.value.body["message"]
    assert "GROQ_VISION=true" in caught.value.body["message"]
    assert fake.chat_requests() == []


@pytest.mark.parametrize("provider, finish, expected", [("gemini", "length", "length"),
                                                         ("gemini", "safety", "content_filter"),
                                                         ("groq", "length", "length")])
def test_finish_reasons_are_openais(start_gateway, fake, provider, finish, expected):
    gateway = start_gateway(providers=[provider])
    fake.enqueue(provider, Reply(finish_reason=finish))
    assert client(gateway).chat.completions.create(model=provider, messages=HI).choices[0].finish_reason == expected


def test_auto_fails_over_and_a_named_provider_does_not(start_gateway, fake):
    gateway = start_gateway(providers=["groq", "cerebras"])
    api = client(gateway)
    fake.enqueue("groq", Reply(status=500, times=2))
    raw = api.chat.completions.with_raw_response.create(model="auto", messages=HI)
    assert (raw.headers["X-Provider"], raw.headers["X-Attempts"]) == ("Cerebras", "2")
    assert raw.parse().choices[0].message.content == "Hello from cerebras"
    with pytest.raises(openai.InternalServerError) as caught:
        api.chat.completions.create(model="groq", messages=HI)
    assert caught.value.status_code == 502 and caught.value.type == "server_error"


@pytest.mark.parametrize("reply, received", [
    (Reply(chunks=["one", " two", " three"], drop_after=1), "one"),
    (Reply(error_event=stream_error_event("groq")), "Hello from groq")], ids=["dropped", "error-event"])
def test_a_mid_stream_failure_raises_api_error_in_the_openai_client(start_gateway, fake, reply, received):
    gateway = start_gateway(providers=["groq"])
    fake.enqueue("groq", reply)
    text = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client(gateway).chat.completions.create(model="groq", messages=HI, stream=True):
            text.append(chunk.choices[0].delta.content or "")
    assert type(caught.value) is openai.APIError  # reported by the gateway, not a broken connection
    assert (caught.value.message, caught.value.code) == ("Groq failed mid-stream; the answer is incomplete",
                                                         "provider_error")
    assert "".join(text) == received
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).json()["services"]["Groq"]
    assert metrics["midstreamFailures"] == 1


def test_a_mid_stream_failure_ends_the_body_cleanly_with_one_error_event(start_gateway, fake):
    gateway = start_gateway(providers=["groq"])
    fake.enqueue("groq", Reply(chunks=["one", " two"], drop_after=1))
    response = requests.post(f"{gateway.url}/v1/chat/completions", json={"messages": HI, "stream": True},
                             headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)
    events = [event(line.encode()) for line in response.text.splitlines() if line]
    assert events[-1] == {"error": {"message": "Groq failed mid-stream; the answer is incomplete",
                                    "type": "server_error", "param": None, "code": "provider_error"}}
    assert "secret" not in response.text


def test_a_failure_mid_answer_without_streaming_is_a_502(start_gateway, fake):
    gateway = start_gateway(providers=["groq"])
    fake.enqueue("groq", Reply(chunks=["one", " two"], drop_after=1))
    with pytest.raises(openai.InternalServerError) as caught:
        client(gateway).chat.completions.create(model="groq", messages=HI)
    assert (caught.value.status_code, caught.value.code) == (502, "provider_error")


# -- validation and error shapes, through Flask's test client ---------------------------------------------------

def post(client_, body, **headers):
    return client_.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {MASTER}", **headers})


@pytest.mark.parametrize("field, value, param", [
    ("temperature", 2.5, "temperature"), ("temperature", "hot", "temperature"), ("temperature", True, "temperature"),
    ("top_p", 1.5, "top_p"), ("max_tokens", 0, "max_tokens"), ("max_tokens", 1.5, "max_tokens"),
    ("max_completion_tokens", -1, "max_completion_tokens"), ("stop", ["a", "b", "c", "d", "e"], "stop"),
    ("stop", [1], "stop"), ("seed", "7", "seed"), ("user", 5, "user"), ("stream", "yes", "stream"),
    ("stream_options", "yes", "stream_options"), ("stream_options", {"include_usage": 1},
                                                  "stream_options.include_usage"),
    ("model", 5, "model"), ("messages", "hi", "messages"), ("messages", [], "messages"),
    ("messages", [{"role": "tool", "content": "x"}], "messages[0].tool_call_id"),
    ("messages", [{"role": "function", "content": "x"}], "messages[0].role"),
    ("messages", [{"role": "assistant", "content": None}], "messages[0].content"),
    ("messages", [{"role": "user", "content": "x" * 10_001}], "messages[0].content"),
    ("messages", [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
     "messages[0].content[0]"),
])
def test_an_invalid_field_is_a_400_in_openais_shape_naming_it(make_client, fake, field, value, param):
    response = post(make_client(), {"messages": HI, field: value})
    assert response.status_code == 400
    error = response.json["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, None)
    assert error["message"].startswith(param.split("[")[0].split(".")[0])
    assert fake.chat_requests() == []


def test_null_and_unknown_fields_are_ignored(make_client):
    body = {"messages": HI, "temperature": None, "stop": None, "n": 1, "logit_bias": {}, "tools": None}
    assert post(make_client(), body).status_code == 200


@pytest.mark.parametrize("method, path, body, status, code", [
    ("get", "/v1/chat/completions", None, 405, "method_not_allowed"),
    ("get", "/v1/nothing", None, 404, "not_found"),
    ("post", "/v1/chat/completions", "not json", 415, "unsupported_media_type"),
])
def test_http_errors_on_v1_are_in_openais_shape(make_client, method, path, body, status, code):
    response = getattr(make_client(), method)(path, data=body, headers={"Authorization": f"Bearer {MASTER}"})
    assert response.status_code == status
    assert set(response.json["error"]) == {"message", "type", "param", "code"}
    assert response.json["error"]["code"] == code


def test_a_body_too_large_is_a_413_in_openais_shape(make_client):
    response = post(make_client(max_content_length=100), {"messages": [{"role": "user", "content": "x" * 200}]})
    assert (response.status_code, response.json["error"]["code"]) == (413, "request_too_large")


def test_no_provider_configured_is_a_503_in_openais_shape(make_client):
    response = post(make_client(providers=()), {"messages": HI})
    assert response.status_code == 503
    assert response.json["error"]["type"] == "server_error"


def test_chat_errors_keep_the_contract_shape(make_client):
    response = make_client().post("/chat", json={"messages": "hi"}, headers={"Authorization": f"Bearer {MASTER}"})
    assert response.json == {"error": "messages must be an array", "status": 400}


def test_a_browsers_cors_preflight_needs_no_key(make_client):
    response = make_client().options("/v1/chat/completions", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://app.example")
