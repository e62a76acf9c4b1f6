"""The client shared by the four OpenAI-compatible providers (Groq, Cerebras, OpenRouter, Hugging Face).

Translation is pure functions of data (`to_upstream`, `parse_chunk`); the class adds the URL and headers.
"""
from __future__ import annotations

import time

import requests

from providers.base import ChatRequest, Chunk, Provider, Usage, error_message, parse_retry_after, \
    read_error_body, status_error
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
    `x_groq.usage`. An `error` member is a failure reported inside a 200 stream."""
    if event.get("error"):
        message, _ = error_message(event)
        raise ProviderError(f"provider reported an error mid-stream: {message}"[:300], kind="error_event")
    choices = event.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    delta = choice.get("delta") or choice.get("message") or {}
    usage = event.get("usage") or (event.get("x_groq") or {}).get("usage")
    chunk = Chunk(
        text=delta.get("content") or "",
        reasoning=delta.get("reasoning") or delta.get("reasoning_content") or "",
        finish_reason=choice.get("finish_reason"),
        usage=Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
        if isinstance(usage, dict) else None,
    )
    return chunk if chunk != Chunk() else None


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
        return [model["id"] for model in body["data"]]

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.settings.api_key}"}

    def parse_event(self, event: dict) -> Chunk | None:
        return parse_chunk(event)

    def error_from_response(self, response: requests.Response) -> ProviderError:
        body = read_error_body(response)
        message, code = error_message(body)
        now = time.time()
        return status_error(response.status_code, message, code=code,
                            retry_after=parse_retry_after(response.headers.get("retry-after"), now),
                            quota=self.read_quota(response.status_code, response.headers, body, now))
