"""Google Gemini's native API (`https://generativelanguage.googleapis.com/v1beta`): `POST
/models/{model}:generateContent` and `:streamGenerateContent?alt=sse` with the key in `x-goog-api-key` or `?key=`,
each event one whole `GenerateContentResponse` whose text is a delta, `usageMetadata` in every event counting up,
`finishReason` only in the last, no `[DONE]`, and gRPC-style errors.

Bodies and streams: vercel/ai's recorded fixtures,
https://github.com/vercel/ai/blob/main/packages/google/src/__fixtures__/google-text.json (non-streamed) and
https://github.com/vercel/ai/blob/main/packages/google/src/__fixtures__/google-reasoning-gemini3.chunks.txt."""
from __future__ import annotations

import re
from urllib.parse import unquote

from providers.gemini import GeminiProvider
from tests.fakeprovider.base import WireFormat, rid

# The gRPC status each HTTP status comes with: https://ai.google.dev/gemini-api/docs/troubleshooting
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
CHAT_PATH = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)")


class GeminiFormat(WireFormat):
    provider = GeminiProvider
    other_models = ("gemini-2.5-flash", "gemini-2.5-pro")
    done_event = None
    malformed = '{"candidates": ['
    endless_line_head = b'data: {"candidates":[{"content":{"parts":[{"text":"'

    def chat_route(self, rest, body):
        match = CHAT_PATH.fullmatch(rest)
        if match is None:
            return None
        return unquote(match.group(1)), match.group(2) == "streamGenerateContent"  # one path segment, %-decoded

    def auth_error(self, headers, query, model):
        # A key in x-goog-api-key or ?key= (https://ai.google.dev/gemini-api/docs/api-key). Without one: 403; a
        # Bearer token instead is taken for OAuth and refused with 401.
        if headers.get("x-goog-api-key") or query.get("key"):
            return None
        status = 401 if headers.get("authorization") else 403
        return status, self.error_body(status, model)

    def model_list(self, ids):
        # https://ai.google.dev/api/models#method:-models.list
        return {"models": [{"name": f"models/{m}", "version": "001", "displayName": m, "inputTokenLimit": 1048576,
                            "outputTokenLimit": 65536, "supportedGenerationMethods":
                            ["generateContent", "streamGenerateContent", "countTokens"]} for m in ids]}

    def error_body(self, status, model="model"):
        """{"error": {"code", "message", "status", "details"?}}. An invalid key is a 400:
        https://github.com/continuedev/continue/issues/10290; the 429's details (QuotaFailure, RetryInfo) as in
        https://github.com/vercel/ai/blob/main/packages/google/src/__fixtures__/google-429-retry-info.json; the 500
        and Gemini 3's 503: https://github.com/google-gemini/gemini-cli/issues/4360,
        https://github.com/continuedev/continue/issues/10639. The 401, 403 and 404 messages are as users report
        them (no public capture to link)."""
        msg, details = {
            400: ("API key not valid. Please pass a valid API key.", [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                 "message": "API key not valid. Please pass a valid API key."}]),
            401: ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                  "other valid authentication credential.", None),
            403: ("Method doesn't allow unregistered callers (callers without established identity). Please use API "
                  "Key or other form of API consumer identity to call this API.", None),
            404: (f"models/{model} is not found for API version v1beta, or is not supported for generateContent. "
                  "Call ListModels to see the list of available models and their supported methods.", None),
            429: ("You exceeded your current quota, please check your plan and billing details. For more information "
                  "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.", [
                      {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                          {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                           "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                           "quotaDimensions": {"location": "global", "model": model}, "quotaValue": "10"}]},
                      {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                          {"description": "Learn more about Gemini API quotas",
                           "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                      {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"}]),
            500: ("An internal error has occurred. Please retry or report in "
                  "https://developers.generativeai.google/guide/troubleshooting", None),
            503: ("This model is currently experiencing high demand. Spikes in demand are usually temporary. "
                  "Please try again later.", None),
            504: ("Deadline expired before operation could complete.", None),
        }.get(status, ("Request failed.", None))
        err = {"code": status, "message": msg, "status": GEMINI_STATUS.get(status, "UNKNOWN")}
        if details:
            err["details"] = details
        return {"error": err}

    def stream_error_event(self):
        # Undocumented and never captured; assumed to be the error object clients check each event for.
        return {"error": {"code": 500, "message": self.error_body(500)["error"]["message"], "status": "INTERNAL"}}

    def echo_key_body(self, status, message):
        return {"error": {"code": status, "message": message, "status": GEMINI_STATUS.get(status, "UNKNOWN")}}

    def separator(self, fake):
        # Gemini ends events with \r\n\r\n; Google's own SDK accepts \n\n, \r\r or \r\n\r\n (responseLineRE in
        # https://github.com/google-gemini/generative-ai-js/blob/main/src/requests/stream-reader.ts).
        return b"\r\n\r\n" if fake.gemini_crlf else b"\n\n"

    def streams_array(self, rec):
        # Without alt=sse, streamGenerateContent streams one JSON array, `[{...},\r\n{...}]`, not SSE (observed).
        return rec.query.get("alt") != "sse"

    def response_id(self, created):
        return rid(22)

    def response(self, a, parts, done_frac, finish=None):
        obj = {"candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0}],
               "modelVersion": a.model, "responseId": a.id}
        if finish:
            obj["candidates"][0]["finishReason"] = {"stop": "STOP", "length": "MAX_TOKENS"}.get(finish, finish.upper())
        usage = a.reply.usage
        if usage is not None:  # in every event, counting up; totalTokenCount includes the thoughts
            prompt, done = usage.get("prompt_tokens", 0), round(usage.get("completion_tokens", 0) * done_frac)
            meta = {"promptTokenCount": prompt, "candidatesTokenCount": done,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
            thoughts = len(a.reply.reasoning) * 3
            if thoughts:
                meta["thoughtsTokenCount"] = thoughts
            meta["totalTokenCount"] = prompt + done + thoughts
            obj["usageMetadata"] = meta
        return obj

    def reasoning(self, a, text):
        return self.response(a, [{"text": text, "thought": True}], 0.0)  # thought summaries are parts of their own

    def content(self, a, text, i, n):
        return self.response(a, [{"text": text}], (i + 1) / n)

    def tail(self, a):
        # Gemini 3's last event: empty text with a thoughtSignature, and the finishReason.
        return [self.response(a, [{"text": "", "thoughtSignature": "EpAICo0I" + rid(40)}], 1.0,
                              a.reply.finish_reason)]

    def full(self, a, chunks):
        reasoning = "".join(a.reply.reasoning)
        parts = ([{"text": reasoning, "thought": True}] if reasoning else []) + \
                [{"text": "".join(chunks), "thoughtSignature": "EtoFCtcF" + rid(40)}]
        return self.response(a, parts, 1.0, a.reply.finish_reason)
