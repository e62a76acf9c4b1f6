"""An answer written in OpenAI's shapes: one `chat.completion`, or `chat.completion.chunk` events as
OpenAI streams them (text, reasoning and tool call deltas), so every OpenAI SDK reads it as its own."""
from __future__ import annotations

import json
import json.encoder
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from utils.chat import Chunk, ToolCallDelta, Usage
from utils.disconnect import ClientGone
from utils.dispatch import StreamBroken
from utils.errors import ProviderError
from utils.relay import Answer
from utils.upstream import more_ready

DONE = b"data: [DONE]\n\n"
_json_string = json.encoder.encode_basestring_ascii  # what json.dumps(text) does for a string, without its layers
COMPACT = (",", ":")  # json.dumps separators: the pre-encoded parts of a chunk are compact too
# Providers' finish reasons (Gemini's lowercased) in OpenAI's words; anything else reads as a normal stop.
FINISH_REASONS = {"stop": "stop", "length": "length", "max_tokens": "length", "content_filter": "content_filter",
                  "safety": "content_filter", "recitation": "content_filter", "blocklist": "content_filter",
                  "prohibited_content": "content_filter", "spii": "content_filter", "tool_calls": "tool_calls",
                  "function_call": "tool_calls"}


def has_output(chunk: Chunk) -> bool:
    """What counts as the answer having started: reasoning is part of an OpenAI answer
    (`reasoning_content`), and an answer that is only a tool call has no text at all."""
    return bool(chunk.text or chunk.reasoning or chunk.tool_calls)


def finish_reason(reason: str | None, called_tools: bool) -> str:
    # Gemini ends an answer that calls functions with STOP; OpenAI's clients expect tool_calls.
    finished = FINISH_REASONS.get(reason or "stop", "stop")
    return "tool_calls" if called_tools and finished == "stop" else finished


def usage_body(usage: Usage | None) -> dict:
    usage = usage or Usage()
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}


@dataclass(frozen=True)
class Envelope:
    """What every object of one completion repeats: its id, creation time and the upstream model id."""
    id: str
    created: int
    model: str

    @classmethod
    def new(cls, model: str) -> Envelope:
        return cls(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model)


def completion_body(answer: Answer, chunks: list[Chunk], envelope: Envelope) -> dict:
    """The whole answer as one `chat.completion`."""
    calls = whole_tool_calls([delta for chunk in chunks for delta in chunk.tool_calls])
    text = "".join(chunk.text for chunk in chunks)
    message: dict = {"role": "assistant", "content": text or (None if calls else "")}
    reasoning = "".join(chunk.reasoning for chunk in chunks)
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = calls
    return {"id": envelope.id, "object": "chat.completion", "created": envelope.created, "model": envelope.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason(answer.finish_reason, bool(calls))}],
            "usage": usage_body(answer.usage)}


def whole_tool_calls(deltas: list[ToolCallDelta]) -> list[dict]:
    """Streamed tool call pieces put together: by index, the first id and name, the arguments joined."""
    calls: dict[int, dict] = {}
    for delta in deltas:
        call = calls.setdefault(delta.index, {"id": None, "type": "function", "function": {"name": None,
                                                                                        "arguments": ""}})
        call["id"] = call["id"] or delta.id
        call["function"]["name"] = call["function"]["name"] or delta.name
        call["function"]["arguments"] += delta.arguments
    return [calls[index] for index in sorted(calls)]


class ChunkEncoder:
    """`chat.completion.chunk` SSE events for one completion. The bytes around a delta are encoded once,
    so each text delta costs one json.dumps of the text itself."""

    def __init__(self, envelope: Envelope):
        head = json.dumps({"id": envelope.id, "object": "chat.completion.chunk", "created": envelope.created,
                           "model": envelope.model}, separators=COMPACT)[:-1]
        self._head = f"data: {head},".encode()
        self._delta = self._head + b'"choices":[{"index":0,"delta":{'
        self._end = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        self._content = self._delta + b'"content":'  # the rest is built when asked: a stream holds less

    def role(self, calling: bool = False) -> bytes:
        """The first event. OpenAI opens an answer that starts with a tool call with `content: null`: SDKs
        keep it as None."""
        return self._delta + (b'"role":"assistant","content":null' if calling else
                              b'"role":"assistant","content":""') + self._end

    def content(self, text: str) -> bytes:
        return self._content + _json_string(text).encode() + self._end

    def reasoning(self, text: str) -> bytes:
        return b"".join((self._delta, b'"reasoning_content":', _json_string(text).encode(), self._end))

    def tool_calls(self, deltas: tuple[ToolCallDelta, ...]) -> bytes:
        """As OpenAI streams them: a call's first piece carries its id, type and name, each piece its
        index and some of the arguments."""
        pieces = []
        for delta in deltas:
            piece: dict = {"index": delta.index}
            if delta.id is not None:
                piece.update(id=delta.id, type="function")
            function = {"name": delta.name} if delta.name is not None else {}
            piece["function"] = {**function, "arguments": delta.arguments}
            pieces.append(piece)
        return b"".join((self._delta, b'"tool_calls":', json.dumps(pieces, separators=COMPACT).encode(),
                         self._end))

    def finish(self, reason: str) -> bytes:
        return self._delta + b'},"logprobs":null,"finish_reason":"' + reason.encode() + b'"}]}\n\n'

    def usage(self, usage: Usage | None) -> bytes:
        usage_json = json.dumps(usage_body(usage), separators=COMPACT).encode()
        return self._head + b'"choices":[],"usage":' + usage_json + b"}\n\n"

    @staticmethod
    def error(message: str) -> bytes:
        error = {"message": message, "type": "server_error", "param": None, "code": "provider_error"}
        return b"data: " + json.dumps({"error": error}, separators=COMPACT).encode() + b"\n\n"


def stream_chunks(answer: Answer, encoder: ChunkEncoder, include_usage: bool) -> Iterator[bytes]:
    """The answer as it arrives, reasoning, text and tool calls in their own deltas. A provider failing
    mid-stream cannot be hidden any more: it is reported as one last event carrying `error`, which
    OpenAI's SDKs raise as APIError, and the stream ends there."""
    # Events ready together (one read from the provider) go out in one write; an event that arrives alone
    # is written at once (`more_ready`).
    ready = [encoder.role()]
    add, content = ready.append, encoder.content
    called_tools, first = False, True
    try:
        for chunk in answer:
            if first:
                first = False
                if chunk.tool_calls and not chunk.text and not chunk.reasoning:
                    ready[0] = encoder.role(calling=True)  # nothing is written before the first chunk
            if chunk.reasoning:
                add(encoder.reasoning(chunk.reasoning))
            if chunk.text:
                add(content(chunk.text))
            if chunk.tool_calls:
                called_tools = True
                add(encoder.tool_calls(chunk.tool_calls))
            if ready and not more_ready():
                yield b"".join(ready)
                ready.clear()
    except ProviderError:
        yield b"".join((*ready, encoder.error(f"{answer.provider.name} failed mid-stream; the answer is incomplete")))
        return
    except ClientGone:
        raise StreamBroken() from None
    add(encoder.finish(finish_reason(answer.finish_reason, called_tools)))
    if include_usage:
        add(encoder.usage(answer.usage))
    add(DONE)
    yield b"".join(ready)
