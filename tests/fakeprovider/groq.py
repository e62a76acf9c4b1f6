"""Groq (`https://api.groq.com/openai/v1`): OpenAI-compatible, with request timings inside `usage`, an `x_groq`
object, usage twice in the last chunk, and rate-limit headers on every response.

Streams and bodies: vercel/ai's recorded fixtures,
https://github.com/vercel/ai/blob/main/packages/groq/src/__fixtures__/groq-text.json (non-streamed),
https://github.com/vercel/ai/blob/main/packages/groq/src/__fixtures__/groq-text.chunks.txt and
https://github.com/vercel/ai/blob/main/packages/groq/src/__fixtures__/groq-reasoning.chunks.txt (streams).
Tool calls, each whole in one delta (id of 9 characters, all the arguments), and a message without `content`:
https://github.com/vercel/ai/blob/main/packages/groq/src/__fixtures__/groq-tool-call.chunks.txt and
https://github.com/vercel/ai/blob/main/packages/groq/src/__fixtures__/groq-tool-call.json."""
from __future__ import annotations

import secrets
import string

from providers.groq import GroqProvider
from tests.fakeprovider.base import rid
from tests.fakeprovider.openai_compat import OpenAICompatibleFormat
from tests.fakeprovider.records import AnsweredCall


class GroqFormat(OpenAICompatibleFormat):
    provider = GroqProvider
    other_models = ("llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b")
    reasoning_field = "reasoning"  # qwen3 and gpt-oss stream delta.reasoning (groq-reasoning.chunks.txt)
    # Groq's models that take images (https://console.groq.com/docs/vision); the others are text-only.
    vision_models = ("meta-llama/llama-4-scout-17b-16e-instruct", "meta-llama/llama-4-maverick-17b-128e-instruct")

    def answered_call(self, n, name, arguments, reply):
        return AnsweredCall("".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(9)),
                            name, arguments)

    def tool_call_events(self, a):
        # Every call whole, in one delta (groq-tool-call.chunks.txt shows one call; several in one delta assumed).
        return [self.chunk(a, {"tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}, "index": n}
            for n, c in enumerate(a.calls)]})] if a.calls else []

    def refusal(self, rec):
        body = rec.json if isinstance(rec.json, dict) else {}
        if body.get("response_format") is not None and body.get("stream") is True:
            # https://github.com/langchain-ai/langchain/issues/23629 (the stray backtick is Groq's)
            return 400, {"error": {"message": "response_format` does not support streaming",
                                   "type": "invalid_request_error"}}
        return super().refusal(rec)

    def image_error(self, message, part):
        # A text-only Groq model given an image part: https://github.com/vercel/ai/issues/2837
        return {"error": {"message": f"message[{message}].content must be a string", "type": "invalid_request_error"}}

    def embeddings(self, rec):
        # Groq has no embeddings endpoint: https://github.com/crewAIInc/crewAI/issues/522 (the message; the type
        # and code are Groq's for an unknown URL, as users report them).
        return 404, {"error": {"message": "Unknown request URL: POST /openai/v1/embeddings. Please check the URL "
                               "for typos, or see the docs at https://console.groq.com/docs/",
                               "type": "invalid_request_error", "code": "unknown_url"}}

    def usage(self, a):
        # Timing fields inside usage (groq-text.json).
        return {"queue_time": 0.01, "prompt_time": 0.001, "completion_time": 0.02, "total_time": 0.021,
                **super().usage(a)}

    def head(self, a):
        # The first chunk carries x_groq {"id": "req_...", "seed"} (groq-text.chunks.txt).
        first = super().head(a)[0]
        first["x_groq"] = {"id": a.req_id, "seed": 167346302}
        return [first]

    def with_usage(self, a, last, usage):
        # Usage twice in the last chunk, in x_groq and at the top level, asked for or not (groq-text.chunks.txt).
        last["x_groq"], last["usage"] = {"id": a.req_id, "usage": usage}, usage
        return [last]

    def finish_full(self, a, obj):
        if obj["choices"][0]["message"]["content"] is None:  # a tool call answer has no content key
            del obj["choices"][0]["message"]["content"]
        obj.update({"system_fingerprint": "fp_fake", "x_groq": {"id": a.req_id, "seed": 167346302},
                    "service_tier": "on_demand"})   # groq-text.json
        return obj

    def error_body(self, status, model="model"):
        """Always {"error": {"message", "type", "code"}}, except a 403 and Envoy's plain-text 503."""
        known = {
            # https://github.com/langchain-ai/langchain/issues/32899, https://github.com/vercel/ai/issues/8630
            400: ("invalid_request_error", "model_decommissioned",
                  f"The model `{model}` has been decommissioned and is no longer supported. Please refer to "
                  "https://console.groq.com/docs/deprecations for a recommendation on which model to use instead."),
            # https://github.com/ag5826000/resume-commentor/issues/4
            401: ("invalid_request_error", "invalid_api_key", "Invalid API Key"),
            # https://github.com/lobehub/lobehub/issues/3367
            404: ("invalid_request_error", "model_not_found",
                  f"The model `{model}` does not exist or you do not have access to it."),
            # https://github.com/Aider-AI/aider/issues/3265: `type` is the kind of limit (tokens or requests)
            429: ("tokens", "rate_limit_exceeded", f"Rate limit reached for model `{model}` in organization "
                  "`org_01fakefakefake` service tier `on_demand` on tokens per minute (TPM): Limit 15000, Used 11972, "
                  "Requested 4351. Please try again in 5.289s. Visit https://console.groq.com/docs/rate-limits for "
                  "more information."),
        }
        if status == 403:  # a network or region block, as reported by users (no public capture found)
            return {"error": {"message": "Access denied. Please check your network settings."}}
        if status == 503:  # plain text from Envoy, not JSON: https://github.com/nminaya/grammar-nazi-bot/issues/931
            return "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        # Other statuses (https://console.groq.com/docs/errors lists them): no body captured, this one is assumed.
        typ, code, msg = known.get(status, ("internal_server_error", "internal_server_error", "Internal Server Error"))
        return {"error": {"message": msg, "type": typ, "code": code}}

    def stream_error_event(self):
        # Sent under HTTP 200 as a data event: https://github.com/langchain4j/langchain4j/issues/2585
        return {"error": {"message": "Failed to call a function. Please adjust your prompt. See 'failed_generation' "
                          "for more details.", "type": "invalid_request_error", "code": "tool_use_failed",
                          "failed_generation": "", "status_code": 400}}

    def default_headers(self, status):
        # https://console.groq.com/docs/rate-limits: limit-requests is per day (RPD), limit-tokens per minute (TPM),
        # resets are Go durations, retry-after (seconds) only on 429. Values' shapes and x-request-id as captured
        # in https://github.com/groq/groq-typescript/issues/28, x-groq-region in
        # https://github.com/ag5826000/resume-commentor/issues/4.
        h = {"x-ratelimit-limit-requests": "14400", "x-ratelimit-limit-tokens": "300000",
             "x-ratelimit-remaining-requests": "14399", "x-ratelimit-remaining-tokens": "299950",
             "x-ratelimit-reset-requests": "6s", "x-ratelimit-reset-tokens": "10ms",
             "x-request-id": "req_" + rid(26).lower(), "x-groq-region": "fake-1"}
        if status == 429:
            h.update({"retry-after": "6", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "5.289s"})
        return h
