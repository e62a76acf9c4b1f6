"""A fast fake provider for the benchmark, speaking two wire formats: OpenAI's (`POST .../chat/completions`,
plain JSON or an SSE stream) and Gemini's native one (`POST .../models/{model}:streamGenerateContent?alt=sse`,
or `:generateContent`, under any path containing `/gemini/`). gevent's StreamServer with a minimal
hand-written HTTP/1.1 (keep-alive, Content-Length bodies). It answers from prebuilt bytes so that it is never
the bottleneck; the benchmark measures its ceiling in every run.

Answers come in realistic chunk counts (bench/shapes.py): one event per token or two, 20 for a short answer
(the default, also for the plain requests the gateway turns into streams), 200 for a long one. The shape of a
stream is set per request by a directive anywhere in the body, so any gateway in front of it passes it through
in the prompt: `bench:chunks=200,interval_ms=1,ttft_ms=0`. Without one, the server's defaults (flags) apply.

    python -m bench.fake_upstream --port 9000 [--chunks 20 --interval-ms 0 --ttft-ms 0] [--max-seconds 3600]
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from functools import lru_cache  # noqa: E402

import gevent  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

from bench.shapes import SHORT, content, expected_text  # noqa: E402

DIRECTIVE = re.compile(rb"bench:chunks=(\d+),interval_ms=(\d+),ttft_ms=(\d+)")
STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
CONNECTION_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)
# Bounds: a request head or body larger than this is refused; an idle connection is closed after IDLE.
MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
MAX_CHUNKS = 100_000
IDLE = 30.0
# Requests served on one keep-alive connection before it is closed (a bound, never reached in a run).
MAX_REQUESTS_PER_CONNECTION = 10_000_000
CREATED = int(time.time())
COMPACT = (",", ":")
SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


def openai_event(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED, "model": "bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else []}
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body, separators=COMPACT).encode() + b"\n\n"


def gemini_event(text: str, index: int, finish: bool) -> bytes:
    """One GenerateContentResponse as Gemini streams it: usageMetadata counting up in every event,
    finishReason in the last, events ending in \\r\\n\\r\\n, no [DONE] (https://ai.google.dev/api/generate-content)."""
    candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    body = {"candidates": [candidate],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": index + 1, "totalTokenCount": index + 6},
            "modelVersion": "bench", "responseId": "bench"}
    return b"data: " + json.dumps(body, separators=COMPACT).encode() + b"\r\n\r\n"


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@lru_cache(maxsize=64)
def stream_parts(count: int, gemini: bool) -> tuple[list[bytes], bytes]:
    """One HTTP chunk per content event, and the tail (OpenAI: finish, usage, [DONE]; then end of body)."""
    if gemini:
        events = [gemini_event(content(i, count), i, i == count - 1) for i in range(count)]
        return [http_chunk(e) for e in events], b"0\r\n\r\n"
    first = [openai_event({"role": "assistant", "content": content(0, count)})] if count else []
    events = first + [openai_event({"content": content(i, count)}) for i in range(1, count)]
    usage = {"prompt_tokens": 5, "completion_tokens": count, "total_tokens": 5 + count}
    tail = openai_event({}, "stop") + openai_event({}, usage=usage) + b"data: [DONE]\n\n"
    return [http_chunk(e) for e in events], http_chunk(tail) + b"0\r\n\r\n"


@lru_cache(maxsize=64)
def whole_stream(count: int, gemini: bool) -> bytes:
    events, tail = stream_parts(count, gemini)
    return SSE_HEAD + b"".join(events) + tail


@lru_cache(maxsize=64)
def completion(count: int, gemini: bool) -> bytes:
    text = expected_text(count)
    if gemini:
        body = {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP",
                                "index": 0}],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": count, "totalTokenCount": 5 + count}}
    else:
        body = {"id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED, "model": "bench",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": count, "total_tokens": 5 + count}}
    data = json.dumps(body, separators=COMPACT).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data)


def simple(status: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)


NOT_FOUND = simple(b"404 Not Found", b'{"error":{"message":"not found"}}')
TOO_LARGE = simple(b"413 Payload Too Large", b'{"error":{"message":"too large"}}')
MODELS = simple(b"200 OK", b'{"object":"list","data":[{"id":"bench","object":"model","owned_by":"bench"}]}')
GEMINI_MODELS = simple(b"200 OK", b'{"models":[{"name":"models/bench","supportedGenerationMethods":'
                                  b'["generateContent","streamGenerateContent"]}]}')


class Handler:
    def __init__(self, chunks: int, interval_ms: int, ttft_ms: int):
        self.defaults = (chunks, interval_ms, ttft_ms)

    def __call__(self, sock, _address) -> None:
        # Without it, a chunk written right after the headers on a reused connection waits for the
        # gateway's delayed ACK (Nagle), about 40 ms: a stall real providers do not have.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(IDLE)
        buffer = b""
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data or len(buffer) > MAX_HEAD:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                match = CONTENT_LENGTH.search(head)
                length = int(match.group(1)) if match else 0
                if length > MAX_BODY:
                    sock.sendall(TOO_LARGE)
                    return
                while len(buffer) < length:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                self.respond(sock, head, body)
                if CONNECTION_CLOSE.search(head):
                    return
        except OSError:  # the client went away or idled out
            return
        finally:
            sock.close()

    def respond(self, sock, head: bytes, body: bytes) -> None:
        target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
        path = target.split(b"?")[0]
        gemini = b"/gemini/" in path
        if head.startswith(b"GET") and path.endswith(b"/models"):
            sock.sendall(GEMINI_MODELS if gemini else MODELS)
            return
        if not head.startswith(b"POST"):
            sock.sendall(NOT_FOUND)
            return
        if gemini and path.endswith(b":streamGenerateContent"):
            stream = True
        elif gemini and path.endswith(b":generateContent"):
            stream = False
        elif not gemini and path.endswith(b"/chat/completions"):
            stream = STREAM_TRUE.search(body) is not None
        else:
            sock.sendall(NOT_FOUND)
            return
        directive = DIRECTIVE.search(body)
        chunks, interval_ms, ttft_ms = map(int, directive.groups()) if directive else self.defaults
        chunks = min(chunks, MAX_CHUNKS)
        if not stream:
            if ttft_ms:
                gevent.sleep(ttft_ms / 1000)
            sock.sendall(completion(chunks, gemini))
            return
        if not interval_ms and not ttft_ms:  # the whole answer at once, in one write
            sock.sendall(whole_stream(chunks, gemini))
            return
        events, tail = stream_parts(chunks, gemini)
        sock.sendall(SSE_HEAD)
        if ttft_ms:
            gevent.sleep(ttft_ms / 1000)
        for index, data in enumerate(events):
            if index and interval_ms:
                gevent.sleep(interval_ms / 1000)
            sock.sendall(data)
        sock.sendall(tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--chunks", type=int, default=SHORT, help="content chunks per answer without a directive")
    parser.add_argument("--interval-ms", type=int, default=0, help="between chunks, without a directive")
    parser.add_argument("--ttft-ms", type=int, default=0, help="before the first chunk, without a directive")
    parser.add_argument("--max-seconds", type=float, default=3600, help="the server stops by itself after this")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the fake upstream listens on loopback only")
    server = StreamServer((args.host, args.port), Handler(args.chunks, args.interval_ms, args.ttft_ms),
                          backlog=8192)
    server.init_socket()
    print(f"fake upstream on http://{args.host}:{server.server_port}/v1 (Gemini under /gemini/v1beta)", flush=True)
    server.start()
    gevent.sleep(args.max_seconds)
    server.stop(timeout=1)


if __name__ == "__main__":
    main()
