"""What a chat request and its answer are made of, as every layer sees them: validated messages in,
chunks out. Plain frozen data, so providers, the relay and the views share one vocabulary."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

# What a request can need of a provider's model, as settings and errors name them.
TOOLS, JSON, VISION = "tools", "json", "vision"


@dataclass(frozen=True, slots=True)
class Image:
    url: str  # https://... or data:image/...;base64,...
    detail: str | None = None  # OpenAI's `auto` | `low` | `high`


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model made, as OpenAI carries it: `arguments` is JSON text."""
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # user | assistant | system | tool
    content: str  # all the message's text (its text parts joined)
    # The content in order when it holds images: each item a text (str) or an Image; empty otherwise.
    parts: tuple[str | Image, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant's earlier calls
    tool_call_id: str | None = None  # a tool message answers this call
    name: str | None = None  # a tool message: the function's name, where the client gave it


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    # Options in OpenAI's names (temperature, top_p, max_tokens, stop, seed, user, presence_penalty,
    # frequency_penalty, tools, tool_choice, parallel_tool_calls, response_format); each provider
    # translates them to its own format.
    options: dict = field(default_factory=dict)
    # A model id to use instead of the provider's configured one.
    model: str | None = None

    @property
    def estimated_tokens(self) -> int:
        """A cheap guess at the prompt's size (about four characters a token), to check token budgets."""
        return sum(len(m.content) for m in self.messages) // 4

    @cached_property  # asked of every configured provider while planning: worked out once
    def needs(self) -> frozenset[str]:
        """What the provider's model must be able to do to serve this request."""
        needs = set()
        if self.options.get("tools") or any(m.tool_calls or m.role == "tool" for m in self.messages):
            needs.add(TOOLS)
        if self.options.get("response_format", {}).get("type") in ("json_object", "json_schema"):
            needs.add(JSON)
        if any(isinstance(part, Image) for m in self.messages for part in m.parts):
            needs.add(VISION)
        return frozenset(needs)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call as OpenAI streams it: the first piece of call `index` carries its id and
    name, later pieces more of its `arguments` text."""
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of an answer. `reasoning` is the model's thinking, kept apart from the answer `text`."""
    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
