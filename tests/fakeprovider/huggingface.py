"""Hugging Face Inference Providers router (`https://router.huggingface.co/v1`): it forwards the serving
provider's OpenAI-compatible answer, so streams are the plain OpenAI shape (usage only when asked for, reasoning
in `reasoning_content`); what differs is the error bodies, mostly `{"error": "<a string>"}`, and the
`x-inference-provider` header naming the provider that served (as huggingface/chat-ui reads it:
https://github.com/huggingface/chat-ui/blob/main/src/lib/server/textGeneration/mcp/runMcpFlow.ts)."""
from __future__ import annotations

from providers.huggingface import HuggingFaceProvider
from tests.fakeprovider.openai_compat import OpenAICompatibleFormat


class HuggingFaceFormat(OpenAICompatibleFormat):
    provider = HuggingFaceProvider
    other_models = ("Qwen/Qwen2.5-72B-Instruct", "openai/gpt-oss-120b")
    unknown_model_status = 400  # model_not_supported: no provider you enabled serves it

    def error_body(self, status, model="model"):
        """The 401 is https://github.com/huggingface/huggingface_hub/issues/3368; the 400, 402 and 403 are as users
        report them (no public capture to link); no 429 or 5xx body was ever seen, these are assumed."""
        if status == 400:
            return {"error": {"message": f"The requested model '{model}' is not supported by any provider you "
                              "have enabled.", "type": "invalid_request_error", "param": "model",
                              "code": "model_not_supported"}}
        return {"error": {
            401: "Invalid credentials in Authorization header",
            402: "You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO to get "
                 "20x more monthly included credits.",
            403: "This authentication method does not have sufficient permissions to call Inference Providers on "
                 "behalf of user fake-user",
            429: "Rate limit reached. Please retry later."}.get(status, "Internal Server Error")}

    def stream_error_event(self):
        # No capture of a mid-stream error exists; assumed to be TGI's error event.
        return {"error": "Input validation error", "error_type": "generation"}

    def echo_key_body(self, status, message):
        return {"error": message}

    def default_headers(self, status):
        return {"x-inference-provider": "cerebras"}
