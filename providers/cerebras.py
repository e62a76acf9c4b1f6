"""Cerebras: OpenAI-compatible; GLM streams its thinking in `delta.reasoning` before the answer.
https://inference-docs.cerebras.ai/api-reference/chat-completions"""
from providers.openai_compat import OpenAICompatibleProvider


class CerebrasProvider(OpenAICompatibleProvider):
    id = "cerebras"
    name = "Cerebras"
