"""Server-sent events, read the way LLM providers write them.

Each `data:` line is one payload: providers put one JSON document per line, and some captures show
events separated by a single newline instead of the blank line the spec asks for, so a line, not a
blank-line-terminated block, is the unit. Comment lines (`: OPENROUTER PROCESSING` keep-alives) and
other fields are skipped. Line ends may be \\n, \\r\\n or \\r (Gemini uses \\r\\n\\r\\n).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator


def iter_data(chunks: Iterable[bytes]) -> Iterator[str]:
    """Yield the value of every `data:` line, as soon as its line is complete."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        lines = pending.splitlines(keepends=True)
        # The last piece stays pending until its line end arrives.
        pending = b"" if not lines or lines[-1].endswith((b"\n", b"\r")) else lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                value = line[5:].rstrip(b"\r\n")
                yield value[1:].decode() if value.startswith(b" ") else value.decode()
    if pending.startswith(b"data:"):  # the stream ended without a final line end
        value = pending[5:]
        yield value[1:].decode() if value.startswith(b" ") else value.decode()
