"""OpenRouter (`https://openrouter.ai/api/v1`): OpenAI-compatible, with a `provider` field, the role and empty
reasoning fields repeated in every delta, `native_finish_reason`, reasoning as text and as `reasoning_details`,
usage in a chunk of its own after the finish chunk, and errors whose `code` is the HTTP status.

Streams: https://openrouter.ai/docs/api-reference/streaming ("streaming page" below),
usage: https://openrouter.ai/docs/use-cases/usage-accounting, errors: https://openrouter.ai/docs/errors."""
from __future__ import annotations

from providers.openrouter import OpenRouterProvider
from tests.fakeprovider.base import rid
from tests.fakeprovider.openai_compat import OpenAICompatibleFormat


class OpenRouterFormat(OpenAICompatibleFormat):
    provider = OpenRouterProvider
    other_models = ("deepseek/deepseek-r1", "openai/gpt-oss-120b:free", "meta-llama/llama-3.3-70b-instruct:free")
    unknown_model_status = 400  # "<model> is not a valid model ID"
    reasoning_field = "reasoning"
    chunk_extras = {"provider": "Chutes"}  # the upstream that served the request

    def response_id(self, created):
        return f"gen-{created}-{rid(20)}"

    def choice(self, delta, finish, last):
        delta = {"role": "assistant", "content": "", "reasoning": None, "reasoning_details": [], **delta}
        return {"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish, "logprobs": None}

    def reasoning_delta(self, text):
        return {"reasoning": text,
                "reasoning_details": [{"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}]}

    def with_usage(self, a, last, usage):
        # Usage comes in the last SSE message, asked for or not (usage-accounting page), in a chunk of its own
        # after the finish chunk that still holds a choice with an empty delta (as real streams show).
        extra = self.chunk(a, {})
        extra["usage"] = usage
        return [last, extra]

    def finish_full(self, a, obj):
        obj["provider"] = "Chutes"
        obj["choices"][0]["native_finish_reason"] = self.finish(a)
        return obj

    def error_body(self, status, model="model"):
        """{"error": {"code": <the HTTP status>, "message", "metadata"?}, "user_id"} (errors page); the messages
        are the ones users report."""
        if status == 401:
            return {"error": {"message": "No auth credentials found", "code": 401}}
        err = {"code": status, "message": {
            400: f"{model} is not a valid model ID",
            402: "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
            404: f"No endpoints found for {model}.",  # https://github.com/end-4/dots-hyprland/issues/2972
            429: "Provider returned error", 502: "Provider returned error"}.get(status, "Internal Server Error")}
        if status == 429:  # the upstream's own limit, told in metadata
            err["metadata"] = {"raw": f"{model} is temporarily rate-limited upstream. Please retry shortly, or "
                               "add your own key to accumulate your rate limits: "
                               "https://openrouter.ai/settings/integrations",
                               "provider_name": "DeepInfra", "is_byok": False,
                               "provider_error_code": "engine_overloaded",
                               "limit_source": "upstream_provider_shared_pool"}
        return {"error": err, "user_id": "user_2fakefakefake"}

    def stream_error_event(self):
        # After the first token an error is one data event under HTTP 200, then the stream ends; error.code is a
        # *string* here (streaming page, "Handling Errors During Streaming").
        return {"error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}

    def default_headers(self, status):
        # X-Generation-Id on every answer (streaming page); no x-ratelimit-* headers (errors page, Retry-After).
        return {"x-generation-id": "gen-" + rid(20)} if status == 200 else {}
