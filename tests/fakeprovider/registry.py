"""Which format serves which provider: one format object per class of the gateway's provider registry, in its
order. A provider with a format of its own here gets it; any other OpenAI-compatible provider gets the plain
OpenAI-compatible format, so a provider added to the registry is served without touching the fake."""
from __future__ import annotations

from providers import PROVIDER_CLASSES
from providers.openai_compat import OpenAICompatibleProvider
from tests.fakeprovider.base import WireFormat
from tests.fakeprovider.cerebras import CerebrasFormat
from tests.fakeprovider.gemini import GeminiFormat
from tests.fakeprovider.groq import GroqFormat
from tests.fakeprovider.huggingface import HuggingFaceFormat
from tests.fakeprovider.openai_compat import OpenAICompatibleFormat
from tests.fakeprovider.openrouter import OpenRouterFormat

OWN_FORMATS = {f.provider: f for f in (GroqFormat, CerebrasFormat, OpenRouterFormat, GeminiFormat, HuggingFaceFormat)}


def format_for(provider_class: type) -> WireFormat:
    fmt = OWN_FORMATS.get(provider_class)
    if fmt is None:
        if not issubclass(provider_class, OpenAICompatibleProvider):
            raise TypeError(f"tests/fakeprovider has no wire format for {provider_class.__name__}: "
                            "add one beside gemini.py and list it in OWN_FORMATS")
        fmt = OpenAICompatibleFormat
    return fmt(provider_class)


FORMATS: dict[str, WireFormat] = {cls.id: format_for(cls) for cls in PROVIDER_CLASSES}
PROVIDERS = tuple(FORMATS)
BASE_PATHS = {p: f.base_path for p, f in FORMATS.items()}
DEFAULT_MODELS = {p: list(f.models) for p, f in FORMATS.items()}


def error_body(provider: str, status: int, model: str = "model") -> str | dict:
    """The provider's real error body for `status`."""
    return FORMATS[provider].error_body(status, model)


def stream_error_event(provider: str) -> dict:
    """The provider's mid-stream error data event (sent under HTTP 200), for Reply(error_event=...)."""
    return FORMATS[provider].stream_error_event()


def default_headers(provider: str, status: int) -> dict:
    """Headers the provider sends on every response, with generous rate-limit values."""
    return FORMATS[provider].default_headers(status)


def echo_key_body(provider: str, status: int, key: str) -> dict:
    """An error body leaking what a careless upstream might: the caller's API key, HTML and a server path."""
    message = (f"Invalid request for API key {key}: <html><body><h1>400 Bad Request</h1></body></html> "
               "(raised at /srv/upstream/app/handlers/chat.py:412)")
    return FORMATS[provider].echo_key_body(status, message)


def presented_key(headers: dict, query: dict) -> str:
    """The API key a request carried, in whichever place its provider takes it."""
    auth = headers.get("authorization", "")
    return headers.get("x-goog-api-key") or query.get("key") or (auth[7:].strip() if auth.startswith("Bearer ") else "")
