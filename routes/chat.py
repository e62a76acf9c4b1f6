"""POST /chat: the answer's text streamed as plain chunks, `X-Provider` naming who answered."""
from __future__ import annotations

import errno
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, current_app, g, request

from providers.base import ChatRequest, Chunk
from utils.auth import authenticate
from utils.disconnect import ClientGone
from utils.errors import ProviderError, ValidationError
from utils.limits import chat_limit
from utils.relay import Answer
from utils.validation import parse_chat_request, read_json_object

bp = Blueprint("chat", __name__)

STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tells nginx not to buffer this response
}


@bp.before_request
def authenticate_caller():
    if request.method == "OPTIONS":  # a browser's CORS preflight carries no key and must get a 2xx
        return
    ext = current_app.extensions
    g.caller = authenticate(request, ext["settings"], ext["keys"])


@bp.post("/chat")
@chat_limit
def chat():
    body = read_json_object(request)
    named, fallback = named_provider(body)
    answer = open_answer(parse_chat_request(body), named, fallback=fallback, visible=lambda chunk: bool(chunk.text))
    return Response(stream_text(answer), mimetype="text/event-stream", headers=answer_headers(answer))


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
    failing over while nothing has been sent. Shared by /chat and the OpenAI-compatible API."""
    ext = current_app.extensions
    settings, router = ext["settings"], ext["router"]
    if named is not None:
        plan = router.plan_named(named, fallback=fallback, max_attempts=settings.max_attempts,
                                 tokens=chat_request.estimated_tokens)
    else:
        plan = router.plan(settings.max_attempts, tokens=chat_request.estimated_tokens)
    g.answer = ext["relay"].answer(chat_request, plan, key_hash=g.caller.key_hash, visible=visible,
                                   client=request.environ.get("gunicorn.socket"))
    return g.answer


def answer_headers(answer: Answer) -> dict:
    return {**STREAM_HEADERS, "X-Provider": answer.provider.name, "X-Attempts": str(answer.attempts)}


def stream_text(answer: Answer) -> Iterator[bytes]:
    """The answer's text as it arrives. A provider failing mid-stream cannot be hidden any more: the
    response is cut without its final chunk, which every HTTP client reports as an incomplete body."""
    try:
        for chunk in answer:
            if chunk.text:
                yield chunk.text.encode()
    except (ProviderError, ClientGone):
        raise StreamBroken() from None


class StreamBroken(ConnectionResetError):
    """Raised out of a response body to cut the connection mid-response. A connection reset is what
    WSGI servers expect from a body that cannot go on: gunicorn closes the socket and logs no traceback
    (the gateway's own log line records the failure)."""

    def __init__(self):
        super().__init__(errno.ECONNRESET, "the provider failed mid-stream")
