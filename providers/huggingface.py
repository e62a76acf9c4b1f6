"""Hugging Face Inference Providers router: OpenAI-compatible `/v1/chat/completions`.
https://huggingface.co/docs/inference-providers/tasks/chat-completion"""
from __future__ import annotations

from collections.abc import Mapping

from providers.openai_compat import OpenAICompatibleProvider
from utils.chat import JSON, TOOLS
from utils.quota import Quota, parse_reset


def read_quota(status: int, headers: Mapping[str, str], body, now: float) -> Quota | None:
    """The router sends no quota headers; a 402 (either body shape) means the month's credits are gone,
    which no retry before the next month or a plan change can fix."""
    if status == 402:
        return Quota(out_until_restart=True, reason="credits_exhausted")
    retry_at = parse_reset(headers.get("retry-after"), now)
    if status == 429:
        return Quota(retry_at=retry_at, reason="rate_limited")
    return Quota(retry_at=retry_at) if retry_at is not None else None


class HuggingFaceProvider(OpenAICompatibleProvider):
    id = "huggingface"
    name = "Hugging Face Llama 3.1 8B"
    env_prefix, key_setting = "HF", "HF_TOKEN"
    default_base_url = "https://router.huggingface.co/v1"
    default_model = "meta-llama/Llama-3.1-8B-Instruct"
    capabilities = frozenset({TOOLS, JSON})

    def read_quota(self, status, headers, body, now) -> Quota | None:
        return read_quota(status, headers, body, now)
