"""A local fake of every upstream provider in the gateway's registry (providers.PROVIDER_CLASSES), each speaking
its real wire format.

One threaded HTTP/1.1 server, started in-process by tests; the gateway under test (a separate gunicorn process)
talks to it over the network.

    with FakeProviders() as fake:
        fake.enqueue("groq", Reply(status=429))                   # next groq chat call gets Groq's real 429
        fake.enqueue("gemini", Reply(interval=0.05, drop_after=2))
        fake.enqueue("groq", Reply(endless="events"))             # a hostile provider: data events forever
        fake.enqueue("gemini", Reply(tool_calls=[("get_weather", {"city": "Paris"})]))  # functionCall parts
        fake.enqueue("groq", Reply(json_content={"ok": True}))    # JSON content when JSON output is asked for
        gateway_env = {"GROQ_BASE_URL": fake.base_url("groq"), ...}

Beyond text, each format answers tool calls (Reply.tool_calls) and JSON output (Reply.json_content) in its
provider's shape, refuses what the real provider refuses whatever it was scripted to say (Gemini 3: a function
call of the current turn without its thoughtSignature; Groq: `response_format` on a stream, an image for a
text-only model; RecordedRequest.refusal says so, and the scripted reply stays queued), records the images that
arrived (RecordedRequest.images()) and the tool calls it answered (RecordedRequest.answered_calls), and serves
embeddings (`POST <base>/embeddings`, Gemini's `:batchEmbedContents`) with vectors from embedding_of(text).

Layout, mirroring providers/: one class per wire format (base.py: what a format is; openai_compat.py: the
OpenAI-compatible format, which also serves any OpenAI-compatible provider without one of its own; groq.py,
cerebras.py, openrouter.py and huggingface.py override only what their provider does differently; gemini.py: the
native Gemini format). registry.py maps the registry's classes to formats; handler.py is the HTTP server, which
asks the format object for everything provider-specific; server.py is FakeProviders; reply.py is Reply (what a
test scripts) and records.py what the fake records. Each wire-format fact carries a link to its public source, or
says that none was found. Standard library only, plus the gateway's provider registry.
"""
from tests.fakeprovider.base import EMBEDDING_DIMENSIONS, embedding_of
from tests.fakeprovider.gemini import GEMINI_STATUS, SKIP_SIGNATURE
from tests.fakeprovider.records import AnsweredCall, Flood, RecordedRequest
from tests.fakeprovider.registry import (
    BASE_PATHS, DEFAULT_MODELS, FORMATS, PROVIDERS, default_headers, echo_key_body, error_body, presented_key,
    stream_error_event,
)
from tests.fakeprovider.reply import FLOOD_BLOCK, FLOOD_TEXT, MALFORMED, Reply
from tests.fakeprovider.server import FakeProviders

# What each provider answers for a model it does not offer, with FakeProviders.strict_models on.
UNKNOWN_MODEL_STATUS = {p: f.unknown_model_status for p, f in FORMATS.items()}

__all__ = [
    "BASE_PATHS", "DEFAULT_MODELS", "EMBEDDING_DIMENSIONS", "FLOOD_BLOCK", "FLOOD_TEXT", "FORMATS", "GEMINI_STATUS",
    "MALFORMED", "PROVIDERS", "SKIP_SIGNATURE", "UNKNOWN_MODEL_STATUS", "AnsweredCall", "FakeProviders", "Flood",
    "RecordedRequest", "Reply", "default_headers", "echo_key_body", "embedding_of", "error_body", "presented_key",
    "stream_error_event",
]
