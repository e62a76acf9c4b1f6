"""The provider registry: build_providers gives the five providers in round-robin order, each with its
own settings and its own HTTP client."""
from __future__ import annotations

from providers import build_providers
from tests.providers_helpers import (
    CEREBRAS_URL,
    GEMINI_KEY,
    GEMINI_URL,
    GROQ_KEY,
    GROQ_URL,
    HF_KEY,
    HF_URL,
    OPENROUTER_KEY,
    OPENROUTER_URL,
)
from utils.settings import ProviderSettings, Settings


def test_build_providers_gives_all_five_in_round_robin_order_with_their_display_names():
    providers = build_providers(Settings())
    assert [(p.id, p.name) for p in providers] == [
        ("groq", "Groq"), ("cerebras", "Cerebras"), ("openrouter", "OpenRouter (DeepSeek)"),
        ("gemini", "Gemini 3 Flash"), ("huggingface", "Hugging Face Llama 3.1 8B")]
    assert not any(p.configured for p in providers)


def test_build_providers_gives_each_provider_its_settings_and_its_own_client():
    settings = Settings(providers=(
        ProviderSettings("groq", GROQ_KEY, GROQ_URL, "m-groq"),
        ProviderSettings("cerebras", None, CEREBRAS_URL, "m-cerebras"),
        ProviderSettings("openrouter", OPENROUTER_KEY, OPENROUTER_URL, "m-openrouter"),
        ProviderSettings("gemini", GEMINI_KEY, GEMINI_URL, "m-gemini"),
        ProviderSettings("huggingface", HF_KEY, HF_URL, "m-hf"),
    ), connect_timeout=2.0, first_token_timeout=7.0, idle_timeout=3.0)
    providers = build_providers(settings)
    assert [p.configured for p in providers] == [True, False, True, True, True]
    assert [p.model for p in providers] == ["m-groq", "m-cerebras", "m-openrouter", "m-gemini", "m-hf"]
    assert len({id(p.upstream.session) for p in providers}) == 5
    assert providers[0].upstream.timeout == (2.0, 7.0)
    assert providers[0].upstream.idle_timeout == 3.0
