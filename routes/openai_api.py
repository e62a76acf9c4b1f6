"""The OpenAI-compatible API, so code written for OpenAI's SDKs only changes its base URL and key:
POST /v1/chat/completions and GET /v1/models. Same auth and the same rate-limit budget as /chat; errors
come in OpenAI's shape (routes/errors.py decides that by path).

`model` chooses the provider: `auto` (or none) is the rotation with failover, a provider id (`groq`) is
that provider, `<provider id>/<model>` is that provider with that model, and a configured provider's own
model id is that provider.
"""
from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, current_app, g, jsonify, request

from routes.openai_answer import ChunkEncoder, Envelope, completion_body, has_output, stream_chunks
from utils.dispatch import (
    AUTO,
    answer_headers,
    authenticate_caller,
    open_answer,
    out_of_scope,
    resolve_model,
    whole_answer,
)
from utils.errors import NotFound
from utils.limits import chat_limit
from utils.openai_request import parse_completion_request
from utils.validation import read_json_object

bp = Blueprint("openai_api", __name__, url_prefix="/v1")
bp.before_request(authenticate_caller)

OWNER = "gateway"  # `owned_by` of the models that are not one provider's
MODELS_CREATED = 1767225600  # /v1/models `created`: a fixed date (2026-01-01), as the ids do not change at run time


@bp.post("/chat/completions")
@chat_limit
def chat_completions():
    completion = parse_completion_request(read_json_object(request))
    provider, model = resolve_model(completion.model)
    chat_request, named = replace(completion.chat, model=model), provider.id if provider else None
    if not completion.stream:
        answer, chunks = whole_answer(chat_request, named, visible=has_output)
        envelope = Envelope.new(model or answer.provider.model)
        return jsonify(completion_body(answer, chunks, envelope)), answer_headers(answer)
    answer = open_answer(chat_request, named, visible=has_output)
    envelope = Envelope.new(model or answer.provider.model)
    return Response(stream_chunks(answer, ChunkEncoder(envelope), completion.include_usage),
                    mimetype="text/event-stream", headers=answer_headers(answer))


@bp.get("/models")
def list_models():
    return jsonify({"object": "list", "data": [model_card(model_id, owner) for model_id, owner in offered()]})


@bp.get("/models/<path:model_id>")
def get_model(model_id: str):
    """One of the models the list offers; any other id is 404, as OpenAI answers it."""
    owner = dict(offered()).get(model_id)
    if owner is None:
        raise NotFound(f"The model `{model_id[:200]}` does not exist on this gateway. GET /v1/models lists the "
                       "models it offers.", param="model", code="model_not_found")
    return jsonify(model_card(model_id, owner))


def offered() -> list[tuple[str, str]]:
    """(model id, owner) of every model this gateway offers the caller: `auto`, then each configured
    provider's, less what the caller's key may not use (plus other models its scope names)."""
    router = current_app.extensions["router"]
    policy = g.caller.policy if g.get("caller") else None
    if policy is None:
        return [(AUTO, OWNER)] + [(f"{p.id}/{p.model}", p.id) for p in router.configured]
    models = [(f"{p.id}/{p.model}", p.id) for p in router.configured if not out_of_scope(policy, p, None)]
    for model_id in sorted(policy.allowed_models or ()):
        provider = router.by_id(model_id.partition("/")[0])
        if provider and provider.configured and not out_of_scope(policy, provider, model_id.partition("/")[2]) \
                and (model_id, provider.id) not in models:
            models.append((model_id, provider.id))
    return [(AUTO, OWNER)] + models


def model_card(model_id: str, owner: str) -> dict:
    return {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": owner}
