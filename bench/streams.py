"""Concurrent streams with a small asyncio client on raw sockets: time to first byte of the body, total
time, streams completed, whether each carried exactly the text the provider sent, errors, and how many
were open at once.

Every stream connects first; then all send their request at the same moment, so `count` streams are
really open together. A stream is complete when its body ended cleanly and carried the fake's last
chunk (`[end]`); it is identical when the text read back out of it (bench/shapes.py: SSE deltas joined,
or /chat's plain text) equals, byte for byte, the text the fake sent. Bodies are checked after the run,
so checking costs the timed part nothing. Bounded: one deadline for the whole run.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.shapes import answer_text, expected_text
from bench.stats import percentile


@dataclass
class StreamResult:
    count: int
    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    ttfb_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)  # from sending the request to the end of the body
    max_open: int = 0
    seconds: float = 0.0
    chunks: int = 0  # content chunks per answer (what the fake sent): relayed = completed * chunks
    identical: int = 0  # completed streams whose text is byte for byte the fake's
    bodies: list[bytes] = field(default_factory=list, repr=False)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def ttfb(self, q: float) -> float | None:
        return percentile(self.ttfb_ms, q)

    def total(self, q: float) -> float | None:
        return percentile(self.total_ms, q)

    @property
    def chunks_per_second(self) -> float | None:
        """Content chunks delivered per second of the run's wall time (all streams together)."""
        return self.completed * self.chunks / self.seconds if self.seconds and self.chunks else None

    def check(self, chunks: int) -> None:
        """Compare every completed body's text with the fake's, then drop the bodies."""
        self.chunks, want = chunks, expected_text(chunks)
        self.identical = sum(answer_text(body) == want for body in self.bodies)
        self.bodies = []


def request_bytes(url: str, body: dict, key: str | None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise ValueError(f"the benchmark only sends traffic to 127.0.0.1, not {url}")
    payload = json.dumps(body).encode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\n{auth}Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n")
    return parts.hostname, parts.port, head.encode() + payload


MAX_BODY = 4 * 1024 * 1024  # bytes one answer may be; a bound, never reached by the fake's answers


class _Run:
    def __init__(self, count: int):
        self.result = StreamResult(count)
        self.open = 0
        self.connected = 0  # connections opened or failed
        self.all_connected = asyncio.Event()

    def tried_to_connect(self) -> None:
        self.connected += 1
        if self.connected == self.result.count:
            self.all_connected.set()

    def error(self, kind: str) -> None:
        self.result.errors[kind] = self.result.errors.get(kind, 0) + 1

    async def stream(self, host: str, port: int, data: bytes, go: asyncio.Event) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        except OSError:
            self.error("connect")
            self.tried_to_connect()
            return
        self.tried_to_connect()
        try:
            await go.wait()
            sent = time.perf_counter()
            self.open += 1
            self.result.max_open = max(self.result.max_open, self.open)
            writer.write(data)
            try:
                await self.read_answer(reader, sent)
            finally:
                self.open -= 1
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.error(type(exc).__name__)
        finally:
            writer.close()

    async def read_answer(self, reader: asyncio.StreamReader, sent: float) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            self.error(f"http_{status}")
            return
        lowered = head.lower()
        body, first = bytearray(), None
        if b"transfer-encoding: chunked" in lowered:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                part = await reader.readexactly(size + 2)
                first = first or time.perf_counter()
                body += part[:-2]
                if len(body) > MAX_BODY:
                    raise ValueError("answer too large")
        else:
            while part := await reader.read(65536):
                first = first or time.perf_counter()
                body += part
                if len(body) > MAX_BODY:
                    raise ValueError("answer too large")
        end = time.perf_counter()
        if first is None or b"[end]" not in body:
            self.error("incomplete")
            return
        self.result.ttfb_ms.append((first - sent) * 1000)
        self.result.total_ms.append((end - sent) * 1000)
        self.result.completed += 1
        self.result.bodies.append(bytes(body))


async def _run(url: str, body: dict, count: int, key: str | None, deadline: float) -> StreamResult:
    host, port, data = request_bytes(url, body, key)
    run, go = _Run(count), asyncio.Event()
    tasks = [asyncio.ensure_future(run.stream(host, port, data, go)) for _ in range(count)]
    # Every connection opens before the requests go together (at most 20 s: a server that accepts no more
    # leaves the rest in its listen queue or unanswered; they send when the others do).
    try:
        await asyncio.wait_for(run.all_connected.wait(), 20)
    except asyncio.TimeoutError:
        pass
    await asyncio.sleep(0.05 if count > 1 else 0)
    started = time.perf_counter()
    go.set()
    done, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
        run.error("deadline")
    run.result.seconds = time.perf_counter() - started
    return run.result


def streams(url: str, body: dict, count: int, key: str | None = None, deadline: float = 120.0,
            chunks: int = 0) -> StreamResult:
    """Run `count` concurrent streams against `url` and wait for all, `deadline` seconds at most; with
    `chunks`, check each body's text against the fake's answer of that many chunks."""
    result = asyncio.run(_run(url, body, count, key, deadline))
    result.check(chunks) if chunks else result.bodies.clear()
    return result


def sequential(url: str, body: dict, repeat: int, key: str | None = None, chunks: int = 0) -> StreamResult:
    """`repeat` single streams one after another: time to first byte with nothing queued before it."""
    total = StreamResult(repeat)
    for _ in range(repeat):
        one = asyncio.run(_run(url, body, 1, key, deadline=30))
        total.completed += one.completed
        total.ttfb_ms += one.ttfb_ms
        total.total_ms += one.total_ms
        total.bodies += one.bodies
        total.seconds += one.seconds
        total.max_open = max(total.max_open, one.max_open)
        for kind, n in one.errors.items():
            total.errors[kind] = total.errors.get(kind, 0) + n
    total.check(chunks) if chunks else total.bodies.clear()
    return total
