"""Concurrent streams with a small asyncio client on raw sockets: time to first byte of the body,
streams completed, errors, and how many were open at once.

Every stream connects first; then all send their request at the same moment, so `count` streams are
really open together. A stream is complete when its body ended cleanly and carried the fake's last
chunk (`[end]`). Bounded: one deadline for the whole run.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.stats import percentile


@dataclass
class StreamResult:
    count: int
    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    ttfb_ms: list[float] = field(default_factory=list)
    max_open: int = 0
    seconds: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def ttfb(self, q: float) -> float | None:
        return percentile(self.ttfb_ms, q)


def request_bytes(url: str, body: dict, key: str | None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise ValueError(f"the benchmark only sends traffic to 127.0.0.1, not {url}")
    payload = json.dumps(body).encode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\n{auth}Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n")
    return parts.hostname, parts.port, head.encode() + payload


class _Run:
    def __init__(self, count: int):
        self.result = StreamResult(count)
        self.open = 0

    def error(self, kind: str) -> None:
        self.result.errors[kind] = self.result.errors.get(kind, 0) + 1

    async def stream(self, host: str, port: int, data: bytes, go: asyncio.Event) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        except OSError:
            self.error("connect")
            return
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
        body, first = b"", None
        if b"transfer-encoding: chunked" in lowered:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                part = await reader.readexactly(size + 2)
                first = first or time.perf_counter()
                body += part[:-2]
        else:
            while part := await reader.read(65536):
                first = first or time.perf_counter()
                body += part
        if first is None or b"[end]" not in body:
            self.error("incomplete")
            return
        self.result.ttfb_ms.append((first - sent) * 1000)
        self.result.completed += 1


async def _run(url: str, body: dict, count: int, key: str | None, deadline: float) -> StreamResult:
    host, port, data = request_bytes(url, body, key)
    run, go = _Run(count), asyncio.Event()
    tasks = [asyncio.ensure_future(run.stream(host, port, data, go)) for _ in range(count)]
    await asyncio.sleep(0.2 if count > 1 else 0.01)  # every connection opens before the requests go together
    started = time.perf_counter()
    go.set()
    done, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
        run.error("deadline")
    run.result.seconds = time.perf_counter() - started
    return run.result


def streams(url: str, body: dict, count: int, key: str | None = None, deadline: float = 120.0) -> StreamResult:
    """Run `count` concurrent streams against `url` and wait for all, `deadline` seconds at most."""
    return asyncio.run(_run(url, body, count, key, deadline))


def sequential(url: str, body: dict, repeat: int, key: str | None = None) -> StreamResult:
    """`repeat` single streams one after another: time to first byte with nothing queued before it."""
    total = StreamResult(repeat)
    for _ in range(repeat):
        one = asyncio.run(_run(url, body, 1, key, deadline=30))
        total.completed += one.completed
        total.ttfb_ms += one.ttfb_ms
        total.seconds += one.seconds
        total.max_open = max(total.max_open, one.max_open)
        for kind, n in one.errors.items():
            total.errors[kind] = total.errors.get(kind, 0) + n
    return total
