"""What each provider puts on the wire: the URL, the headers carrying its key, and the JSON body."""
from __future__ import annotations

import json

import pytest

from tests.providers_helpers import (
    CEREBRAS_KEY,
    CEREBRAS_STREAM_URL,
    GEMINI_KEY,
    GEMINI_STREAM,
    GEMINI_STREAM_URL,
    GEMINI_URL,
    GROQ_KEY,
    GROQ_STREAM_URL,
    HF_KEY,
    HF_STREAM_URL,
    HI,
    OPENROUTER_KEY,
    OPENROUTER_STREAM_URL,
    cerebras,
    gemini_provider,
    groq,
    huggingface,
    mocked,
    openrouter,
    sent_requests,
    sse,
    stream_all,
)
from utils.chat import ChatRequest, Message


@pytest.mark.parametrize("make, url, key", [
    (groq, GROQ_STREAM_URL, GROQ_KEY),
    (cerebras, CEREBRAS_STREAM_URL, CEREBRAS_KEY),
    (openrouter, OPENROUTER_STREAM_URL, OPENROUTER_KEY),
    (huggingface, HF_STREAM_URL, HF_KEY),
], ids=["groq", "cerebras", "openrouter", "huggingface"])
def test_openai_compatible_request_posts_to_chat_completions_with_a_bearer_key(make, url, key):
    provider = make()
    request = ChatRequest(messages=(Message("system", "be brief"), Message("user", "hi")),
                          options={"temperature": 0.6})
    with mocked() as rsps:
        rsps.post(url, body=sse("[DONE]"), content_type="text/event-stream")
        stream_all(provider, request)
        sent, = sent_requests(rsps)
    assert sent.url == url
    assert sent.headers["Authorization"] == f"Bearer {key}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Accept-Encoding"] == "identity"
    body = json.loads(sent.body)
    assert body["model"] == provider.model
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.6


def test_openrouter_asks_for_usage_accounting():
    with mocked() as rsps:
        rsps.post(OPENROUTER_STREAM_URL, body=sse("[DONE]"))
        stream_all(openrouter())
        sent, = sent_requests(rsps)
    assert json.loads(sent.body)["usage"] == {"include": True}


def test_a_model_named_on_the_request_replaces_the_configured_one():
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=sse("[DONE]"))
        rsps.post(f"{GEMINI_URL}/models/gemini-2.5-flash:streamGenerateContent?alt=sse", body=GEMINI_STREAM)
        stream_all(groq(), ChatRequest(messages=HI.messages, model="llama-3.3-70b-versatile"))
        stream_all(gemini_provider(), ChatRequest(messages=HI.messages, model="gemini-2.5-flash"))
        to_groq, to_gemini = sent_requests(rsps)
    assert json.loads(to_groq.body)["model"] == "llama-3.3-70b-versatile"
    assert to_gemini.url == f"{GEMINI_URL}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


@pytest.mark.parametrize("asked, sent", [(None, 256), (8192, 256), (64, 64)], ids=["unset", "larger", "smaller"])
def test_the_configured_max_tokens_ceiling_goes_on_the_wire(asked, sent):
    options = {} if asked is None else {"max_tokens": asked}
    request = ChatRequest(messages=HI.messages, options=options)
    with mocked() as rsps:
        rsps.post(CEREBRAS_STREAM_URL, body=sse("[DONE]"))
        rsps.post(GEMINI_STREAM_URL, body=GEMINI_STREAM)
        stream_all(cerebras(max_tokens=256), request)
        stream_all(gemini_provider(max_tokens=256), request)
        to_cerebras, to_gemini = sent_requests(rsps)
    assert json.loads(to_cerebras.body)["max_tokens"] == sent
    assert json.loads(to_gemini.body)["generationConfig"]["maxOutputTokens"] == sent


def test_gemini_request_goes_to_stream_generate_content_with_alt_sse_and_the_key_in_a_header():
    request = ChatRequest(messages=(Message("system", "be brief"), Message("user", "hi"),
                                    Message("assistant", "hello"), Message("user", "how are you?")),
                          options={"temperature": 1.0, "max_tokens": 1024})
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, body=GEMINI_STREAM)
        stream_all(gemini_provider(), request)
        sent, = sent_requests(rsps)
    assert sent.url == GEMINI_STREAM_URL
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    assert "Authorization" not in sent.headers
    assert GEMINI_KEY not in sent.url and "key=" not in sent.url
    assert json.loads(sent.body) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "hello"}]},
                     {"role": "user", "parts": [{"text": "how are you?"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"temperature": 1.0, "maxOutputTokens": 1024},
    }
