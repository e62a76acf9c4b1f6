"""What the provider test modules share: each provider built against a fake base URL, the `responses`
session mock, socket-like bodies, and stream captures copied from PROVIDERS.md.

HTTP is faked with `responses` at the session boundary. A body given as a `Pieces` reader arrives one
piece per socket read, so the real `Upstream.iter_bytes` path sees the stream cut where a network would
cut it. Not a test module: the test modules import from it, never from each other.
"""
from __future__ import annotations

import io
import json

import pytest
import requests
import responses

from providers.cerebras import CerebrasProvider
from providers.gemini import GeminiProvider
from providers.groq import GroqProvider
from providers.huggingface import HuggingFaceProvider
from providers.openrouter import OpenRouterProvider
from utils.chat import ChatRequest, Chunk, Message
from utils.errors import ProviderError
from utils.settings import ProviderSettings
from utils.upstream import Upstream

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


# Stream captures (PROVIDERS.md) more than one module reads.

def groq_chunk(delta, finish_reason=None, **extra):
    return {"id": "chatcmpl-09d64d2a-5a1f", "object": "chat.completion.chunk", "created": 1770770798,
            "model": "moonshotai/kimi-k2-instruct-0905", "system_fingerprint": "fp_f8b414701e",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], **extra}


GROQ_USAGE = {"queue_time": 0.041876985, "prompt_tokens": 45, "prompt_time": 0.001954727, "completion_tokens": 607,
              "completion_time": 2.245177008, "total_tokens": 652, "total_time": 2.247131735}


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


def reasoning_delta(text):
    return {"content": "", "reasoning": text,
            "reasoning_details": [{"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}]}


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
