"""What every fake wire format is: the provider's facts read from the gateway's registry, and the hooks the
request handler calls (routing, auth, model list, errors, headers, framing, response objects).

The handler never asks which provider it serves; it asks the provider's format object. A format is written for
one wire format, and a subclass overrides only what its provider does differently."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.fakeprovider.records import RecordedRequest
from tests.fakeprovider.reply import MALFORMED, Reply


def rid(n: int = 24) -> str:
    """A random id of n URL-safe characters."""
    return secrets.token_urlsafe(n)[:n]


@dataclass
class Answer:
    """One answer being built: what every object of it shares."""
    model: str
    reply: Reply
    include_usage: bool     # the request asked for stream_options.include_usage
    created: int
    id: str
    req_id: str             # a request id of Groq's shape, for formats that send one


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
        opts = rec.json.get("stream_options") if isinstance(rec.json, dict) else None
        created = int(time.time())
        return Answer(model, reply, isinstance(opts, dict) and bool(opts.get("include_usage")), created,
                      self.response_id(created), "req_" + rid(26).lower())

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
