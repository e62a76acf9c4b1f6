"""POST /chat: the answer's text streamed as plain chunks, `X-Provider` naming who answered."""
from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, request

from utils.disconnect import ClientGone
from utils.dispatch import StreamBroken, answer_headers, authenticate_caller, named_provider, open_answer
from utils.errors import ProviderError
from utils.limits import chat_limit
from utils.relay import Answer
from utils.upstream import more_ready
from utils.validation import parse_chat_request, read_json_object

bp = Blueprint("chat", __name__)
bp.before_request(authenticate_caller)


@bp.post("/chat")
@chat_limit
def chat():
    body = read_json_object(request)
    named, fallback = named_provider(body)
    answer = open_answer(parse_chat_request(body), named, fallback=fallback, visible=lambda chunk: bool(chunk.text))
    return Response(stream_text(answer), mimetype="text/event-stream", headers=answer_headers(answer))


def stream_text(answer: Answer) -> Iterator[bytes]:
    """The answer's text as it arrives. A provider failing mid-stream cannot be hidden any more: the
    response is cut without its final chunk, which every HTTP client reports as an incomplete body."""
    ready: list[str] = []  # texts ready together (one read from the provider) go out in one write
    try:
        for chunk in answer:
            if chunk.text:
                ready.append(chunk.text)
            if ready and not more_ready():
                yield "".join(ready).encode()
                ready.clear()
    except ProviderError:
        if ready:  # what was read before the failure still reaches the client, then the cut
            yield "".join(ready).encode()
        raise StreamBroken() from None
    except ClientGone:
        raise StreamBroken() from None
    if ready:  # held for chunks said to be ready behind them that never came: the text still goes out
        yield "".join(ready).encode()
