"""Each provider's translation both ways: the request it sends, the stream it reads, the errors it raises.

HTTP is faked with `responses` at the session boundary; bodies are copied from PROVIDERS.md captures.
A body given as a `Pieces` reader arrives one piece per socket read, so the real `Upstream.iter_bytes`
path sees the stream cut where a network would cut it.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest
import requests
import responses

from providers import build_providers, gemini, openai_compat
from providers.cerebras import CerebrasProvider
from providers.errors import parse_retry_after, status_error
from providers.gemini import GeminiProvider
from providers.groq import GroqProvider
from providers.huggingface import HuggingFaceProvider
from providers.openrouter import OpenRouterProvider
from utils.chat import ChatRequest, Chunk, Message, Usage
from utils.errors import ProviderError
from utils.settings import ProviderSettings, Settings
from utils.upstream import Upstream
from utils.wire import error_message

GROQ_KEY = "gsk_test_groq_0123456789"
CEREBRAS_KEY = "csk-test-cerebras-0123456789"
OPENROUTER_KEY = "sk-or-v1-test-openrouter-0123456789"
GEMINI_KEY = "AIzaSy-test-gemini-0123456789"
HF_KEY = "hf_test_huggingface_0123456789"

GROQ_URL = "https://api.groq.test/openai/v1"
CEREBRAS_URL = "https://api.cerebras.test/v1"
OPENROUTER_URL = "https://openrouter.test/api/v1"
GEMINI_URL = "https://generativelanguage.test/v1beta"
HF_URL = "https://router.huggingface.test/v1"

HI = ChatRequest(messages=(Message("user", "hi"),))


def groq(max_tokens=0):
    return GroqProvider(ProviderSettings("groq", GROQ_KEY, GROQ_URL, "moonshotai/kimi-k2-instruct-0905",
                                         max_tokens), Upstream(1, 1, 1))


def cerebras(max_tokens=0):
    return CerebrasProvider(ProviderSettings("cerebras", CEREBRAS_KEY, CEREBRAS_URL, "zai-glm-4.7", max_tokens),
                            Upstream(1, 1, 1))


def openrouter(max_tokens=0):
    return OpenRouterProvider(ProviderSettings("openrouter", OPENROUTER_KEY, OPENROUTER_URL,
                                               "deepseek/deepseek-r1-0528:free", max_tokens), Upstream(1, 1, 1))


def gemini_provider(max_tokens=0):
    return GeminiProvider(ProviderSettings("gemini", GEMINI_KEY, GEMINI_URL, "gemini-3-flash-preview", max_tokens),
                          Upstream(1, 1, 1))


def huggingface(max_tokens=0):
    return HuggingFaceProvider(ProviderSettings("huggingface", HF_KEY, HF_URL, "meta-llama/Llama-3.1-8B-Instruct",
                                                max_tokens), Upstream(1, 1, 1))


GROQ_STREAM_URL = f"{GROQ_URL}/chat/completions"
CEREBRAS_STREAM_URL = f"{CEREBRAS_URL}/chat/completions"
OPENROUTER_STREAM_URL = f"{OPENROUTER_URL}/chat/completions"
GEMINI_STREAM_URL = f"{GEMINI_URL}/models/gemini-3-flash-preview:streamGenerateContent?alt=sse"
HF_STREAM_URL = f"{HF_URL}/chat/completions"


# --- fakes ---

class Pieces(io.RawIOBase):
    """A socket that returns one piece per read, then ends (or raises `then`). Tracks being closed."""

    def __init__(self, pieces, then: Exception | None = None):
        self.pieces = [p if isinstance(p, bytes) else p.encode() for p in pieces]
        self.then = then

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.pieces:
            if self.then is not None:
                raise self.then
            return 0
        piece = self.pieces.pop(0)
        buffer[:len(piece)] = piece
        return len(piece)


def arriving(*pieces, then=None) -> io.BufferedReader:
    return io.BufferedReader(Pieces(pieces, then))


def sse(*events, end="\n\n") -> bytes:
    """SSE body: dicts become JSON `data:` lines, strings starting with ':' stay comments, others are raw data."""
    lines = []
    for event in events:
        if isinstance(event, str) and event.startswith(":"):
            lines.append(event + end)
        else:
            lines.append("data: " + (event if isinstance(event, str) else json.dumps(event)) + end)
    return "".join(lines).encode()


def mocked():
    return responses.RequestsMock(assert_all_requests_are_fired=True)


def stream_all(provider, request=HI) -> list[Chunk]:
    return list(provider.stream(request))


def stream_until_error(provider, request=HI) -> tuple[list[Chunk], ProviderError]:
    chunks = []
    with pytest.raises(ProviderError) as caught:
        for chunk in provider.stream(request):
            chunks.append(chunk)
    return chunks, caught.value


def sent_requests(rsps) -> list[requests.PreparedRequest]:
    # Read inside the `with`: RequestsMock forgets its calls when the block exits.
    return [call.request for call in rsps.calls]


# --- realistic streams (PROVIDERS.md) ---

def groq_chunk(delta, finish_reason=None, **extra):
    return {"id": "chatcmpl-09d64d2a-5a1f", "object": "chat.completion.chunk", "created": 1770770798,
            "model": "moonshotai/kimi-k2-instruct-0905", "system_fingerprint": "fp_f8b414701e",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], **extra}


GROQ_USAGE = {"queue_time": 0.041876985, "prompt_tokens": 45, "prompt_time": 0.001954727, "completion_tokens": 607,
              "completion_time": 2.245177008, "total_tokens": 652, "total_time": 2.247131735}
GROQ_STREAM = sse(
    groq_chunk({"role": "assistant", "content": ""}, x_groq={"id": "req_01kh52m3qqem4sw141xf026ehx", "seed": 167346302}),
    groq_chunk({"content": "Int"}),
    groq_chunk({"content": "roduction"}),
    groq_chunk({}, "stop", x_groq={"id": "req_01kh52m3qqem4sw141xf026ehx", "usage": GROQ_USAGE}, usage=GROQ_USAGE),
    "[DONE]",
)
GROQ_STREAM_2024 = sse(  # older captures: usage only inside x_groq
    groq_chunk({"role": "assistant", "content": ""}, x_groq={"id": "req_01j0"}),
    groq_chunk({"content": "Hi"}),
    groq_chunk({}, "stop", x_groq={"id": "req_01j0", "usage": GROQ_USAGE}),
    "[DONE]",
)


def cerebras_chunk(choice, **extra):
    return {"id": "chatcmpl-d89b5e0c", "choices": [{**choice, "index": 0}], "created": 1779146781,
            "model": "zai-glm-4.7", "system_fingerprint": "fp_a33c042689e969567008",
            "object": "chat.completion.chunk", **extra}


CEREBRAS_USAGE = {"total_tokens": 387, "completion_tokens": 65,
                  "completion_tokens_details": {"accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
                                                "reasoning_tokens": 58},
                  "prompt_tokens": 322, "prompt_tokens_details": {"cached_tokens": 256}}
CEREBRAS_STREAM = sse(
    cerebras_chunk({"delta": {"role": "assistant"}}),
    cerebras_chunk({"delta": {"reasoning": "The"}}),
    cerebras_chunk({"delta": {"reasoning": " user is asking about a \""}}),
    cerebras_chunk({"delta": {"content": "Paris"}}),
    cerebras_chunk({"delta": {"content": " is the capital."}}),
    cerebras_chunk({"delta": {}, "finish_reason": "stop"}, usage=CEREBRAS_USAGE,
                   time_info={"created": 1779146781.786984, "queue_time": 0.002922005, "prompt_time": 0.010518105,
                              "completion_time": 0.118095092, "total_time": 0.1329927}),
    "[DONE]",
)


def openrouter_chunk(delta, finish_reason=None, choices=None, **extra):
    choice = {"index": 0, "delta": {"role": "assistant", **delta}, "finish_reason": finish_reason,
              "native_finish_reason": finish_reason, "logprobs": None}
    return {"id": "gen-1768896871-9HgAQqS1Z72C6gApaidi", "provider": "Chutes", "model": "deepseek/deepseek-r1-0528:free",
            "object": "chat.completion.chunk", "created": 1768896871,
            "choices": [choice] if choices is None else choices, **extra}


OPENROUTER_USAGE = {"prompt_tokens": 7007, "completion_tokens": 49, "total_tokens": 7056}


def reasoning_delta(text):
    return {"content": "", "reasoning": text,
            "reasoning_details": [{"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}]}


def openrouter_stream(usage_choices=None):
    return sse(
        ": OPENROUTER PROCESSING",
        ": OPENROUTER PROCESSING",
        openrouter_chunk({"content": "", "reasoning": None, "reasoning_details": []}),
        openrouter_chunk(reasoning_delta("Okay, the user")),
        openrouter_chunk(reasoning_delta(" says hi.")),
        ": OPENROUTER PROCESSING",
        openrouter_chunk({"content": "There", "reasoning": "", "reasoning_details": []}),
        openrouter_chunk({"content": " you are.", "reasoning": None, "reasoning_details": []}),
        openrouter_chunk({"content": "", "reasoning": None, "reasoning_details": []}, "stop"),
        openrouter_chunk({"content": ""}, choices=usage_choices, usage=OPENROUTER_USAGE),
        "[DONE]",
    )


OPENROUTER_MIDSTREAM_ERROR = {
    "id": "cmpl-abc123", "object": "chat.completion.chunk", "created": 1768896871, "model": "deepseek/deepseek-r1-0528:free",
    "provider": "Chutes", "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}


def gemini_event(parts, usage, finish=None):
    candidate = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate],
            "usageMetadata": {"promptTokenCount": 9, **usage, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9}]},
            "modelVersion": "gemini-3-flash-preview", "responseId": "M3iLaY-AI7zTxN8P3Piw4Qg"}


GEMINI_STREAM = sse(
    gemini_event([{"text": "**Counting the letters**", "thought": True}],
                 {"totalTokenCount": 120, "thoughtsTokenCount": 111}),
    gemini_event([{"text": "There are **3** \"r\"s in strawberry.\n\n"}],
                 {"candidatesTokenCount": 13, "totalTokenCount": 324, "thoughtsTokenCount": 302}),
    gemini_event([{"text": "", "thoughtSignature": "EpAICo0IAdHtim8"}],
                 {"candidatesTokenCount": 14, "totalTokenCount": 325, "thoughtsTokenCount": 302}, finish="STOP"),
    end="\r\n\r\n",
)


def hf_chunk(delta, finish_reason=None, choices=None, **extra):
    return {"id": "chatcmpl-7c1e", "object": "chat.completion.chunk", "created": 1768896871,
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
            if choices is None else choices, **extra}


HF_STREAM = sse(
    hf_chunk({"role": "assistant", "content": ""}),
    hf_chunk({"content": "Hello"}),
    hf_chunk({"content": "!"}),
    hf_chunk({}, "stop"),
    hf_chunk(None, choices=[], usage={"prompt_tokens": 36, "completion_tokens": 3, "total_tokens": 39}),
    "[DONE]",
)


# ===================== Pure translation: plain dicts in, plain dicts out =====================

def test_openai_request_carries_model_messages_stream_and_usage_option():
    request = ChatRequest(messages=(Message("system", "be brief"), Message("user", "hi"), Message("assistant", "yo")))
    assert openai_compat.to_upstream(request, "m", stream=True) == {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "yo"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_openai_request_without_streaming_has_no_stream_options():
    assert "stream_options" not in openai_compat.to_upstream(HI, "m", stream=False)


def test_openai_request_passes_known_options_and_drops_unknown_and_null_ones():
    request = ChatRequest(messages=HI.messages, options={"temperature": 0.6, "top_p": 0.9, "stop": ["\n"], "seed": 7,
                                                         "user": "u1", "max_tokens": 64, "logit_bias": {"1": 2},
                                                         "tools": [], "frequency_penalty": None})
    body = openai_compat.to_upstream(request, "m", stream=True)
    assert {k: v for k, v in body.items() if k not in ("model", "messages", "stream", "stream_options")} == {
        "temperature": 0.6, "top_p": 0.9, "stop": ["\n"], "seed": 7, "user": "u1", "max_tokens": 64}


@pytest.mark.parametrize("asked, cap, sent", [
    (None, 512, 512),      # the client set none: the ceiling applies
    (4096, 512, 512),      # the client asked for more: the ceiling applies
    (100, 512, 100),       # the client asked for less: theirs stands
    (512, 512, 512),
    (0, 512, 512),
    (4096, 0, 4096),       # no ceiling configured
    (None, 0, None),
])
def test_openai_max_tokens_ceiling(asked, cap, sent):
    options = {} if asked is None else {"max_tokens": asked}
    body = openai_compat.to_upstream(ChatRequest(messages=HI.messages, options=options), "m", stream=True,
                                     max_tokens_cap=cap)
    assert body.get("max_tokens") == sent


def test_gemini_request_uses_contents_with_model_role_and_system_instruction():
    request = ChatRequest(messages=(Message("system", "be brief"), Message("user", "hi"),
                                    Message("assistant", "hello"), Message("system", "in English"),
                                    Message("user", "again")))
    assert gemini.to_upstream(request) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "hello"}]},
                     {"role": "user", "parts": [{"text": "again"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}, {"text": "in English"}]},
    }


def test_gemini_request_maps_openai_options_to_generation_config():
    request = ChatRequest(messages=HI.messages, options={"temperature": 1.0, "top_p": 0.95, "max_tokens": 1024,
                                                         "stop": "END", "seed": 3, "user": "u1", "logit_bias": {}})
    assert gemini.to_upstream(request)["generationConfig"] == {
        "temperature": 1.0, "topP": 0.95, "maxOutputTokens": 1024, "stopSequences": ["END"], "seed": 3}


def test_gemini_request_without_options_has_no_generation_config():
    assert "generationConfig" not in gemini.to_upstream(HI)
    assert "systemInstruction" not in gemini.to_upstream(HI)


@pytest.mark.parametrize("asked, cap, sent", [(None, 512, 512), (4096, 512, 512), (100, 512, 100), (4096, 0, 4096)])
def test_gemini_max_output_tokens_ceiling(asked, cap, sent):
    options = {} if asked is None else {"max_tokens": asked}
    config = gemini.to_upstream(ChatRequest(messages=HI.messages, options=options), max_tokens_cap=cap)
    assert config["generationConfig"]["maxOutputTokens"] == sent


def test_openai_chunk_with_content_becomes_text():
    assert openai_compat.parse_chunk(groq_chunk({"content": "Int"})) == Chunk(text="Int")


def test_openai_role_only_first_chunk_produces_nothing():
    assert openai_compat.parse_chunk(groq_chunk({"role": "assistant", "content": ""}, x_groq={"id": "req_1"})) is None
    assert openai_compat.parse_chunk(cerebras_chunk({"delta": {"role": "assistant"}})) is None


def test_openai_empty_delta_produces_nothing():
    assert openai_compat.parse_chunk(groq_chunk({})) is None
    assert openai_compat.parse_chunk(openrouter_chunk({"content": "", "reasoning": None, "reasoning_details": []})) is None
    assert openai_compat.parse_chunk({"choices": []}) is None


def test_openai_usage_is_read_at_top_level_and_inside_x_groq():
    top = groq_chunk({}, "stop", usage=GROQ_USAGE)
    inside = groq_chunk({}, "stop", x_groq={"id": "req_1", "usage": GROQ_USAGE})
    expected = Chunk(finish_reason="stop", usage=Usage(45, 607))
    assert openai_compat.parse_chunk(top) == openai_compat.parse_chunk(inside) == expected


def test_openai_reasoning_and_deepseek_reasoning_content_are_reasoning_not_text():
    assert openai_compat.parse_chunk(openrouter_chunk(reasoning_delta("hmm"))) == Chunk(reasoning="hmm")
    assert openai_compat.parse_chunk(hf_chunk({"reasoning_content": "hmm"})) == Chunk(reasoning="hmm")


@pytest.mark.parametrize("event", [
    {"error": {"message": "Failed to call a function. Please adjust your prompt.", "type": "invalid_request_error",
               "code": "tool_use_failed", "failed_generation": "<tool>", "status_code": 400}},
    OPENROUTER_MIDSTREAM_ERROR,
    {"error": "Input validation error", "error_type": "generation"},
], ids=["groq", "openrouter", "string"])
def test_openai_error_event_raises_with_the_providers_message(event):
    with pytest.raises(ProviderError) as caught:
        openai_compat.parse_chunk(event)
    assert caught.value.kind == "error_event"
    assert caught.value.retryable


def test_gemini_thought_parts_are_reasoning_and_the_rest_is_text():
    event = gemini_event([{"text": "**Planning**", "thought": True}, {"text": "Answer"}], {"thoughtsTokenCount": 5})
    assert gemini.parse_response(event) == Chunk(text="Answer", reasoning="**Planning**", usage=Usage(9, 5))


def test_gemini_usage_counts_thoughts_as_completion_tokens():
    event = gemini_event([{"text": "x"}], {"candidatesTokenCount": 28, "thoughtsTokenCount": 244,
                                           "totalTokenCount": 281})
    assert gemini.parse_response(event).usage == Usage(9, 272)


def test_gemini_last_event_with_empty_text_and_thought_signature_is_a_finish_not_an_error():
    event = gemini_event([{"text": "", "thoughtSignature": "EpAICo0I"}], {"candidatesTokenCount": 14}, finish="STOP")
    assert gemini.parse_response(event) == Chunk(finish_reason="stop", usage=Usage(9, 14))


def test_gemini_event_with_nothing_in_it_produces_nothing():
    assert gemini.parse_response({"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}}]}) is None
    assert gemini.parse_response({}) is None


def test_gemini_error_event_raises():
    with pytest.raises(ProviderError) as caught:
        gemini.parse_response({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
    assert caught.value.kind == "error_event"
    assert "overloaded" in caught.value.message


@pytest.mark.parametrize("data", ["{not json", '{"choices": [', "[1, 2]", '"text"', "null"])
def test_a_malformed_event_raises_malformed(data):
    for provider in (groq(), gemini_provider()):
        with pytest.raises(ProviderError) as caught:
            provider.parse_data(data)
        assert caught.value.kind == "malformed"


def test_done_marker_produces_nothing():
    assert groq().parse_data("[DONE]") is None


@pytest.mark.parametrize("body, expected", [
    ({"error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}},
     ("Invalid API Key", "invalid_api_key")),
    ({"message": "Wrong API Key", "type": "invalid_request_error", "param": "api_key", "code": "wrong_api_key"},
     ("Wrong API Key", "wrong_api_key")),
    ({"status_code": 500, "error": {"message": "Encountered a server error, please try again.", "type": "server_error",
                                    "param": "", "code": "", "id": ""}},
     ("Encountered a server error, please try again.", None)),
    ({"error": {"message": "No endpoints found for deepseek/deepseek-r1:free.", "code": 404}},
     ("No endpoints found for deepseek/deepseek-r1:free.", "404")),
    ({"error": "Invalid credentials in Authorization header"}, ("Invalid credentials in Authorization header", None)),
    ("upstream connect error or disconnect/reset before headers. reset reason: overflow",
     ("upstream connect error or disconnect/reset before headers. reset reason: overflow", None)),
    ("", ("no details", None)),
], ids=["groq", "cerebras-4xx", "cerebras-5xx", "openrouter", "hf-string", "plain-text", "empty"])
def test_error_message_reads_every_providers_body_shape(body, expected):
    assert error_message(body) == expected


@pytest.mark.parametrize("value, seconds", [("6", 6.0), ("5.289", 5.289), ("0", 0.0), (None, None), ("", None),
                                            ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("-3", None)])
def test_retry_after_header_is_read_in_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize("body, seconds", [
    ({"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"}]}}, 34.4),
    ({"error": {"details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]}}, 2.0),
    ({"error": {"details": []}}, None),
    ({"error": {"code": 429}}, None),
    ("plain text", None),
])
def test_gemini_retry_delay_is_read_from_retry_info(body, seconds):
    assert gemini.retry_delay(body) == seconds


@pytest.mark.parametrize("status, code, retryable, model_gone, kind", [
    (400, None, False, False, "http_400"),
    (413, None, False, False, "http_413"),
    (422, None, False, False, "http_422"),
    (400, "model_decommissioned", True, True, "http_400"),
    (400, "model_not_supported", True, True, "http_400"),
    (404, "model_not_found", True, True, "http_404"),
    (404, None, True, True, "http_404"),
    (401, "invalid_api_key", True, False, "http_401"),
    (402, None, True, False, "http_402"),
    (403, None, True, False, "http_403"),
    (429, "rate_limit_exceeded", True, False, "rate_limited"),
    (500, None, True, False, "http_500"),
    (503, None, True, False, "http_503"),
])
def test_status_error_policy(status, code, retryable, model_gone, kind):
    error = status_error(status, "message", code=code)
    assert (error.retryable, error.model_gone, error.kind, error.upstream_status) == (retryable, model_gone, kind, status)
    assert error.status == (400 if not retryable else 502)


# ===================== Request shape on the wire =====================

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
    assert "/models/gemini-2.5-flash:streamGenerateContent" in to_gemini.url


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


# ===================== Reading each provider's stream =====================

def test_groq_stream_skips_the_role_only_chunk_and_reads_usage_from_the_last_chunk():
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=GROQ_STREAM, content_type="text/event-stream")
        chunks = stream_all(groq())
    assert chunks == [Chunk(text="Int"), Chunk(text="roduction"), Chunk(finish_reason="stop", usage=Usage(45, 607))]


def test_groq_stream_from_2024_has_usage_only_in_x_groq():
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=GROQ_STREAM_2024, content_type="text/event-stream")
        chunks = stream_all(groq())
    assert chunks == [Chunk(text="Hi"), Chunk(finish_reason="stop", usage=Usage(45, 607))]


def test_groq_error_event_under_200_is_raised_after_the_text_before_it():
    body = sse(groq_chunk({"role": "assistant", "content": ""}), groq_chunk({"content": "Calling"}),
               {"error": {"message": "Failed to call a function. Please adjust your prompt. See 'failed_generation' "
                                     "for more details.", "type": "invalid_request_error", "code": "tool_use_failed",
                          "failed_generation": "<function=x>", "status_code": 400}})
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=body, content_type="text/event-stream")
        chunks, error = stream_until_error(groq())
    assert chunks == [Chunk(text="Calling")]
    assert error.kind == "error_event"
    assert "Failed to call a function" in error.message


def test_cerebras_reasoning_comes_first_and_is_kept_apart_from_the_answer():
    with mocked() as rsps:
        rsps.post(CEREBRAS_STREAM_URL, body=CEREBRAS_STREAM, content_type="text/event-stream")
        chunks = stream_all(cerebras())
    assert chunks == [
        Chunk(reasoning="The"), Chunk(reasoning=" user is asking about a \""),
        Chunk(text="Paris"), Chunk(text=" is the capital."),
        Chunk(finish_reason="stop", usage=Usage(322, 65)),
    ]


def test_openrouter_keep_alive_comments_are_skipped():
    body = sse(": OPENROUTER PROCESSING", ": OPENROUTER PROCESSING", openrouter_chunk({"content": "Hi"}), "[DONE]")
    with mocked() as rsps:
        rsps.post(OPENROUTER_STREAM_URL, body=body, content_type="text/event-stream")
        assert stream_all(openrouter()) == [Chunk(text="Hi")]


def test_openrouter_reasoning_is_kept_out_of_the_answer_text():
    with mocked() as rsps:
        rsps.post(OPENROUTER_STREAM_URL, body=openrouter_stream(), content_type="text/event-stream")
        chunks = stream_all(openrouter())
    assert "".join(c.text for c in chunks) == "There you are."
    assert "".join(c.reasoning for c in chunks) == "Okay, the user says hi."
    assert all(not (c.text and c.reasoning) for c in chunks)


@pytest.mark.parametrize("usage_choices", [None, []], ids=["choice-with-empty-delta", "no-choices"])
def test_openrouter_usage_chunk_after_the_finish_chunk_is_read(usage_choices):
    with mocked() as rsps:
        rsps.post(OPENROUTER_STREAM_URL, body=openrouter_stream(usage_choices), content_type="text/event-stream")
        chunks = stream_all(openrouter())
    assert chunks[-2:] == [Chunk(finish_reason="stop"), Chunk(usage=Usage(7007, 49))]


def test_openrouter_midstream_error_event_is_raised_after_the_text_before_it():
    body = sse(": OPENROUTER PROCESSING", openrouter_chunk({"content": "Once upon"}),
               openrouter_chunk({"content": " a time"}), OPENROUTER_MIDSTREAM_ERROR)
    with mocked() as rsps:
        rsps.post(OPENROUTER_STREAM_URL, body=body, content_type="text/event-stream")
        chunks, error = stream_until_error(openrouter())
    assert chunks == [Chunk(text="Once upon"), Chunk(text=" a time")]
    assert error.kind == "error_event"
    assert error.retryable
    assert "Provider disconnected unexpectedly" in error.message


def test_gemini_crlf_stream_gives_thoughts_as_reasoning_then_text_then_the_finish():
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, body=GEMINI_STREAM, content_type="text/event-stream")
        chunks = stream_all(gemini_provider())
    assert chunks == [
        Chunk(reasoning="**Counting the letters**", usage=Usage(9, 111)),
        Chunk(text="There are **3** \"r\"s in strawberry.\n\n", usage=Usage(9, 315)),
        Chunk(finish_reason="stop", usage=Usage(9, 316)),
    ]


def test_gemini_stream_ends_without_done_and_the_last_usage_is_the_total():
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, body=GEMINI_STREAM, content_type="text/event-stream")
        chunks = stream_all(gemini_provider())
    assert b"[DONE]" not in GEMINI_STREAM
    assert [c.usage.completion_tokens for c in chunks] == [111, 315, 316]


def test_gemini_midstream_error_event_is_raised_after_the_text_before_it():
    body = sse(gemini_event([{"text": "Partial"}], {"candidatesTokenCount": 1}),
               {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                          "status": "UNAVAILABLE"}}, end="\r\n\r\n")
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, body=body, content_type="text/event-stream")
        chunks, error = stream_until_error(gemini_provider())
    assert [c.text for c in chunks] == ["Partial"]
    assert error.kind == "error_event"


def test_huggingface_stream_reads_text_finish_and_the_usage_chunk_without_choices():
    with mocked() as rsps:
        rsps.post(HF_STREAM_URL, body=HF_STREAM, content_type="text/event-stream")
        chunks = stream_all(huggingface())
    assert chunks == [Chunk(text="Hello"), Chunk(text="!"), Chunk(finish_reason="stop"), Chunk(usage=Usage(36, 3))]


def test_the_done_marker_ends_the_answer_without_a_chunk_of_its_own():
    body = sse(groq_chunk({"content": "Hi"}), "[DONE]")
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=body)
        assert stream_all(groq()) == [Chunk(text="Hi")]


def test_a_malformed_event_in_the_stream_raises_malformed_after_the_text_before_it():
    body = sse(groq_chunk({"content": "Hi"})) + b'data: {"choices":[{"delta":{"content":\n\n'
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=body, content_type="text/event-stream")
        chunks, error = stream_until_error(groq())
    assert chunks == [Chunk(text="Hi")]
    assert error.kind == "malformed"


def test_a_stream_cut_into_network_pieces_mid_line_parses_the_same():
    whole = CEREBRAS_STREAM
    pieces = [whole[i:i + 7] for i in range(0, len(whole), 7)]
    with mocked() as rsps:
        rsps.post(CEREBRAS_STREAM_URL, body=arriving(*pieces), content_type="text/event-stream")
        chunks = stream_all(cerebras())
    assert "".join(c.text for c in chunks) == "Paris is the capital."
    assert chunks[-1] == Chunk(finish_reason="stop", usage=Usage(322, 65))


def test_a_chunk_is_yielded_before_the_rest_of_the_stream_is_read():
    raw = Pieces([sse(groq_chunk({"content": "first"})), sse(groq_chunk({"content": "second"}))])
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=io.BufferedReader(raw), content_type="text/event-stream")
        stream = groq().stream(HI)
        assert next(stream) == Chunk(text="first")
        assert len(raw.pieces) == 1  # the second piece is still "on the wire"
        stream.close()


def test_closing_the_stream_early_closes_the_upstream_response():
    reader = arriving(sse(groq_chunk({"content": "first"})), sse(groq_chunk({"content": "second"})))
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=reader, content_type="text/event-stream")
        stream = groq().stream(HI)
        next(stream)
        stream.close()
    assert reader.closed


def test_an_error_status_closes_the_upstream_response():
    reader = arriving(b'{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}')
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=reader, status=401, content_type="application/json")
        stream_until_error(groq())
    assert reader.closed


def test_a_connection_dropped_mid_stream_raises_broken_after_the_text_before_it():
    reader = arriving(sse(groq_chunk({"content": "Hel"})), then=ConnectionResetError(104, "Connection reset by peer"))
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=reader, content_type="text/event-stream")
        chunks, error = stream_until_error(groq())
    assert chunks == [Chunk(text="Hel")]
    assert error.kind == "broken"
    assert error.retryable


# ===================== Error statuses and bodies =====================

@dataclass(frozen=True)
class UpstreamError:
    status: int
    body: object  # dict -> JSON, str -> plain text
    retryable: bool
    model_gone: bool = False
    retry_after: float | None = None
    headers: tuple = ()
    says: str = ""  # a phrase the error message must carry


GROQ_ERRORS = {
    "401-invalid-key": UpstreamError(401, {"error": {"message": "Invalid API Key", "type": "invalid_request_error",
                                                     "code": "invalid_api_key"}}, True, says="Invalid API Key"),
    "404-model-not-found": UpstreamError(404, {"error": {
        "message": "The model `moonshotai/kimi-k2-instruct-0905` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "code": "model_not_found"}}, True, model_gone=True),
    "400-model-decommissioned": UpstreamError(400, {"error": {
        "message": "The model `moonshotai/kimi-k2-instruct` has been decommissioned and is no longer supported.",
        "type": "invalid_request_error", "code": "model_decommissioned"}}, True, model_gone=True,
        says="decommissioned"),
    "400-invalid-request": UpstreamError(400, {"error": {
        "message": "'messages.1' : for 'role:user' the following must be satisfied[('messages.1.content' : "
                   "value must be a string)]", "type": "invalid_request_error"}}, False),
    "429-retry-after": UpstreamError(429, {"error": {
        "message": "Rate limit reached for model `moonshotai/kimi-k2-instruct-0905` in organization `org_01` service "
                   "tier `on_demand` on tokens per minute (TPM): Limit 15000, Used 11972, Requested 4351. Please try "
                   "again in 5.289s.", "type": "tokens", "code": "rate_limit_exceeded"}}, True, retry_after=6.0,
        headers=(("retry-after", "6"), ("x-ratelimit-reset-tokens", "5.289s")), says="Rate limit reached"),
    "403-access-denied": UpstreamError(403, {"error": {"message": "Access denied. Please check your network settings."}},
                                       True),
    "498-flex-capacity": UpstreamError(498, {"error": {"message": "Flex tier capacity exceeded.",
                                                       "type": "capacity_exceeded"}}, True),
    "500": UpstreamError(500, {"error": {"message": "Internal Server Error", "type": "internal_server_error"}}, True),
    "503-envoy-plain-text": UpstreamError(
        503, "upstream connect error or disconnect/reset before headers. reset reason: overflow", True,
        says="upstream connect error"),
}
CEREBRAS_ERRORS = {
    "401-unwrapped": UpstreamError(401, {"message": "Wrong API Key", "type": "invalid_request_error", "param": "api_key",
                                         "code": "wrong_api_key"}, True, says="Wrong API Key"),
    "404-unwrapped-model-not-found": UpstreamError(404, {
        "message": "Model zai-glm-4.6 does not exist or you do not have access to it.", "type": "not_found_error",
        "param": "model", "code": "model_not_found"}, True, model_gone=True, says="zai-glm-4.6"),
    "429-unwrapped": UpstreamError(429, {"message": "Requests per minute limit exceeded - too many requests sent.",
                                         "type": "too_many_requests_error", "param": "quota",
                                         "code": "request_quota_exceeded"}, True, says="Requests per minute"),
    "500-wrapped": UpstreamError(500, {"status_code": 500, "error": {
        "message": "Encountered a server error, please try again.", "type": "server_error", "param": "", "code": "",
        "id": ""}}, True, says="Encountered a server error"),
}
OPENROUTER_ERRORS = {
    "401-no-credentials": UpstreamError(401, {"error": {"message": "No auth credentials found", "code": 401}}, True),
    "401-user-not-found": UpstreamError(401, {"error": {"message": "User not found.", "code": 401}}, True),
    "402-credits": UpstreamError(402, {"error": {"message": "Insufficient credits. Add more using "
                                                            "https://openrouter.ai/credits", "code": 402}}, True),
    "404-no-endpoints": UpstreamError(404, {"error": {"message": "No endpoints found for deepseek/deepseek-r1:free.",
                                                      "code": 404}, "user_id": "user_2x"}, True, model_gone=True,
                                      says="No endpoints found"),
    "429-upstream": UpstreamError(429, {"error": {"message": "Provider returned error", "code": 429, "metadata": {
        "raw": "deepseek/deepseek-r1-0528:free is temporarily rate-limited upstream. Please retry shortly.",
        "provider_name": "DeepInfra", "is_byok": False, "provider_error_code": "engine_overloaded",
        "limit_source": "upstream_provider_shared_pool"}}, "user_id": "user_2x"}, True, retry_after=20.0,
        headers=(("Retry-After", "20"),)),
    "429-free-models-per-day": UpstreamError(429, {"error": {
        "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day",
        "code": 429, "metadata": {"headers": {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0",
                                              "X-RateLimit-Reset": "1741305600000"}}}}, True),
    "503": UpstreamError(503, {"error": {"message": "No instances available", "code": 503}}, True),
}
GEMINI_ERRORS = {
    "400-api-key-invalid": UpstreamError(400, {"error": {
        "code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                     "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
                    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                     "message": "API key not valid. Please pass a valid API key."}]}}, True, says="API key not valid"),
    "400-invalid-argument": UpstreamError(400, {"error": {
        "code": 400, "message": "Unable to submit request because thinking_budget and thinking_level are not "
                                "supported together.", "status": "INVALID_ARGUMENT"}}, False),
    "403-permission-denied": UpstreamError(403, {"error": {
        "code": 403, "message": "Method doesn't allow unregistered callers (callers without established identity). "
                                "Please use API Key or other form of API consumer identity to call this API.",
        "status": "PERMISSION_DENIED"}}, True),
    "404-model-not-found": UpstreamError(404, {"error": {
        "code": 404, "message": "models/gemini-3-flash-preview is not found for API version v1beta, or is not "
                                "supported for generateContent. Call ListModels to see the list of available models "
                                "and their supported methods.", "status": "NOT_FOUND"}}, True, model_gone=True),
    "429-retry-info": UpstreamError(429, {"error": {
        "code": 429, "message": "You exceeded your current quota, please check your plan and billing details.",
        "status": "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": "gemini-3-flash"}, "quotaValue": "10"}]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"}]}}, True, retry_after=34.4),
    "500-internal": UpstreamError(500, {"error": {
        "code": 500, "message": "An internal error has occurred. Please retry or report in "
                                "https://developers.generativeai.google/guide/troubleshooting", "status": "INTERNAL"}},
        True),
    "503-unavailable": UpstreamError(503, {"error": {
        "code": 503, "message": "This model is currently experiencing high demand. Spikes in demand are usually "
                                "temporary. Please try again later.", "status": "UNAVAILABLE"}}, True,
        says="high demand"),
    "504-deadline": UpstreamError(504, {"error": {"code": 504, "message": "Deadline expired before operation could "
                                                                          "complete.", "status": "DEADLINE_EXCEEDED"}},
                                  True),
}
HF_ERRORS = {
    "401-string-error": UpstreamError(401, {"error": "Invalid credentials in Authorization header"}, True,
                                      says="Invalid credentials"),
    "400-model-not-supported": UpstreamError(400, {"error": {
        "message": "The requested model 'meta-llama/Llama-3.1-8B-Instruct' is not supported by any provider you have "
                   "enabled.", "type": "invalid_request_error", "param": "model", "code": "model_not_supported"}},
        True, model_gone=True),
    "402-string-credits": UpstreamError(402, {"error": "You have exceeded your monthly included credits for Inference "
                                                       "Providers. Subscribe to PRO to get 20x more monthly included "
                                                       "credits."}, True, says="monthly included credits"),
    "402-object-credits": UpstreamError(402, {"error": {"message": "You have exceeded your monthly included credits.",
                                                        "type": "insufficient_quota"}}, True),
    "403-gated": UpstreamError(403, {"error": "You cannot access this model unless the model owner gives you access."},
                               True),
}

ERROR_CASES = [
    pytest.param(make, url, key, case, id=f"{name}-{case_id}")
    for name, make, url, key, table in [
        ("groq", groq, GROQ_STREAM_URL, GROQ_KEY, GROQ_ERRORS),
        ("cerebras", cerebras, CEREBRAS_STREAM_URL, CEREBRAS_KEY, CEREBRAS_ERRORS),
        ("openrouter", openrouter, OPENROUTER_STREAM_URL, OPENROUTER_KEY, OPENROUTER_ERRORS),
        ("gemini", gemini_provider, GEMINI_STREAM_URL, GEMINI_KEY, GEMINI_ERRORS),
        ("huggingface", huggingface, HF_STREAM_URL, HF_KEY, HF_ERRORS),
    ]
    for case_id, case in table.items()
]


@pytest.mark.parametrize("make, url, key, case", ERROR_CASES)
def test_upstream_error_status_becomes_a_provider_error_with_the_right_policy(make, url, key, case):
    body = json.dumps(case.body) if isinstance(case.body, dict) else case.body
    content_type = "application/json" if isinstance(case.body, dict) else "text/plain"
    with mocked() as rsps:
        rsps.post(url, body=body, status=case.status, content_type=content_type, headers=dict(case.headers))
        chunks, error = stream_until_error(make())
    assert chunks == []
    assert error.retryable is case.retryable
    assert error.model_gone is case.model_gone
    assert error.retry_after == case.retry_after
    assert error.kind == ("rate_limited" if case.status == 429 else f"http_{error.upstream_status}")
    assert case.says in error.message
    assert key not in error.message and key not in str(error)
    if case.retryable:
        assert error.status == 502  # another provider may answer; the client never sees the 4xx
    else:
        assert (error.status, error.upstream_status) == (400, case.status)


def test_groq_400_invalid_request_is_the_clients_fault_and_not_retried():
    case = GROQ_ERRORS["400-invalid-request"]
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, json=case.body, status=400)
        _, error = stream_until_error(groq())
    assert (error.retryable, error.status, error.upstream_status, error.kind) == (False, 400, 400, "http_400")
    assert "messages.1.content" in error.message


def test_gemini_invalid_key_400_is_the_providers_fault_not_the_clients():
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, json=GEMINI_ERRORS["400-api-key-invalid"].body, status=400)
        _, error = stream_until_error(gemini_provider())
    assert error.retryable
    assert error.status != 400
    assert not error.model_gone


def test_openrouter_invalid_model_id_400_is_the_operators_model_not_the_clients_request():
    # The configured model is wrong: another provider could answer, and the operator must be told it is gone.
    body = {"error": {"message": "deepseek/deepseek-r1-0528:fre is not a valid model ID", "code": 400},
            "user_id": "user_2x"}
    with mocked() as rsps:
        rsps.post(OPENROUTER_STREAM_URL, json=body, status=400)
        _, error = stream_until_error(openrouter())
    assert error.retryable
    assert error.model_gone


def test_gemini_unsupported_location_400_is_the_deployments_problem_not_the_clients():
    # 400 FAILED_PRECONDITION: every request from this server fails at Gemini; another provider would answer.
    body = {"error": {"code": 400, "message": "User location is not supported for the API use.",
                      "status": "FAILED_PRECONDITION"}}
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, json=body, status=400)
        _, error = stream_until_error(gemini_provider())
    assert error.retryable
    assert error.status != 400


# ===================== Transport failures =====================

@pytest.mark.parametrize("exception, kind", [
    (requests.exceptions.ConnectionError("Failed to establish a new connection: [Errno 111] Connection refused"),
     "connect"),
    (requests.exceptions.ConnectTimeout("Connection to api.groq.test timed out. (connect timeout=1)"), "timeout"),
    (requests.exceptions.ReadTimeout("Read timed out. (read timeout=1)"), "timeout"),
    (requests.exceptions.SSLError("certificate verify failed"), "connect"),
    (requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"), "broken"),
], ids=["refused", "connect-timeout", "read-timeout", "tls", "chunked"])
def test_transport_failure_becomes_a_retryable_provider_error(exception, kind):
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=exception)
        chunks, error = stream_until_error(groq())
    assert chunks == []
    assert (error.kind, error.retryable, error.upstream_status, error.status) == (kind, True, 0, 502)
    assert "api.groq.test" not in error.message and GROQ_KEY not in error.message


# ===================== Registry =====================

def test_build_providers_gives_all_five_in_round_robin_order_with_their_display_names():
    providers = build_providers(Settings())
    assert [(p.id, p.name) for p in providers] == [
        ("groq", "Groq"), ("cerebras", "Cerebras"), ("openrouter", "OpenRouter (DeepSeek)"),
        ("gemini", "Gemini 3 Flash"), ("huggingface", "Hugging Face Llama 3.1 8B")]
    assert not any(p.configured for p in providers)


def test_build_providers_gives_each_provider_its_settings_and_its_own_client():
    settings = Settings(providers=(
        ProviderSettings("groq", GROQ_KEY, GROQ_URL, "m-groq"),
        ProviderSettings("cerebras", None, CEREBRAS_URL, "m-cerebras"),
        ProviderSettings("openrouter", OPENROUTER_KEY, OPENROUTER_URL, "m-openrouter"),
        ProviderSettings("gemini", GEMINI_KEY, GEMINI_URL, "m-gemini"),
        ProviderSettings("huggingface", HF_KEY, HF_URL, "m-hf"),
    ), connect_timeout=2.0, first_token_timeout=7.0, idle_timeout=3.0)
    providers = build_providers(settings)
    assert [p.configured for p in providers] == [True, False, True, True, True]
    assert [p.model for p in providers] == ["m-groq", "m-cerebras", "m-openrouter", "m-gemini", "m-hf"]
    assert len({id(p.upstream.session) for p in providers}) == 5
    assert providers[0].upstream.timeout == (2.0, 7.0)
    assert providers[0].upstream.idle_timeout == 3.0


# ===================== The contract every provider keeps =====================

@dataclass(frozen=True)
class Contract:
    make: object
    url: str
    key: str
    body: bytes  # "Hello" + " world", then a finish with usage, in the provider's own framing
    auth: tuple  # (header, value) that carries the key


def openai_hello(chunk):
    return sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "Hello"}), chunk({"content": " world"}),
               chunk({}, "stop", usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}), "[DONE]")


CONTRACTS = [
    pytest.param(Contract(groq, GROQ_STREAM_URL, GROQ_KEY, openai_hello(groq_chunk),
                          ("Authorization", f"Bearer {GROQ_KEY}")), id="groq"),
    pytest.param(Contract(cerebras, CEREBRAS_STREAM_URL, CEREBRAS_KEY, openai_hello(
        lambda delta, finish=None, **extra: cerebras_chunk(
            {"delta": delta, **({"finish_reason": finish} if finish else {})}, **extra)),
        ("Authorization", f"Bearer {CEREBRAS_KEY}")), id="cerebras"),
    pytest.param(Contract(openrouter, OPENROUTER_STREAM_URL, OPENROUTER_KEY,
                          b": OPENROUTER PROCESSING\n\n" + openai_hello(openrouter_chunk),
                          ("Authorization", f"Bearer {OPENROUTER_KEY}")), id="openrouter"),
    pytest.param(Contract(gemini_provider, GEMINI_STREAM_URL, GEMINI_KEY, sse(
        gemini_event([{"text": "Hello"}], {"candidatesTokenCount": 1}),
        gemini_event([{"text": " world"}], {"candidatesTokenCount": 2}),
        gemini_event([{"text": "", "thoughtSignature": "Ep"}], {"candidatesTokenCount": 2}, finish="STOP"),
        end="\r\n\r\n"), ("x-goog-api-key", GEMINI_KEY)), id="gemini"),
    pytest.param(Contract(huggingface, HF_STREAM_URL, HF_KEY, openai_hello(hf_chunk),
                          ("Authorization", f"Bearer {HF_KEY}")), id="huggingface"),
]


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_provider_streams_text_deltas_in_order_and_ends_with_stop(contract):
    provider = contract.make()
    with mocked() as rsps:
        rsps.post(contract.url, body=contract.body, content_type="text/event-stream")
        chunks = stream_all(provider)
        sent, = sent_requests(rsps)
    assert sent.headers[contract.auth[0]] == contract.auth[1]
    assert contract.key not in sent.url
    assert [h for h in ("Authorization", "x-goog-api-key") if h in sent.headers] == [contract.auth[0]]
    assert [c.text for c in chunks if c.text] == ["Hello", " world"]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2
    assert all(c != Chunk() for c in chunks)
    assert provider.configured and provider.id and provider.name


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_provider_parses_its_stream_the_same_when_it_arrives_one_byte_at_a_time(contract):
    with mocked() as rsps:
        rsps.post(contract.url, body=contract.body, content_type="text/event-stream")
        whole = stream_all(contract.make())
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
    assert error.retryable and not error.model_gone
    assert error.upstream_status == status and error.status == 502
    assert error.kind == ("rate_limited" if status == 429 else f"http_{status}")
    assert contract.key not in str(error)


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_provider_reports_a_404_as_its_model_gone(contract):
    with mocked() as rsps:
        rsps.post(contract.url, json={"error": {"message": "model not found", "code": 404}}, status=404)
        _, error = stream_until_error(contract.make())
    assert error.model_gone and error.retryable


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_provider_turns_a_refused_connection_into_a_connect_error(contract):
    with mocked() as rsps:
        rsps.post(contract.url, body=requests.exceptions.ConnectionError("Connection refused"))
        _, error = stream_until_error(contract.make())
    assert (error.kind, error.retryable) == ("connect", True)


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_provider_raises_malformed_for_a_broken_event(contract):
    with mocked() as rsps:
        rsps.post(contract.url, body=b"data: {oops\n\n", content_type="text/event-stream")
        _, error = stream_until_error(contract.make())
    assert error.kind == "malformed"
