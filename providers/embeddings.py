"""Embeddings from one provider: its own request (`embeddings_request`) and answer (`parse_embeddings`),
around one bounded HTTP call. A provider embeds only when its <P>_EMBEDDING_MODEL is set."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from providers.base import Provider
from utils import wire
from utils.errors import ProviderError
from utils.upstream import read_prefix


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int = 0  # 0 where the provider reports none (Gemini)


# Texts per call upstream: Gemini's batchEmbedContents takes at most 100. A longer list (OpenAI takes up to 2,048,
# and its SDKs send that many at once) goes in calls of this many, one after another.
BATCH = 100


def embed(provider: Provider, texts: list[str], model: str | None, dimensions: int | None,
          key: int = 1) -> Embeddings:
    """One vector per text, in order; raises ProviderError like a chat answer does (any of the calls failing
    fails them all). A client's unknown model is its own 404; the configured embedding model missing fails
    over without touching the provider's chat health (it is a different model)."""
    parts = [_embed_batch(provider, texts[at:at + BATCH], model, dimensions, key) for at in range(0, len(texts), BATCH)]
    return Embeddings([v for part in parts for v in part.vectors], sum(part.prompt_tokens for part in parts))


def _embed_batch(provider: Provider, texts: list[str], model: str | None, dimensions: int | None,
                 key: int) -> Embeddings:
    configured = provider.settings.embedding_model
    url, headers, body = provider.embeddings_request(texts, model or configured, dimensions, key)
    response = provider.upstream.post(url, headers=headers, json=body)
    try:
        if response.status_code >= 300:
            error = provider.client_model_error(model, configured, provider.failure(response))
            if error.model_gone:
                raise ProviderError(f"{provider.name} does not offer embedding model '{configured}': set "
                                    f"{provider.env_prefix}_EMBEDDING_MODEL", kind="unsupported",
                                    upstream_status=error.upstream_status)
            raise error
        data, complete = read_prefix(response, provider.upstream.max_bytes, provider.upstream.answer_timeout)
        if not complete:
            raise ProviderError("the provider's embeddings were too large or cut short", kind="too_large")
        try:
            answer = json.loads(data)
        except (ValueError, RecursionError):
            raise ProviderError("the provider sent malformed embeddings", kind="malformed") from None
        embeddings = provider.parse_embeddings(answer)
        if len(embeddings.vectors) != len(texts):
            raise wire.malformed("embeddings", f"hold {len(embeddings.vectors)} vectors for {len(texts)} inputs")
        return embeddings
    except ProviderError:
        raise
    except Exception:  # a shape no parser foresaw: still only this provider's failure
        raise ProviderError("the provider sent embeddings the gateway could not read", kind="malformed") from None
    finally:
        response.close()


def vector(value, what: str) -> list[float]:
    """A list of finite numbers."""
    numbers = wire.seq(value, what)
    if not numbers or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                              for x in numbers):
        raise wire.malformed(what, "is not a list of finite numbers")
    return [float(x) for x in numbers]
