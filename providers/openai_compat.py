"""The client shared by the four OpenAI-compatible providers (Groq, Cerebras, OpenRouter, Hugging Face).

Translation is pure functions of data (`to_upstream`, `parse_chunk`); the class adds the URL and headers.
"""
from __future__ import annotations

import time

import requests

from providers.base import Provider
from providers.errors import parse_retry_after, read_error_body, status_error
from utils import wire
from utils.chat import ChatRequest, Chunk, Usage
from utils.errors import ProviderError

# OpenAI request options each of these providers accepts as they are.
PASSED_OPTIONS = ("temperature", "top_p", "max_tokens", "stop", "seed", "user")


def to_upstream(request: ChatRequest, model: str, *, stream: bool, max_tokens_cap: int = 0) -> dict:
    body = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": stream,
    }
    body.update((k, v) for k, v in request.options.items() if k in PASSED_OPTIONS and v is not None)
    if max_tokens_cap and not 0 < body.get("max_tokens", 0) <= max_tokens_cap:
        body["max_tokens"] = max_tokens_cap
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def parse_chunk(event: dict) -> Chunk | None:
    """One `chat.completion.chunk` -> Chunk. Reasoning arrives as `reasoning` (OpenRouter, Groq, Cerebras)
    or `reasoning_content` (DeepSeek's own field); usage at top level or, on older Groq streams, in
    `x_groq.usage`. An `error` member is a failure reported inside a 200 stream. Any other shape than
    the documented one raises ProviderError(kind="malformed")."""
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
    if not usage:  # None for a chunk with nothing to pass on, such as the role-only first one
        return Chunk(text, reasoning, finish_reason) if text or reasoning or finish_reason is not None else None
    return Chunk(text, reasoning, finish_reason,
                 Usage(wire.token_count(usage.get("prompt_tokens"), "usage.prompt_tokens"),
                       wire.token_count(usage.get("completion_tokens"), "usage.completion_tokens")))


class OpenAICompatibleProvider(Provider):
    # Extra request fields one provider wants (e.g. OpenRouter's `usage: {include: true}`).
    extra_body: dict = {}

    def build_stream_request(self, request: ChatRequest) -> tuple[str, dict, dict]:
        body = to_upstream(request, request.model or self.model, stream=True,
                           max_tokens_cap=self.settings.max_tokens)
        body.update(self.extra_body)
        return f"{self.settings.base_url}/chat/completions", self.headers(), body

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

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.settings.api_key}"}

    def parse_event(self, event: dict) -> Chunk | None:
        return parse_chunk(event)

    def error_from_response(self, response: requests.Response) -> ProviderError:
        body = read_error_body(response)
        message, code = wire.error_message(body)
        now = time.time()
        return status_error(response.status_code, message, code=code,
                            retry_after=parse_retry_after(response.headers.get("retry-after"), now),
                            quota=self.read_quota(response.status_code, response.headers, body, now))
