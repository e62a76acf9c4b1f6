"""Server-sent events, read the way LLM providers write them.

Each `data:` line is one payload: providers put one JSON document per line, and some captures show
events separated by a single newline instead of the blank line the spec asks for, so a line, not a
blank-line-terminated block, is the unit. Comment lines (`: OPENROUTER PROCESSING` keep-alives) and
other fields are skipped. Line ends may be \\n, \\r\\n or \\r (Gemini uses \\r\\n\\r\\n).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from utils.errors import ProviderError

# The longest line accepted, line end not counted. A real event is a few KiB; a line that does not end
# would otherwise grow in memory until the worker dies.
MAX_LINE_BYTES = 1024 * 1024
_LINE_ENDS = (b"\n", b"\r")


def iter_data(chunks: Iterable[bytes]) -> Iterator[str]:
    """Yield the value of every `data:` line, as soon as its line is complete. Raises ProviderError:
    `too_large` for a line over MAX_LINE_BYTES, `malformed` for a data line that is not UTF-8."""
    for batch in data_batches(chunks):
        yield from batch


def data_batches(chunks: Iterable[bytes]) -> Iterator[list[str]]:
    """The values of the `data:` lines completed by each chunk, one list per chunk that completes any
    (as iter_data, which flattens them): what one read brought is all ready at once, then the stream's last
    line if it has no end. Lines are cut here, not in a generator of their own: a stream waiting for its
    provider holds one generator's stack less."""
    pending = bytearray()  # the line that has not ended yet
    for chunk in chunks:
        lines = _complete_lines(chunk, pending)
        if lines:
            batch, broken = _values(lines)
            if batch:
                yield batch
            if broken:  # the events before it were sound: they went on first
                raise ProviderError("the provider sent an event that is not UTF-8", kind="malformed")
    if pending:
        batch, broken = _values([bytes(pending)])
        if batch:
            yield batch
        if broken:
            raise ProviderError("the provider sent an event that is not UTF-8", kind="malformed")


def _values(lines: list[bytes]) -> tuple[list[str], bool]:
    """The `data:` values of complete lines, up to the first that is not UTF-8 (and whether there was one)."""
    batch = []
    for line in lines:
        if line.startswith(b"data:"):
            # One slice: the value after `data:` and one space, without the line's end (\n, \r or \r\n).
            lf = line.endswith(b"\n")
            end = len(line) - lf - line.endswith(b"\r", 0, len(line) - lf)
            try:
                batch.append(line[6 if line.startswith(b" ", 5) else 5:end].decode())
            except UnicodeDecodeError:
                return batch, True
    return batch, False


def _complete_lines(chunk: bytes, pending: bytearray) -> list[bytes]:
    """The lines `chunk` completes, line ends kept; an unfinished last line waits in `pending`.

    Only new bytes are searched for line ends: an unfinished line grows in place, so a line arriving in
    many pieces costs time in proportion to its length, not its square."""
    lines = chunk.splitlines(keepends=True)  # bytes split only at \n, \r and \r\n
    if not lines:
        return lines
    if len(chunk) > MAX_LINE_BYTES:  # only then can a line inside this one chunk be too long
        _check(lines)
    if pending:
        # The pending line has no line end yet, so this chunk's first line is its continuation.
        pending += lines[0]
        if len(pending) > MAX_LINE_BYTES:
            _check([pending])
        if not pending.endswith(_LINE_ENDS):
            return []
        lines[0] = bytes(pending)
        pending.clear()
    if not lines[-1].endswith(_LINE_ENDS):
        pending += lines.pop()
    return lines


def _check(lines: list) -> None:
    """Raise `too_large` for a line over MAX_LINE_BYTES, its line end not counted."""
    for line in lines:
        if len(line) > MAX_LINE_BYTES and len(line.rstrip(b"\r\n")) > MAX_LINE_BYTES:
            raise ProviderError(f"the provider sent a line longer than {MAX_LINE_BYTES} bytes", kind="too_large")
