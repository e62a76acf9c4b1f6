"""Google Gemini, native API: `:streamGenerateContent?alt=sse` with the `x-goog-api-key` header.

System messages become `systemInstruction`, assistant turns role `model`; each SSE event is a whole
GenerateContentResponse whose part texts are deltas, parts marked `thought` are reasoning, and the
stream ends without `[DONE]`. https://ai.google.dev/api/generate-content
"""
from __future__ import annotations

import requests

from providers.base import ChatRequest, Chunk, Provider, Usage, error_message, read_error_body, status_error
from utils.errors import ProviderError

# OpenAI option -> generationConfig field.
GENERATION_CONFIG = {"temperature": "temperature", "top_p": "topP", "max_tokens": "maxOutputTokens",
                     "stop": "stopSequences", "seed": "seed"}


def to_upstream(request: ChatRequest, *, max_tokens_cap: int = 0) -> dict:
    system = [m.content for m in request.messages if m.role == "system"]
    body: dict = {"contents": [
        {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
        for m in request.messages if m.role != "system"
    ]}
    if system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    config = {GENERATION_CONFIG[k]: v for k, v in request.options.items() if k in GENERATION_CONFIG and v is not None}
    if isinstance(config.get("stopSequences"), str):
        config["stopSequences"] = [config["stopSequences"]]
    if max_tokens_cap and not 0 < config.get("maxOutputTokens", 0) <= max_tokens_cap:
        config["maxOutputTokens"] = max_tokens_cap
    if config:
        body["generationConfig"] = config
    return body


def parse_response(event: dict) -> Chunk | None:
    """One GenerateContentResponse -> Chunk. `usageMetadata` counts up in every event, so the last one
    seen is the total; the last event often has empty text plus a `thoughtSignature`, which is fine."""
    if event.get("error"):
        message, _ = error_message(event)
        raise ProviderError(f"provider reported an error mid-stream: {message}"[:300], kind="error_event")
    candidates = event.get("candidates") or [{}]
    candidate = candidates[0] if isinstance(candidates[0], dict) else {}
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(p.get("text", "") for p in parts if isinstance(p, dict) and not p.get("thought"))
    reasoning = "".join(p.get("text", "") for p in parts if isinstance(p, dict) and p.get("thought"))
    meta = event.get("usageMetadata")
    finish = candidate.get("finishReason")
    chunk = Chunk(
        text=text,
        reasoning=reasoning,
        finish_reason=finish.lower() if isinstance(finish, str) else None,
        usage=Usage(meta.get("promptTokenCount") or 0,
                    (meta.get("candidatesTokenCount") or 0) + (meta.get("thoughtsTokenCount") or 0))
        if isinstance(meta, dict) else None,
    )
    return chunk if chunk != Chunk() else None


def retry_delay(body) -> float | None:
    """Seconds from a 429's `RetryInfo` detail (`{"retryDelay": "34.4s"}`)."""
    details = (body.get("error") or {}).get("details") if isinstance(body, dict) else None
    for detail in details or []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                return None
    return None


class GeminiProvider(Provider):
    id = "gemini"
    name = "Gemini 3 Flash"

    def build_stream_request(self, request: ChatRequest) -> tuple[str, dict, dict]:
        url = f"{self.settings.base_url}/models/{request.model or self.model}:streamGenerateContent?alt=sse"
        return url, {"x-goog-api-key": self.settings.api_key}, to_upstream(
            request, max_tokens_cap=self.settings.max_tokens)

    def parse_event(self, event: dict) -> Chunk | None:
        return parse_response(event)

    def error_from_response(self, response: requests.Response) -> ProviderError:
        body = read_error_body(response)
        message, _ = error_message(body)
        # Gemini answers a bad key with 400 INVALID_ARGUMENT: that is our key's fault, not the client's.
        status = 401 if "API_KEY_INVALID" in str(body) else response.status_code
        return status_error(status, message, retry_after=retry_delay(body))
