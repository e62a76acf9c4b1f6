"""What a test scripts: `Reply`, one chat answer (normal, failing or hostile), and the byte patterns of the hostile
modes. Nothing here depends on a provider's wire format."""
from __future__ import annotations

from dataclasses import dataclass, field

MALFORMED = '{"choices": ['  # truncated JSON for Reply(malformed=True) (each format has its own; this is OpenAI's)
FLOOD_TEXT = "a" * 1024  # the content of every event of Reply(endless="events")
FLOOD_BLOCK = 64 * 1024  # bytes per write of a flood
# The SSE comment line Reply(keepalive=n) sends, whatever the provider: OpenRouter's keep-alive, the only one seen
# from any of them (https://openrouter.ai/docs/api-reference/streaming, "Additional Information").
KEEPALIVE_COMMENT = b": OPENROUTER PROCESSING\n\n"


@dataclass
class Reply:
    """What the fake answers to one chat request. Timings are seconds."""
    chunks: list[str] | None = None        # content deltas; None = "Hello", " from", " <provider id>"
    reasoning: list[str] = field(default_factory=list)  # reasoning deltas, sent before the content
    header_delay: float = 0.0               # before the status line (nothing at all is sent meanwhile)
    first_delay: float = 0.0                # streams: after the headers, before the first data event (TTFT);
                                            # non-streamed/error replies: before the whole response
    interval: float = 0.0                   # between data events (reasoning and content)
    status: int = 200
    headers: dict = field(default_factory=dict)  # extra/overriding response headers
    body: str | dict | None = None          # error body; None = the provider's real body for `status`
    keepalive: int = 0                      # SSE comment lines before the first data event (spread over first_delay)
    drop_after: int | None = None           # after N content chunks close the socket abruptly
    stall_after: int | None = None          # after N content chunks go silent for stall_seconds, then drop
    stall_seconds: float = 30.0
    never_answer: bool = False              # read the request, send nothing (stall_seconds), then close
    malformed: bool = False                 # a broken-JSON data event after the first content chunk
    error_event: dict | None = None         # sent as a data event after the content; see stream_error_event()
    finish_reason: str = "stop"
    usage: dict | None = field(default_factory=lambda: {"prompt_tokens": 10, "completion_tokens": 5})
                                            # (any numbers, e.g. 10**30 or 1e308, are sent as they are)
    times: int = 1                          # how many consecutive requests this queued reply serves
    # Hostile modes: a broken or malicious provider. Floods (endless, body_bytes) are recorded in fake.floods.
    raw_events: list[str | bytes] = field(default_factory=list)  # data payloads sent verbatim as `data: <payload>`
                                            # events (bytes as they are, e.g. b"\xff\xfe"; any JSON, of any shape)
    raw_after: int = 0                      # ...just before this content chunk (0: before the first); the stream
                                            # then goes on as usual
    raw_body: bytes | None = None           # the whole response body, verbatim, under `status` and content_type
    content_type: str = "text/html; charset=utf-8"
    endless: str | None = None              # "events": content events (FLOOD_TEXT each) forever, as fast as the peer
                                            # reads, or one per `interval`; "line": `data: {"choices":[{"delta":
                                            # {"content":"aaaa...` written forever without a line end
    body_bytes: int = 0                     # an error body (under `status`) of exactly this many bytes, streamed
    flood_limit: int = 256 * 1024 * 1024    # safety net: an endless flood gives up (drops) after this many bytes
    redirect: str | None = None             # answer `status` (307 unless a 3xx) with Location: this path on the fake
    echo_key: bool = False                  # error body (under `status`) whose message repeats the API key received,
                                            # with HTML and a server path in it
    # Tools, JSON output. Each format answers these in its own shape (see its tool_call_events and full).
    tool_calls: list[tuple[str, str | dict]] = field(default_factory=list)
                                            # (function name, arguments as JSON text or a dict): answered as the
                                            # provider's tool calls, after the content (none by default when there
                                            # are tool calls); finish_reason "stop" then reads as the provider's
                                            # own word for a tool call answer ("tool_calls", Gemini's "STOP")
    json_content: object = None             # the content when the request asks for JSON output (OpenAI
                                            # response_format json_object/json_schema, Gemini responseMimeType
                                            # application/json): a str is sent as it is, anything else as JSON; a
                                            # request that does not ask gets `chunks` as usual
    thought_signature: str | None = None    # Gemini: the thoughtSignature on the first functionCall (None: a fresh
                                            # one, standard base64 as Gemini writes it)
