"""What the response cache keeps of a complete answer, in no endpoint's format: its text, reasoning and tool
calls, how it finished, its usage, and the provider and model that gave it. A hit is replayed as chunks
through the same encoders a live answer goes through, so /chat and /v1 (streamed or not) read it alike.
And the key it is kept under: a SHA-256 digest of everything that shapes the answer.

Entries may come back from Redis, which is outside the process: `Entry.decode` reads them as untrusted data
and gives None for anything that is not exactly an entry this code wrote under that key."""
from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass

from utils.chat import ChatRequest, Chunk, ToolCallDelta, Usage

VERSION = 1  # bumped when the entry or the key changes shape: older entries then simply miss
MAX_TOOL_CALLS = 128
MAX_COUNT = 10**12  # a token count no real answer reaches
COMPACT = (",", ":")


def request_key(scope: str, provider: str | None, fallback: bool, chat_request: ChatRequest) -> str:
    """The digest of a request: the caller's scope ("" when shared), the provider asked for (None: the
    rotation) and whether others may take over, the model, the messages and every option carried to the
    provider. Numbers are compared as JSON values: `0` and `0.0` are one temperature."""
    request = {"v": VERSION, "scope": scope, "provider": provider or "auto", "fallback": fallback,
               "model": chat_request.model, "messages": [asdict(m) for m in chat_request.messages],
               "options": chat_request.options}
    # Written, read back with whole floats as ints, written again: the json module nests no deeper than the
    # request body's own parse did, where a walk in Python would give up on `tools` a few hundred levels deep.
    text = json.dumps(request, sort_keys=True, separators=COMPACT)
    text = json.dumps(json.loads(text, parse_float=_number), sort_keys=True, separators=COMPACT)
    return hashlib.sha256(text.encode()).hexdigest()


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


class Pieces:
    """An answer put together as its chunks arrive, at the cost of its characters only (however many chunks
    they came in): text, reasoning, and tool calls by index (the first id and name, the arguments joined, as
    OpenAI's clients do). `size` counts the characters; more than MAX_TOOL_CALLS calls make it unbounded."""

    def __init__(self):
        self.text, self.reasoning = io.StringIO(), io.StringIO()
        self.calls: dict[int, list] = {}
        self.size = 0

    def add(self, chunk: Chunk) -> None:
        self.text.write(chunk.text)
        self.reasoning.write(chunk.reasoning)
        self.size += len(chunk.text) + len(chunk.reasoning)
        for delta in chunk.tool_calls:
            if delta.index not in self.calls and len(self.calls) == MAX_TOOL_CALLS:
                self.size = math.inf
                return
            call = self.calls.setdefault(delta.index, [None, None, io.StringIO()])
            call[0], call[1] = call[0] or delta.id, call[1] or delta.name
            call[2].write(delta.arguments)
            self.size += len(delta.arguments)

    @property
    def said_something(self) -> bool:
        return bool(self.calls) or self.text.tell() > 0


@dataclass(frozen=True)
class Source:
    """Who gave the answer, as the views name them: `X-Provider` and the OpenAI `model` of a replay."""
    id: str
    name: str
    model: str


@dataclass(frozen=True)
class Entry:
    key: str  # the digest it was stored under: found under any other, it is not used
    source: Source
    stored_at: float
    text: str
    reasoning: str
    # False when the endpoint that recorded it does not relay all of the reasoning (/chat drops what comes
    # before the text): an endpoint that shows reasoning does not replay it.
    whole_reasoning: bool
    tool_calls: tuple[tuple[str | None, str | None, str], ...]  # (id, name, arguments) in order
    finish_reason: str | None
    usage: Usage

    @classmethod
    def of(cls, key: str, source: Source, pieces: Pieces, *, finish_reason: str | None, usage: Usage | None,
           whole_reasoning: bool, now: float) -> Entry:
        return cls(key, source, now, pieces.text.getvalue(), pieces.reasoning.getvalue(), whole_reasoning,
                   tuple((call_id, name, arguments.getvalue())
                         for call_id, name, arguments in (pieces.calls[i] for i in sorted(pieces.calls))),
                   finish_reason, usage or Usage())

    def chunks(self) -> list[Chunk]:
        """The answer as a live one arrives: reasoning, text, tool calls, then how it finished."""
        chunks = [Chunk(reasoning=self.reasoning)] if self.reasoning else []
        if self.text:
            chunks.append(Chunk(text=self.text))
        if self.tool_calls:
            chunks.append(Chunk(tool_calls=tuple(ToolCallDelta(index, call_id, name, arguments)
                                                 for index, (call_id, name, arguments) in enumerate(self.tool_calls))))
        return chunks + [Chunk(finish_reason=self.finish_reason, usage=self.usage)]

    def encode(self) -> bytes:
        return json.dumps({
            "v": VERSION, "key": self.key, "source": [self.source.id, self.source.name, self.source.model],
            "storedAt": self.stored_at, "text": self.text, "reasoning": self.reasoning,
            "wholeReasoning": self.whole_reasoning, "toolCalls": [list(call) for call in self.tool_calls],
            "finishReason": self.finish_reason, "usage": [self.usage.prompt_tokens, self.usage.completion_tokens],
        }, separators=COMPACT).encode()

    @classmethod
    def decode(cls, raw: bytes | None, key: str) -> Entry | None:
        """The entry `raw` holds if it is one, written under `key`; None for anything else."""
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            if data["v"] != VERSION or data["key"] != key:
                return None
            calls = data["toolCalls"]
            if not isinstance(calls, list) or len(calls) > MAX_TOOL_CALLS:
                return None
            prompt, completion = data["usage"]
            return cls(key, Source(*(_text(part) for part in _triple(data["source"]))), _time(data["storedAt"]),
                       _text(data["text"]), _text(data["reasoning"]), _flag(data["wholeReasoning"]),
                       tuple(_call(call) for call in calls), _text(data["finishReason"], none=True),
                       Usage(_count(prompt), _count(completion)))
        except (ValueError, TypeError, KeyError, RecursionError):  # RecursionError: JSON nested thousands deep
            return None


def _triple(value) -> list:
    if not isinstance(value, list) or len(value) != 3:
        raise TypeError("not a triple")
    return value


def _call(value) -> tuple[str | None, str | None, str]:
    call_id, name, arguments = _triple(value)
    return _text(call_id, none=True), _text(name, none=True), _text(arguments)


def _text(value, none: bool = False) -> str | None:
    if isinstance(value, str) or (none and value is None):
        return value
    raise TypeError("not a string")


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError("not a boolean")


def _count(value) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    raise ValueError("not a token count")


def _time(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ValueError("not a time")
