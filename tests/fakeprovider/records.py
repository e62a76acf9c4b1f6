"""What the fake records: every request it received (`RecordedRequest`) and how every flood ended (`Flood`)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Flood:
    """How one flood (Reply.endless or body_bytes) ended."""
    provider: str
    mode: str               # "events" | "line" | "body"
    bytes_sent: int         # bytes handed to the socket (the peer read at most this, kernel buffers included)
    closed_by_peer: bool    # the gateway closed the connection; False: the flood ran to its end or limit


@dataclass(frozen=True)
class AnsweredCall:
    """A tool call the fake answered a request with, as the provider sent it."""
    id: str | None              # the provider's call id (Gemini 3 sends none)
    name: str
    arguments: str              # JSON text
    thought_signature: str | None = None  # Gemini: the signature on this functionCall part


@dataclass
class RecordedRequest:
    provider: str | None
    method: str
    path: str
    query: dict
    headers: dict           # lowercase keys
    json: object
    kind: str = "other"     # "chat" (chat/completions, generateContent), "embeddings", "models" or "other"
    model: str | None = None
    stream: bool = False
    client: tuple = ()      # (host, port) of the TCP peer: one port per keep-alive connection
    refusal: str | None = None  # the message of the provider's 400 the fake answered instead of the scripted
                                # reply (a request the real provider refuses; the reply stays queued)
    answered_calls: list[AnsweredCall] = field(default_factory=list)  # the tool calls the fake answered with

    def images(self) -> list[tuple[str, dict]]:
        """The images the request carried, in order, as (kind, value): ("image_url", {"url", "detail"?}) from
        OpenAI-shaped messages, ("inlineData", {"mimeType", "data"}) or ("fileData", {"mimeType", "fileUri"})
        from Gemini contents."""
        body = self.json if isinstance(self.json, dict) else {}
        messages, contents = body.get("messages"), body.get("contents")
        found = []
        for message in messages if isinstance(messages, list) else []:
            content = message.get("content") if isinstance(message, dict) else None
            for part in content if isinstance(content, list) else []:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    found.append(("image_url", part.get("image_url")))
        for content in contents if isinstance(contents, list) else []:
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else []:
                for kind in ("inlineData", "fileData"):
                    if isinstance(part, dict) and kind in part:
                        found.append((kind, part[kind]))
        return found
