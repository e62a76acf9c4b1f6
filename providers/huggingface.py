"""Hugging Face Inference Providers router: OpenAI-compatible `/v1/chat/completions`.
https://huggingface.co/docs/inference-providers/tasks/chat-completion"""
from providers.openai_compat import OpenAICompatibleProvider


class HuggingFaceProvider(OpenAICompatibleProvider):
    id = "huggingface"
    name = "Hugging Face Llama 3.1 8B"
