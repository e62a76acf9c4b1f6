"""What every provider is: identity and capabilities as attributes, and one method that yields chunks."""
from __future__ import annotations

import json
import json.scanner
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import requests

from providers.errors import public_message
from utils import sse
from utils.chat import JSON, TOOLS, VISION, ChatRequest, Chunk
from utils.errors import ProviderError
from utils.quota import Quota
from utils.upstream import Upstream, read_prefix, set_ready

log = logging.getLogger("gateway")

CAPABILITIES = (TOOLS, JSON, VISION)
CAPABILITY_NAMES = {TOOLS: "tools (function calling)", JSON: "JSON output (response_format)",
                    VISION: "images (vision)"}
# json.loads' scanner (the C one where there is one), as json.loads uses it.
_scan = json.scanner.make_scanner(json.JSONDecoder())
# A model list (OpenRouter's, the longest, is about 1.5 MB) is read this far.
MAX_MODEL_LIST = 16 * 1024 * 1024


@dataclass(frozen=True)
class ProviderSettings:
    """One provider's settings as load_settings read them: its key, base URL, model and max_tokens cap."""
    id: str
    api_key: str | None
    base_url: str
    model: str
    # Cap on max_tokens sent upstream when the client asks for none or more (0 = no cap).
    max_tokens: int = 0
    # What the configured model can do (<P>_TOOLS, _JSON, _VISION); None: the provider's defaults.
    capabilities: frozenset[str] | None = None
    # The model /v1/embeddings uses on this provider (<P>_EMBEDDING_MODEL); None: no embeddings here.
    embedding_model: str | None = None
    # Every key of a pool (`GROQ_API_KEY=k1,k2`), each a separate account; `api_key` is the first.
    api_keys: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.api_key)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.api_keys or ((self.api_key,) if self.api_key else ())

    def key(self, index: int = 1) -> str | None:
        """The pool's key number `index` (1-based, as logs and /health name it)."""
        keys = self.keys
        return keys[index - 1] if 0 < index <= len(keys) else self.api_key


class Provider:
    """Base of all providers. Subclasses carry their facts as class attributes (the registry in
    providers/__init__.py lists the classes; settings, /health and the tests all read them there) and
    say how to build the request and read the stream."""

    id: str = ""  # lowercase id used in settings, requests and /health
    name: str = ""  # display name, as `X-Provider` and /metrics show it
    env_prefix: str = ""  # its settings are <env_prefix>_BASE_URL, _MODEL and _MAX_TOKENS
    key_setting: str = ""  # the setting that holds its API key
    default_base_url: str = ""  # everything before the API's own path
    default_model: str = ""
    # What the default model can do (utils.chat TOOLS, JSON, VISION); settings override it per deployment.
    capabilities: frozenset[str] = frozenset()

    def __init__(self, settings: ProviderSettings, upstream: Upstream):
        self.settings = settings
        self.upstream = upstream

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        prefix = cls.env_prefix
        return (cls.key_setting, f"{prefix}_BASE_URL", f"{prefix}_MODEL", f"{prefix}_MAX_TOKENS",
                *(f"{prefix}_{need.upper()}" for need in CAPABILITIES), f"{prefix}_EMBEDDING_MODEL")

    @classmethod
    def default_settings(cls) -> ProviderSettings:
        return ProviderSettings(cls.id, None, cls.default_base_url, cls.default_model, capabilities=cls.capabilities)

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def configured(self) -> bool:
        return self.settings.configured

    @property
    def can(self) -> frozenset[str]:
        """What the configured model can do."""
        caps = self.settings.capabilities
        return type(self).capabilities if caps is None else caps

    def cannot_serve(self, request: ChatRequest) -> str | None:
        """Why this provider cannot carry the request as asked (None: it can). Routing skips it then, and
        a client that named it gets a 400 with this reason."""
        missing = sorted(request.needs - self.can)
        if missing:
            settings = ", ".join(f"{self.env_prefix}_{need.upper()}=true" for need in missing)
            return (f"{self.name} ({self.id}) cannot do {' or '.join(CAPABILITY_NAMES[m] for m in missing)} with "
                    f"its model {self.model} (set {settings} if the model can)")
        return self.unsupported_option(request)

    def unsupported_option(self, request: ChatRequest) -> str | None:
        """An option this provider's API has no way to carry, named; None when it carries them all."""
        return None

    def stream(self, request: ChatRequest, observe: Callable[[Quota | None], None] | None = None,
               key: int = 1) -> Iterator[Chunk]:
        """Yield the answer's chunks as they arrive; raise ProviderError on any failure. `observe` hears
        what a successful answer's headers say about the provider's quota (an error carries its own).
        `key` is the pool's key (1-based) the call is made with. Whatever the provider sends, this yields
        chunks or raises ProviderError: an answer that is not the documented shape is the provider's failure
        (`malformed`), never an exception of another kind. The upstream response is closed when the
        generator finishes or is closed, so a client that goes away frees the provider's connection."""
        url, headers, body = self.build_stream_request(request, key)
        response = self.upstream.post(url, headers=headers, json=body)
        try:
            if response.status_code >= 300:  # 3xx included: a redirect is never followed
                raise self.client_model_error(request.model, self.model, self.failure(response))
            if "html" in response.headers.get("content-type", "").lower():
                raise ProviderError("the provider answered with a web page, not an event stream", kind="malformed",
                                    upstream_status=response.status_code)
            if observe is not None:
                observe(self.read_quota(response.status_code, response.headers, None, time.time()))
            if body.get("stream") is False:  # a plain call (see json_needs_plain_call): one whole answer
                data, complete = read_prefix(response, self.upstream.max_bytes, self.upstream.answer_timeout)
                if not complete:
                    raise ProviderError("the provider's answer was too large or cut short", kind="too_large")
                chunk = self.parse_data(data.decode())
                if chunk is not None:
                    set_ready(0)
                    yield chunk
                return
            events, parse, done = 0, self.parse_data, False
            # Each chunk is handed on once the next one of the same read is parsed (or the read is used up),
            # saying whether more are ready (`set_ready`); an event that fails still comes after those before.
            for batch in sse.data_batches(self.upstream.iter_bytes(response)):
                events += len(batch)
                held = None
                for data in batch:
                    if data == "[DONE]":  # the end, whatever a provider sends after it or however long it waits
                        done = True
                        break
                    try:
                        chunk = parse(data)
                    except BaseException:
                        if held is not None:
                            set_ready(0)
                            yield held
                        raise
                    if chunk is not None:
                        if held is not None:
                            set_ready(1)
                            yield held
                        held = chunk
                if held is not None:
                    set_ready(0)
                    yield held
                if done:
                    return
            if not events:
                raise ProviderError("the provider's answer held no events", kind="malformed",
                                    upstream_status=response.status_code)
        except ProviderError:
            raise
        except Exception as exc:  # a shape no parser foresaw: still only this provider's failure
            log.error("unreadable provider answer", extra={"service": self.name, "error": type(exc).__name__})
            raise ProviderError("the provider sent an answer the gateway could not read", kind="malformed") from None
        finally:
            set_ready(0)
            response.close()

    def list_models(self) -> list[str]:
        """The model ids the provider offers now (costs no chat quota)."""
        url, headers = self.models_request()
        response = self.upstream.get(url, headers=headers)
        with response:
            if response.status_code >= 300:
                raise self.failure(response)
            data, complete = read_prefix(response, MAX_MODEL_LIST, self.upstream.first_token_timeout)
        if not complete:
            raise ProviderError("the provider's model list was too large or cut short", kind="too_large")
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):
            raise ProviderError("the provider sent a malformed model list", kind="malformed") from None
        return self.parse_models(body)

    def failure(self, response: requests.Response) -> ProviderError:
        """The error an answer of status >= 300 stands for, its message fit for a client to read."""
        error = self.error_from_response(response)
        error.message = public_message(error.message, *self.settings.keys)
        error.args = (error.message,)
        return error

    def client_model_error(self, asked: str | None, configured: str, error: ProviderError) -> ProviderError:
        """A model the client chose (`asked`) that the provider does not offer is the client's mistake: a
        404 to that client alone, leaving the provider's health as it was. Only the configured model
        missing says the operator must act."""
        if not (error.model_gone and asked and asked != configured):
            return error
        return ProviderError(f"The model `{asked}` does not exist on {self.name}, or this gateway's "
                             "account has no access to it", upstream_status=error.upstream_status, retryable=False,
                             kind="model_not_found", status=404, code="model_not_found", param="model")

    def parse_data(self, data: str) -> Chunk | None:
        """One SSE data payload -> a chunk, None for nothing to pass on; raises on an error event."""
        try:
            try:  # json.loads' own scanner, called directly: the same value, without two layers of calls
                event, end = _scan(data, 0)
            except StopIteration:
                end = -1
            if end != len(data):  # whitespace around it, or not JSON: json.loads decides
                event = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
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

    def build_stream_request(self, request: ChatRequest, key: int = 1) -> tuple[str, dict, dict]:
        raise NotImplementedError

    def models_request(self) -> tuple[str, dict]:
        raise NotImplementedError

    def parse_models(self, body: dict) -> list[str]:
        raise NotImplementedError

    def parse_event(self, event: dict) -> Chunk | None:
        raise NotImplementedError
