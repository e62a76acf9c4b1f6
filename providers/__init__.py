"""The provider registry: every provider class, in round-robin order."""
from __future__ import annotations

from providers.base import Provider
from providers.cerebras import CerebrasProvider
from providers.gemini import GeminiProvider
from providers.groq import GroqProvider
from providers.huggingface import HuggingFaceProvider
from providers.openrouter import OpenRouterProvider
from utils.settings import Settings
from utils.upstream import Upstream

PROVIDER_CLASSES: tuple[type[Provider], ...] = (
    GroqProvider, CerebrasProvider, OpenRouterProvider, GeminiProvider, HuggingFaceProvider,
)


def build_providers(settings: Settings) -> tuple[Provider, ...]:
    """Every provider, configured or not, each with its own pooled HTTP client."""
    return tuple(
        cls(settings.provider(cls.id), Upstream(settings.connect_timeout, settings.first_token_timeout,
                                                settings.idle_timeout, base_url=settings.provider(cls.id).base_url,
                                                max_bytes=settings.max_answer_bytes,
                                                answer_timeout=settings.answer_timeout))
        for cls in PROVIDER_CLASSES
    )
