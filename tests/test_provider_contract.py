"""What every provider keeps, whatever its wire format: the same answer read from its own framing, the
key sent only where it belongs, and the same failover policy for the same failures."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from tests.providers_helpers import (
    CEREBRAS_KEY,
    CEREBRAS_STREAM_URL,
    GEMINI_KEY,
    GEMINI_STREAM_URL,
    GROQ_KEY,
    GROQ_STREAM_URL,
    HF_KEY,
    HF_STREAM_URL,
    OPENROUTER_KEY,
    OPENROUTER_STREAM_URL,
    arriving,
    cerebras,
    cerebras_chunk,
    gemini_event,
    gemini_provider,
    groq,
    groq_chunk,
    hf_chunk,
    huggingface,
    mocked,
    openrouter,
    openrouter_chunk,
    sent_requests,
    sse,
    stream_all,
    stream_until_error,
)
from utils.chat import Chunk, Usage


@dataclass(frozen=True)
class Contract:
    make: object
    name: str  # display name (X-Provider, /metrics)
    url: str
    key: str
    body: bytes  # "Hello" + " world", then a finish with usage, in the provider's own framing
    auth: tuple  # (header, value) that carries the key
    prompt_tokens: int  # the prompt tokens the body's usage reports (2 completion tokens in every body)
    reads_retry_after: bool = True  # a Retry-After header sets retry_after (Gemini reads RetryInfo in the body)


def openai_hello(chunk):
    return sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "Hello"}), chunk({"content": " world"}),
               chunk({}, "stop", usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}), "[DONE]")


CONTRACTS = [
    pytest.param(Contract(groq, "Groq", GROQ_STREAM_URL, GROQ_KEY, openai_hello(groq_chunk),
                          ("Authorization", f"Bearer {GROQ_KEY}"), 3), id="groq"),
    pytest.param(Contract(cerebras, "Cerebras", CEREBRAS_STREAM_URL, CEREBRAS_KEY, openai_hello(
        lambda delta, finish=None, **extra: cerebras_chunk(
            {"delta": delta, **({"finish_reason": finish} if finish else {})}, **extra)),
        ("Authorization", f"Bearer {CEREBRAS_KEY}"), 3), id="cerebras"),
    pytest.param(Contract(openrouter, "OpenRouter (DeepSeek)", OPENROUTER_STREAM_URL, OPENROUTER_KEY,
                          b": OPENROUTER PROCESSING\n\n" + openai_hello(openrouter_chunk),
                          ("Authorization", f"Bearer {OPENROUTER_KEY}"), 3), id="openrouter"),
    pytest.param(Contract(gemini_provider, "Gemini 3 Flash", GEMINI_STREAM_URL, GEMINI_KEY, sse(
        gemini_event([{"text": "Hello"}], {"candidatesTokenCount": 1}),
        gemini_event([{"text": " world"}], {"candidatesTokenCount": 2}),
        gemini_event([{"text": "", "thoughtSignature": "Ep"}], {"candidatesTokenCount": 2}, finish="STOP"),
        end="\r\n\r\n"), ("x-goog-api-key", GEMINI_KEY), 9, reads_retry_after=False), id="gemini"),
    pytest.param(Contract(huggingface, "Hugging Face Llama 3.1 8B", HF_STREAM_URL, HF_KEY, openai_hello(hf_chunk),
                          ("Authorization", f"Bearer {HF_KEY}"), 3), id="huggingface"),
]


def hello(contract) -> list[Chunk]:
    with mocked() as rsps:
        rsps.post(contract.url, body=contract.body, content_type="text/event-stream")
        return stream_all(contract.make())


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_provider_streams_text_deltas_in_order_and_ends_with_stop(contract):
    provider = contract.make()
    with mocked() as rsps:
        rsps.post(contract.url, body=contract.body, content_type="text/event-stream")
        chunks = stream_all(provider)
        sent, = sent_requests(rsps)
    assert sent.url == contract.url  # the key travels in a header, never in the URL
    assert sent.headers[contract.auth[0]] == contract.auth[1]
    assert [h for h in ("Authorization", "x-goog-api-key") if h in sent.headers] == [contract.auth[0]]
    assert [c.text for c in chunks if c.text] == ["Hello", " world"]
    assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage(contract.prompt_tokens, 2))
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert Chunk() not in chunks
    assert provider.name == contract.name


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_provider_parses_its_stream_the_same_when_it_arrives_one_byte_at_a_time(contract):
    whole = hello(contract)
    assert [c.text for c in whole if c.text] == ["Hello", " world"]
    with mocked() as rsps:
        rsps.post(contract.url, body=arriving(*[contract.body[i:i + 1] for i in range(len(contract.body))]),
                  content_type="text/event-stream")
        assert stream_all(contract.make()) == whole


@pytest.mark.parametrize("status", [401, 403, 429, 500, 502, 503])
@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_provider_treats_auth_rate_limit_and_server_errors_as_retryable(contract, status):
    with mocked() as rsps:
        rsps.post(contract.url, json={"error": {"message": "nope", "code": status}}, status=status,
                  headers={"retry-after": "3"})
        _, error = stream_until_error(contract.make())
    assert (error.retryable, error.model_gone) == (True, False)
    assert (error.upstream_status, error.status) == (status, 502)
    assert error.kind == ("rate_limited" if status == 429 else f"http_{status}")
    assert error.message == f"upstream answered {status}: nope"
    assert error.retry_after == (3.0 if contract.reads_retry_after else None)
    assert contract.key not in str(error)


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_provider_reports_a_404_as_its_model_gone(contract):
    with mocked() as rsps:
        rsps.post(contract.url, json={"error": {"message": "model not found", "code": 404}}, status=404)
        _, error = stream_until_error(contract.make())
    assert (error.model_gone, error.retryable, error.upstream_status, error.kind) == (True, True, 404, "http_404")


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_provider_turns_a_refused_connection_into_a_connect_error(contract):
    with mocked() as rsps:
        rsps.post(contract.url, body=requests.exceptions.ConnectionError("Connection refused"))
        _, error = stream_until_error(contract.make())
    assert (error.kind, error.retryable, error.upstream_status) == ("connect", True, 0)


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_provider_raises_malformed_for_a_broken_event(contract):
    with mocked() as rsps:
        rsps.post(contract.url, body=b"data: {oops\n\n", content_type="text/event-stream")
        _, error = stream_until_error(contract.make())
    assert (error.kind, error.message) == ("malformed", "the provider sent a malformed event")
