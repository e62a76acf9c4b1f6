"""Groq: OpenAI-compatible. https://console.groq.com/docs/api-reference#chat-create"""
from providers.openai_compat import OpenAICompatibleProvider


class GroqProvider(OpenAICompatibleProvider):
    id = "groq"
    name = "Groq"
