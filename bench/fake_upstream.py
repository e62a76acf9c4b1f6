"""A fast fake OpenAI-compatible upstream for the benchmark: `POST .../chat/completions`, plain JSON or an
SSE stream, on gevent's StreamServer with a minimal hand-written HTTP/1.1 (keep-alive, Content-Length
bodies). It answers from prebuilt bytes so that it is never the bottleneck; the benchmark measures its
ceiling in every run.

The shape of a stream is set per request by a directive anywhere in the body, so any gateway in front
of it passes it through in the prompt: `bench:chunks=20,interval_ms=10,ttft_ms=0`. Without one, the
server's defaults (flags) apply.

    python -m bench.fake_upstream --port 9000 [--chunks 3 --interval-ms 0 --ttft-ms 0] [--max-seconds 3600]
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

DIRECTIVE = re.compile(rb"bench:chunks=(\d+),interval_ms=(\d+),ttft_ms=(\d+)")
STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
CONNECTION_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)
# Bounds: a request head or body larger than this is refused; an idle connection is closed after IDLE.
MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
IDLE = 30.0
# Requests served on one keep-alive connection before it is closed (a bound, never reached in a run).
MAX_REQUESTS_PER_CONNECTION = 10_000_000
CREATED = int(time.time())


def content(index: int, count: int) -> str:
    """The text of chunk `index`; the last one ends with `[end]` so clients can tell a whole answer."""
    return f"w{index} [end]" if index == count - 1 else f"w{index} "


def event(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED, "model": "bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else []}
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@lru_cache(maxsize=64)
def stream_parts(count: int) -> tuple[bytes, list[bytes], bytes]:
    """Headers, one HTTP chunk per content event, and the tail (finish, usage, [DONE], end of body)."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    first = [event({"role": "assistant", "content": content(0, count)})] if count else []
    events = first + [event({"content": content(i, count)}) for i in range(1, count)]
    usage = {"prompt_tokens": 5, "completion_tokens": count, "total_tokens": 5 + count}
    tail = event({}, "stop") + event({}, usage=usage) + b"data: [DONE]\n\n"
    return head, [http_chunk(e) for e in events], http_chunk(tail) + b"0\r\n\r\n"


@lru_cache(maxsize=64)
def completion(count: int) -> bytes:
    text = "".join(content(i, count) for i in range(count))
    body = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED, "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": count, "total_tokens": 5 + count},
    }, separators=(",", ":")).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def simple(status: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)


NOT_FOUND = simple(b"404 Not Found", b'{"error":{"message":"not found"}}')
TOO_LARGE = simple(b"413 Payload Too Large", b'{"error":{"message":"too large"}}')
MODELS = simple(b"200 OK", b'{"object":"list","data":[{"id":"bench","object":"model","owned_by":"bench"}]}')


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
        if head.startswith(b"GET") and target.endswith(b"/models"):
            sock.sendall(MODELS)
            return
        if not (head.startswith(b"POST") and target.split(b"?")[0].endswith(b"/chat/completions")):
            sock.sendall(NOT_FOUND)
            return
        directive = DIRECTIVE.search(body)
        chunks, interval_ms, ttft_ms = map(int, directive.groups()) if directive else self.defaults
        if not STREAM_TRUE.search(body):
            if ttft_ms:
                gevent.sleep(ttft_ms / 1000)
            sock.sendall(completion(chunks))
            return
        headers, events, tail = stream_parts(chunks)
        if not interval_ms and not ttft_ms:  # the whole answer at once, in one write
            sock.sendall(headers + b"".join(events) + tail)
            return
        sock.sendall(headers)
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
    parser.add_argument("--chunks", type=int, default=3, help="content chunks per answer without a directive")
    parser.add_argument("--interval-ms", type=int, default=0, help="between chunks, without a directive")
    parser.add_argument("--ttft-ms", type=int, default=0, help="before the first chunk, without a directive")
    parser.add_argument("--max-seconds", type=float, default=3600, help="the server stops by itself after this")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the fake upstream listens on loopback only")
    server = StreamServer((args.host, args.port), Handler(args.chunks, args.interval_ms, args.ttft_ms),
                          backlog=4096)
    server.init_socket()
    print(f"fake upstream on http://{args.host}:{server.server_port}/v1", flush=True)
    server.start()
    gevent.sleep(args.max_seconds)
    server.stop(timeout=1)


if __name__ == "__main__":
    main()
