"""What the fake records: every request it received (`RecordedRequest`) and how every flood ended (`Flood`)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Flood:
    """How one flood (Reply.endless or body_bytes) ended."""
    provider: str
    mode: str               # "events" | "line" | "body"
    bytes_sent: int         # bytes handed to the socket (the peer read at most this, kernel buffers included)
    closed_by_peer: bool    # the gateway closed the connection; False: the flood ran to its end or limit


@dataclass
class RecordedRequest:
    provider: str | None
    method: str
    path: str
    query: dict
    headers: dict           # lowercase keys
    json: object
    kind: str = "other"     # "chat" (chat/completions, generateContent), "models" or "other"
    model: str | None = None
    stream: bool = False
    client: tuple = ()      # (host, port) of the TCP peer: one port per keep-alive connection
