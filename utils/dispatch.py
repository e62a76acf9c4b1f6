"""Request orchestration shared by /chat and the OpenAI-compatible API: who is asking, which providers
to plan, and getting the first visible chunk of an answer (failing over while nothing has been sent).
Views parse and render; everything between the two happens here."""
from __future__ import annotations

import errno
from collections.abc import Callable
from functools import partial

from flask import current_app, g, request

from utils.auth import authenticate
from providers.base import Provider
from utils import budgets, response_cache
from utils.chat import ChatRequest, Chunk
from utils.disconnect import ClientGone
from utils.errors import ClientClosed, GatewayError, NotFound, ValidationError
from utils.relay import Answer

AUTO = "auto"  # the OpenAI `model` that means the rotation
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tells nginx not to buffer this response
}


def authenticate_caller() -> None:
    """A blueprint's `before_request`: the caller behind the request's key, kept on `g.caller`."""
    if request.method == "OPTIONS":  # a browser's CORS preflight carries no key and must get a 2xx
        return
    ext = current_app.extensions
    g.caller = authenticate(request, ext["settings"], ext["keys"], ext["events"])


def named_provider(body: dict) -> tuple[str | None, bool]:
    """The provider /chat was asked for (`provider` / `X-Provider`), and whether others may take over."""
    named = body.get("provider", request.headers.get("X-Provider"))
    if named is not None and not isinstance(named, str):
        raise ValidationError("provider must be a string")
    fallback = body.get("fallback", request.headers.get("X-Fallback", "false").lower() == "true")
    return named.strip().lower() if named else None, fallback is True


def open_answer(chat_request: ChatRequest, named: str | None, *, fallback: bool = False,
                visible: Callable[[Chunk], bool]) -> Answer:
    """Plan the providers (the one named, else round-robin) and get the first visible chunk of an answer,
    failing over while nothing has been sent. A cacheable request may be answered from the cache instead."""
    found = consult_cache(chat_request, named, fallback, visible)
    if found is not None and found.hit is not None:
        g.answer = found.hit
        return g.answer
    providers = plan(chat_request, named, fallback)
    release = admit(chat_request.estimated_tokens)
    try:
        g.answer = current_app.extensions["relay"].answer(
            chat_request, providers, key_hash=g.caller.key_hash, visible=visible,
            client=request.environ.get("gunicorn.socket"))
    except ClientGone:
        release()
        raise ClientClosed() from None
    except BaseException:
        release()
        raise
    g.answer.on_end = partial(ended, release, g.caller.policy, current_app.extensions["store"])
    g.answer = response_cache.recording(g.answer, found)
    return g.answer


def whole_answer(chat_request: ChatRequest, named: str | None, *,
                 visible: Callable[[Chunk], bool]) -> tuple[Answer, list[Chunk]]:
    """All of an answer, for a client that waits for the whole of it: a provider failing partway still
    fails over, since nothing has reached the client."""
    found = consult_cache(chat_request, named, False, visible)
    if found is not None and found.hit is not None:
        g.answer = found.hit
        return g.answer, list(found.hit)
    providers = plan(chat_request, named, fallback=False)
    release = admit(chat_request.estimated_tokens)
    try:
        answer, chunks = current_app.extensions["relay"].whole_answer(
            chat_request, providers, key_hash=g.caller.key_hash, visible=visible,
            client=request.environ.get("gunicorn.socket"))
    except ClientGone:
        raise ClientClosed() from None
    finally:
        release()
    ended(lambda: None, g.caller.policy, current_app.extensions["store"], answer.usage)
    response_cache.keep_whole(found, answer, chunks)
    g.answer = answer
    return answer, chunks


def consult_cache(chat_request: ChatRequest, named: str | None, fallback: bool, visible: Callable[[Chunk], bool]):
    """The request's cache lookup (utils/response_cache.py); a hit is served only from a provider the key may
    still use, as planning would have checked."""
    policy = g.caller.policy
    return response_cache.consult(chat_request, named, fallback, visible=visible, allowed=lambda provider: (
        policy is None or out_of_scope(policy, provider, chat_request.model) is None))


def admit(estimated_tokens: int) -> Callable[[], None]:
    """Count the request against the caller's key budgets (a 429 when spent); the concurrency release."""
    policy = g.caller.policy
    if policy is None:
        return lambda: None
    ext = current_app.extensions
    settings = ext["settings"]
    # A slot outlives no answer: only a worker killed mid-answer leaves one, and then it stops counting.
    hold = settings.connect_timeout + settings.first_token_timeout + settings.answer_timeout
    try:
        return budgets.admit(policy, ext["store"], ext["keys"], estimated_tokens, hold)
    except budgets.BudgetExhausted as spent:
        ext["events"].budget_exhausted(policy.key_hash, spent.message, spent.reset_at)
        raise


def ended(release: Callable[[], None], policy, store, usage) -> None:
    """An answer ended (a stream's maybe after the request context is gone): free its concurrency slot
    and count its tokens."""
    release()
    if policy is not None and usage is not None:
        budgets.charge(policy, store, usage.prompt_tokens, usage.completion_tokens)


def plan(chat_request: ChatRequest, named: str | None, fallback: bool) -> list[Provider]:
    """The providers to try, in order: the one named (and with `fallback` the rotation after it), else
    the rotation; only providers whose model can do what the request needs (tools, JSON, images)."""
    return plan_among(lambda p: p.cannot_serve(chat_request), named, fallback, chat_request.estimated_tokens,
                      model=chat_request.model, chat=True)


def embed_texts(texts: list[str], named: str | None, model: str | None, dimensions: int | None):
    """Embeddings from the providers that have an embedding model, with failover."""
    def cannot_embed(provider: Provider) -> str | None:
        if provider.settings.embedding_model:
            return None
        return f"{provider.name} ({provider.id}) has no embedding model (set {provider.env_prefix}_EMBEDDING_MODEL)"
    tokens = sum(len(text) for text in texts) // 4  # about four characters a token, as for chat
    providers = plan_among(cannot_embed, named, False, tokens)
    release = admit(tokens)
    try:
        provider, result, attempts = current_app.extensions["relay"].embeddings(
            texts, providers, model=model, dimensions=dimensions, key_hash=g.caller.key_hash)
    finally:
        release()
    if g.caller.policy is not None:
        budgets.charge(g.caller.policy, current_app.extensions["store"], result.prompt_tokens, 0)
    return provider, result, attempts


def plan_among(cannot: Callable[[Provider], str | None], named: str | None, fallback: bool,
               tokens: int, *, model: str | None = None, chat: bool = False) -> list[Provider]:
    """The plan over the configured providers that can serve (`cannot` gives the reason one cannot); a
    client naming one that cannot, or a request none can serve, is a 400 saying why. A key's scopes
    narrow it first: naming a provider (or model) the key may not use is a 403 naming it."""
    ext = current_app.extensions
    settings, router = ext["settings"], ext["router"]
    policy = g.caller.policy if g.get("caller") else None
    if policy is not None:
        refused = {p.id: out_of_scope(policy, p, model, chat) for p in router.configured}
        if named is not None and refused.get(named):
            raise GatewayError(refused[named], 403, param="model", code="model_not_allowed")
        if router.configured and all(refused.values()):
            raise GatewayError("This key may not use any provider on this gateway", 403, param="model",
                               code="model_not_allowed")
        cannot = partial(_scoped, cannot, refused)
    reasons = {p.id: cannot(p) for p in router.configured}
    able = [p for p in router.configured if reasons[p.id] is None]
    if named is not None and reasons.get(named):
        raise ValidationError(reasons[named], param="model")
    if router.configured and not able:
        raise ValidationError("No provider on this gateway can serve this request: "
                              + "; ".join(reasons.values()), param="model")
    if named is not None:
        return router.plan_named(named, fallback=fallback, max_attempts=settings.max_attempts, tokens=tokens,
                                 among=able)
    return router.plan(settings.max_attempts, tokens=tokens, among=able)


def out_of_scope(policy, provider: Provider, model: str | None, chat: bool = True) -> str | None:
    """Why the key may not use `provider` (asked for `model`, None: its own), or None when it may."""
    if policy.allowed_providers is not None and provider.id not in policy.allowed_providers:
        return f"This key may not use provider '{provider.id}'"
    wanted = f"{provider.id}/{model or provider.model}"
    if chat and policy.allowed_models is not None and wanted not in policy.allowed_models:
        return f"This key may not use model '{wanted}'"
    return None


def _scoped(cannot: Callable[[Provider], str | None], refused: dict, provider: Provider) -> str | None:
    return refused.get(provider.id) or cannot(provider)


def resolve_model(name: str | None) -> tuple[Provider | None, str | None]:
    """The provider an OpenAI `model` names (None: the rotation) and the model to ask it for (None: its
    own): `auto`, a provider id (`groq`), `<provider id>/<model>`, or a configured provider's own model."""
    if name is None or name == AUTO:
        return None, None
    router = current_app.extensions["router"]
    provider, model = router.by_id(name.lower()), None
    if provider is None:
        provider = next((p for p in router.configured if p.model == name), None)
    prefix, _, rest = name.partition("/")
    if provider is None and rest:
        provider, model = router.by_id(prefix.lower()), rest
    if provider is None:
        raise NotFound(f"The model `{name}` does not exist on this gateway. GET /v1/models lists the models "
                       "it offers.", param="model", code="model_not_found")
    if not provider.configured:
        raise NotFound(f"The model `{name}` is not offered: provider '{provider.id}' has no API key configured "
                       "on this gateway.", param="model", code="model_not_found")
    return provider, model


def answer_headers(answer: Answer) -> dict:
    return {**STREAM_HEADERS, "X-Provider": answer.provider.name, "X-Attempts": str(answer.attempts)}


class StreamBroken(ConnectionResetError):
    """Raised out of a response body to cut the connection mid-response. A connection reset is what
    WSGI servers expect from a body that cannot go on: gunicorn closes the socket and logs no traceback
    (the gateway's own log line records the failure)."""

    def __init__(self):
        super().__init__(errno.ECONNRESET, "the provider failed mid-stream")
