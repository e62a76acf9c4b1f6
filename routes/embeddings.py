"""POST /v1/embeddings in OpenAI's shape, served by the providers that have an embedding model
(<P>_EMBEDDING_MODEL), with the same keys, rate-limit budget, failover and metrics as chat. `model` chooses
as on chat: `auto`, a provider id, or `<provider id>/<model>`."""
from __future__ import annotations

import base64
import struct

from flask import Blueprint, jsonify, request

from utils.dispatch import authenticate_caller, embed_texts, resolve_model
from utils.errors import ValidationError
from utils.limits import chat_limit
from utils.validation import MAX_CONTENT_CHARS, model_id, optional, positive_int, read_json_object

bp = Blueprint("embeddings", __name__, url_prefix="/v1")
bp.before_request(authenticate_caller)

# Texts per request, as OpenAI takes them (sent upstream in batches: providers/embeddings.py BATCH).
MAX_INPUTS = 2048
ENCODINGS = ("float", "base64")


@bp.post("/embeddings")
@chat_limit
def embeddings():
    body = read_json_object(request)
    texts = parse_input(body.get("input"))
    encoding = optional(body, "encoding_format", str, "float or base64") or "float"
    if encoding not in ENCODINGS:
        raise ValidationError("encoding_format must be float or base64", param="encoding_format")
    dimensions = positive_int(body, "dimensions")
    provider, model = resolve_model(model_id(optional(body, "model", str, "a string")))
    answered, result, attempts = embed_texts(texts, provider.id if provider else None, model, dimensions)
    data = [{"object": "embedding", "index": index, "embedding": encode(vector, encoding)}
            for index, vector in enumerate(result.vectors)]
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return jsonify({"object": "list", "data": data, "model": model or answered.settings.embedding_model,
                    "usage": usage}), {"X-Provider": answered.name, "X-Attempts": str(attempts)}


def parse_input(value) -> list[str]:
    """A string or a list of strings. Token arrays (lists of numbers) are OpenAI's too, but no provider
    here takes them: refused by name."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or len(texts) > MAX_INPUTS:
        raise ValidationError(f"input must be a string or a list of 1 to {MAX_INPUTS} strings", param="input")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValidationError(f"input[{index}] must be a string; token arrays are not supported",
                                  param=f"input[{index}]")
        if not text or len(text) > MAX_CONTENT_CHARS:
            raise ValidationError(f"input[{index}] must be 1 to {MAX_CONTENT_CHARS} characters",
                                  param=f"input[{index}]")
    return texts


def encode(vector: list[float], encoding: str):
    # base64 is little-endian float32, as OpenAI sends it (and its Python SDK asks for by default).
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector
