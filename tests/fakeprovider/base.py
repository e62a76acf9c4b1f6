"""What every fake wire format is: the provider's facts read from the gateway's registry, and the hooks the
request handler calls (routing, auth, model list, errors, headers, framing, response objects).

The handler never asks which provider it serves; it asks the provider's format object. A format is written for
one wire format, and a subclass overrides only what its provider does differently."""
from __future__ import annotations

import hashlib
import json
import secrets
import string
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.fakeprovider.records import AnsweredCall, RecordedRequest
from tests.fakeprovider.reply import MALFORMED, Reply

EMBEDDING_DIMENSIONS = 8  # the length of the fake's vectors unless the request asks for another


def rid(n: int = 24) -> str:
    """A random id of n URL-safe characters."""
    return secrets.token_urlsafe(n)[:n]


def pieces(text: str, n: int = 3) -> list[str]:
    """`text` cut into at most n non-empty pieces, in order (none for an empty text)."""
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)]


def embedding_of(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The fake's vector for `text`: deterministic, derived from the text, every value a multiple of 1/128 in
    [-1, 1), so it survives float32 (OpenAI's base64 encoding) exactly."""
    return [(b - 128) / 128 for b in hashlib.shake_256(text.encode()).digest(dimensions)]


@dataclass
class Answer:
    """One answer being built: what every object of it shares."""
    model: str
    reply: Reply
    include_usage: bool     # the request asked for stream_options.include_usage
    created: int
    id: str
    req_id: str             # a request id of Groq's shape, for formats that send one
    calls: list[AnsweredCall] = field(default_factory=list)  # the tool calls of the answer (Reply.tool_calls)
    chunks: list[str] = field(default_factory=list)          # the content deltas (see content_chunks)


class WireFormat:
    """Base of all fake formats. `provider` is the registry class a format is written for (None: any provider
    of its kind); an instance serves one registry class, and takes its id, default model and base path from it."""

    provider: type | None = None
    other_models: tuple[str, ...] = ()   # offered besides the registry's default model
    unknown_model_status = 404           # what a chat for a model not offered gets (with strict_models on)
    done_event: str | None = "[DONE]"    # the last data event of a stream; None: the stream just ends
    malformed = MALFORMED                # the broken-JSON data event of Reply(malformed=True)
    endless_line_head = b'data: {"choices":[{"index":0,"delta":{"content":"'  # Reply(endless="line")

    def __init__(self, provider_class: type):
        self.id: str = provider_class.id
        self.default_model: str = provider_class.default_model
        # The fake serves every provider on one port, under "/<id>" + the path of its real API root:
        # https://api.groq.com/openai/v1 -> /groq/openai/v1, https://api.example.ai/v1 -> /<id>/v1.
        self.base_path = f"/{self.id}" + urlsplit(provider_class.default_base_url).path.rstrip("/")
        self.models = [self.default_model, *(m for m in self.other_models if m != self.default_model)]

    def chat_route(self, rest: str, body) -> tuple[str | None, bool] | None:
        """(model, stream) when `POST <base path><rest>` is a chat request; None when it is not."""
        raise NotImplementedError

    def auth_error(self, headers: dict, query: dict, model: str) -> tuple[int, str | dict] | None:
        """(status, body) when the request carries no usable key where this provider takes it."""
        raise NotImplementedError

    def model_list(self, ids: list[str]) -> dict:
        """The body of `GET <base path>/models` offering `ids`."""
        raise NotImplementedError

    def error_body(self, status: int, model: str = "model") -> str | dict:
        """The provider's real error body for `status` (a str is sent as text/plain)."""
        raise NotImplementedError

    def stream_error_event(self) -> dict:
        """The provider's mid-stream error data event (sent under HTTP 200), for Reply(error_event=...)."""
        raise NotImplementedError

    def echo_key_body(self, status: int, message: str) -> dict:
        """An error body of this provider's shape carrying `message` (Reply(echo_key=True))."""
        raise NotImplementedError

    def default_headers(self, status: int) -> dict:
        """Headers the provider sends on every response with `status` (rate-limit values generous)."""
        return {}

    def separator(self, fake) -> bytes:
        """What ends each SSE event."""
        return b"\n\n"

    def streams_array(self, rec: RecordedRequest) -> bool:
        """True when this streamed request is answered with a JSON array rather than SSE."""
        return False

    def answer(self, model: str, reply: Reply, rec: RecordedRequest) -> Answer:
        """The answer to `rec`; the tool calls it carries are recorded on `rec.answered_calls`."""
        opts = rec.json.get("stream_options") if isinstance(rec.json, dict) else None
        created = int(time.time())
        a = Answer(model, reply, isinstance(opts, dict) and bool(opts.get("include_usage")), created,
                   self.response_id(created), "req_" + rid(26).lower(), chunks=self.content_chunks(reply, rec))
        for n, (name, args) in enumerate(reply.tool_calls):
            a.calls.append(self.answered_call(n, name, args if isinstance(args, str) else json.dumps(args), reply))
        rec.answered_calls = list(a.calls)
        return a

    def content_chunks(self, reply: Reply, rec: RecordedRequest) -> list[str]:
        """The content deltas: the JSON text of Reply.json_content when the request asks for JSON output, else
        Reply.chunks, else "Hello from <id>" (nothing when the answer calls tools)."""
        if reply.json_content is not None and self.wants_json(rec.json):
            text = reply.json_content if isinstance(reply.json_content, str) else json.dumps(reply.json_content)
            return pieces(text)
        if reply.chunks is not None:
            return list(reply.chunks)
        return [] if reply.tool_calls else ["Hello", " from", f" {self.id}"]

    def answered_call(self, n: int, name: str, arguments: str, reply: Reply) -> AnsweredCall:
        """Call `n` of an answer: its id as this provider makes them."""
        # OpenAI's shape: call_ and 24 letters and digits (https://platform.openai.com/docs/guides/function-calling)
        alphabet = string.ascii_letters + string.digits
        return AnsweredCall("call_" + "".join(secrets.choice(alphabet) for _ in range(24)), name, arguments)

    def finish(self, a: Answer) -> str:
        """The finish reason of the answer: Reply.finish_reason, "tool_calls" for a "stop" that called tools."""
        return "tool_calls" if a.calls and a.reply.finish_reason == "stop" else a.reply.finish_reason

    def wants_json(self, body) -> bool:
        """True when the request asks for JSON output."""
        return False

    def refusal(self, rec: RecordedRequest) -> tuple[int, str | dict] | None:
        """(status, body) of the error the real provider answers this request with whatever it is scripted to
        say (a request it refuses as such); None when it takes it."""
        return None

    def embeddings_route(self, rest: str, body) -> tuple[str | None] | None:
        """(model,) when `POST <base path><rest>` is an embeddings request; None when it is not."""
        return None

    def embeddings(self, rec: RecordedRequest) -> tuple[int, str | dict]:
        """(status, body) answering an embeddings request, vectors from embedding_of()."""
        raise NotImplementedError

    def tool_call_events(self, a: Answer) -> list[dict]:
        """The streamed objects carrying the answer's tool calls (after the content, before the tail)."""
        raise NotImplementedError

    def response_id(self, created: int) -> str:
        return f"chatcmpl-{rid(32)}"

    def head(self, a: Answer) -> list[dict]:
        """The objects sent before the first reasoning or content delta."""
        return []

    def reasoning(self, a: Answer, text: str) -> dict:
        raise NotImplementedError

    def content(self, a: Answer, text: str, i: int, n: int) -> dict:
        """The object carrying content delta `i` of `n`."""
        raise NotImplementedError

    def tail(self, a: Answer) -> list[dict]:
        """The objects after the last delta (finish reason, usage), before done_event."""
        raise NotImplementedError

    def full(self, a: Answer, chunks: list[str]) -> dict:
        """The non-streamed response object."""
        raise NotImplementedError
