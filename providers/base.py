"""What every provider is: identity and capabilities as attributes, and one method that yields chunks."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import requests

from utils import sse
from utils.errors import ProviderError
from utils.quota import Quota, parse_reset, seconds_until
from utils.settings import ProviderSettings
from utils.upstream import Upstream


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # user | assistant | system
    content: str


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    # Sampling options in OpenAI's names (temperature, top_p, max_tokens, stop, seed, user); each
    # provider passes on what it supports.
    options: dict = field(default_factory=dict)
    # A model id to use instead of the provider's configured one.
    model: str | None = None

    @property
    def estimated_tokens(self) -> int:
        """A cheap guess at the prompt's size (about four characters a token), to check token budgets."""
        return sum(len(m.content) for m in self.messages) // 4


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of an answer. `reasoning` is the model's thinking, kept apart from the answer `text`."""
    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


def status_error(status: int, message: str, *, retry_after: float | None = None,
                 code: str | None = None, quota: Quota | None = None) -> ProviderError:
    """The one policy for what an upstream HTTP error means for failover.

    A 400/413/422 is the request's fault (another provider would refuse it too) unless it names the
    model, which is the operator's configuration; everything else (401/403 bad provider key, 404 model
    gone, 402 out of credit, 408, 429, 5xx) is this provider's problem, so another may answer.
    """
    model_gone = (status == 404 or code in ("model_not_found", "model_decommissioned", "model_not_supported")
                  or "not a valid model" in message)  # OpenRouter's 400 for an unknown model id
    client_fault = status in (400, 413, 422) and not model_gone
    kind = "rate_limited" if status == 429 else f"http_{status}"
    return ProviderError(f"upstream answered {status}: {message}"[:300], upstream_status=status,
                         retryable=not client_fault, retry_after=retry_after, kind=kind, model_gone=model_gone,
                         quota=quota)


class Provider:
    """Base of all providers. Subclasses say how to build the request and read the stream."""

    id: str = ""  # lowercase id used in settings, requests and /health
    name: str = ""  # display name, as `X-Provider` and /metrics show it

    def __init__(self, settings: ProviderSettings, upstream: Upstream):
        self.settings = settings
        self.upstream = upstream

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def configured(self) -> bool:
        return self.settings.configured

    def stream(self, request: ChatRequest, observe: Callable[[Quota | None], None] | None = None) -> Iterator[Chunk]:
        """Yield the answer's chunks as they arrive; raise ProviderError on any failure. `observe` hears
        what a successful answer's headers say about the provider's quota (an error carries its own).

        The upstream response is closed when the generator finishes or is closed, so a client that
        goes away frees the provider's connection."""
        url, headers, body = self.build_stream_request(request)
        response = self.upstream.post(url, headers=headers, json=body, stream=True)
        try:
            if response.status_code >= 400:
                raise self.error_from_response(response)
            if observe is not None:
                observe(self.read_quota(response.status_code, response.headers, None, time.time()))
            for data in sse.iter_data(self.upstream.iter_bytes(response)):
                chunk = self.parse_data(data)
                if chunk is not None:
                    yield chunk
        finally:
            response.close()

    def list_models(self) -> list[str]:
        """The model ids the provider offers now (costs no chat quota)."""
        url, headers = self.models_request()
        response = self.upstream.get(url, headers=headers)
        with response:
            if response.status_code >= 400:
                raise self.error_from_response(response)
            try:
                return self.parse_models(response.json())
            except (ValueError, TypeError, AttributeError):
                raise ProviderError("the provider sent a malformed model list", kind="malformed") from None

    def parse_data(self, data: str) -> Chunk | None:
        """One SSE data payload -> a chunk, None for nothing to pass on; raises on an error event."""
        if data == "[DONE]":
            return None
        try:
            event = json.loads(data)
        except ValueError:
            raise ProviderError("the provider sent a malformed event", kind="malformed") from None
        if not isinstance(event, dict):
            raise ProviderError("the provider sent a malformed event", kind="malformed")
        return self.parse_event(event)

    def error_from_response(self, response: requests.Response) -> ProviderError:
        raise NotImplementedError

    def read_quota(self, status: int, headers, body, now: float) -> Quota | None:
        """What one answer (status, case-insensitive headers, parsed error body or None) says about the
        provider's remaining quota; each provider reads its own dialect."""
        return None

    def build_stream_request(self, request: ChatRequest) -> tuple[str, dict, dict]:
        raise NotImplementedError

    def models_request(self) -> tuple[str, dict]:
        raise NotImplementedError

    def parse_models(self, body: dict) -> list[str]:
        raise NotImplementedError

    def parse_event(self, event: dict) -> Chunk | None:
        raise NotImplementedError


def error_message(body) -> tuple[str, str | None]:
    """The message and code of any provider's error body: {"error": {...}}, {"error": "..."} or a bare
    {"message": ...} (Cerebras 4xx). Plain text bodies (Groq's Envoy 503) are returned as they are."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, str):
            return error, None
        if isinstance(error, dict):
            code = error.get("code")
            return str(error.get("message") or error.get("status") or "unknown error"), (
                str(code) if code not in (None, "") else None)
    return str(body or "no details")[:200], None


def read_error_body(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return response.text[:200]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` (seconds or an HTTP date) as seconds from now; garbage or a past date counts as absent."""
    now = time.time() if now is None else now
    return seconds_until(parse_reset(value, now), now)
