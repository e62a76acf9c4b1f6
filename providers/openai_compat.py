"""The client shared by the four OpenAI-compatible providers (Groq, Cerebras, OpenRouter, Hugging Face).

Translation is pure functions of data (`to_upstream`, `parse_chunk`); the class adds the URL and headers.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace

import requests

from providers.base import Provider
from providers.call_ids import portable_call_id
from providers.embeddings import Embeddings, vector
from providers.errors import parse_retry_after, read_error_body, status_error
from utils import wire
from utils.chat import ChatRequest, Chunk, Image, Message, ToolCallDelta, Usage
from utils.errors import ProviderError

# OpenAI request options each of these providers accepts as they are.
PASSED_OPTIONS = ("temperature", "top_p", "max_tokens", "stop", "seed", "user", "presence_penalty",
                  "frequency_penalty", "tools", "tool_choice", "parallel_tool_calls", "response_format",
                  "reasoning_effort")


def to_upstream(request: ChatRequest, model: str, *, stream: bool, max_tokens_cap: int = 0) -> dict:
    body = {
        "model": model,
        "messages": [message_body(m) for m in request.messages],
        "stream": stream,
    }
    body.update((k, v) for k, v in request.options.items() if k in PASSED_OPTIONS and v is not None)
    if max_tokens_cap and not 0 < body.get("max_tokens", 0) <= max_tokens_cap:
        body["max_tokens"] = max_tokens_cap
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def message_body(message: Message) -> dict:
    """One message in OpenAI's shape, as these providers take it."""
    if message.role == "tool":
        body = {"role": "tool", "tool_call_id": portable_call_id(message.tool_call_id or ""),
                "content": message.content}
        return {**body, "name": message.name} if message.name else body
    body = {"role": message.role, "content": [content_part(part) for part in message.parts] if message.parts
            else message.content}
    if message.tool_calls:
        body["content"] = message.content or None
        body["tool_calls"] = [{"id": portable_call_id(call.id), "type": "function",
                               "function": {"name": call.name, "arguments": call.arguments}}
                              for call in message.tool_calls]
    return body


def content_part(part: str | Image) -> dict:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    image = {"url": part.url, **({"detail": part.detail} if part.detail else {})}
    return {"type": "image_url", "image_url": image}


def parse_tool_calls(calls) -> tuple[ToolCallDelta, ...]:
    """Tool call pieces from a stream's `delta.tool_calls` (each with its `index`) or a whole answer's
    `message.tool_calls` (whole calls, in order)."""
    deltas = []
    for position, call in enumerate(wire.seq(calls, "tool_calls")):
        call = wire.obj(call, "tool_calls[]")
        function = wire.obj(call.get("function"), "tool_calls[].function")
        index = call.get("index", position)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 1000:
            raise wire.malformed("tool_calls[].index", "is not a small whole number")
        deltas.append(ToolCallDelta(index, wire.optional_text(call.get("id"), "tool_calls[].id"),
                                    wire.optional_text(function.get("name"), "tool_calls[].function.name"),
                                    wire.text(function.get("arguments"), "tool_calls[].function.arguments")))
    return tuple(deltas)


def parse_chunk(event: dict) -> Chunk | None:
    """One `chat.completion.chunk` -> Chunk. Reasoning arrives as `reasoning` (OpenRouter, Groq, Cerebras)
    or `reasoning_content` (DeepSeek's own field); usage at top level or, on older Groq streams, in
    `x_groq.usage`. An `error` member is a failure reported inside a 200 stream. Any other shape than
    the documented one raises ProviderError(kind="malformed")."""
    quick = _plain_delta(event)
    if quick is not False:
        return quick
    if event.get("error"):
        message, _ = wire.error_message(event)
        raise ProviderError(f"provider reported an error mid-stream: {message}"[:300], kind="error_event")
    choices = wire.seq(event.get("choices"), "choices")  # [] in OpenRouter's and HF's usage chunk
    choice = wire.obj(choices[0], "choices[0]") if choices else {}
    delta = choice.get("delta")
    delta = wire.obj(choice.get("message") if delta is None else delta, "delta")
    # An empty usage object says nothing, so Groq's usage inside x_groq is read instead.
    usage = (wire.obj(event.get("usage"), "usage")
             or wire.obj(wire.obj(event.get("x_groq"), "x_groq").get("usage"), "x_groq.usage"))
    text = wire.text(delta.get("content"), "delta.content")
    reasoning = (wire.text(delta.get("reasoning"), "delta.reasoning")
                 or wire.text(delta.get("reasoning_content"), "delta.reasoning_content"))
    finish_reason = wire.optional_text(choice.get("finish_reason"), "finish_reason")
    tool_calls = parse_tool_calls(delta.get("tool_calls"))
    if not usage:  # None for a chunk with nothing to pass on, such as the role-only first one
        if text or reasoning or tool_calls or finish_reason is not None:
            return Chunk(text, reasoning, finish_reason, None, tool_calls)
        return None
    return Chunk(text, reasoning, finish_reason,
                 Usage(wire.token_count(usage.get("prompt_tokens"), "usage.prompt_tokens"),
                       wire.token_count(usage.get("completion_tokens"), "usage.completion_tokens")), tool_calls)


def _plain_delta(event: dict) -> Chunk | None | bool:
    """parse_chunk's answer for the shape nearly every event has (one choice whose delta holds ASCII text
    or nothing, perhaps a finish reason; no usage, reasoning, tool calls or error), checked in one pass;
    False for any other shape, which the full reading takes."""
    choices = event.get("choices")
    if type(choices) is not list or not choices or event.get("usage") is not None \
            or event.get("x_groq") is not None or event.get("error"):
        return False
    choice = choices[0]
    delta = choice.get("delta") if type(choice) is dict else None
    if type(delta) is not dict or delta.get("reasoning") is not None or delta.get("reasoning_content") is not None \
            or delta.get("tool_calls") is not None:
        return False
    text, finish = delta.get("content"), choice.get("finish_reason")
    if text is None:
        text = ""
    elif type(text) is not str or not text.isascii():
        return False
    if finish is not None and (type(finish) is not str or not finish.isascii()):
        return False
    return Chunk(text, "", finish) if text or finish is not None else None


def whole_calls(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """The stream with every tool call named and given an id from its first piece on, as OpenAI's
    clients need: a call that starts without a name is malformed; one without an id gets one of ours."""
    started: set[int] = set()
    with closing(chunks):  # closing the answer closes the provider's stream, and its connection
        for chunk in chunks:
            if chunk.tool_calls:
                deltas = []
                for delta in chunk.tool_calls:
                    if delta.index not in started:
                        if not delta.name:
                            raise wire.malformed("a tool call", "starts without a function name")
                        started.add(delta.index)
                        delta = replace(delta, id=delta.id or f"call_{secrets.token_hex(6)}")
                    deltas.append(delta)
                chunk = replace(chunk, tool_calls=tuple(deltas))
            yield chunk


class OpenAICompatibleProvider(Provider):
    # Extra request fields one provider wants (e.g. OpenRouter's `usage: {include: true}`).
    extra_body: dict = {}
    # A provider that refuses `response_format` on a stream gets a plain call, answered whole.
    json_needs_plain_call = False

    def stream(self, request: ChatRequest, observe=None, key: int = 1) -> Iterator[Chunk]:
        return whole_calls(super().stream(request, observe, key))

    def build_stream_request(self, request: ChatRequest, key: int = 1) -> tuple[str, dict, dict]:
        stream = not (self.json_needs_plain_call and "response_format" in request.options)
        body = to_upstream(request, request.model or self.model, stream=stream,
                           max_tokens_cap=self.settings.max_tokens)
        body.update(self.extra_body)
        return f"{self.settings.base_url}/chat/completions", self.headers(key), body

    def models_request(self) -> tuple[str, dict]:
        return f"{self.settings.base_url}/models", self.headers()

    def parse_models(self, body: dict) -> list[str]:
        # No `data`, or a model without an id, is malformed rather than a list lacking the configured
        # model, which would take the provider out of the rotation.
        data = wire.obj(body, "the model list").get("data")
        ids = [wire.obj(model, "a model").get("id") for model in wire.seq(data, "the model list's data")]
        if data is None or not all(isinstance(model_id, str) for model_id in ids):
            raise wire.malformed("the model list", "lacks data or a model id")
        return ids

    def headers(self, key: int = 1) -> dict:
        return {"Authorization": f"Bearer {self.settings.key(key)}"}

    def embeddings_request(self, texts: list[str], model: str, dimensions: int | None,
                           key: int = 1) -> tuple[str, dict, dict]:
        body = {"model": model, "input": texts, "encoding_format": "float",
                **({"dimensions": dimensions} if dimensions else {})}
        return f"{self.settings.base_url}/embeddings", self.headers(key), body

    def parse_embeddings(self, body) -> Embeddings:
        """OpenAI's `{"data": [{"index", "embedding"}], "usage": {"prompt_tokens"}}`, put in index order."""
        body = wire.obj(body, "embeddings")
        items = [wire.obj(item, "data[]") for item in wire.seq(body.get("data"), "data")]
        order = [item.get("index", n) for n, item in enumerate(items)]
        if sorted(order) != list(range(len(items))):
            raise wire.malformed("data[].index", "does not number the inputs")
        vectors = [vector(item.get("embedding"), "data[].embedding") for _, item in sorted(zip(order, items))]
        usage = wire.obj(body.get("usage"), "usage")
        return Embeddings(vectors, wire.token_count(usage.get("prompt_tokens"), "usage.prompt_tokens"))

    def parse_event(self, event: dict) -> Chunk | None:
        return parse_chunk(event)

    def error_from_response(self, response: requests.Response) -> ProviderError:
        body = read_error_body(response)
        message, code = wire.error_message(body)
        now = time.time()
        return status_error(response.status_code, message, code=code,
                            retry_after=parse_retry_after(response.headers.get("retry-after"), now),
                            quota=self.read_quota(response.status_code, response.headers, body, now))
