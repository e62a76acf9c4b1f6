"""The provider registry: every provider class, in round-robin order. Everything else (settings,
.env.example's check, /health, the test fake's configuration) derives from these classes."""
from __future__ import annotations

from typing import TYPE_CHECKING

from providers.base import Provider
from providers.cerebras import CerebrasProvider
from providers.gemini import GeminiProvider
from providers.groq import GroqProvider
from providers.huggingface import HuggingFaceProvider
from providers.openrouter import OpenRouterProvider
from utils.upstream import Upstream

if TYPE_CHECKING:  # settings read this registry, so the registry cannot import settings at run time
    from utils.settings import Settings

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
