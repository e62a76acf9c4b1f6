"""Google Gemini's native API (`https://generativelanguage.googleapis.com/v1beta`): `POST
/models/{model}:generateContent` and `:streamGenerateContent?alt=sse` with the key in `x-goog-api-key` or `?key=`,
each event one whole `GenerateContentResponse` whose text is a delta, `usageMetadata` in every event counting up,
`finishReason` only in the last, no `[DONE]`, and gRPC-style errors.

Bodies and streams: vercel/ai's recorded fixtures,
https://github.com/vercel/ai/blob/main/packages/google/src/__fixtures__/google-text.json (non-streamed) and
https://github.com/vercel/ai/blob/main/packages/google/src/__fixtures__/google-reasoning-gemini3.chunks.txt.
Function calls: each whole in a `functionCall` part (no id), Gemini 3's `thoughtSignature` on the first one,
then an empty text part with finishReason STOP (no signature), as in
https://github.com/vercel/ai/blob/main/packages/google/src/__fixtures__/google-tool-call-gemini3.chunks.txt and
https://github.com/vercel/ai/blob/main/packages/google/src/__fixtures__/google-tool-call-gemini3.json.
Embeddings: `POST /models/{model}:batchEmbedContents` -> `{"embeddings": [{"values"}]}` (no usage),
https://ai.google.dev/api/embeddings#method:-models.batchembedcontents, and `:embedContent` ->
`{"embedding": {"values"}}`."""
from __future__ import annotations

import base64
import json
import re
import secrets
from urllib.parse import unquote

from providers.gemini import GeminiProvider
from tests.fakeprovider.base import WireFormat, embedding_of, rid
from tests.fakeprovider.records import AnsweredCall

# The gRPC status each HTTP status comes with: https://ai.google.dev/gemini-api/docs/troubleshooting
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
CHAT_PATH = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)")
EMBED_PATH = re.compile(r"/models/([^/:]+):(batchEmbedContents|embedContent)")
# The documented stand-in Gemini accepts for a call it did not make:
# https://ai.google.dev/gemini-api/docs/thought-signatures#faqs
SKIP_SIGNATURE = "skip_thought_signature_validator"
# The models that refuse a function call of the current turn without its signature: Gemini 3
# (https://ai.google.dev/gemini-api/docs/thought-signatures; 2.5 only recommends sending it back).
VALIDATES_SIGNATURES = re.compile(r"gemini-3")
MAX_BATCH = 100  # batchEmbedContents' limit


def new_signature() -> str:
    """A thought signature as Gemini writes it: standard base64 with `/` and `=` padding (62 bytes), starting
    like the real ones ("EpEg...", google-tool-call-gemini3.chunks.txt)."""
    return base64.b64encode(b"\x12\x91\x20\xff\xff\xff" + secrets.token_bytes(56)).decode()


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
        # Gemini 3's last event: empty text with a thoughtSignature, and the finishReason; after function calls
        # the signature was on the first call, and the empty text has none.
        last = {"text": ""} if a.calls else {"text": "", "thoughtSignature": "EpAICo0I" + rid(40)}
        return [self.response(a, [last], 1.0, a.reply.finish_reason)]

    def full(self, a, chunks):
        reasoning = "".join(a.reply.reasoning)
        parts = [{"text": reasoning, "thought": True}] if reasoning else []
        if a.calls:
            parts += ([{"text": "".join(chunks)}] if "".join(chunks) else []) + self.call_parts(a)
        else:
            parts.append({"text": "".join(chunks), "thoughtSignature": "EtoFCtcF" + rid(40)})
        obj = self.response(a, parts, 1.0, a.reply.finish_reason)
        if a.calls:
            obj["candidates"][0]["finishMessage"] = "Model generated function call(s)."  # google-tool-call-gemini3.json
        return obj

    def answered_call(self, n, name, arguments, reply):
        signature = (reply.thought_signature or new_signature()) if n == 0 else None
        return AnsweredCall(None, name, arguments, signature)

    def call_parts(self, a) -> list[dict]:
        parts = []
        for c in a.calls:
            part = {"functionCall": {"name": c.name, "args": json.loads(c.arguments) if c.arguments.strip() else {}}}
            if c.thought_signature:
                part["thoughtSignature"] = c.thought_signature
            parts.append(part)
        return parts

    def tool_call_events(self, a):
        # All the calls in one event, with the usage so far (google-tool-call-gemini3.chunks.txt).
        return [self.response(a, self.call_parts(a), 1.0)] if a.calls else []

    def finish(self, a):
        return a.reply.finish_reason  # an answer that calls functions ends with STOP too

    def wants_json(self, body):
        config = body.get("generationConfig") if isinstance(body, dict) else None
        return isinstance(config, dict) and config.get("responseMimeType") == "application/json"

    def refusal(self, rec):
        """Gemini 3 refuses a request whose current turn (what follows the last user text) holds a model content
        whose first functionCall part has no thoughtSignature. The message as users quote it, e.g.
        https://github.com/manthanabc/paws/issues/103 (`position` is taken to be the content's 1-based index)."""
        if not VALIDATES_SIGNATURES.search(rec.model or ""):
            return None
        contents = rec.json.get("contents") if isinstance(rec.json, dict) else None
        contents = [c for c in contents if isinstance(c, dict)] if isinstance(contents, list) else []
        turn = max((n for n, c in enumerate(contents) if c.get("role") == "user" and any(
            isinstance(p, dict) and "text" in p for p in c.get("parts") or [])), default=0)
        for n, content in enumerate(contents[turn:], start=turn):
            calls = [p for p in content.get("parts") or [] if isinstance(p, dict) and "functionCall" in p]
            if content.get("role") == "model" and calls and not calls[0].get("thoughtSignature"):
                call = calls[0]["functionCall"]
                name = call.get("name") if isinstance(call, dict) else None
                message = ("Function call is missing a thought_signature in functionCall parts. This is required for "
                           "tools to work correctly, and missing thought_signature may lead to degraded model "
                           f"performance. Additional data, function call `default_api:{name}` , position {n + 1}. "
                           "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")
                return 400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
        return None

    def embeddings_route(self, rest, body):
        match = EMBED_PATH.fullmatch(rest)
        return None if match is None else (unquote(match.group(1)),)

    def embeddings(self, rec):
        body = rec.json if isinstance(rec.json, dict) else {}
        batch = "requests" in body
        requests = body.get("requests") if batch else [body]
        # Requests without text: refused in Gemini's shape, the messages assumed (no capture found).
        if not isinstance(requests, list) or not requests:
            return 400, self.invalid("* BatchEmbedContentsRequest.requests: contents is not specified\n")
        if len(requests) > MAX_BATCH:
            # vercel/ai's fixture issue-16101-google-batch-embed-150-error.json, in
            # https://github.com/vercel/ai/tree/main/packages/google/src/__fixtures__
            return 400, self.invalid("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n")
        vectors = []
        for request in requests:
            content = request.get("content") if isinstance(request, dict) else None
            parts = content.get("parts") if isinstance(content, dict) else None
            text = "".join(p.get("text") or "" for p in parts if isinstance(p, dict)) if isinstance(parts, list) else ""
            if not isinstance(text, str) or not text:
                return 400, self.invalid("* BatchEmbedContentsRequest.requests[0].content: contents is not specified\n")
            dims = request.get("outputDimensionality")
            vectors.append({"values": embedding_of(text, *([dims] if isinstance(dims, int) and dims > 0 else []))})
        return 200, {"embeddings": vectors} if batch else {"embedding": vectors[0]}

    @staticmethod
    def invalid(message: str) -> dict:
        return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
