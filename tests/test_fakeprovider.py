"""Self-test of tests/fakeprovider.py, talking to it with plain `requests`."""
import base64
import json
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from providers import PROVIDER_CLASSES
from tests.fakeprovider import PROVIDERS, FakeProviders, Reply, embedding_of, stream_error_event

AUTH = {"Authorization": "Bearer test-key", "x-goog-api-key": "test-key"}
MODELS = {cls.id: cls.default_model for cls in PROVIDER_CLASSES}


@pytest.fixture
def fake():
    with FakeProviders() as f:
        yield f


def chat(fake, provider, stream=True, session=requests, headers=AUTH, **kw):
    """POST a chat request the way the gateway would, returning the (streaming) response."""
    model = MODELS[provider]
    if provider == "gemini":
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url, body = f"{fake.base_url('gemini')}/models/{model}:{verb}", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    else:
        url = f"{fake.base_url(provider)}/chat/completions"
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    kw.setdefault("timeout", 5)
    return session.post(url, json=body, headers=headers, stream=stream, **kw)


def events(resp):
    """SSE data payloads (comments skipped); JSON-decoded where possible."""
    out = []
    for line in resp.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            data = line[6:]
            try:
                out.append(json.loads(data))
            except ValueError:
                out.append(data)
    return out


def text_of(provider, evs):
    if provider == "gemini":
        return "".join(p.get("text", "") for e in evs for p in e["candidates"][0]["content"]["parts"] if not p.get("thought"))
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in evs if isinstance(e, dict) and e.get("choices"))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_default_stream(fake, provider):
    resp = chat(fake, provider)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["transfer-encoding"] == "chunked"
    evs = events(resp)
    assert text_of(provider, evs) == f"Hello from {provider}"
    if provider == "gemini":
        assert "[DONE]" not in evs
        last = evs[-1]["candidates"][0]
        assert last["finishReason"] == "STOP" and last["content"]["parts"][0]["text"] == ""
        assert "thoughtSignature" in last["content"]["parts"][0]
        assert all("finishReason" not in e["candidates"][0] for e in evs[:-1])
        counts = [e["usageMetadata"]["candidatesTokenCount"] for e in evs]
        assert counts == sorted(counts) and counts[-1] == 5
    else:
        assert evs[-1] == "[DONE]"
        assert evs[0]["choices"][0]["delta"]["role"] == "assistant"
        assert all(e["model"] == MODELS[provider] for e in evs[:-1])
        assert any(c.get("finish_reason") == "stop" for e in evs[:-1] for c in e["choices"])
    rec = fake.chat_requests(provider)[-1]
    assert rec.stream and rec.model == MODELS[provider] and rec.method == "POST"


def test_gemini_crlf_framing(fake):
    raw = b"".join(chat(fake, "gemini").iter_content(None))
    assert raw.startswith(b"data: {") and raw.endswith(b"}\r\n\r\n") and raw.count(b"\r\n\r\n") == 4
    assert b"[DONE]" not in raw


def test_usage_placement(fake):
    groq_last = events(chat(fake, "groq"))[-2]
    assert groq_last["usage"]["total_tokens"] == 15 and groq_last["x_groq"]["usage"]["completion_tokens"] == 5
    orouter = events(chat(fake, "openrouter"))
    assert orouter[-3]["choices"][0]["finish_reason"] == "stop" and "usage" not in orouter[-3]
    assert orouter[-2]["usage"]["prompt_tokens"] == 10 and orouter[-2]["choices"][0]["delta"]["role"] == "assistant"
    assert "usage" not in events(chat(fake, "huggingface"))[-2]
    url = fake.base_url("huggingface") + "/chat/completions"
    resp = requests.post(url, headers=AUTH, stream=True, timeout=5, json={
        "model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}})
    assert events(resp)[-2]["usage"]["completion_tokens"] == 5


@pytest.mark.parametrize("provider", PROVIDERS)
def test_non_streaming(fake, provider):
    resp = chat(fake, provider, stream=False)
    assert resp.status_code == 200 and int(resp.headers["content-length"]) == len(resp.content)
    body = resp.json()
    if provider == "gemini":
        assert body["candidates"][0]["content"]["parts"][0]["text"] == "Hello from gemini"
    else:
        assert body["object"] == "chat.completion" and body["usage"]["prompt_tokens"] == 10
        assert body["choices"][0]["message"]["content"] == f"Hello from {provider}"


def test_reasoning_and_keepalive(fake):
    fake.enqueue("openrouter", Reply(reasoning=["Let me", " think"], keepalive=2))
    resp = chat(fake, "openrouter")
    lines = [ln for ln in resp.iter_lines(decode_unicode=True) if ln]
    assert lines[:2] == [": OPENROUTER PROCESSING"] * 2
    deltas = [json.loads(ln[6:])["choices"][0]["delta"] for ln in lines[2:-1]]
    assert [d["reasoning"] for d in deltas[1:3]] == ["Let me", " think"]
    assert deltas[1]["reasoning_details"][0]["type"] == "reasoning.text"
    assert all(d["role"] == "assistant" for d in deltas)
    fake.enqueue("gemini", Reply(reasoning=["**Planning**"]))
    first = events(chat(fake, "gemini"))[0]["candidates"][0]["content"]["parts"][0]
    assert first == {"text": "**Planning**", "thought": True}
    fake.enqueue("huggingface", Reply(reasoning=["hmm"]))
    assert events(chat(fake, "huggingface"))[1]["choices"][0]["delta"] == {"reasoning_content": "hmm"}


def test_groq_rate_limit_error_then_default(fake):
    fake.enqueue("groq", Reply(status=429))
    resp = chat(fake, "groq")
    assert resp.status_code == 429
    assert resp.json()["error"]["code"] == "rate_limit_exceeded" and resp.json()["error"]["type"] == "tokens"
    assert "Please try again in 5.289s" in resp.json()["error"]["message"]
    assert resp.headers["retry-after"] == "6" and resp.headers["x-ratelimit-remaining-tokens"] == "0"
    ok = chat(fake, "groq")
    assert ok.status_code == 200 and "retry-after" not in ok.headers
    assert int(ok.headers["x-ratelimit-remaining-requests"]) > 0
    assert text_of("groq", events(ok)) == "Hello from groq"


def test_real_error_bodies_and_custom_headers(fake):
    fake.enqueue("gemini", Reply(status=429))
    err = chat(fake, "gemini").json()["error"]
    assert err["status"] == "RESOURCE_EXHAUSTED" and err["code"] == 429
    types = {d["@type"].rsplit(".", 1)[1]: d for d in err["details"]}
    assert types["RetryInfo"]["retryDelay"] == "34.4s" and types["QuotaFailure"]["violations"][0]["quotaId"]
    fake.enqueue("groq", Reply(status=503))
    resp = chat(fake, "groq")
    assert resp.status_code == 503 and resp.headers["content-type"] == "text/plain"
    assert resp.text.startswith("upstream connect error")
    fake.enqueue("openrouter", Reply(status=429, headers={"Retry-After": "3"}))
    resp = chat(fake, "openrouter")
    assert resp.json()["error"]["code"] == 429 and resp.headers["retry-after"] == "3"
    fake.enqueue("cerebras", Reply(status=429), Reply(status=500))
    assert chat(fake, "cerebras").json()["code"] == "request_quota_exceeded"  # 4xx: not wrapped
    assert chat(fake, "cerebras").json()["error"]["type"] == "server_error"   # 5xx: wrapped
    fake.enqueue("huggingface", Reply(status=402, body={"error": "custom"}))
    assert chat(fake, "huggingface").json() == {"error": "custom"}


def test_times(fake):
    fake.enqueue("cerebras", Reply(status=500, times=3), Reply(status=404))
    assert [chat(fake, "cerebras", stream=False).status_code for _ in range(5)] == [500, 500, 500, 404, 200]
    fake.set_default("cerebras", Reply(chunks=["changed"]))
    assert chat(fake, "cerebras", stream=False).json()["choices"][0]["message"]["content"] == "changed"


@pytest.mark.parametrize("provider,status", [("groq", 401), ("cerebras", 401), ("openrouter", 401),
                                             ("huggingface", 401), ("gemini", 403)])
def test_missing_auth(fake, provider, status):
    fake.enqueue(provider, Reply(status=500))  # must not be consumed by the rejected request
    resp = chat(fake, provider, headers={})
    assert resp.status_code == status
    if provider == "huggingface":
        assert resp.json() == {"error": "Invalid credentials in Authorization header"}
    if provider == "gemini":
        assert resp.json()["error"]["status"] == "PERMISSION_DENIED"
    assert chat(fake, provider).status_code == 500


def test_drop_after_breaks_stream(fake):
    fake.enqueue("groq", Reply(chunks=["a", "b", "c", "d"], drop_after=2))
    resp = chat(fake, "groq")
    got = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for line in resp.iter_lines(decode_unicode=True):
            got.append(line)
    assert text_of("groq", [json.loads(ln[6:]) for ln in got if ln.startswith("data: ")]) == "ab"
    assert fake.wait_for(lambda f: ("groq", "dropped") in f.outcomes)
    assert fake.disconnects == []


def test_malformed_and_error_event(fake):
    fake.enqueue("openrouter", Reply(malformed=True, error_event=stream_error_event("openrouter")))
    evs = events(chat(fake, "openrouter"))
    assert evs[2] == '{"choices": ['
    assert evs[-1]["error"]["code"] == "server_error" and evs[-1]["choices"][0]["finish_reason"] == "error"
    assert "[DONE]" not in evs


def test_client_disconnect_is_recorded(fake):
    fake.enqueue("cerebras", Reply(chunks=["x"] * 500, interval=0.02))
    resp = chat(fake, "cerebras")
    lines = resp.iter_lines()
    next(lines), next(lines)
    resp.close()
    assert fake.wait_disconnect("cerebras", timeout=3)
    assert fake.disconnects == ["cerebras"]


def test_disconnect_during_stall_and_prompt_stop():
    fake = FakeProviders()
    fake.enqueue("gemini", Reply(stall_after=1, stall_seconds=30))
    fake.enqueue("groq", Reply(stall_after=0, stall_seconds=30))
    resp = chat(fake, "gemini")
    next(resp.iter_lines())  # the first chunk arrives, then silence
    resp.close()
    assert fake.wait_disconnect("gemini", timeout=2)
    stalled = chat(fake, "groq")  # left stalled while we stop the server
    fake.enqueue("huggingface", Reply(never_answer=True))
    never = ThreadPoolExecutor(1).submit(chat, fake, "huggingface", timeout=10)
    assert fake.wait_for(lambda f: len(f.chat_requests()) == 3)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 2
    with pytest.raises(requests.exceptions.RequestException):
        list(stalled.iter_lines())
    stalled.close()
    with pytest.raises(requests.exceptions.RequestException):
        never.result()


def test_never_answer_read_timeout(fake):
    fake.enqueue("openrouter", Reply(never_answer=True))
    with pytest.raises(requests.exceptions.ReadTimeout):
        chat(fake, "openrouter", timeout=(2, 0.3))
    assert len(fake.chat_requests("openrouter")) == 1


def test_first_delay_sends_headers_before_first_token(fake):
    fake.enqueue("groq", Reply(first_delay=1.0))
    resp = chat(fake, "groq", timeout=(2, 0.5))  # headers arrive at once...
    assert resp.status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):  # ...the first event does not
        list(resp.iter_lines())
    fake.enqueue("groq", Reply(header_delay=1.0))
    with pytest.raises(requests.exceptions.ReadTimeout):
        chat(fake, "groq", timeout=(2, 0.5))


def test_keep_alive_reuses_connection(fake):
    with requests.Session() as s:
        for provider in PROVIDERS:
            events(chat(fake, provider, session=s))
            chat(fake, provider, stream=False, session=s).json()
        fake.enqueue("groq", Reply(status=429))
        chat(fake, "groq", stream=False, session=s)
        s.get(fake.base_url("gemini") + "/models", headers=AUTH).json()
    # Two calls per provider, the 429 and the model list: all on one connection.
    assert len({r.client for r in fake.requests}) == 1 and len(fake.requests) == 2 * len(PROVIDERS) + 2


def test_models(fake):
    body = requests.get(fake.base_url("groq") + "/models", headers=AUTH, timeout=5).json()
    assert body["object"] == "list" and "moonshotai/kimi-k2-instruct-0905" in [m["id"] for m in body["data"]]
    assert all(m["object"] == "model" and "owned_by" in m for m in body["data"])
    gem = requests.get(fake.base_url("gemini") + "/models", headers=AUTH, timeout=5).json()["models"]
    assert "models/gemini-3-flash-preview" in [m["name"] for m in gem]
    assert "streamGenerateContent" in gem[0]["supportedGenerationMethods"]
    fake.models["cerebras"] = ["only-one"]
    body = requests.get(fake.base_url("cerebras") + "/models", headers=AUTH, timeout=5).json()
    assert [m["id"] for m in body["data"]] == ["only-one"]
    assert fake.requests[-1].kind == "models" and fake.chat_requests() == []
    assert requests.get(fake.url + "/nope", timeout=5).status_code == 404
    assert requests.post(fake.base_url("groq") + "/completions", json={}, headers=AUTH, timeout=5).status_code == 404


def test_500_concurrent_streams(fake):
    fake.set_default("groq", Reply(first_delay=0.5))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=500) as pool:
        texts = list(pool.map(lambda _: text_of("groq", events(chat(fake, "groq", timeout=20))), range(500)))
    assert texts == ["Hello from groq"] * 500
    assert time.monotonic() - started < 6  # served concurrently, not one after another
    fake.clear()
    assert fake.requests == [] and fake.wait_for(lambda f: not f.requests, timeout=0.1)


# ----- tools, JSON output, images, embeddings -----

def tool_calls_of(provider, resp, stream):
    """[(id, name, arguments)] of an answer, streamed pieces joined by index as clients do; and its finish reason."""
    if provider == "gemini":
        evs = events(resp) if stream else [resp.json()]
        parts = [p for e in evs for p in e["candidates"][0]["content"]["parts"] if "functionCall" in p]
        return [(p.get("thoughtSignature"), p["functionCall"]["name"], json.dumps(p["functionCall"]["args"]))
                for p in parts], evs[-1]["candidates"][0]["finishReason"]
    if not stream:
        choice = resp.json()["choices"][0]
        return [(c["id"], c["function"]["name"], c["function"]["arguments"])
                for c in choice["message"]["tool_calls"]], choice["finish_reason"]
    calls, finish = {}, None
    for e in events(resp)[:-1]:
        for choice in e["choices"]:
            finish = choice.get("finish_reason") or finish
            for piece in choice["delta"].get("tool_calls") or []:
                call = calls.setdefault(piece["index"], ["", "", ""])
                call[0] += piece.get("id") or ""
                call[1] += (piece.get("function") or {}).get("name") or ""
                call[2] += (piece.get("function") or {}).get("arguments") or ""
    return [tuple(calls[i]) for i in sorted(calls)], finish


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_calls_in_each_providers_shape(fake, provider, stream):
    fake.enqueue(provider, Reply(tool_calls=[("get_weather", {"city": "Paris"}), ("now", "{}")]))
    calls, finish = tool_calls_of(provider, chat(fake, provider, stream=stream), stream)
    answered = fake.chat_requests(provider)[-1].answered_calls
    assert [(name, json.loads(args)) for _, name, args in calls] == [("get_weather", {"city": "Paris"}), ("now", {})]
    if provider == "gemini":
        assert finish == "STOP" and [a.id for a in answered] == [None, None]
        signature = answered[0].thought_signature
        assert [c[0] for c in calls] == [signature, None] and set(signature) & set("+/=")
    else:
        assert finish == "tool_calls" and [c[0] for c in calls] == [a.id for a in answered]
    text_only = chat(fake, provider, stream=False).json()
    assert "tool_calls" not in json.dumps(text_only) and "functionCall" not in json.dumps(text_only)


def test_openai_streams_a_calls_arguments_in_pieces_after_its_id_and_name(fake):
    fake.enqueue("huggingface", Reply(tool_calls=[("get_weather", {"city": "Paris"})]))
    evs = events(chat(fake, "huggingface"))
    assert evs[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    pieces = [e["choices"][0]["delta"]["tool_calls"][0] for e in evs[1:-2]]
    assert pieces[0] == {"index": 0, "id": pieces[0]["id"], "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}
    assert len(pieces) > 2 and all(p.keys() == {"index", "function"} for p in pieces[1:])
    assert "".join(p["function"]["arguments"] for p in pieces) == '{"city": "Paris"}'


def gemini_turn(signature):
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    return [{"role": "user", "parts": [{"text": "Weather?"}]},
            {"role": "model", "parts": [{**call, **({"thoughtSignature": signature} if signature else {})}, call]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}]}]


def test_gemini_3_refuses_a_call_of_the_current_turn_without_its_signature(fake):
    url = f"{fake.base_url('gemini')}/models/{MODELS['gemini']}:streamGenerateContent?alt=sse"
    fake.enqueue("gemini", Reply(chunks=["kept"]))
    refused = requests.post(url, json={"contents": gemini_turn(None)}, headers=AUTH, timeout=5)
    assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    message = refused.json()["error"]["message"]
    assert message.startswith("Function call is missing a thought_signature") and "default_api:get_weather" in message
    assert fake.chat_requests("gemini")[-1].refusal == message and fake.pending("gemini") == 1
    for signature in ("EpEgCo4g", "skip_thought_signature_validator"):  # only the first call of a step needs one
        assert requests.post(url, json={"contents": gemini_turn(signature)}, headers=AUTH, timeout=5).ok
    older = gemini_turn(None) + [{"role": "model", "parts": [{"text": "21C"}]},
                                 {"role": "user", "parts": [{"text": "Thanks"}]}]
    assert requests.post(url, json={"contents": older}, headers=AUTH, timeout=5).ok  # an earlier turn: not checked
    old_model = f"{fake.base_url('gemini')}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert requests.post(old_model, json={"contents": gemini_turn(None)}, headers=AUTH, timeout=5).ok


def test_json_content_answers_only_a_request_asking_for_json(fake):
    for provider in PROVIDERS:
        fake.enqueue(provider, Reply(json_content={"ok": True}), Reply(json_content={"ok": True}))
        plain = chat(fake, provider, stream=False).json()
        if provider == "gemini":
            body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                    "generationConfig": {"responseMimeType": "application/json"}}
            url = f"{fake.base_url(provider)}/models/{MODELS[provider]}:streamGenerateContent?alt=sse"
        else:
            body = {"model": MODELS[provider], "messages": [{"role": "user", "content": "hi"}], "stream": True,
                    "response_format": {"type": "json_object"}}
            url = f"{fake.base_url(provider)}/chat/completions"
        assert json.dumps(plain).count("Hello") == 1
        if provider == "groq":  # Groq takes response_format only without streaming
            refused = requests.post(url, json=body, headers=AUTH, timeout=5)
            assert refused.status_code == 400
            assert refused.json()["error"]["message"] == "response_format` does not support streaming"
            body["stream"] = False
            assert json.loads(requests.post(url, json=body, headers=AUTH, timeout=5).json()[
                "choices"][0]["message"]["content"]) == {"ok": True}
            continue
        assert json.loads(text_of(provider, events(requests.post(url, json=body, headers=AUTH, stream=True,
                                                                 timeout=5)))) == {"ok": True}


def test_images_are_recorded_and_a_text_only_groq_model_refuses_them(fake):
    image = {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
    body = {"messages": [{"role": "system", "content": "s"},
                         {"role": "user", "content": [{"type": "text", "text": "see"}, image]}]}
    url = f"{fake.base_url('groq')}/chat/completions"
    refused = requests.post(url, json={**body, "model": MODELS["groq"]}, headers=AUTH, timeout=5)
    assert (refused.status_code, refused.json()["error"]["message"]) == (400, "message[1].content must be a string")
    vision = requests.post(url, json={**body, "model": "meta-llama/llama-4-scout-17b-16e-instruct"}, headers=AUTH,
                           timeout=5)
    assert vision.ok and fake.chat_requests("groq")[-1].images() == [("image_url", {"url": "https://x.test/a.png"})]
    gemini = {"contents": [{"role": "user", "parts": [
        {"text": "see"}, {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/b"}}]}]}
    assert requests.post(f"{fake.base_url('gemini')}/models/{MODELS['gemini']}:generateContent", json=gemini,
                         headers=AUTH, timeout=5).ok
    assert fake.chat_requests("gemini")[-1].images() == [
        ("inlineData", {"mimeType": "image/png", "data": "iVBO"}),
        ("fileData", {"mimeType": "image/jpeg", "fileUri": "https://x.test/b"})]


def test_embeddings_in_each_providers_shape(fake):
    url = f"{fake.base_url('openrouter')}/embeddings"
    floats = requests.post(url, json={"model": "e", "input": ["a", "bb"]}, headers=AUTH, timeout=5).json()
    assert [(d["index"], d["embedding"]) for d in floats["data"]] == [(0, embedding_of("a")), (1, embedding_of("bb"))]
    assert floats["usage"] == {"prompt_tokens": 2, "total_tokens": 2} and len(floats["data"][0]["embedding"]) == 8
    packed = requests.post(url, json={"model": "e", "input": "a", "encoding_format": "base64", "dimensions": 3},
                           headers=AUTH, timeout=5).json()["data"][0]["embedding"]
    assert list(struct.unpack("<3f", base64.b64decode(packed))) == embedding_of("a", 3)
    gemini = f"{fake.base_url('gemini')}/models/gemini-embedding-001:batchEmbedContents"
    request = {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}}
    assert requests.post(gemini, json={"requests": [request]}, headers=AUTH, timeout=5).json() == {
        "embeddings": [{"values": embedding_of("a")}]}
    too_many = requests.post(gemini, json={"requests": [request] * 101}, headers=AUTH, timeout=5)
    assert too_many.status_code == 400 and "at most 100 requests" in too_many.json()["error"]["message"]
    groq = requests.post(f"{fake.base_url('groq')}/embeddings", json={"model": "e", "input": "a"}, headers=AUTH,
                         timeout=5)
    assert groq.status_code == 404 and groq.json()["error"]["code"] == "unknown_url"
    assert [(r.provider, r.kind, r.model) for r in fake.embedding_requests()] == [
        ("openrouter", "embeddings", "e"), ("openrouter", "embeddings", "e"),
        ("gemini", "embeddings", "gemini-embedding-001"), ("gemini", "embeddings", "gemini-embedding-001"),
        ("groq", "embeddings", "e")]
    assert fake.chat_requests() == []
