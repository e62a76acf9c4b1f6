"""Cerebras (`https://api.cerebras.ai/v1`): OpenAI-compatible, with its own chunk layout (no finish_reason or
logprobs keys until the last chunk, `choices` before `object`), usage and time_info always in the last chunk,
4xx error bodies not wrapped in "error" (5xx are), and window-suffixed rate-limit headers.

Streams and bodies: vercel/ai's recorded fixtures cerebras-structured-output-tools.1.json and
cererebras-structured-output-tools.1.chunks.txt (sic) in
https://github.com/vercel/ai/tree/main/packages/cerebras/src/fixtures; the same .chunks.txt streams a tool
call whole in one delta (`function` first, an id of 9 hex digits) with `finish_reason: "tool_calls"`."""
from __future__ import annotations

import secrets

from providers.cerebras import CerebrasProvider
from tests.fakeprovider.openai_compat import OpenAICompatibleFormat
from tests.fakeprovider.records import AnsweredCall


class CerebrasFormat(OpenAICompatibleFormat):
    provider = CerebrasProvider
    other_models = ("llama3.1-8b", "gpt-oss-120b", "qwen-3-235b-a22b-instruct-2507")
    reasoning_field = "reasoning"
    first_delta = {"role": "assistant"}

    def answered_call(self, n, name, arguments, reply):
        return AnsweredCall(secrets.token_hex(5)[:9], name, arguments)

    def tool_call_events(self, a):
        return [self.chunk(a, {"tool_calls": [
            {"function": {"name": c.name, "arguments": c.arguments}, "type": "function", "id": c.id, "index": n}
            for n, c in enumerate(a.calls)]})] if a.calls else []

    def chunk(self, a, delta, finish=None, last=False):
        choice = {"delta": delta, "index": 0, **({"finish_reason": finish} if last else {})}
        return {"id": a.id, "choices": [choice], "created": a.created, "model": a.model,
                "system_fingerprint": "fp_fake", "object": "chat.completion.chunk"}

    def with_usage(self, a, last, usage):
        # usage and time_info in the last chunk even without stream_options (the .chunks.txt fixture above).
        last["usage"], last["time_info"] = usage, {"queue_time": 0.001, "prompt_time": 0.001,
                                                   "completion_time": 0.02, "total_time": 0.022}
        return [last]

    def error_body(self, status, model="model"):
        """The 5xx and 400 bodies are vercel/ai's test of "the exact response body shape returned by Cerebras":
        https://github.com/vercel/ai/blob/main/packages/cerebras/src/cerebras-error.test.ts"""
        if status >= 500:  # wrapped, with status_code
            return {"status_code": status, "error": {"message": "Encountered a server error, please try again.",
                                                     "type": "server_error", "param": "", "code": "", "id": ""}}
        if status == 400:  # wrapped, with an integer code
            return {"error": {"message": "Bad request", "type": "invalid_request_error", "code": 400}}
        msg, typ, param, code = {
            # Observed with a wrong key; no public capture to link.
            401: ("Wrong API Key", "invalid_request_error", "api_key", "wrong_api_key"),
            # 404 model_not_found for a retired model: https://github.com/makoMakoGo/thanks-to-cerebras/issues/41
            404: (f"Model {model} does not exist or you do not have access to it.", "not_found_error", "model",
                  "model_not_found"),
            # https://github.com/nminaya/grammar-nazi-bot/issues/954
            429: ("Requests per minute limit exceeded - too many requests sent.", "too_many_requests_error", "quota",
                  "request_quota_exceeded"),
        }.get(status, ("Request failed", "invalid_request_error", "", ""))  # other 4xx: assumed
        return {"message": msg, "type": typ, "param": param, "code": code}

    def stream_error_event(self):
        # No capture of a mid-stream error exists; assumed to be the wrapped 5xx body sent as a data event.
        return self.error_body(500)

    def echo_key_body(self, status, message):
        if status < 500:
            return {"message": message, "type": "invalid_request_error", "param": "", "code": ""}
        return super().echo_key_body(status, message)

    def default_headers(self, status):
        # On every response, windows in the names, resets in float seconds:
        # https://inference-docs.cerebras.ai/support/rate-limits
        return {"x-ratelimit-limit-requests-day": "14400", "x-ratelimit-limit-tokens-minute": "1000000",
                "x-ratelimit-remaining-requests-day": "14399", "x-ratelimit-remaining-tokens-minute": "999950",
                "x-ratelimit-reset-requests-day": "33011.382867097855",
                "x-ratelimit-reset-tokens-minute": "11.382867097854614"}
