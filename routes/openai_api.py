"""The OpenAI-compatible API, so code written for OpenAI's SDKs only changes its base URL and key:
POST /v1/chat/completions and GET /v1/models. Same auth and the same rate-limit budget as /chat; errors
come in OpenAI's shape (routes/errors.py decides that by path).

`model` chooses the provider: `auto` (or none) is the rotation with failover, a provider id (`groq`) is
that provider, `<provider id>/<model>` is that provider with that model, and a configured provider's own
model id is that provider.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

from flask import Blueprint, Response, current_app, jsonify, request

from providers.base import Provider
from utils.chat import Chunk, Usage
from utils.disconnect import ClientGone
from utils.dispatch import StreamBroken, answer_headers, authenticate_caller, open_answer, whole_answer
from utils.errors import NotFound, ProviderError
from utils.limits import chat_limit
from utils.relay import Answer
from utils.validation import parse_completion_request, read_json_object

bp = Blueprint("openai_api", __name__, url_prefix="/v1")
bp.before_request(authenticate_caller)

AUTO = "auto"
OWNER = "gateway"  # `owned_by` of the models that are not one provider's
MODELS_CREATED = 1767225600  # /v1/models `created`: a fixed date (2026-01-01), as the ids do not change at run time
DONE = b"data: [DONE]\n\n"
COMPACT = (",", ":")  # json.dumps separators: the pre-encoded parts of a chunk are compact too
# Providers' finish reasons (Gemini's lowercased) in OpenAI's words; anything else reads as a normal stop.
FINISH_REASONS = {"stop": "stop", "length": "length", "max_tokens": "length", "content_filter": "content_filter",
                  "safety": "content_filter", "recitation": "content_filter", "blocklist": "content_filter",
                  "prohibited_content": "content_filter", "spii": "content_filter"}


@bp.post("/chat/completions")
@chat_limit
def chat_completions():
    completion = parse_completion_request(read_json_object(request))
    provider, model = resolve_model(completion.model)
    chat_request, named = replace(completion.chat, model=model), provider.id if provider else None
    if not completion.stream:
        answer, chunks = whole_answer(chat_request, named, visible=has_output)
        envelope = Envelope.new(model or answer.provider.model)
        return jsonify(completion_body(answer, chunks, envelope)), answer_headers(answer)
    answer = open_answer(chat_request, named, visible=has_output)
    envelope = Envelope.new(model or answer.provider.model)
    return Response(stream_chunks(answer, ChunkEncoder(envelope), completion.include_usage),
                    mimetype="text/event-stream", headers=answer_headers(answer))


@bp.get("/models")
def list_models():
    return jsonify({"object": "list", "data": [model_card(model_id, owner) for model_id, owner in offered()]})


@bp.get("/models/<path:model_id>")
def get_model(model_id: str):
    """One of the models the list offers; any other id is 404, as OpenAI answers it."""
    owner = dict(offered()).get(model_id)
    if owner is None:
        raise NotFound(f"The model `{model_id[:200]}` does not exist on this gateway. GET /v1/models lists the "
                       "models it offers.", param="model", code="model_not_found")
    return jsonify(model_card(model_id, owner))


def offered() -> list[tuple[str, str]]:
    """(model id, owner) of every model this gateway offers: `auto`, then each configured provider's."""
    router = current_app.extensions["router"]
    return [(AUTO, OWNER)] + [(f"{p.id}/{p.model}", p.id) for p in router.configured]


def model_card(model_id: str, owner: str) -> dict:
    return {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": owner}


def resolve_model(name: str | None) -> tuple[Provider | None, str | None]:
    """The provider `model` names (None: the rotation) and the model to ask it for (None: its own)."""
    if name is None or name == AUTO:
        return None, None
    router = current_app.extensions["router"]
    provider, model = router.by_id(name.lower()), None
    if provider is None:
        provider = next((p for p in router.configured if p.model == name), None)
    prefix, _, rest = name.partition("/")
    if provider is None and rest:
        provider, model = router.by_id(prefix.lower()), rest
    if provider is None:
        raise NotFound(f"The model `{name}` does not exist on this gateway. GET /v1/models lists the models "
                       "it offers.", param="model", code="model_not_found")
    if not provider.configured:
        raise NotFound(f"The model `{name}` is not offered: provider '{provider.id}' has no API key configured "
                       "on this gateway.", param="model", code="model_not_found")
    return provider, model


def has_output(chunk: Chunk) -> bool:
    # Reasoning is part of an OpenAI answer (`reasoning_content`), so it counts as the first byte sent.
    return bool(chunk.text or chunk.reasoning)


def finish_reason(reason: str | None) -> str:
    return FINISH_REASONS.get(reason or "stop", "stop")


def usage_body(usage: Usage | None) -> dict:
    usage = usage or Usage()
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}


@dataclass(frozen=True)
class Envelope:
    """What every object of one completion repeats: its id, creation time and the upstream model id."""
    id: str
    created: int
    model: str

    @classmethod
    def new(cls, model: str) -> Envelope:
        return cls(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model)


def completion_body(answer: Answer, chunks: list[Chunk], envelope: Envelope) -> dict:
    """The whole answer as one `chat.completion`."""
    message = {"role": "assistant", "content": "".join(chunk.text for chunk in chunks)}
    reasoning = "".join(chunk.reasoning for chunk in chunks)
    if reasoning:
        message["reasoning_content"] = reasoning
    return {"id": envelope.id, "object": "chat.completion", "created": envelope.created, "model": envelope.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason(answer.finish_reason)}],
            "usage": usage_body(answer.usage)}


class ChunkEncoder:
    """`chat.completion.chunk` SSE events for one completion. The bytes around a delta are encoded once,
    so each text delta costs one json.dumps of the text itself."""

    def __init__(self, envelope: Envelope):
        head = json.dumps({"id": envelope.id, "object": "chat.completion.chunk", "created": envelope.created,
                           "model": envelope.model}, separators=COMPACT)[:-1]
        self._head = f"data: {head},".encode()
        self._delta = self._head + b'"choices":[{"index":0,"delta":{'
        self._end = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        self.role = self._delta + b'"role":"assistant","content":""' + self._end

    def content(self, text: str) -> bytes:
        return b"".join((self._delta, b'"content":', json.dumps(text).encode(), self._end))

    def reasoning(self, text: str) -> bytes:
        return b"".join((self._delta, b'"reasoning_content":', json.dumps(text).encode(), self._end))

    def finish(self, reason: str) -> bytes:
        return self._delta + b'},"logprobs":null,"finish_reason":"' + reason.encode() + b'"}]}\n\n'

    def usage(self, usage: Usage | None) -> bytes:
        usage_json = json.dumps(usage_body(usage), separators=COMPACT).encode()
        return self._head + b'"choices":[],"usage":' + usage_json + b"}\n\n"

    @staticmethod
    def error(message: str) -> bytes:
        error = {"message": message, "type": "server_error", "param": None, "code": "provider_error"}
        return b"data: " + json.dumps({"error": error}, separators=COMPACT).encode() + b"\n\n"


def stream_chunks(answer: Answer, encoder: ChunkEncoder, include_usage: bool) -> Iterator[bytes]:
    """The answer as it arrives, reasoning and text in their own deltas. A provider failing mid-stream
    cannot be hidden any more: it is reported as one last event carrying `error`, which OpenAI's SDKs
    raise as APIError, and the stream ends there."""
    yield encoder.role
    try:
        for chunk in answer:
            if chunk.reasoning:
                yield encoder.reasoning(chunk.reasoning)
            if chunk.text:
                yield encoder.content(chunk.text)
    except ProviderError:
        yield encoder.error(f"{answer.provider.name} failed mid-stream; the answer is incomplete")
        return
    except ClientGone:
        raise StreamBroken() from None
    yield encoder.finish(finish_reason(answer.finish_reason))
    if include_usage:
        yield encoder.usage(answer.usage)
    yield DONE
