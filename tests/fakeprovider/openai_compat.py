"""The OpenAI-compatible wire format: `POST /chat/completions` with a Bearer key, `chat.completion.chunk` SSE
events ending with `data: [DONE]`, `GET /models` as an OpenAI list, errors as `{"error": {...}}`.

This class serves, as it is, any OpenAI-compatible provider of the gateway's registry that has no format of its
own here; Groq, Cerebras, OpenRouter and Hugging Face subclass it and override only what they do differently.
Shapes: https://platform.openai.com/docs/api-reference/chat/create (and /chat-streaming, /models/list),
https://platform.openai.com/docs/guides/error-codes."""
from __future__ import annotations

from tests.fakeprovider.base import Answer, WireFormat


class OpenAICompatibleFormat(WireFormat):
    reasoning_field = "reasoning_content"   # the DeepSeek convention; Groq, Cerebras, OpenRouter say "reasoning"
    first_delta = {"role": "assistant", "content": ""}   # the delta of the head chunk
    chunk_extras = {"system_fingerprint": "fp_fake"}      # top-level fields between "model" and "choices"

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
        return [self.chunk(a, dict(self.first_delta))]

    def reasoning(self, a, text):
        return self.chunk(a, self.reasoning_delta(text))

    def content(self, a, text, i, n):
        return self.chunk(a, {"content": text})

    def tail(self, a):
        last = self.chunk(a, {}, a.reply.finish_reason, last=True)
        return [last] if a.reply.usage is None else self.with_usage(a, last, self.usage(a))

    def with_usage(self, a: Answer, last: dict, usage: dict) -> list[dict]:
        """The tail objects given the finish chunk: OpenAI puts usage in it only when the request asked for it."""
        if a.include_usage:
            last["usage"] = usage
        return [last]

    def full(self, a, chunks):
        r = a.reply
        msg = {"role": "assistant", "content": "".join(chunks)}
        reasoning = "".join(r.reasoning)
        if reasoning:
            msg.update(self.reasoning_delta(reasoning))
        obj = {"id": a.id, "object": "chat.completion", "created": a.created, "model": a.model,
               "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": r.finish_reason}]}
        if r.usage is not None:
            obj["usage"] = self.usage(a)
        return self.finish_full(a, obj)

    def finish_full(self, a: Answer, obj: dict) -> dict:
        """Provider-specific additions to the non-streamed response object."""
        return obj
