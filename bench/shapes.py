"""What the fake upstream answers, shared by the fake (which writes it) and the clients (which check it):
the text of every chunk, the directive that sets a stream's shape, and reading the text back out of any
answer (OpenAI's SSE or JSON, Gemini's SSE, or /chat's plain text), so a client can tell that what reached
it is, byte for byte, the text the provider sent. No imports beyond the standard library: the fake
patches it with gevent before importing this, the clients must not be patched."""
from __future__ import annotations

import json
from dataclasses import dataclass

# The realistic sizes (issue 17): a short answer is 20 chunks, a long one 200 or more, one event per
# token or two. A plain request without a directive gets the short answer, streamed all at once.
SHORT = 20
LONG = 200


@dataclass(frozen=True)
class Shape:
    chunks: int = SHORT
    interval_ms: int = 0
    ttft_ms: int = 0

    @property
    def directive(self) -> str:
        return f"bench:chunks={self.chunks},interval_ms={self.interval_ms},ttft_ms={self.ttft_ms}"

    def describe(self) -> str:
        every = f", {self.interval_ms} ms apart" if self.interval_ms else ", all at once"
        return f"{self.chunks} chunks{every}"


PLAIN = Shape(SHORT, 0, 0)  # what a plain (non-streaming) request gets: 20 chunks at once
STREAM = Shape(SHORT, 10, 0)  # the 100/500-stream scenario: 20 chunks 10 ms apart
FAST = Shape(LONG, 1, 0)  # a fast provider (Groq, Cerebras): 200 chunks 1 ms apart
SLOW = Shape(5, 1000, 0)  # a slow one: 1 chunk a second, so thousands are open together


def content(index: int, count: int) -> str:
    """The text of chunk `index`; the last one ends with `[end]` so clients can tell a whole answer. Some
    chunks carry characters JSON must escape (a quote, a backslash, a newline, non-ASCII), so a gateway that
    re-encodes the text is checked on those too."""
    extra = ("", ' "q"', "\\", "\n", " é", " 日本")[index % 6]
    return f"w{index}{extra} [end]" if index == count - 1 else f"w{index}{extra} "


def expected_text(count: int) -> str:
    return "".join(content(i, count) for i in range(count))


def answer_text(body: bytes) -> str | None:
    """The answer's text, whatever the format: SSE events (OpenAI chunks or Gemini responses) joined, an
    OpenAI `chat.completion`'s message, or /chat's plain text. None when it cannot be read."""
    stripped = body.lstrip()
    if stripped.startswith(b"data:"):
        parts = []
        for line in body.splitlines():
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                continue
            try:
                event = json.loads(data)
            except ValueError:
                return None
            for choice in event.get("choices") or []:  # OpenAI
                parts.append((choice.get("delta") or {}).get("content") or "")
            for candidate in event.get("candidates") or []:  # Gemini
                for part in (candidate.get("content") or {}).get("parts") or []:
                    parts.append(part.get("text") or "")
        return "".join(parts)
    if stripped.startswith(b"{"):
        try:
            event = json.loads(body)
            return event["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None
