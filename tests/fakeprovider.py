"""A local fake of the five upstream providers (Groq, Cerebras, OpenRouter, Gemini, Hugging Face).

One threaded HTTP/1.1 server, started in-process by tests; the gateway under test (a separate gunicorn
process) talks to it over the network. Wire formats follow /work/shared/PROVIDERS.md ("PM §n" below).

    with FakeProviders() as fake:
        fake.enqueue("groq", Reply(status=429))                   # next groq chat call gets Groq's real 429
        fake.enqueue("gemini", Reply(interval=0.05, drop_after=2))
        fake.enqueue("groq", Reply(endless="events"))                # a hostile provider: data events forever
        gateway_env = {"GROQ_BASE_URL": fake.base_url("groq"), ...}

Standard library only.
"""
from __future__ import annotations

import collections
import json
import re
import secrets
import select
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

PROVIDERS = ("groq", "cerebras", "openrouter", "gemini", "huggingface")
BASE_PATHS = {"groq": "/groq/openai/v1", "cerebras": "/cerebras/v1", "openrouter": "/openrouter/api/v1",
              "gemini": "/gemini/v1beta", "huggingface": "/huggingface/v1"}
DEFAULT_MODELS = {
    "groq": ["moonshotai/kimi-k2-instruct-0905", "llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b"],
    "cerebras": ["zai-glm-4.7", "llama3.1-8b", "gpt-oss-120b", "qwen-3-235b-a22b-instruct-2507"],
    "openrouter": ["deepseek/deepseek-r1-0528:free", "deepseek/deepseek-r1", "openai/gpt-oss-120b:free",
                   "meta-llama/llama-3.3-70b-instruct:free"],
    "gemini": ["gemini-3-flash-preview", "gemini-2.5-flash", "gemini-2.5-pro"],
    "huggingface": ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-72B-Instruct", "openai/gpt-oss-120b"],
}
# Field each provider streams reasoning text in (PM §1-3, §5; HF follows the DeepSeek/TGI convention).
REASONING_FIELD = {"groq": "reasoning", "cerebras": "reasoning", "openrouter": "reasoning",
                   "huggingface": "reasoning_content"}
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
MALFORMED = '{"choices": ['  # truncated JSON for Reply(malformed=True)
# What each provider answers for a model it does not offer (PM §1-5), with FakeProviders.strict_models on.
UNKNOWN_MODEL_STATUS = {"groq": 404, "cerebras": 404, "openrouter": 400, "gemini": 404, "huggingface": 400}
# Start of an SSE line whose content never ends, for Reply(endless="line").
ENDLESS_LINE_HEAD = {"gemini": b'data: {"candidates":[{"content":{"parts":[{"text":"'}
FLOOD_TEXT = "a" * 1024  # the content of every event of Reply(endless="events")
FLOOD_BLOCK = 64 * 1024  # bytes per write of a flood


@dataclass
class Reply:
    """What the fake answers to one chat request. Timings are seconds."""
    chunks: list[str] | None = None        # content deltas; None = "Hello", " from", " <provider id>"
    reasoning: list[str] = field(default_factory=list)  # reasoning deltas, sent before the content
    header_delay: float = 0.0               # before the status line (nothing at all is sent meanwhile)
    first_delay: float = 0.0                # streams: after the headers, before the first data event (TTFT);
                                            # non-streamed/error replies: before the whole response
    interval: float = 0.0                   # between data events (reasoning and content)
    status: int = 200
    headers: dict = field(default_factory=dict)  # extra/overriding response headers
    body: str | dict | None = None          # error body; None = the provider's real body for `status`
    keepalive: int = 0                      # SSE comment lines before the first data event (spread over first_delay)
    drop_after: int | None = None           # after N content chunks close the socket abruptly
    stall_after: int | None = None          # after N content chunks go silent for stall_seconds, then drop
    stall_seconds: float = 30.0
    never_answer: bool = False              # read the request, send nothing (stall_seconds), then close
    malformed: bool = False                 # a broken-JSON data event after the first content chunk
    error_event: dict | None = None         # sent as a data event after the content; see stream_error_event()
    finish_reason: str = "stop"
    usage: dict | None = field(default_factory=lambda: {"prompt_tokens": 10, "completion_tokens": 5})
                                            # (any numbers, e.g. 10**30 or 1e308, are sent as they are)
    times: int = 1                          # how many consecutive requests this queued reply serves
    # Hostile modes: a broken or malicious provider. Floods (endless, body_bytes) are recorded in fake.floods.
    raw_events: list[str | bytes] = field(default_factory=list)  # data payloads sent verbatim as `data: <payload>`
                                            # events (bytes as they are, e.g. b"\xff\xfe"; any JSON, of any shape)
    raw_after: int = 0                      # ...just before this content chunk (0: before the first); the stream
                                            # then goes on as usual
    raw_body: bytes | None = None           # the whole response body, verbatim, under `status` and content_type
    content_type: str = "text/html; charset=utf-8"
    endless: str | None = None              # "events": content events (FLOOD_TEXT each) forever, as fast as the peer
                                            # reads, or one per `interval`; "line": `data: {"choices":[{"delta":
                                            # {"content":"aaaa...` written forever without a line end
    body_bytes: int = 0                     # an error body (under `status`) of exactly this many bytes, streamed
    flood_limit: int = 256 * 1024 * 1024    # safety net: an endless flood gives up (drops) after this many bytes
    redirect: str | None = None             # answer `status` (307 unless a 3xx) with Location: this path on the fake
    echo_key: bool = False                  # error body (under `status`) whose message repeats the API key received,
                                            # with HTML and a server path in it


@dataclass
class Flood:
    """How one flood (Reply.endless or body_bytes) ended."""
    provider: str
    mode: str               # "events" | "line" | "body"
    bytes_sent: int         # bytes handed to the socket (the peer read at most this, kernel buffers included)
    closed_by_peer: bool    # the gateway closed the connection; False: the flood ran to its end or limit


@dataclass
class RecordedRequest:
    provider: str | None
    method: str
    path: str
    query: dict
    headers: dict           # lowercase keys
    json: object
    kind: str = "other"     # "chat" (chat/completions, generateContent), "models" or "other"
    model: str | None = None
    stream: bool = False
    client: tuple = ()      # (host, port) of the TCP peer: one port per keep-alive connection


def _rid(n: int = 24) -> str:
    return secrets.token_urlsafe(n)[:n]


def error_body(provider: str, status: int, model: str = "model") -> str | dict:
    """The provider's real error body for `status` (PM §1-5); [inf] in PM where noted."""
    if provider == "groq":  # PM §1
        known = {
            400: ("invalid_request_error", "model_decommissioned", f"The model `{model}` has been decommissioned and is "
                  "no longer supported. Please refer to https://console.groq.com/docs/deprecations for a recommendation "
                  "on which model to use instead."),
            401: ("invalid_request_error", "invalid_api_key", "Invalid API Key"),
            404: ("invalid_request_error", "model_not_found",
                  f"The model `{model}` does not exist or you do not have access to it."),
            429: ("tokens", "rate_limit_exceeded", f"Rate limit reached for model `{model}` in organization "
                  "`org_01fakefakefake` service tier `on_demand` on tokens per minute (TPM): Limit 15000, Used 11972, "
                  "Requested 4351. Please try again in 5.289s. Visit https://console.groq.com/docs/rate-limits for "
                  "more information."),
        }
        if status == 403:
            return {"error": {"message": "Access denied. Please check your network settings."}}
        if status == 503:  # plain text from Envoy, not JSON
            return "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        typ, code, msg = known.get(status, ("internal_server_error", "internal_server_error", "Internal Server Error"))
        return {"error": {"message": msg, "type": typ, "code": code}}
    if provider == "cerebras":  # PM §2: 4xx unwrapped, 5xx wrapped in "error"
        if status >= 500:
            return {"status_code": status, "error": {"message": "Encountered a server error, please try again.",
                                                     "type": "server_error", "param": "", "code": "", "id": ""}}
        if status == 400:
            return {"error": {"message": "Bad request", "type": "invalid_request_error", "code": 400}}
        msg, typ, param, code = {
            401: ("Wrong API Key", "invalid_request_error", "api_key", "wrong_api_key"),
            404: (f"Model {model} does not exist or you do not have access to it.", "not_found_error", "model",
                  "model_not_found"),
            429: ("Requests per minute limit exceeded - too many requests sent.", "too_many_requests_error", "quota",
                  "request_quota_exceeded"),
        }.get(status, ("Request failed", "invalid_request_error", "", ""))
        return {"message": msg, "type": typ, "param": param, "code": code}
    if provider == "openrouter":  # PM §3: error.code is the integer HTTP status
        if status == 401:
            return {"error": {"message": "No auth credentials found", "code": 401}}
        err = {"code": status, "message": {
            400: f"{model} is not a valid model ID",
            402: "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
            404: f"No endpoints found for {model}.",
            429: "Provider returned error", 502: "Provider returned error"}.get(status, "Internal Server Error")}
        if status == 429:
            err["metadata"] = {"raw": f"{model} is temporarily rate-limited upstream. Please retry shortly, or add "
                               "your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations",
                               "provider_name": "DeepInfra", "is_byok": False, "provider_error_code": "engine_overloaded",
                               "limit_source": "upstream_provider_shared_pool"}
        return {"error": err, "user_id": "user_2fakefakefake"}
    if provider == "gemini":  # PM §4
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
    # huggingface, PM §5: mostly the string form {"error": "..."}
    if status == 400:
        return {"error": {"message": f"The requested model '{model}' is not supported by any provider you have "
                          "enabled.", "type": "invalid_request_error", "param": "model", "code": "model_not_supported"}}
    return {"error": {
        401: "Invalid credentials in Authorization header",
        402: "You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO to get 20x "
             "more monthly included credits.",
        403: "This authentication method does not have sufficient permissions to call Inference Providers on behalf "
             "of user fake-user",
        429: "Rate limit reached. Please retry later."}.get(status, "Internal Server Error")}


def stream_error_event(provider: str) -> dict:
    """Each provider's mid-stream error data event (sent under HTTP 200), for Reply(error_event=...)."""
    return {
        # PM §3 "Handling Errors During Streaming": error.code is a *string* here
        "openrouter": {"error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
                       "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]},
        "groq": {"error": {"message": "Failed to call a function. Please adjust your prompt. See 'failed_generation' "
                           "for more details.", "type": "invalid_request_error", "code": "tool_use_failed",
                           "failed_generation": "", "status_code": 400}},  # PM §1 (langchain4j#2585)
        "cerebras": error_body("cerebras", 500),                         # PM §2: [inf] the wrapped 5xx body
        "gemini": {"error": {"code": 500, "message": error_body("gemini", 500)["error"]["message"],
                             "status": "INTERNAL"}},                      # PM §4: [inf]
        "huggingface": {"error": "Input validation error", "error_type": "generation"},  # PM §5: [inf] TGI style
    }[provider]


def echo_key_body(provider: str, status: int, key: str) -> dict:
    """An error body leaking what a careless upstream might: the caller's API key, HTML and a server path."""
    message = (f"Invalid request for API key {key}: <html><body><h1>400 Bad Request</h1></body></html> "
               "(raised at /srv/upstream/app/handlers/chat.py:412)")
    if provider == "gemini":
        return {"error": {"code": status, "message": message, "status": GEMINI_STATUS.get(status, "UNKNOWN")}}
    if provider == "cerebras" and status < 500:
        return {"message": message, "type": "invalid_request_error", "param": "", "code": ""}
    if provider == "huggingface":
        return {"error": message}
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}


def presented_key(headers: dict, query: dict) -> str:
    """The API key a request carried, in whichever place its provider takes it."""
    auth = headers.get("authorization", "")
    return headers.get("x-goog-api-key") or query.get("key") or (auth[7:].strip() if auth.startswith("Bearer ") else "")


def default_headers(provider: str, status: int) -> dict:
    """Headers a provider sends on every response (PM §1-5), generous rate-limit values."""
    if provider == "groq":  # PM §1: RPD / TPM, reset values are Go durations
        h = {"x-ratelimit-limit-requests": "14400", "x-ratelimit-limit-tokens": "300000",
             "x-ratelimit-remaining-requests": "14399", "x-ratelimit-remaining-tokens": "299950",
             "x-ratelimit-reset-requests": "6s", "x-ratelimit-reset-tokens": "10ms",
             "x-request-id": "req_" + _rid(26).lower(), "x-groq-region": "fake-1"}
        if status == 429:
            h.update({"retry-after": "6", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "5.289s"})
        return h
    if provider == "cerebras":  # PM §2: window-suffixed names, resets in float seconds
        return {"x-ratelimit-limit-requests-day": "14400", "x-ratelimit-limit-tokens-minute": "1000000",
                "x-ratelimit-remaining-requests-day": "14399", "x-ratelimit-remaining-tokens-minute": "999950",
                "x-ratelimit-reset-requests-day": "33011.382867097855",
                "x-ratelimit-reset-tokens-minute": "11.382867097854614"}
    if provider == "openrouter" and status == 200:
        return {"x-generation-id": "gen-" + _rid(20)}
    if provider == "huggingface":
        return {"x-inference-provider": "cerebras"}
    return {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False      # server_close() must not join stalled handler threads
    request_queue_size = 1024
    allow_reuse_address = True

    def server_bind(self):  # HTTPServer.server_bind calls getfqdn(), which may hang on reverse DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):  # peers vanishing is expected here
        pass


class _Abort(Exception):
    """The stream ended early (dropped, stalled out, client gone, or the fake is stopping)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive; every response has Content-Length or is chunked
    disable_nagle_algorithm = True  # each SSE event leaves immediately
    fake: "FakeProviders"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.fake._track(self.connection, True)

    def finish(self):
        self.fake._track(self.connection, False)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    # -- request side -------------------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while (size := int(self.rfile.readline().split(b";")[0], 16)):
                data += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self):
        self.generation = self.fake._generation
        parts = urlsplit(self.path)
        raw = self._read_body()  # always drain the body so the keep-alive connection stays in sync
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = dict(parse_qsl(parts.query))
        provider = next((p for p, b in BASE_PATHS.items() if parts.path.startswith(b + "/")), None)
        rest = parts.path[len(BASE_PATHS[provider]):] if provider else ""
        rec = RecordedRequest(provider, self.command, parts.path, query, headers, body, client=self.client_address)
        gem = re.fullmatch(r"/models/([^/:]+):(generateContent|streamGenerateContent)", rest)
        if self.command == "GET" and rest == "/models":
            rec.kind = "models"
        elif self.command == "POST" and (gem if provider == "gemini" else rest == "/chat/completions"):
            rec.kind = "chat"
            if gem:  # the model is one path segment, percent-decoded
                rec.model, rec.stream = unquote(gem.group(1)), gem.group(2) == "streamGenerateContent"
            elif isinstance(body, dict):
                rec.model, rec.stream = body.get("model"), body.get("stream") is True
        self.fake._record(rec)
        try:
            if rec.kind == "other":
                return self._send_body(404, {"error": {"message": f"Not found: {self.command} {parts.path}"}})
            denied = self._auth_error(provider, headers, query, rec.model or "model")
            if denied:
                return self._send_body(denied[0], denied[1], default_headers(provider, denied[0]))
            if rec.kind == "models":
                return self._send_body(200, self._models(provider), default_headers(provider, 200))
            if self.fake.strict_models and rec.model not in self.fake.models.get(provider, []):
                status = UNKNOWN_MODEL_STATUS[provider]
                return self._send_body(status, error_body(provider, status, rec.model),
                                       default_headers(provider, status))
            self._chat(provider, rec, self.fake._next_reply(provider))
        except (_Abort, OSError):
            self.close_connection = True

    def _auth_error(self, provider, headers, query, model):
        auth = headers.get("authorization", "")
        if provider == "gemini":  # PM §4: missing key -> 403; an OAuth-style Bearer instead of a key -> 401
            if headers.get("x-goog-api-key") or query.get("key"):
                return None
            status = 401 if auth else 403
            return status, error_body("gemini", status, model)
        if auth.startswith("Bearer ") and auth[7:].strip():
            return None
        return 401, error_body(provider, 401, model)

    def _models(self, provider):
        ids = list(self.fake.models.get(provider, []))
        if provider == "gemini":
            return {"models": [{"name": f"models/{m}", "version": "001", "displayName": m, "inputTokenLimit": 1048576,
                                "outputTokenLimit": 65536, "supportedGenerationMethods":
                                ["generateContent", "streamGenerateContent", "countTokens"]} for m in ids]}
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 1735689600,
                                            "owned_by": m.split("/")[0] if "/" in m else provider} for m in ids]}

    # -- response side ------------------------------------------------------------------------------------------
    def _send_body(self, status, body, headers=None, extra=None):
        text = body if isinstance(body, str) else json.dumps(body)
        data = text.encode()
        ctype = "application/json" if text.lstrip().startswith(("{", "[")) else "text/plain"
        self.send_response(status)
        hdrs = {"content-type": ctype + ("; charset=UTF-8" if ctype == "application/json" else ""),
                **(headers or {}), **{k.lower(): v for k, v in (extra or {}).items()}}
        hdrs["content-length"] = str(len(data))
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _pause(self, seconds, rec=None, poll=True):
        """Sleep up to `seconds`, waking on fake.stop(). While the response is pending, also watch the socket: if
        the peer closes, record a disconnect (for streams) and abort. Raises _Abort on either."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.fake._stopping.is_set():
                raise _Abort
            step = min(left, 0.05)
            if not poll:
                self.fake._stopping.wait(step)
                continue
            poller = select.poll()  # not select.select(): fds above 1024 are likely with 500+ connections
            poller.register(self.connection, select.POLLIN | select.POLLHUP | select.POLLERR)
            if poller.poll(step * 1000):
                try:
                    closed = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed:
                    self._client_gone(rec)
                poll = False  # data pending (pipelined request?): stop polling, just sleep
        if self.fake._stopping.is_set():
            raise _Abort

    def _client_gone(self, rec):
        if rec is not None and rec.stream:
            self.fake._disconnected(rec.provider)
        raise _Abort

    def _drop(self):
        """Abrupt close: no terminating chunk, so the client sees a truncated chunked body."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()
        raise _Abort

    def _chunk(self, data: bytes, rec):
        try:  # one HTTP chunk per SSE event
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError:  # BrokenPipe / ConnectionReset: the client went away
            self._client_gone(rec)

    def _chat(self, p, rec, r: Reply):
        model = rec.model or DEFAULT_MODELS[p][0]
        chunks = r.chunks if r.chunks is not None else ["Hello", " from", f" {p}"]
        self._pause(r.header_delay, rec)
        if r.never_answer:
            self._pause(r.stall_seconds, rec)
            self.fake._outcome(p, "never_answered")
            self._drop()
        extra = default_headers(p, r.status)
        if r.redirect is not None:
            status = r.status if 300 <= r.status < 400 else 307
            self.fake._outcome(p, "complete")
            return self._send_body(status, "", extra, {"location": self.fake.url + r.redirect, **r.headers})
        if r.echo_key:
            self.fake._outcome(p, "complete")
            return self._send_body(r.status, echo_key_body(p, r.status, presented_key(rec.headers, rec.query)),
                                   extra, r.headers)
        if r.raw_body is not None:
            self._pause(r.first_delay, rec)
            self._send_head(r.status, {"content-type": r.content_type, **extra, **r.headers,
                                       "content-length": str(len(r.raw_body))})
            self.wfile.write(r.raw_body)
            self.fake._outcome(p, "complete")
            return
        if r.body_bytes:
            return self._flood_body(p, rec, r, extra)
        if r.endless:
            return self._flood_stream(p, rec, r, model, extra)
        if r.status != 200 or not rec.stream:
            self._pause(r.first_delay, rec)
            if r.status != 200:
                body = r.body if r.body is not None else error_body(p, r.status, model)
            elif r.error_event is not None:  # PM §3: a non-streamed request can also get 200 + an error body
                body = r.error_event
            else:
                body = _Builder(p, model, r, rec).full(chunks)
            self.fake._outcome(p, "complete")
            return self._send_body(r.status, body, extra, r.headers)
        b = _Builder(p, model, r, rec)
        sse_end = b"\r\n\r\n" if p == "gemini" and self.fake.gemini_crlf else b"\n\n"
        array = p == "gemini" and rec.query.get("alt") != "sse"  # PM §4: without alt=sse Gemini streams a JSON array
        self.send_response(200)
        hdrs = {"content-type": "application/json; charset=UTF-8" if array else "text/event-stream",
                "cache-control": "no-cache", "transfer-encoding": "chunked", **extra,
                **{k.lower(): v for k, v in r.headers.items()}}
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        n_events = 0

        def event(obj):
            nonlocal n_events
            data = (obj if isinstance(obj, str) else json.dumps(obj)).encode()
            if array:
                self._chunk((b"[" if n_events == 0 else b",\r\n") + data, rec)
            else:
                self._chunk(b"data: " + data + sse_end, rec)
            n_events += 1

        for _ in range(r.keepalive):  # PM §3: ": OPENROUTER PROCESSING" comments while the upstream is slow
            self._chunk(b": OPENROUTER PROCESSING\n\n", rec)
            self._pause(r.first_delay / r.keepalive, rec)
        if not r.keepalive:
            self._pause(r.first_delay, rec)
        body = [(False, e) for e in b.head()] + [(False, b.reasoning(t)) for t in r.reasoning]
        body += [(True, b.content(t, i, len(chunks))) for i, t in enumerate(chunks)]
        sent = 0
        for idx, (is_content, ev) in enumerate(body + [(True, None)]):
            if is_content:  # checkpoints before each content chunk and after the last one
                if sent == r.drop_after:
                    self.fake._outcome(p, "dropped")
                    self._drop()
                if sent == r.stall_after:
                    self._pause(r.stall_seconds, rec)
                    self.fake._outcome(p, "stalled")
                    self._drop()
                if r.malformed and sent == min(1, len(chunks)):
                    event(MALFORMED if p != "gemini" else '{"candidates": [')
                if r.raw_events and sent == r.raw_after:
                    for raw in r.raw_events:
                        self._chunk(b"data: " + (raw if isinstance(raw, bytes) else raw.encode()) + sse_end, rec)
            if ev is None:
                break
            if idx and r.interval:
                self._pause(r.interval, rec)
            event(ev)
            sent += is_content
        if r.error_event is not None:
            self._pause(r.interval, rec)
            event(r.error_event)  # ...and the stream just ends (PM §3)
        else:
            for ev in b.tail():
                event(ev)
            if p != "gemini":  # PM §4: Gemini has no [DONE]
                event("[DONE]")
        if array:
            self._chunk(b"]", rec)
        self.wfile.write(b"0\r\n\r\n")
        self.fake._outcome(p, "complete")


    def _send_head(self, status, headers):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _flood_body(self, p, rec, r: Reply, extra):
        """An error body of r.body_bytes bytes (valid JSON once whole), written as the peer takes it."""
        head, tail = b'{"error": {"message": "', b'"}}'
        size = max(r.body_bytes, len(head) + len(tail))
        self._send_head(r.status, {"content-type": "application/json; charset=UTF-8", **extra, **r.headers,
                                   "content-length": str(size)})
        self._flood(p, rec, "body", head, b"x" * FLOOD_BLOCK, size - len(tail), tail, r.interval, chunked=False)
        self.fake._outcome(p, "complete")

    def _flood_stream(self, p, rec, r: Reply, model, extra):
        """Reply.endless: a 200 event stream that never ends, until the peer closes it or r.flood_limit."""
        b = _Builder(p, model, r, rec)
        end = b"\r\n\r\n" if p == "gemini" and self.fake.gemini_crlf else b"\n\n"
        head = b"".join(b"data: " + json.dumps(e).encode() + end for e in b.head())
        if r.endless == "line":
            head += ENDLESS_LINE_HEAD.get(p, b'data: {"choices":[{"index":0,"delta":{"content":"')
            block = b"a" * FLOOD_BLOCK
        elif r.endless == "events":
            event = b"data: " + json.dumps(b.content(FLOOD_TEXT, 0, 2)).encode() + end
            block = event if r.interval else event * max(1, FLOOD_BLOCK // len(event))
        else:
            raise ValueError(f"unknown endless mode {r.endless!r}")
        self._send_head(200, {"content-type": "text/event-stream", "cache-control": "no-cache",
                              "transfer-encoding": "chunked", **extra, **{k.lower(): v for k, v in r.headers.items()}})
        self._flood(p, rec, r.endless, head, block, r.flood_limit, b"", r.interval, chunked=True)
        self.fake._outcome(p, "dropped")
        self._drop()

    def _flood(self, p, rec, mode, head, block, limit, tail, interval, *, chunked):
        """Write head, then block after block up to `limit` bytes, then tail; record how it ended. Raises _Abort
        when the peer closed the connection or the fake is stopping."""
        sent, closed = 0, False

        def write(data):
            nonlocal sent
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            sent += len(data)

        try:
            write(head)
            while sent < limit:
                if interval:
                    self._pause(interval, rec)
                elif self.fake._stopping.is_set():
                    raise _Abort
                write(block[:limit - sent])
            if tail:
                write(tail)
        except OSError:  # BrokenPipe / ConnectionReset: the peer closed
            closed = True
            if rec.stream:
                self.fake._disconnected(p)
            raise _Abort from None
        except _Abort:  # _pause() saw the peer close (and recorded it), or the fake is stopping
            closed = not self.fake._stopping.is_set()
            raise
        finally:
            self.fake._flooded(Flood(p, mode, sent, closed), self.generation)


class _Builder:
    """Builds one provider's response objects: head() + reasoning()/content() deltas + tail(), or full()."""

    def __init__(self, p, model, r: Reply, rec):
        self.p, self.model, self.r = p, model, r
        opts = rec.json.get("stream_options") if isinstance(rec.json, dict) else None
        self.include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        self.created = int(time.time())
        self.id = {"openrouter": f"gen-{self.created}-{_rid(20)}", "gemini": _rid(22)}.get(p, f"chatcmpl-{_rid(32)}")
        self.req_id = "req_" + _rid(26).lower()

    def usage(self):
        u = dict(self.r.usage)
        u.setdefault("total_tokens", u.get("prompt_tokens", 0) + u.get("completion_tokens", 0))
        if self.p == "groq":  # PM §1: timing fields inside usage
            u = {"queue_time": 0.01, "prompt_time": 0.001, "completion_time": 0.02, "total_time": 0.021, **u}
        return u

    def _chunk(self, delta, finish=None, last=False):
        p = self.p
        if p == "cerebras":  # PM §2: no finish_reason/logprobs keys until the last chunk; choices before object
            choice = {"delta": delta, "index": 0, **({"finish_reason": finish} if last else {})}
            obj = {"id": self.id, "choices": [choice], "created": self.created, "model": self.model,
                   "system_fingerprint": "fp_fake", "object": "chat.completion.chunk"}
        else:
            obj = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
            if p == "openrouter":  # PM §3: provider field, role repeated in every delta, native_finish_reason
                obj["provider"] = "Chutes"
                delta = {"role": "assistant", "content": "", "reasoning": None, "reasoning_details": [], **delta}
                choice = {"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish,
                          "logprobs": None}
            else:
                obj["system_fingerprint"] = "fp_fake"
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            obj["choices"] = [choice]
        return obj

    def _gemini(self, parts, done_frac, finish=None):
        obj = {"candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0}],
               "modelVersion": self.model, "responseId": self.id}
        if finish:
            obj["candidates"][0]["finishReason"] = {"stop": "STOP", "length": "MAX_TOKENS"}.get(finish, finish.upper())
        if self.r.usage is not None:  # PM §4: usageMetadata in every chunk, counting up
            prompt, comp = self.r.usage.get("prompt_tokens", 0), self.r.usage.get("completion_tokens", 0)
            cand = round(comp * done_frac)
            meta = {"promptTokenCount": prompt, "candidatesTokenCount": cand,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
            thoughts = len(self.r.reasoning) * 3
            if thoughts:
                meta["thoughtsTokenCount"] = thoughts
            meta["totalTokenCount"] = prompt + cand + thoughts
            obj["usageMetadata"] = meta
        return obj

    def head(self):
        if self.p == "gemini":
            return []
        delta = {"role": "assistant"} if self.p == "cerebras" else {"role": "assistant", "content": ""}
        c = self._chunk(delta)
        if self.p == "groq":
            c["x_groq"] = {"id": self.req_id, "seed": 167346302}
        return [c]

    def reasoning(self, text):
        if self.p == "gemini":  # thought summaries are separate parts flagged "thought": true
            return self._gemini([{"text": text, "thought": True}], 0.0)
        delta = {REASONING_FIELD[self.p]: text}
        if self.p == "openrouter":
            delta["reasoning_details"] = [{"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}]
        return self._chunk(delta)

    def content(self, text, i, n):
        if self.p == "gemini":
            return self._gemini([{"text": text}], (i + 1) / n)
        return self._chunk({"content": text})

    def tail(self):
        fin, u = self.r.finish_reason, (self.usage() if self.r.usage is not None else None)
        if self.p == "gemini":  # PM §4: last chunk has empty text + thoughtSignature, finishReason only here
            return [self._gemini([{"text": "", "thoughtSignature": "EpAICo0I" + _rid(40)}], 1.0, fin)]
        last = self._chunk({}, fin, last=True)
        if u is None:
            return [last]
        if self.p == "groq":  # PM §1: usage twice in the last chunk
            last["x_groq"], last["usage"] = {"id": self.req_id, "usage": u}, u
        elif self.p == "cerebras":  # PM §2: always, even without stream_options
            last["usage"], last["time_info"] = u, {"queue_time": 0.001, "prompt_time": 0.001,
                                                   "completion_time": 0.02, "total_time": 0.022}
        elif self.p == "openrouter":  # PM §3: separate usage chunk after the finish chunk, holding an empty delta
            extra = self._chunk({})
            extra["usage"] = u
            return [last, extra]
        elif self.include_usage:
            last["usage"] = u
        return [last]

    def full(self, chunks):
        """Non-streaming response object."""
        text, reasoning, r = "".join(chunks), "".join(self.r.reasoning), self.r
        if self.p == "gemini":
            parts = ([{"text": reasoning, "thought": True}] if reasoning else []) + \
                    [{"text": text, "thoughtSignature": "EtoFCtcF" + _rid(40)}]
            return self._gemini(parts, 1.0, r.finish_reason)
        msg = {"role": "assistant", "content": text}
        if reasoning:
            msg[REASONING_FIELD[self.p]] = reasoning
            if self.p == "openrouter":
                msg["reasoning_details"] = [{"type": "reasoning.text", "text": reasoning, "format": "unknown",
                                             "index": 0}]
        obj = {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
               "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": r.finish_reason}]}
        if r.usage is not None:
            obj["usage"] = self.usage()
        if self.p == "groq":
            obj.update({"system_fingerprint": "fp_fake", "x_groq": {"id": self.req_id, "seed": 167346302},
                        "service_tier": "on_demand"})
        elif self.p == "openrouter":
            obj["provider"] = "Chutes"
            obj["choices"][0]["native_finish_reason"] = r.finish_reason
        return obj


class FakeProviders:
    """All five fake providers on one 127.0.0.1 port. Starts on construction; also a context manager."""

    def __init__(self, port: int = 0):
        self._cond = threading.Condition(threading.RLock())
        self._stopping = threading.Event()
        self._server = self._thread = None
        self._port = port
        self._conns: set = set()
        self._queues = {p: collections.deque() for p in PROVIDERS}
        self._defaults = {p: Reply() for p in PROVIDERS}
        self._requests: list[RecordedRequest] = []
        self._disconnects: list[str] = []
        self._outcomes: list[tuple[str, str]] = []
        self._floods: list[Flood] = []
        self._generation = 0  # bumped by clear(): a flood still running from before is not recorded after it
        self.models = {p: list(m) for p, m in DEFAULT_MODELS.items()}
        self.strict_models = False  # True: a chat for a model not in self.models gets the provider's real error
        self.gemini_crlf = True  # Gemini separates SSE events with \r\n\r\n (PM §4); False -> \n\n
        self.start()

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> "FakeProviders":
        if self._server is None:
            self._stopping.clear()
            handler = type("Handler", (_Handler,), {"fake": self})
            self._server = _Server(("127.0.0.1", self._port), handler)
            self._port = self._server.server_address[1]  # a restart reuses the same port
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="fakeprovider", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes every _pause()
        self._server.shutdown()
        self._server.server_close()
        with self._cond:
            conns = list(self._conns)
        for c in conns:  # unblock handlers idling on keep-alive connections
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def base_url(self, provider: str) -> str:
        return self.url + BASE_PATHS[provider]

    # -- scripting ----------------------------------------------------------------------------------------------
    def enqueue(self, provider: str, *replies: Reply) -> None:
        with self._cond:
            for r in replies:
                self._queues[provider].append([r, max(1, r.times)])

    def set_default(self, provider: str, reply: Reply) -> None:
        with self._cond:
            self._defaults[provider] = reply

    def pending(self, provider: str) -> int:
        """Requests still to be served from the queue."""
        with self._cond:
            return sum(n for _, n in self._queues[provider])

    def clear(self) -> None:
        with self._cond:
            for q in self._queues.values():
                q.clear()
            self._requests.clear()
            self._disconnects.clear()
            self._outcomes.clear()
            self._floods.clear()
            self._generation += 1
            self.models = {p: list(m) for p, m in DEFAULT_MODELS.items()}
            self.strict_models = False
            self._defaults = {p: Reply() for p in PROVIDERS}
            self._cond.notify_all()

    # -- observation ----------------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    def chat_requests(self, provider: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "chat" and provider in (None, r.provider)]

    @property
    def disconnects(self) -> list[str]:
        with self._cond:
            return list(self._disconnects)

    @property
    def outcomes(self) -> list[tuple[str, str]]:
        """(provider, "complete" | "dropped" | "stalled" | "never_answered") for every chat reply that ran to its scripted end."""
        with self._cond:
            return list(self._outcomes)

    @property
    def floods(self) -> list[Flood]:
        """How every flood (Reply.endless, Reply.body_bytes) ended, in the order they ended."""
        with self._cond:
            return list(self._floods)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Requests for exactly this path (a redirect's Location, say), whatever their provider."""
        return [r for r in self.requests if r.path == path]

    def wait_flood(self, provider: str, timeout: float = 5.0) -> Flood | None:
        """The first flood to end for `provider`, waiting up to `timeout` for one."""
        found = self.wait_for(lambda f: any(x.provider == provider for x in f._floods), timeout)
        return next((x for x in self.floods if x.provider == provider), None) if found else None

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_disconnect(self, provider: str, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda f: provider in f._disconnects, timeout)

    # -- called from handler threads --------------------------------------------------------------------------
    def _next_reply(self, provider: str) -> Reply:
        with self._cond:
            q = self._queues[provider]
            if not q:
                return self._defaults[provider]
            q[0][1] -= 1
            return q[0][0] if q[0][1] > 0 else q.popleft()[0]

    def _notify(self, lst, item):
        with self._cond:
            lst.append(item)
            self._cond.notify_all()

    def _record(self, rec):
        self._notify(self._requests, rec)

    def _disconnected(self, provider):
        self._notify(self._disconnects, provider)

    def _outcome(self, provider, what):
        self._notify(self._outcomes, (provider, what))

    def _flooded(self, flood, generation):
        with self._cond:
            if generation == self._generation:
                self._floods.append(flood)
                self._cond.notify_all()

    def _track(self, conn, add):
        with self._cond:
            (self._conns.add if add else self._conns.discard)(conn)
