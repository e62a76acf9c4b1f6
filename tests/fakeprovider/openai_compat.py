"""The OpenAI-compatible wire format: `POST /chat/completions` with a Bearer key, `chat.completion.chunk` SSE
events ending with `data: [DONE]`, `GET /models` as an OpenAI list, errors as `{"error": {...}}`, and
`POST /embeddings`.

This class serves, as it is, any OpenAI-compatible provider of the gateway's registry that has no format of its
own here; Groq, Cerebras, OpenRouter and Hugging Face subclass it and override only what they do differently.
Shapes: https://platform.openai.com/docs/api-reference/chat/create (and /chat-streaming, /models/list),
https://platform.openai.com/docs/guides/error-codes. Tool calls as OpenAI streams them, each call's first piece
with its id, type, name and empty arguments, then the arguments in pieces, all with the call's index, and
`finish_reason: "tool_calls"`: https://platform.openai.com/docs/guides/function-calling#streaming; whole, in
`message.tool_calls` with `content: null`: https://platform.openai.com/docs/api-reference/chat/object.
Embeddings: https://platform.openai.com/docs/api-reference/embeddings/create (`data[].embedding`, float or
base64 of little-endian float32 with `encoding_format: "base64"`, `dimensions`, `usage`)."""
from __future__ import annotations

import base64
import struct

from tests.fakeprovider.base import Answer, WireFormat, embedding_of, pieces


class OpenAICompatibleFormat(WireFormat):
    reasoning_field = "reasoning_content"   # the DeepSeek convention; Groq, Cerebras, OpenRouter say "reasoning"
    first_delta = {"role": "assistant", "content": ""}   # the delta of the head chunk
    chunk_extras = {"system_fingerprint": "fp_fake"}      # top-level fields between "model" and "choices"
    # The models that take images; a request with an image_url part for another model gets image_error(). None:
    # not modelled, every model takes them (they are recorded either way: RecordedRequest.images()).
    vision_models: tuple[str, ...] | None = None

    def chat_route(self, rest, body):
        if rest != "/chat/completions":
            return None
        if not isinstance(body, dict):
            return None, False
        return body.get("model"), body.get("stream") is True

    def auth_error(self, headers, query, model):
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and auth[7:].strip():
            return None
        return 401, self.error_body(401, model)

    def model_list(self, ids):
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 1735689600,
                                            "owned_by": m.split("/")[0] if "/" in m else self.id} for m in ids]}

    def error_body(self, status, model="model"):
        """OpenAI's error object, {"error": {"message", "type", "param", "code"}}, with plain messages (the
        404 one is the text OpenAI and the providers copying it send for an unknown model)."""
        typ, code, msg = {
            401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
            404: ("invalid_request_error", "model_not_found",
                  f"The model `{model}` does not exist or you do not have access to it."),
            429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
        }.get(status, ("server_error" if status >= 500 else "invalid_request_error", None, "Request failed."))
        return {"error": {"message": msg, "type": typ, "param": None, "code": code}}

    def stream_error_event(self):
        # The openai SDK raises APIError on any data event whose "error" is truthy
        # (https://github.com/openai/openai-python/blob/main/src/openai/_streaming.py).
        return {"error": {"message": "The server had an error while processing your request.", "type": "server_error",
                          "param": None, "code": None}}

    def echo_key_body(self, status, message):
        return {"error": {"message": message, "type": "invalid_request_error", "code": None}}

    def usage(self, a: Answer) -> dict:
        u = dict(a.reply.usage)
        u.setdefault("total_tokens", u.get("prompt_tokens", 0) + u.get("completion_tokens", 0))
        return u

    def choice(self, delta: dict, finish: str | None, last: bool) -> dict:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    def chunk(self, a: Answer, delta: dict, finish: str | None = None, last: bool = False) -> dict:
        return {"id": a.id, "object": "chat.completion.chunk", "created": a.created, "model": a.model,
                **self.chunk_extras, "choices": [self.choice(delta, finish, last)]}

    def reasoning_delta(self, text: str) -> dict:
        """The reasoning fields of a delta (and of a whole message)."""
        return {self.reasoning_field: text}

    def head(self, a):
        delta = dict(self.first_delta)
        if a.calls and "content" in delta:
            # An answer that calls tools starts with null content, as OpenAI's do (a captured stream:
            # https://github.com/alexbrowng/aiomodels/blob/main/tests/openai/chat_completion_chunks/get_weather.py).
            delta["content"] = None
        return [self.chunk(a, delta)]

    def reasoning(self, a, text):
        return self.chunk(a, self.reasoning_delta(text))

    def content(self, a, text, i, n):
        return self.chunk(a, {"content": text})

    def tail(self, a):
        last = self.chunk(a, {}, self.finish(a), last=True)
        return [last] if a.reply.usage is None else self.with_usage(a, last, self.usage(a))

    def with_usage(self, a: Answer, last: dict, usage: dict) -> list[dict]:
        """The tail objects given the finish chunk: OpenAI puts usage in it only when the request asked for it."""
        if a.include_usage:
            last["usage"] = usage
        return [last]

    def full(self, a, chunks):
        r = a.reply
        msg = {"role": "assistant", "content": "".join(chunks) or (None if a.calls else "")}
        reasoning = "".join(r.reasoning)
        if reasoning:
            msg.update(self.reasoning_delta(reasoning))
        if a.calls:
            msg["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}} for c in a.calls]
        obj = {"id": a.id, "object": "chat.completion", "created": a.created, "model": a.model,
               "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": self.finish(a)}]}
        if r.usage is not None:
            obj["usage"] = self.usage(a)
        return self.finish_full(a, obj)

    def finish_full(self, a: Answer, obj: dict) -> dict:
        """Provider-specific additions to the non-streamed response object."""
        return obj

    def tool_call_events(self, a):
        events = []
        for n, call in enumerate(a.calls):
            events.append(self.chunk(a, {"tool_calls": [{"index": n, "id": call.id, "type": "function",
                                                         "function": {"name": call.name, "arguments": ""}}]}))
            events += [self.chunk(a, {"tool_calls": [{"index": n, "function": {"arguments": piece}}]})
                       for piece in pieces(call.arguments)]
        return events

    def wants_json(self, body):
        fmt = body.get("response_format") if isinstance(body, dict) else None
        return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")

    def refusal(self, rec):
        if self.vision_models is None or rec.model in self.vision_models:
            return None
        at = first_image(rec.json)
        return None if at is None else (400, self.image_error(*at))

    def image_error(self, message: int, part: int) -> dict:
        """What a text-only model answers for an image (part `part` of message `message`): OpenAI's own, as
        quoted in https://github.com/vllm-project/vllm/issues/11629."""
        return {"error": {"message": "Invalid content type. image_url is only supported by certain models.",
                          "type": "invalid_request_error", "param": f"messages.[{message}].content.[{part}].type",
                          "code": None}}

    def embeddings_route(self, rest, body):
        if rest != "/embeddings":
            return None
        return (body.get("model") if isinstance(body, dict) else None,)

    def embeddings(self, rec):
        body = rec.json if isinstance(rec.json, dict) else {}
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            # No capture of this refusal was found: the message is assumed, the shape is OpenAI's.
            return 400, {"error": {"message": "'input' must be a non-empty string or array of non-empty strings.",
                                   "type": "invalid_request_error", "param": "input", "code": None}}
        dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) and body["dimensions"] > 0 else None
        packed = body.get("encoding_format") == "base64"
        data = []
        for n, text in enumerate(texts):
            vector = embedding_of(text, *([dims] if dims else []))
            if packed:
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": n, "embedding": vector})
        tokens = sum(max(1, len(t) // 4) for t in texts)
        return 200, {"object": "list", "data": data, "model": rec.model,
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def first_image(body) -> tuple[int, int] | None:
    """(message index, part index) of the first image_url part of an OpenAI-shaped request; None without one."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for n, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        for k, part in enumerate(content if isinstance(content, list) else []):
            if isinstance(part, dict) and part.get("type") == "image_url":
                return n, k
    return None
