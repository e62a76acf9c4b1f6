"""What a chat request and its answer are made of, as every layer sees them: validated messages in,
chunks out. Plain frozen data, so providers, the relay and the views share one vocabulary."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # user | assistant | system
    content: str


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    # Sampling options in OpenAI's names (temperature, top_p, max_tokens, stop, seed, user); each
    # provider passes on what it supports.
    options: dict = field(default_factory=dict)
    # A model id to use instead of the provider's configured one.
    model: str | None = None

    @property
    def estimated_tokens(self) -> int:
        """A cheap guess at the prompt's size (about four characters a token), to check token budgets."""
        return sum(len(m.content) for m in self.messages) // 4


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of an answer. `reasoning` is the model's thinking, kept apart from the answer `text`."""
    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
