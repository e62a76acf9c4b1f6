"""OpenRouter: OpenAI-compatible, with `: OPENROUTER PROCESSING` keep-alive comments and R1's reasoning
in `delta.reasoning`. https://openrouter.ai/docs/api-reference/streaming"""
from providers.openai_compat import OpenAICompatibleProvider


class OpenRouterProvider(OpenAICompatibleProvider):
    id = "openrouter"
    name = "OpenRouter (DeepSeek)"
    # Usage accounting in the stream's last chunk: https://openrouter.ai/docs/use-cases/usage-accounting
    extra_body = {"usage": {"include": True}}
